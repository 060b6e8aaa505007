package main

import (
	"fmt"
	"strings"
	"time"
)

// grid gathers figures by row and column over the runs, rows in the order
// they first appear.
type grid struct {
	rows  []string
	cells map[string]map[string]spread
}

func (g *grid) add(row, col string, v float64) {
	if g.cells == nil {
		g.cells = map[string]map[string]spread{}
	}
	if g.cells[row] == nil {
		g.rows = append(g.rows, row)
		g.cells[row] = map[string]spread{}
	}
	g.cells[row][col] = append(g.cells[row][col], v)
}

// column is how a grid's column prints.
type column struct {
	name   string
	format func(float64) string
	suffix string // after the median: "x"
}

func (g *grid) table(first string, cols []column) table {
	t := table{head: []string{first}}
	for _, c := range cols {
		t.head = append(t.head, c.name)
	}
	for _, r := range g.rows {
		cells := []string{r}
		for _, c := range cols {
			cells = append(cells, g.cells[r][c.name].cell(c.format, c.suffix))
		}
		t.rows = append(t.rows, cells)
	}
	return t
}

// parkedPrefix starts the names of shmbench's parked floors: both
// processes blocking in the kernel between messages, no library.
const parkedPrefix = "parked floor"

// defaultPolicy is the name of shmbench's row for the default wait policy
// on both ends.
const defaultPolicy = "shm adaptive"

func isParked(transport string) bool { return strings.HasPrefix(transport, parkedPrefix) }

// latencyTable shows the round trips at one interval (0: back to back)
// and their ratios to the floor's (withFloor) and unix's of the same run.
// The parked floors have a table of their own (parkedTable).
func latencyTable(runs []shmbenchFigures, interval time.Duration, withFloor bool) table {
	var g grid
	for _, run := range runs {
		byName := map[string]latencyRow{}
		var rows []latencyRow
		for _, r := range run.Latency {
			if time.Duration(r.IntervalNs) == interval && !isParked(r.Transport) {
				byName[r.Transport] = r
				rows = append(rows, r)
			}
		}
		floor, hasFloor := byName["floor"]
		unix, hasUnix := byName["unix"]
		for _, r := range rows {
			g.add(r.Transport, "p50 (us)", r.P50Ns)
			g.add(r.Transport, "p99 (us)", r.P99Ns)
			g.add(r.Transport, "p99.9 (us)", r.P999Ns)
			if hasFloor && withFloor && r.Transport != "floor" {
				g.add(r.Transport, "p50 / floor's", r.P50Ns/floor.P50Ns)
			}
			if hasUnix && r.Transport != "unix" {
				g.add(r.Transport, "p50 / unix's", r.P50Ns/unix.P50Ns)
				g.add(r.Transport, "p99 / unix's", r.P99Ns/unix.P99Ns)
			}
		}
	}
	cols := []column{{"p50 (us)", us, ""}, {"p99 (us)", us, ""}, {"p99.9 (us)", us, ""}}
	if withFloor {
		cols = append(cols, column{"p50 / floor's", ratio, "x"})
	}
	cols = append(cols, column{"p50 / unix's", ratio, "x"}, column{"p99 / unix's", ratio, "x"})
	return g.table("transport", cols)
}

// parkedTable shows the parked floors at one interval and, run by run,
// the default policy's p50 over each; it has no rows if the runs had no
// parked floors.
func parkedTable(runs []shmbenchFigures, interval time.Duration) table {
	var g grid
	col := defaultPolicy + " p50 / floor's"
	for _, run := range runs {
		var def *latencyRow
		for _, r := range run.Latency {
			if time.Duration(r.IntervalNs) == interval && r.Transport == defaultPolicy {
				def = &r
			}
		}
		for _, r := range run.Latency {
			if time.Duration(r.IntervalNs) != interval || !isParked(r.Transport) {
				continue
			}
			g.add(r.Transport, "p50 (us)", r.P50Ns)
			g.add(r.Transport, "p99 (us)", r.P99Ns)
			g.add(r.Transport, "p99.9 (us)", r.P999Ns)
			if def != nil && r.P50Ns > 0 {
				g.add(r.Transport, col, def.P50Ns/r.P50Ns)
			}
		}
	}
	return g.table("parked floor", []column{{"p50 (us)", us, ""}, {"p99 (us)", us, ""}, {"p99.9 (us)", us, ""}, {col, ratio, "x"}})
}

// throughputTable shows each row's values (rounds or runs) pooled over
// the runs, and each row's median over each base row's, run by run.
func throughputTable(runs [][]namedValues, first, unit string, format func(float64) string, bases ...string) table {
	var g grid
	for _, rows := range runs {
		medians := map[string]float64{}
		for _, r := range rows {
			medians[r.Transport] = spread(r.Values).median()
		}
		for _, r := range rows {
			for _, v := range r.Values {
				g.add(r.Transport, unit, v)
			}
			for _, base := range bases {
				if b, ok := medians[base]; ok && r.Transport != base {
					g.add(r.Transport, "/ "+base+"'s", medians[r.Transport]/b)
				}
			}
		}
	}
	cols := []column{{unit, format, ""}}
	for _, base := range bases {
		cols = append(cols, column{"/ " + base + "'s", ratio, "x"})
	}
	return g.table(first, cols)
}

func streamTable(runs []shmbenchFigures) table {
	var rows [][]namedValues
	for _, r := range runs {
		rows = append(rows, r.Stream)
	}
	return throughputTable(rows, "transport", "MB/s", whole, "floor", "unix")
}

func multiTable(runs []shmbenchFigures) table {
	var rows [][]namedValues
	for _, r := range runs {
		rows = append(rows, r.Multi)
	}
	return throughputTable(rows, "transport", "round trips/s", whole, "unix")
}

func ringTable(runs []shmbenchFigures) table {
	var rows [][]namedValues
	for _, r := range runs {
		rows = append(rows, r.Ring)
	}
	return throughputTable(rows, "queue", "MB/s", whole, "chan []byte")
}

func idleTable(runs []shmbenchFigures) table {
	var g grid
	for _, run := range runs {
		for _, r := range run.Idle {
			name := fmt.Sprintf("%s, %d conns", r.Transport, r.Conns)
			if r.Conns == 1 {
				name = r.Transport + ", 1 conn"
			}
			g.add(name, "CPU (% of a core)", r.ClientCPU+r.ServerCPU)
			g.add(name, "client threads", r.ClientThreads)
			g.add(name, "server threads", r.ServerThreads)
		}
	}
	return g.table("transport", []column{{"CPU (% of a core)", pct, ""}, {"client threads", whole, ""}, {"server threads", whole, ""}})
}

func demoTable(runs []demoFigures) table {
	var g grid
	for _, run := range runs {
		for _, r := range run.Rows {
			g.addHist(r.Transport, "sparse", r.Sparse)
			g.addHist(r.Transport, "back-to-back", r.Dense)
		}
	}
	return g.table("transport", histColumns("sparse", "back-to-back"))
}

// addHist adds a histogram's p50 and p99 as the columns "<what> p50 (us)"
// and "<what> p99 (us)".
func (g *grid) addHist(row, what string, h histFigures) {
	g.add(row, what+" p50 (us)", h.P50Ns)
	g.add(row, what+" p99 (us)", h.P99Ns)
}

// histColumns are the columns addHist fills.
func histColumns(whats ...string) []column {
	var cols []column
	for _, w := range whats {
		cols = append(cols, column{w + " p50 (us)", us, ""}, column{w + " p99 (us)", us, ""})
	}
	return cols
}

// demoCommand and demoInterval say what the demo timed.
func demoCommand(runs []demoFigures) string {
	if len(runs) == 0 {
		return "?"
	}
	return runs[0].Command
}

func demoInterval(runs []demoFigures) time.Duration {
	if len(runs) == 0 {
		return 0
	}
	return time.Duration(runs[0].IntervalNs)
}

// demoFellBack says in how many runs a shared-memory client of the demo
// did not get shared memory; the report warns if any did.
func demoFellBack(runs []demoFigures) int {
	n := 0
	for _, run := range runs {
		for _, s := range run.Shm {
			if s.SharedConns == 0 || s.Fallbacks > 0 {
				n++
				break
			}
		}
	}
	return n
}

func moduleTable(runs []moduleFigures) table {
	var g grid
	for _, run := range runs {
		for _, r := range run.Rows {
			g.addHist(r.Measure, "socket", r.Socket)
			g.addHist(r.Measure, "module", r.Shm)
			g.add(r.Measure, "socket's p50 / module's", r.Socket.P50Ns/r.Shm.P50Ns)
		}
	}
	return g.table("measure", append(histColumns("socket", "module"), column{"socket's p50 / module's", ratio, "x"}))
}

func callPathTable(res []benchResult) table {
	var g grid
	for _, r := range res {
		g.add(r.name, "ns/op", r.nsPerOp)
		g.add(r.name, "B/op", r.bytes)
		g.add(r.name, "allocs/op", r.allocs)
	}
	return g.table("benchmark", []column{{"ns/op", dec1, ""}, {"B/op", whole, ""}, {"allocs/op", whole, ""}})
}
