package main

import (
	"strings"
	"testing"
	"time"

	"github.com/shmconn/shmconn/internal/testutil"
)

func TestMain(m *testing.M) { testutil.VerifyMain(m) }

// TestSplice replaces what lies between the markers and nothing else, and
// refuses a file without exactly one pair in order.
func TestSplice(t *testing.T) {
	doc := "# B\n\ntext\n" + beginMarker + "\nold\ntables\n" + endMarker + "\nmore text\n"
	got, err := splice(doc, "new\n")
	if err != nil {
		t.Fatal(err)
	}
	if want := "# B\n\ntext\n" + beginMarker + "\nnew\n" + endMarker + "\nmore text\n"; got != want {
		t.Errorf("spliced:\n%s\nwant:\n%s", got, want)
	}
	if again, err := splice(got, "new\n"); err != nil || again != got {
		t.Errorf("splicing the same section again changed the file (%v):\n%s", err, again)
	}
	for _, bad := range []string{
		"no markers\n",
		beginMarker + "\n",
		endMarker + "\n" + beginMarker + "\n",
		beginMarker + "\n" + endMarker + "\n" + beginMarker + "\n" + endMarker + "\n",
		"text " + beginMarker + " text\n" + endMarker + "\n",
	} {
		if _, err := splice(bad, "x\n"); err == nil {
			t.Errorf("splice accepted %q", bad)
		}
	}
}

// TestSpread: median over an odd and an even count, and the cell's range.
func TestSpread(t *testing.T) {
	if m := (spread{3, 1, 2}).median(); m != 2 {
		t.Errorf("median of 3 1 2: %v", m)
	}
	if m := (spread{4, 1, 3, 2}).median(); m != 2.5 {
		t.Errorf("median of 4 1 3 2: %v", m)
	}
	if c := (spread{2000, 1500, 9000}).cell(us, ""); c != "2.00 (1.50-9.00)" {
		t.Errorf("cell: %q", c)
	}
	if c := (spread{0.5}).cell(ratio, "x"); c != "0.50x" {
		t.Errorf("one run's cell: %q", c)
	}
	if c := (spread{}).cell(ratio, "x"); c != "-" {
		t.Errorf("empty cell: %q", c)
	}
}

// TestLatencyTable takes each ratio within a run: two runs whose floor and
// shm both doubled give the same ratio twice, no range.
func TestLatencyTable(t *testing.T) {
	run := func(floor, shm, unix float64) shmbenchFigures {
		return shmbenchFigures{Latency: []latencyRow{
			{Transport: "floor", P50Ns: floor, P99Ns: floor, P999Ns: floor},
			{Transport: "shm", P50Ns: shm, P99Ns: shm, P999Ns: shm},
			{Transport: "unix", P50Ns: unix, P99Ns: unix, P999Ns: unix},
			{IntervalNs: int64(time.Millisecond), Transport: "shm", P50Ns: 1, P99Ns: 1, P999Ns: 1},
		}}
	}
	tb := latencyTable([]shmbenchFigures{run(100, 200, 20000), run(200, 400, 20000)}, 0, true)
	if len(tb.rows) != 3 {
		t.Fatalf("%d rows, want 3: %v", len(tb.rows), tb.rows)
	}
	want := []string{"shm", "0.30 (0.20-0.40)", "0.30 (0.20-0.40)", "0.30 (0.20-0.40)", "2.00x (2.00-2.00)", "0.015x (0.010-0.020)", "0.015x (0.010-0.020)"}
	if got := tb.rows[1]; strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("shm row %q, want %q", got, want)
	}
	if got := tb.rows[0][4]; got != "-" {
		t.Errorf("the floor's ratio to itself: %q, want -", got)
	}
}

// TestCPUModel reads the model name and the hypervisor flag.
func TestCPUModel(t *testing.T) {
	info := "processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: fpu sse hypervisor lm\n\nprocessor\t: 1\nmodel name\t: AMD EPYC\n"
	if got := cpuModel(info); got != "AMD EPYC (virtual machine)" {
		t.Errorf("cpuModel: %q", got)
	}
	if got := cpuModel("model name : Xeon\nflags : fpu hypervisorx\n"); got != "Xeon" {
		t.Errorf("cpuModel without the flag: %q", got)
	}
}

// TestParkedTable: the parked floors leave the main table for their own,
// with the default policy's p50 over each floor's taken run by run.
func TestParkedTable(t *testing.T) {
	ms := int64(time.Millisecond)
	run := func(floor, def float64) shmbenchFigures {
		return shmbenchFigures{Latency: []latencyRow{
			{IntervalNs: ms, Transport: "floor", P50Ns: 100, P99Ns: 100, P999Ns: 100},
			{IntervalNs: ms, Transport: "parked floor, eventfd, C", P50Ns: floor, P99Ns: floor, P999Ns: floor},
			{IntervalNs: ms, Transport: defaultPolicy, P50Ns: def, P99Ns: def, P999Ns: def},
			{IntervalNs: ms, Transport: "unix", P50Ns: 50000, P99Ns: 50000, P999Ns: 50000},
		}}
	}
	runs := []shmbenchFigures{run(10000, 20000), run(20000, 40000), run(10000, 40000)}
	main := latencyTable(runs, time.Millisecond, true)
	for _, r := range main.rows {
		if isParked(r[0]) {
			t.Errorf("the main table has the parked row %q", r)
		}
	}
	pt := parkedTable(runs, time.Millisecond)
	if len(pt.rows) != 1 {
		t.Fatalf("parked table rows %v, want the one floor", pt.rows)
	}
	want := []string{"parked floor, eventfd, C", "10.0 (10.0-20.0)", "10.0 (10.0-20.0)", "10.0 (10.0-20.0)", "2.00x (2.00-4.00)"}
	if got := pt.rows[0]; strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("parked row %q, want %q", got, want)
	}
	if s := parkedSection(runs[:1], 10*time.Millisecond); s != "" {
		t.Errorf("a rate without parked floors printed %q", s)
	}
}
