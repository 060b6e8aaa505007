package main

import (
	"encoding/json"
	"io"
	"strings"

	"github.com/HdrHistogram/hdrhistogram-go"

	"github.com/shmconn/shmconn/conn"
)

// demoFigures are what -json prints instead of the demo's table: every
// transport's sparse and back-to-back round trips.
type demoFigures struct {
	Command    string      `json:"command"`     // PING or GET
	IntervalNs int64       `json:"interval_ns"` // between sparse requests
	Rows       []demoRow   `json:"rows"`
	Shm        []dialerRow `json:"shm"` // each server's shared-memory client
}

type demoRow struct {
	Transport string      `json:"transport"`
	Sparse    histFigures `json:"sparse"`
	Dense     histFigures `json:"dense"`
}

// dialerRow says whether a server's shared-memory client really got
// shared memory.
type dialerRow struct {
	Server      string `json:"server"`
	SharedConns uint64 `json:"shared_conns"`
	Fallbacks   uint64 `json:"fallbacks"`
}

// moduleFigures are what -module-targets -json prints instead of the
// verdicts: each measurement over the real server's unix socket and over
// the module.
type moduleFigures struct {
	Rows []moduleRow `json:"rows"`
}

type moduleRow struct {
	Measure string      `json:"measure"`
	Socket  histFigures `json:"socket"`
	Shm     histFigures `json:"shm"`
}

// histFigures summarise a histogram of nanoseconds.
type histFigures struct {
	N     int64 `json:"n"`
	P50Ns int64 `json:"p50_ns"`
	P99Ns int64 `json:"p99_ns"`
	MaxNs int64 `json:"max_ns"`
}

func newHistFigures(h *hdrhistogram.Histogram) histFigures {
	return histFigures{N: h.TotalCount(), P50Ns: h.ValueAtQuantile(50), P99Ns: h.ValueAtQuantile(99), MaxNs: h.Max()}
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func newDemoFigures(cfg config, results []result, stats map[string]conn.Stats) demoFigures {
	f := demoFigures{Command: strings.ToUpper(cfg.cmd), IntervalNs: int64(cfg.interval)}
	for _, r := range results {
		f.Rows = append(f.Rows, demoRow{r.name, newHistFigures(r.sparse), newHistFigures(r.dense)})
	}
	for _, server := range []string{"example server", "real redis-server"} {
		if st, ok := stats[server]; ok {
			f.Shm = append(f.Shm, dialerRow{server, st.SharedConns, st.Fallbacks.NoSegment + st.Fallbacks.OpenFailed})
		}
	}
	return f
}

// newModuleFigures keeps the verdicts that have figures (the loaded one
// has none without redis-benchmark).
func newModuleFigures(vs []verdict) moduleFigures {
	f := moduleFigures{Rows: []moduleRow{}}
	for _, v := range vs {
		if v.sock != nil && v.shm != nil {
			f.Rows = append(f.Rows, moduleRow{v.measure, newHistFigures(v.sock), newHistFigures(v.shm)})
		}
	}
	return f
}
