package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shmconn/shmconn/internal/testutil"
)

// build compiles the demo and the example server into a fresh temp
// directory, dir, or skips the test in -short mode, or without
// redis-server when the test needs it.
func build(t *testing.T, needsRedis bool) (dir, demo, server string) {
	t.Helper()
	switch {
	case needsRedis && (testing.Short() || !realRedisInstalled()):
		t.Skip("builds the module and runs redis-server; skipped in -short mode or without redis-server")
	case testing.Short():
		t.Skip("builds two binaries; skipped in -short mode")
	}
	dir = t.TempDir()
	demo, server = filepath.Join(dir, "redis-latency"), filepath.Join(dir, "redis-server")
	for _, b := range [][2]string{{demo, "."}, {server, "../shm-redis-server"}} {
		cmd := exec.Command("go", "build", "-o", b[0], b[1])
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build %s: %v\n%s", b[1], err, out)
		}
	}
	return dir, demo, server
}

// serverRunning reports whether a process runs the binary at path.
func serverRunning(path string) bool { return len(processesOf(path)) > 0 }

// processesOf lists the /proc directories of the processes running the
// binary at path.
func processesOf(path string) []string {
	var procs []string
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		dir := filepath.Join("/proc", e.Name())
		if exe, err := os.Readlink(filepath.Join(dir, "exe")); err == nil && exe == path {
			procs = append(procs, dir)
		}
	}
	return procs
}

// TestDemo runs a short demo across real processes and checks it prints
// every transport, writes the chart and leaves nothing behind.
func TestDemo(t *testing.T) {
	dir, demo, server := build(t, false)
	png := filepath.Join(dir, "chart.png")
	cmd := exec.Command(demo, "-server", server, "-samples", "20", "-interval", "2ms", "-dense", "500", "-png", png)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("demo failed: %v\n%s", err, out.String())
	}
	want := []string{"tcp", "unix socket", "shared memory", "shared memory vs unix socket", "chart written",
		"example server, shared-memory client: 1 conns over shared memory, 0 fell back"}
	if realRedisInstalled() {
		want = append(want, "redis-server tcp", "redis-server unix socket",
			"redis-server shm (module) vs redis-server unix socket",
			"real redis-server, shared-memory client: 1 conns over shared memory, 0 fell back")
	}
	for _, want := range want {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	if st, err := os.Stat(png); err != nil || st.Size() == 0 {
		t.Errorf("no chart: %v", err)
	}
	if serverRunning(server) {
		t.Error("the example server outlived the demo")
	}
	if files := testutil.SegmentFiles(); len(files) > 0 {
		t.Errorf("segment files left: %v", files)
	}
}

// TestDemoDefaultChart runs the demo as the README does, without -png,
// from a directory standing for a fresh clone, with busy processes: the
// chart goes to the temp directory and the path is printed, nothing is
// written where it runs, progress without a terminal is a few lines of text,
// and the busy processes are gone afterwards.
func TestDemoDefaultChart(t *testing.T) {
	dir, demo, server := build(t, false)
	clone, tmp := filepath.Join(dir, "clone"), filepath.Join(dir, "tmp")
	for _, d := range []string{clone, tmp} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(demo, "-server", server, "-samples", "20", "-interval", "2ms", "-dense", "500", "-load", "1")
	cmd.Dir = clone
	cmd.Env = append(os.Environ(), "TMPDIR="+tmp)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("demo failed: %v\n%s%s", err, stdout.String(), stderr.String())
	}
	png := filepath.Join(tmp, "shmconn-latency.png")
	if !strings.Contains(stdout.String(), "chart written to "+png) {
		t.Errorf("output does not name %s:\n%s", png, stdout.String())
	}
	if st, err := os.Stat(png); err != nil || st.Size() == 0 {
		t.Errorf("no chart at the default path: %v", err)
	}
	if entries, _ := os.ReadDir(clone); len(entries) > 0 {
		t.Errorf("the demo wrote into its working directory: %v", entries)
	}
	if !strings.Contains(stdout.String(), "1 busy processes") {
		t.Errorf("the table does not state the load:\n%s", stdout.String())
	}
	progress := stderr.String()
	if strings.Contains(progress, "\r") || strings.Count(progress, "\n") > 20 {
		t.Errorf("progress without a terminal should be a few lines of text:\n%q", progress)
	}
	if busy := busyProcesses(demo); busy > 0 {
		t.Errorf("%d busy processes outlived the demo", busy)
	}
	checkNothingLeft(t, tmp)
}

// realRedisInstalled says whether the demo measures a real redis-server
// (which needs a C compiler for the module, as CI has).
func realRedisInstalled() bool {
	_, err := exec.LookPath("redis-server")
	return err == nil
}

// checkNothingLeft checks that no process mentions dir (the demo's
// TMPDIR) on its command line, as a redis-server the demo started would,
// and that the demo removed its temp directory from dir.
func checkNothingLeft(t *testing.T, dir string) {
	t.Helper()
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		cmdline, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if bytes.Contains(cmdline, []byte(dir)) {
			t.Errorf("process %s outlived the demo: %q", e.Name(), cmdline)
		}
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "redis-latency-*")); len(left) > 0 {
		t.Errorf("temp directories left: %v", left)
	}
}

// TestModuleTargets runs -module-targets briefly: it prints a PASS or FAIL
// line for each of the four targets and exits 0 or 1 accordingly (the
// figures mean nothing on a shared machine), leaving nothing behind.
func TestModuleTargets(t *testing.T) {
	dir, demo, _ := build(t, true)
	cmd := exec.Command(demo, "-module-targets", "-samples", "50", "-dense", "300")
	cmd.Env = append(os.Environ(), "TMPDIR="+dir)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && (!errors.As(err, &ee) || ee.ExitCode() != 1) {
		t.Fatalf("exit: %v\n%s", err, out.String())
	}
	fails := strings.Count(out.String(), "\nFAIL  ")
	if n := strings.Count(out.String(), "\nPASS  ") + fails; n != 4 {
		t.Errorf("%d verdicts, want 4:\n%s", n, out.String())
	}
	if (fails > 0) != (err != nil) {
		t.Errorf("%d targets failed, exit %v:\n%s", fails, err, out.String())
	}
	for _, want := range []string{"one request per ms", "back to back", "a pipeline of 1000 GETs", "redis-benchmark -c 10"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("no %q target:\n%s", want, out.String())
		}
	}
	checkNothingLeft(t, dir)
}

// TestDemoJSON runs a short demo with -json: stdout must be the figures
// and nothing else, a row per transport with as many samples as asked,
// and the shared-memory clients must have had shared memory.
func TestDemoJSON(t *testing.T) {
	_, demo, server := build(t, false)
	var f demoFigures
	runJSON(t, &f, demo, "-json", "-server", server, "-samples", "10", "-interval", "2ms", "-dense", "200", "-png", "")
	want := []string{"tcp", "unix socket", "shared memory"}
	servers := []string{"example server"}
	if realRedisInstalled() {
		want = append(want, "redis-server tcp", "redis-server unix socket", "redis-server shm (module)")
		servers = append(servers, "real redis-server")
	}
	var got []string
	for _, r := range f.Rows {
		got = append(got, r.Transport)
		checkHist(t, r.Transport+" sparse", r.Sparse, 10)
		checkHist(t, r.Transport+" back to back", r.Dense, 200)
	}
	if !slices.Equal(got, want) {
		t.Errorf("transports %q, want %q", got, want)
	}
	if f.Command != "PING" || f.IntervalNs != int64(2*time.Millisecond) {
		t.Errorf("command %q, interval %v", f.Command, time.Duration(f.IntervalNs))
	}
	got = nil
	for _, d := range f.Shm {
		got = append(got, d.Server)
		if d.SharedConns != 1 || d.Fallbacks != 0 {
			t.Errorf("%s's shared-memory client: %d conns over shared memory, %d fell back; want 1 and 0", d.Server, d.SharedConns, d.Fallbacks)
		}
	}
	if !slices.Equal(got, servers) {
		t.Errorf("shared-memory clients of %q, want %q", got, servers)
	}
}

// TestModuleTargetsJSON runs -module-targets -json briefly: the figures of
// all four measurements, exit 0 whatever they are.
func TestModuleTargetsJSON(t *testing.T) {
	dir, demo, _ := build(t, true)
	var f moduleFigures
	runJSON(t, &f, demo, "-module-targets", "-json", "-samples", "20", "-dense", "100")
	want := []string{"GET, one per ms", "GET, back to back", "pipeline of 1000 GETs", "GET, one per ms, redis-benchmark -c 10 on the socket"}
	counts := []int64{20, 100, pipelines, 20}
	if _, err := exec.LookPath("redis-benchmark"); err != nil {
		want, counts = want[:3], counts[:3]
	}
	var got []string
	for i, r := range f.Rows {
		got = append(got, r.Measure)
		if i < len(counts) {
			checkHist(t, r.Measure+" socket", r.Socket, counts[i])
			checkHist(t, r.Measure+" shm", r.Shm, counts[i])
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("measures %q, want %q", got, want)
	}
	checkNothingLeft(t, dir)
}

// runJSON runs the demo with args, which must exit 0 and print one JSON
// object, decoded into v, and nothing else on stdout.
func runJSON(t *testing.T, v any, demo string, args ...string) {
	t.Helper()
	cmd := exec.Command(demo, args...)
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%q: %v\nstdout:\n%s\nstderr:\n%s", args, err, &out, &stderr)
	}
	dec := json.NewDecoder(&out)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("stdout is not the figures' JSON: %v\n%s", err, out.String())
	}
	if rest, _ := io.ReadAll(dec.Buffered()); len(bytes.TrimSpace(rest)) > 0 || out.Len() > 0 {
		t.Errorf("stdout has more than the JSON object: %q", string(rest)+out.String())
	}
}

func checkHist(t *testing.T, what string, h histFigures, n int64) {
	t.Helper()
	if h.N != n || h.P50Ns <= 0 || h.P99Ns < h.P50Ns || h.MaxNs < h.P99Ns {
		t.Errorf("%s: %+v, want %d samples with ordered figures", what, h, n)
	}
}

// busyProcesses counts processes running the binary at path with the
// busy-loop environment variable.
func busyProcesses(path string) int {
	n := 0
	for _, dir := range processesOf(path) {
		env, _ := os.ReadFile(filepath.Join(dir, "environ"))
		if bytes.Contains(env, []byte(busyEnv+"=1")) {
			n++
		}
	}
	return n
}

// TestDemoInterrupted stops the demo with SIGINT mid-run, as Ctrl-C does.
func TestDemoInterrupted(t *testing.T) {
	dir, demo, server := build(t, false)
	cmd := exec.Command(demo, "-server", server, "-samples", "100000", "-png", "")
	cmd.Env = append(os.Environ(), "TMPDIR="+dir)
	var out testutil.SyncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Wait until it measures, then interrupt.
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(out.String(), "sparse") && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 130 {
			t.Fatalf("exit after SIGINT: %v\n%s", err, out.String())
		}
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		t.Fatal("demo ignored SIGINT")
	}
	if !strings.Contains(out.String(), "interrupted; cleaned up") {
		t.Errorf("no clean-up message:\n%s", out.String())
	}
	if serverRunning(server) {
		t.Error("the example server outlived the interrupted demo")
	}
	checkNothingLeft(t, dir)
	if files := testutil.SegmentFiles(); len(files) > 0 {
		t.Errorf("segment files left: %v", files)
	}
}
