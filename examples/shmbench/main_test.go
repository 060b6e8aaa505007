package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

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
		"== 3. Streaming ==",
		"== 4. Concurrent conns ==",
		"== 5. Idle conns ==",
		"== 6. Ring alone (in one process) ==",
		"== Targets (issue 3) ==",
		"shm adaptive", "shm server spin, client adaptive", "unix", "tcp", "shm/unix", "ring/chan",
	} {
		if !strings.Contains(out.String(), s) {
			t.Errorf("output lacks %q", s)
		}
	}
	verdicts := regexp.MustCompile(`(?m)^(PASS|FAIL) `).FindAllString(out.String(), -1)
	if len(verdicts) != 7 {
		t.Errorf("got %d PASS/FAIL verdicts, want one per target (7)", len(verdicts))
	}
	if n := regexp.MustCompile(`(?m)^n/a `).FindAllString(out.String(), -1); len(n) > 0 {
		t.Errorf("%d targets not measured", len(n))
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
	if !strings.Contains(out.String(), "n/a") {
		t.Errorf("targets of parts not run are not marked n/a:\n%s", &out)
	}
	for _, args := range [][]string{{"-parts", "bogus"}, {"-wait", "sometimes"}, {"-n", "0"}, {"extra"}} {
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
	cmd := exec.Command(os.Args[0], "-quick", "-v", "-parts", "idle", "-idle-for", "1m")
	cmd.Env = append(os.Environ(), envTestMain+"=1")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill() // if the test fails half-way

	// Wait until both children run (the idle part holds them for a
	// minute), then interrupt.
	var pids []int
	sc := bufio.NewScanner(stderr)
	for len(pids) < 2 && sc.Scan() {
		pids = append(pids, startedPIDs(sc.Text())...)
	}
	if len(pids) < 2 {
		t.Fatalf("children not started: %v", sc.Err())
	}
	time.Sleep(200 * time.Millisecond)
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	var rest bytes.Buffer
	go func() { rest.ReadFrom(stderr) }() // drain, so the command never blocks on it
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
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
