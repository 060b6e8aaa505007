//go:build linux

package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestQuick runs the report in -quick mode on a copy of the repository's
// BENCHMARKS.md: the generated part must hold every section with
// well-formed tables and the machine's description, the rest of the file
// must be unchanged, and the run must leave no process and no change in
// the tree.
func TestQuick(t *testing.T) {
	if testing.Short() {
		t.Skip("runs every benchmark command briefly (about 20 s); skipped in -short mode")
	}
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("no go command to build the benchmarks with")
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	t.Chdir(root)
	reapOrphans(t)
	statusBefore := gitStatus(t)
	doc, err := os.ReadFile("BENCHMARKS.md")
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "BENCHMARKS.md")
	if err := os.WriteFile(out, doc, 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var log strings.Builder
	if err := run(ctx, []string{"-quick", "-o", out}, &log); err != nil {
		t.Fatalf("run: %v\n%s", err, &log)
	}
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	before, section, after := cutSection(t, string(got))
	oldBefore, _, oldAfter := cutSection(t, string(doc))
	if before != oldBefore || after != oldAfter {
		t.Error("the text outside the markers changed")
	}
	checkSection(t, section)
	if s := gitStatus(t); s != statusBefore {
		t.Errorf("git status changed:\nbefore:\n%s\nafter:\n%s", statusBefore, s)
	}
	if left := orphans(t); len(left) > 0 {
		t.Errorf("processes left running: %v", left)
	}
}

// cutSection splits doc at the markers.
func cutSection(t *testing.T, doc string) (before, section, after string) {
	t.Helper()
	before, rest, ok1 := strings.Cut(doc, beginMarker)
	section, after, ok2 := strings.Cut(rest, endMarker)
	if !ok1 || !ok2 {
		t.Fatalf("no markers in:\n%s", doc)
	}
	return before, section, after
}

var (
	separatorLine = regexp.MustCompile(`^(\|---)+\|$`)
	figureCell    = regexp.MustCompile(`^(-|-?[0-9.]+x?( \(-?[0-9.]+-[0-9.]+\))?)$`)
)

// checkSection checks the generated part: the headings in order, every
// table well-formed with a figure in every cell, the expected rows.
func checkSection(t *testing.T, section string) {
	wantHeadings := []string{"Machine and run", "Round trips back to back", "Round trips at one request per 1ms",
		"Round trips at one request per 10ms", "Streaming", "Many conns at once", "Idle conns",
		"The ring alone, in one process", "One busy process per CPU", "One busy process per CPU, the pair at nice -15", "Redis: the demo",
		"Redis: the real redis-server through the module", "conn's own code", "Memory per conn"}
	var headings []string
	tables := map[string][]table{} // by heading
	heading := ""
	lines := strings.Split(section, "\n")
	for i := 0; i < len(lines); i++ {
		if h, ok := strings.CutPrefix(lines[i], "### "); ok {
			heading = h
			headings = append(headings, h)
			continue
		}
		if !strings.HasPrefix(lines[i], "|") {
			continue
		}
		j := i
		for j < len(lines) && strings.HasPrefix(lines[j], "|") {
			j++
		}
		tables[heading] = append(tables[heading], parseTable(t, heading, lines[i:j]))
		i = j
	}
	if strings.Join(headings, "\n") != strings.Join(wantHeadings, "\n") {
		t.Errorf("headings %q, want %q", headings, wantHeadings)
	}
	for h, ts := range tables {
		for _, tb := range ts {
			if h == "Machine and run" || h == "Memory per conn" {
				continue
			}
			for _, r := range tb.rows {
				for _, c := range r[1:] {
					if !figureCell.MatchString(c) {
						t.Errorf("%s: row %q: cell %q is not a figure", h, r[0], c)
					}
				}
			}
		}
	}
	checkRows(t, tables, "Round trips back to back", "floor", "shm adaptive", "shm server spin, client adaptive", "unix", "tcp")
	checkRows(t, tables, "Streaming", "floor", "shm adaptive", "unix", "tcp")
	checkRows(t, tables, "Many conns at once", "shm adaptive", "unix", "tcp")
	checkRows(t, tables, "conn's own code", "CallPath/conn", "CallPath/rings")
	if _, err := exec.LookPath("redis-server"); err == nil {
		checkRows(t, tables, "Redis: the real redis-server through the module", "GET, one per ms", "GET, back to back",
			"pipeline of 1000 GETs", "GET, one per ms, redis-benchmark -c 10 on the socket")
	}
	parked := []string{"parked floor, eventfd, Go", "parked floor, futex, Go"}
	for _, cc := range []string{"cc", "gcc"} { // shmbench compiles its C floor with either
		if _, err := exec.LookPath(cc); err == nil {
			parked = append([]string{"parked floor, eventfd, C"}, parked...)
			break
		}
	}
	for _, h := range []string{"Round trips at one request per 1ms", "Round trips at one request per 10ms"} {
		if ts := tables[h]; len(ts) != 2 {
			t.Errorf("%s: %d tables, want 2 (the transports, the parked floors)", h, len(ts))
		} else {
			checkRows(t, map[string][]table{h: ts[1:]}, h, parked...)
		}
	}
	if want := 2; os.Geteuid() != 0 {
		if ts := tables["One busy process per CPU, the pair at nice -15"]; len(ts) != 0 {
			t.Errorf("not root, yet %d tables at nice -15", len(ts))
		}
	} else if ts := tables["One busy process per CPU, the pair at nice -15"]; len(ts) != want {
		t.Errorf("%d tables at nice -15, want %d (1ms, its parked floors)", len(ts), want)
	}
	if ts := tables["One busy process per CPU"]; len(ts) != 4 {
		t.Errorf("%d tables under load, want 4 (back to back, 1ms, its parked floors, streaming)", len(ts))
	}
	checkMachine(t, tables["Machine and run"])
	if ts := tables["Memory per conn"]; len(ts) != 1 || len(ts[0].rows) != 4 {
		t.Errorf("memory tables %v, want one of 4 rows", ts)
	}
}

// parseTable checks a markdown table's shape and returns its cells.
func parseTable(t *testing.T, heading string, lines []string) table {
	t.Helper()
	cells := func(line string) []string {
		inner := strings.TrimSuffix(strings.TrimPrefix(line, "| "), " |")
		return strings.Split(inner, " | ")
	}
	if len(lines) < 3 || !separatorLine.MatchString(lines[1]) {
		t.Errorf("%s: not a table with a header, a separator and rows:\n%s", heading, strings.Join(lines, "\n"))
		return table{}
	}
	tb := table{head: cells(lines[0])}
	if n := strings.Count(lines[1], "|") - 1; n != len(tb.head) {
		t.Errorf("%s: %d columns in the separator, %d in the header", heading, n, len(tb.head))
	}
	for _, l := range lines[2:] {
		r := cells(l)
		if len(r) != len(tb.head) || r[0] == "" {
			t.Errorf("%s: row %q: %d cells, want %d, the first not empty", heading, l, len(r), len(tb.head))
		}
		tb.rows = append(tb.rows, r)
	}
	return tb
}

func checkRows(t *testing.T, tables map[string][]table, heading string, want ...string) {
	t.Helper()
	ts := tables[heading]
	if len(ts) == 0 {
		t.Errorf("%s: no table", heading)
		return
	}
	var got []string
	for _, r := range ts[0].rows {
		got = append(got, r[0])
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("%s: rows %q, want %q", heading, got, want)
	}
}

func checkMachine(t *testing.T, ts []table) {
	t.Helper()
	if len(ts) != 1 {
		t.Fatalf("%d machine tables, want 1", len(ts))
	}
	rows := map[string]string{}
	for _, r := range ts[0].rows {
		rows[r[0]] = r[1]
	}
	for _, k := range []string{"CPU", "kernel", "Go", "commit", "date", "command"} {
		if v := rows[k]; v == "" || strings.HasPrefix(v, "unknown") {
			t.Errorf("machine table: %s is %q", k, v)
		}
	}
	if !strings.Contains(rows["command"], "scripts/bench -quick") {
		t.Errorf("machine table: command %q", rows["command"])
	}
}

func gitStatus(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("git", "status", "--porcelain").Output()
	if err != nil {
		t.Skipf("git status: %v (not a git checkout)", err)
	}
	return string(out)
}

// reapOrphans makes this process the reaper of its descendants' orphans,
// so that a benchmark's child left running when its parent exited shows
// up as a child of this process.
func reapOrphans(t *testing.T) {
	t.Helper()
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		t.Fatalf("prctl PR_SET_CHILD_SUBREAPER: %v", err)
	}
}

// orphans lists this process's children that still run (not zombies),
// after giving an exiting one a few seconds.
func orphans(t *testing.T) []string {
	t.Helper()
	var left []string
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		left = left[:0]
		dirs, _ := filepath.Glob("/proc/[0-9]*/stat")
		for _, d := range dirs {
			b, err := os.ReadFile(d)
			if err != nil {
				continue
			}
			// "pid (comm) state ppid ...": comm may hold spaces and parentheses.
			s := string(b)
			f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
			if len(f) >= 2 && f[0] != "Z" && f[1] == strconv.Itoa(os.Getpid()) {
				left = append(left, s[:strings.LastIndexByte(s, ')')+1])
			}
		}
		if len(left) == 0 || time.Now().After(deadline) {
			return left
		}
	}
}
