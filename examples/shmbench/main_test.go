package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shmconn/shmconn/conn"
	"github.com/shmconn/shmconn/internal/testutil"
)

// envTestMain makes the test binary run the command's main, for the test
// that interrupts it.
const envTestMain = "SHMBENCH_TEST_MAIN"

// TestMain lets the test binary play the command's children (run re-executes
// os.Executable, which is this binary here) and, for TestInterrupt, the
// command itself; then it runs the tests and fails on a leaked goroutine or
// segment file.
func TestMain(m *testing.M) {
	if isChild() {
		os.Exit(runChild())
	}
	if os.Getenv(envTestMain) != "" {
		main()
		os.Exit(0)
	}
	testutil.VerifyMain(m)
}

// TestQuick runs the command, built as users build it, with every part in
// -quick mode, and checks that each section and each target's verdict is
// printed and that no child process is left. It asserts no figure: the
// machine is shared and noisy.
//
// It runs a binary built as usual even under -race: instrumented, the run
// takes half a minute and its figures mean nothing. The other tests run
// the command's code in this process, under the race detector when it is
// on.
func TestQuick(t *testing.T) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command to build the binary with")
	}
	exe := filepath.Join(t.TempDir(), "shmbench")
	build := exec.Command(gobin, "build", "-o", exe, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, exe, "-quick", "-v")
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("shmbench -quick: %v\nstdout:\n%s\nstderr:\n%s", err, &out, &stderr)
	}
	t.Logf("output:\n%s", &out)
	for _, s := range []string{
		"== 1. Dense round trips ==",
		"== 2. Sparse round trips ==",
		"-- one request every 1ms: 100 round trips --",
		"-- one request every 10ms: 20 round trips --",
		"== 3. Streaming ==",
		"== 4. Concurrent conns ==",
		"== 5. Idle conns ==",
		"== 6. Ring alone (in one process) ==",
		"== Targets ==",
		"Targets are judged only in a full run",
		"load: none",
		"\nfloor ", "shm adaptive", "shm server spin, client adaptive", "shm server spin, client adaptive, +8 idle conns",
		"unix", "tcp", "p50 x floor", "x floor", "x unix", "ring/chan",
		"parked floor, eventfd, Go", "parked floor, futex, Go", "shm adaptive p50 / parked floor p50: ",
	} {
		if !strings.Contains(out.String(), s) {
			t.Errorf("output lacks %q", s)
		}
	}
	if v := regexp.MustCompile(`(?m)^(PASS|FAIL|n/a) `).FindAllString(out.String(), -1); len(v) > 0 {
		t.Errorf("-quick judged %d targets, want none", len(v))
	}
	pids := startedPIDs(stderr.String())
	if len(pids) < 10 {
		t.Errorf("only %d children logged:\n%s", len(pids), &stderr)
	}
	for _, pid := range pids {
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("child %d still exists after the command exited (kill: %v)", pid, err)
		}
	}
}

// startedPIDs returns the pids of the children a -v run logged.
func startedPIDs(log string) []int {
	var pids []int
	for _, m := range regexp.MustCompile(`started .*, pid (\d+),`).FindAllStringSubmatch(log, -1) {
		pid, _ := strconv.Atoi(m[1])
		pids = append(pids, pid)
	}
	return pids
}

// TestPartsAndFlags runs one part alone and rejects bad flags.
func TestPartsAndFlags(t *testing.T) {
	var out, stderr bytes.Buffer
	if err := run(context.Background(), []string{"-quick", "-parts", "ring"}, &out, &stderr); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out.String(), "== 1.") || !strings.Contains(out.String(), "== 6.") {
		t.Errorf("-parts ring ran other parts or not ring:\n%s", &out)
	}
	for _, args := range [][]string{
		{"-parts", "bogus"}, {"-wait", "sometimes"}, {"-n", "0"}, {"extra"},
		{"-intervals", "1ms,x"}, {"-intervals", "0s"}, {"-intervals", ""}, {"-sparse-n", "100,0"},
		{"-load", "-1"}, {"-load", "many"}, {"-nice", "20"}, {"-nice", "-21"},
	} {
		if err := run(context.Background(), args, &out, &stderr); err == nil {
			t.Errorf("run %q: no error", args)
		}
	}
	cfg, err := parseFlags([]string{"-quick", "-n", "7"}, &stderr)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.n != 7 || cfg.warmup != 200 || len(cfg.parts) != len(allParts) {
		t.Errorf("-quick -n 7: n %d, warmup %d, parts %v", cfg.n, cfg.warmup, cfg.parts)
	}
	if err := run(context.Background(), []string{"-h"}, &out, &stderr); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("-h: %v, want flag.ErrHelp (which main exits 0 on)", err)
	}
}

// TestJSON runs every part with -json and small counts: stdout must be
// one JSON object and nothing else, with a row for every transport of
// every table, each with figures, and no target judged.
func TestJSON(t *testing.T) {
	var out, stderr bytes.Buffer
	args := []string{"-quick", "-json", "-n", "200", "-intervals", "1ms", "-sparse-n", "5", "-stream-for", "20ms", "-stream-rounds", "2",
		"-multi-for", "50ms", "-conns", "2", "-idle-conns", "3", "-idle-for", "50ms", "-settle", "10ms", "-ring-n", "1000"}
	if err := run(context.Background(), args, &out, &stderr); err != nil {
		t.Fatalf("run: %v\nstderr:\n%s", err, &stderr)
	}
	dec := json.NewDecoder(&out)
	dec.DisallowUnknownFields()
	var fig figures
	if err := dec.Decode(&fig); err != nil {
		t.Fatalf("stdout is not the figures' JSON: %v", err)
	}
	if rest, _ := io.ReadAll(dec.Buffered()); len(bytes.TrimSpace(rest)) > 0 {
		t.Errorf("stdout has more than the JSON object: %q", rest)
	}
	var latency []string
	for _, r := range fig.Latency {
		latency = append(latency, fmt.Sprintf("%v %s", time.Duration(r.IntervalNs), r.Transport))
		if r.N <= 0 || r.P50Ns <= 0 || r.P99Ns < r.P50Ns || r.P999Ns < r.P99Ns || r.MaxNs < r.P999Ns || r.Rate <= 0 {
			t.Errorf("latency row %+v: missing or disordered figures", r)
		}
	}
	wantLatency := []string{"0s floor", "0s shm adaptive", "0s shm server spin, client adaptive", "0s unix", "0s tcp", "1ms floor"}
	if hasCC() {
		wantLatency = append(wantLatency, "1ms parked floor, eventfd, C")
	}
	wantLatency = append(wantLatency, "1ms parked floor, eventfd, Go", "1ms parked floor, futex, Go",
		"1ms shm server spin, client adaptive", "1ms shm server spin, client adaptive, +8 idle conns", "1ms shm adaptive", "1ms unix", "1ms tcp")
	if !slices.Equal(latency, wantLatency) {
		t.Errorf("latency rows %q, want %q", latency, wantLatency)
	}
	checkThroughput(t, "stream", fig.Stream, []string{"floor", "shm adaptive", "unix", "tcp"}, 2)
	checkThroughput(t, "multi", fig.Multi, []string{"shm adaptive", "unix", "tcp"}, 1)
	checkThroughput(t, "ring", fig.Ring, []string{"ring", "chan []byte"}, ringRuns)
	var idle []string
	for _, r := range fig.Idle {
		idle = append(idle, fmt.Sprintf("%s x%d", r.Transport, r.Conns))
		if r.ClientThreads <= 0 || r.ServerThreads <= 0 || r.ClientCPU < 0 || r.ServerCPU < 0 {
			t.Errorf("idle row %+v: missing figures", r)
		}
	}
	if want := []string{"shm adaptive x1", "unix x1", "shm adaptive x3", "unix x3"}; !slices.Equal(idle, want) {
		t.Errorf("idle rows %q, want %q", idle, want)
	}
}

func checkThroughput(t *testing.T, table string, rows []throughputRow, transports []string, values int) {
	t.Helper()
	var got []string
	for _, r := range rows {
		got = append(got, r.Transport)
		if len(r.Values) != values || slices.ContainsFunc(r.Values, func(v float64) bool { return !(v > 0) }) {
			t.Errorf("%s row %q: values %v, want %d positive", table, r.Transport, r.Values, values)
		}
	}
	if !slices.Equal(got, transports) {
		t.Errorf("%s rows %q, want %q", table, got, transports)
	}
}

// TestSparseFlags pairs -intervals with -sparse-n.
func TestSparseFlags(t *testing.T) {
	ms := time.Millisecond
	for _, c := range []struct {
		args []string
		want []sparseRate
	}{
		{nil, []sparseRate{{ms, 2000}, {10 * ms, 300}}},
		{[]string{"-quick"}, []sparseRate{{ms, 100}, {10 * ms, 20}}},
		{[]string{"-intervals", "2ms"}, []sparseRate{{2 * ms, 2000}}},
		{[]string{"-intervals", "1ms, 10ms,100ms", "-sparse-n", "50"}, []sparseRate{{ms, 50}, {10 * ms, 50}, {100 * ms, 50}}},
		{[]string{"-intervals", "500us,1ms,5ms", "-sparse-n", "9,8"}, []sparseRate{{ms / 2, 9}, {ms, 8}, {5 * ms, 8}}},
	} {
		cfg, err := parseFlags(c.args, io.Discard)
		if err != nil {
			t.Errorf("%q: %v", c.args, err)
			continue
		}
		if !slices.Equal(cfg.sparse, c.want) {
			t.Errorf("%q: rates %v, want %v", c.args, cfg.sparse, c.want)
		}
	}
	for arg, want := range map[string]int{"0": 0, "3": 3, "cpu": runtime.NumCPU()} {
		if cfg, err := parseFlags([]string{"-load", arg}, io.Discard); err != nil || cfg.load != want {
			t.Errorf("-load %s: %d, %v; want %d", arg, cfg.load, err, want)
		}
	}
}

// TestLoad runs a short part with -load 2: the header must say so, and
// both busy children must be gone when run returns.
func TestLoad(t *testing.T) {
	var out, stderr bytes.Buffer
	if err := run(context.Background(), []string{"-quick", "-v", "-load", "2", "-parts", "ring", "-ring-n", "1000"}, &out, &stderr); err != nil {
		t.Fatalf("run: %v\nstderr:\n%s", err, &stderr)
	}
	if !strings.Contains(out.String(), "load: 2 busy processes") {
		t.Errorf("the header does not state the load:\n%s", &out)
	}
	var pids []int
	for _, m := range regexp.MustCompile(`started load \d+, pid (\d+),`).FindAllStringSubmatch(stderr.String(), -1) {
		pid, _ := strconv.Atoi(m[1])
		pids = append(pids, pid)
	}
	if len(pids) != 2 {
		t.Errorf("%d busy children started, want 2:\n%s", len(pids), &stderr)
	}
	for _, pid := range pids {
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("busy child %d still exists after run returned (kill: %v)", pid, err)
		}
	}
}

// TestFloor runs the floor's two servers in this process's children: the
// exchange answers every sequence number, the stream's count matches, and
// no file is left behind.
func TestFloor(t *testing.T) {
	b, err := newBench(config{}, io.Discard, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer b.cleanup()
	ctx := context.Background()
	err = b.withRoundTripper(ctx, floorT, func(rt roundTripper) error {
		l, err := roundTrips(ctx, rt, "floor", 1000, 10, 0)
		if err == nil && l.n != 1000 {
			err = fmt.Errorf("%d round trips timed, want 1000", l.n)
		}
		return err
	})
	if err != nil {
		t.Fatalf("floor round trips: %v", err)
	}
	err = b.withStreamSink(ctx, floorT, func(s streamSink) error {
		n, _, err := streamFor(ctx, s, 64<<10, 50*time.Millisecond)
		if err == nil && n == 0 {
			err = errors.New("no bytes streamed")
		}
		return err
	})
	if err != nil {
		t.Fatalf("stream floor: %v", err)
	}
	if left, _ := filepath.Glob(filepath.Join("/dev/shm", floorNamePattern)); len(left) > 0 {
		t.Errorf("floor files left: %v", left)
	}
}

// TestTargets judges made-up figures: a run that meets every target
// passes, one that misses one fails with errTargetsFailed, and under load
// the idle host's targets are not judged.
func TestTargets(t *testing.T) {
	lat := func(p50, p99 time.Duration) *latency { return &latency{label: "x", p50: p50, p99: p99} }
	good := func() results {
		r := results{latency: make(map[sample]*latency), stream: make(map[transport]float64)}
		for _, d := range []time.Duration{0, time.Millisecond, 10 * time.Millisecond} {
			r.latency[sample{d, floorT}] = lat(300*time.Nanosecond, time.Microsecond)
			r.latency[sample{d, unixT}] = lat(100*time.Microsecond, 400*time.Microsecond)
			for _, tr := range []transport{shmT(conn.WaitAdaptive, 0), shmT(conn.WaitSpin, 0), shmT(conn.WaitSpin, idleHeld)} {
				r.latency[sample{d, tr}] = lat(500*time.Nanosecond, 2*time.Microsecond)
			}
		}
		r.stream[floorT], r.stream[shmT(conn.WaitAdaptive, 0)], r.stream[unixT] = 10000, 9000, 3000
		r.multiShm, r.multiUnix = 2, 1
		r.idlePair = &idleFigures{clientCPU: 0.1, serverCPU: 0.1}
		r.idleMany = &idleFigures{clientCPU: 1, serverCPU: 1, clientThreads: 8, srvThread: 8}
		r.ringMBs, r.chanMBs = 1, 1 // below 3x: information only, must not fail the run
		return r
	}
	cfg, err := parseFlags(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	judgeRun := func(cfg config, r results) (string, error) {
		var out bytes.Buffer
		b := &bench{cfg: cfg, out: &out, res: r}
		err := b.targets()
		return out.String(), err
	}

	out, err := judgeRun(cfg, good())
	if err != nil || strings.Contains(out, "\nFAIL ") || strings.Count(out, "\nPASS ") != 10 {
		t.Errorf("all targets met: %v, want 10 PASS and no error\n%s", err, out)
	}

	bad := good()
	bad.latency[sample{10 * time.Millisecond, shmT(conn.WaitSpin, idleHeld)}].p99 = time.Millisecond
	out, err = judgeRun(cfg, bad)
	if !errors.Is(err, errTargetsFailed) || strings.Count(out, "\nFAIL ") != 1 {
		t.Errorf("one target missed: %v, want errTargetsFailed and one FAIL\n%s", err, out)
	}

	cfg.load = 2
	out, err = judgeRun(cfg, bad) // the miss is an idle host's target
	if err != nil || strings.Count(out, "\nPASS ") != 7 || !strings.Contains(out, "this run had -load 2") {
		t.Errorf("under load: %v, want the 3 contended and 4 other targets passed, the idle host's n/a\n%s", err, out)
	}

	cfg.quick = true
	if out, err = judgeRun(cfg, bad); err != nil || strings.Contains(out, "\nFAIL ") {
		t.Errorf("-quick judged targets: %v\n%s", err, out)
	}
}

// TestCancel cancels a run in the middle of a measurement: run must
// return promptly, having stopped its children.
func TestCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, stderr bytes.Buffer
	time.AfterFunc(500*time.Millisecond, cancel)
	start := time.Now()
	err := run(ctx, []string{"-quick", "-parts", "sparse", "-sparse-n", "1000000"}, &out, &stderr)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("run: %v, want context.Canceled\nstderr:\n%s", err, &stderr)
	}
	if el := time.Since(start); el > 10*time.Second {
		t.Errorf("run took %v to stop", el)
	}
	if pids := childrenOf(os.Getpid()); len(pids) > 0 {
		t.Errorf("child processes left running: %v", pids)
	}
}

// TestInterrupt runs the command in a process of its own, sends it SIGINT
// in the middle of a measurement, and checks that it exits with 130 and
// takes its children with it.
func TestInterrupt(t *testing.T) {
	// Wait until both children run (the idle part holds them for a
	// minute), then interrupt.
	cmd, stderr, pids := startCommand(t, 2, "-quick", "-v", "-parts", "idle", "-idle-for", "1m")
	time.Sleep(200 * time.Millisecond)
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	var rest bytes.Buffer
	go func() { rest.ReadFrom(stderr) }() // drain, so the command never blocks on it
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(15 * time.Second):
		t.Fatal("the command did not exit after SIGINT")
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 130 {
		t.Errorf("exit: %v, want status 130", err)
	}
	for _, pid := range pids {
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("child %d still exists after the command exited (kill: %v)", pid, err)
		}
	}
}

// childrenOf lists the processes whose parent is pid.
func childrenOf(pid int) []int {
	entries, _ := os.ReadDir("/proc")
	var kids []int
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces, so split after
		// its closing parenthesis.
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) > 1 && f[1] == strconv.Itoa(pid) {
			kids = append(kids, p)
		}
	}
	return kids
}

// hasCC reports whether the C floor can be compiled here.
func hasCC() bool {
	for _, name := range []string{"cc", "gcc"} {
		if _, err := exec.LookPath(name); err == nil {
			return true
		}
	}
	return false
}

// TestParkedFloors runs each parked floor for a few round trips, back to
// back and at one request per millisecond: the figures must be positive
// and ordered, and no process, temporary file or floor memory is left
// when the run is cleaned up. Without a C compiler the C floor must be
// reported as skipped, with the reason.
func TestParkedFloors(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the parked floors are Linux only")
	}
	b, err := newBench(config{}, io.Discard, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer b.cleanup()
	ctx := context.Background()
	for _, tr := range parkedFloors {
		if tr == parkedC && !hasCC() {
			continue // TestParkedFloorWithoutCompiler covers it
		}
		for _, interval := range []time.Duration{0, time.Millisecond} {
			l, err := b.measureLatency(ctx, tr, tr.network, 20, 5, interval)
			if err != nil {
				t.Fatalf("%s at %v: %v", tr.network, interval, err)
			}
			if l.n != 20 || l.p50 <= 0 || l.p99 < l.p50 || l.mx < l.p99 || l.p50 > time.Second || l.rate <= 0 {
				t.Errorf("%s at %v: %d round trips, p50 %v, p99 %v, max %v, rate %.0f/s", tr.network, interval, l.n, l.p50, l.p99, l.mx, l.rate)
			}
			if interval > 0 && l.rate > 1.2e3 {
				t.Errorf("%s: %.0f round trips a second at one a millisecond", tr.network, l.rate)
			}
		}
	}
	if pids := childrenOf(os.Getpid()); len(pids) > 0 {
		t.Errorf("processes left running after the measurements: %v", pids)
	}
	b.cleanup()
	if _, err := os.Stat(b.dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the run's temporary directory %s is still there (%v)", b.dir, err)
	}
	if left, _ := filepath.Glob(filepath.Join("/dev/shm", floorNamePattern)); len(left) > 0 {
		t.Errorf("floor files left: %v", left)
	}
}

// TestParkedFloorWithoutCompiler: with no C compiler on PATH the C floor
// is not measured, and says why.
func TestParkedFloorWithoutCompiler(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	b, err := newBench(config{}, io.Discard, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer b.cleanup()
	_, err = b.measureLatency(context.Background(), parkedC, parkedC.network, 5, 0, 0)
	if reason, ok := isSkip(err); !ok || (runtime.GOOS == "linux" && !strings.Contains(reason, "no C compiler")) {
		t.Errorf("without a compiler: %v, want the row skipped for want of one", err)
	}
}

// TestNice runs the command with -load 1 -nice 5 in a process of its own
// and, while its idle part holds its children, reads every nice value:
// the command, the server and the idle client at 5 (every thread), the
// busy process at the command's own. Raising a nice value needs no
// privilege.
func TestNice(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("-nice is Linux only")
	}
	own := niceOf(t, os.Getpid())
	want := own + 5
	if want > 19 {
		t.Skipf("this test runs at nice %d already", own)
	}
	// The busy process, the server, the idle client.
	cmd, stderr, pids := startCommand(t, 3, "-quick", "-v", "-load", "1", "-nice", strconv.Itoa(want), "-parts", "idle", "-idle-for", "1m")
	go io.Copy(io.Discard, stderr)
	for i, pid := range append([]int{cmd.Process.Pid}, pids...) {
		w := want
		if i == 1 { // the busy process
			w = own
		}
		tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
		if err != nil {
			t.Fatal(err)
		}
		for _, task := range tasks {
			tid, _ := strconv.Atoi(task.Name())
			if n := niceOf(t, tid); n != w {
				t.Errorf("process %d (#%d), thread %d: nice %d, want %d", pid, i, tid, n, w)
			}
		}
	}
	cmd.Process.Signal(os.Interrupt)
	if err := cmd.Wait(); err == nil {
		t.Error("the interrupted command exited 0")
	}
}

// niceOf reads the nice value of a thread (or process) from /proc.
func niceOf(t *testing.T, tid int) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", tid))
	if err != nil {
		t.Fatal(err)
	}
	// Fields after the command's closing parenthesis: state is field 3,
	// nice field 19.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	n, err := strconv.Atoi(f[19-3])
	if err != nil {
		t.Fatalf("/proc/%d/stat: %v", tid, err)
	}
	return n
}

// startCommand runs the command with args (-v among them) in a process
// of its own and returns once it logged n children started, with their
// pids and the rest of its stderr. The process is killed when t ends, if
// it has not exited.
func startCommand(t *testing.T, n int, args ...string) (*exec.Cmd, io.Reader, []int) {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), envTestMain+"=1")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill() }) // if the test fails half-way
	var pids []int
	sc := bufio.NewReader(stderr)
	for len(pids) < n {
		line, err := sc.ReadString('\n')
		if err != nil {
			t.Fatalf("%d of %d children started: %v", len(pids), n, err)
		}
		pids = append(pids, startedPIDs(line)...)
	}
	return cmd, sc, pids
}
