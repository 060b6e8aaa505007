package main

import (
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

// rawLatency is redis-cli --latency's line without a terminal: min, max,
// avg in ms, then the sample count.
var rawLatency = regexp.MustCompile(`^\d+\.?\d* \d+\.?\d* \d+\.?\d* (\d+)\n$`)

// TestRedisCLI: examples/shm-redis-cli --shm -s <module socket> runs commands
// (with -n and -3) and --latency against a real redis-server through the
// module, and its clients really use shared memory.
func TestRedisCLI(t *testing.T) {
	s := startServer(t, serverSpec{})
	bin := filepath.Join(t.TempDir(), "redis-cli")
	goTool := filepath.Join(runtime.GOROOT(), "bin", "go")
	if out, err := exec.Command(goTool, "build", "-o", bin, "../shm-redis-cli").CombinedOutput(); err != nil {
		t.Fatalf("building redis-cli: %v\n%s", err, out)
	}
	cli := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(bin, append([]string{"--shm", "-s", s.shm}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("redis-cli %q: %v\n%s", args, err, out)
		}
		return string(out)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"SET", "k", "v"}, "OK\n"},
		{[]string{"GET", "k"}, "v\n"},
		{[]string{"-n", "2", "SET", "x", "1"}, "OK\n"},
		{[]string{"-n", "2", "GET", "x"}, "1\n"},
		{[]string{"GET", "x"}, "\n"},
		{[]string{"-3", "HGETALL", "nohash"}, "\n"},
	} {
		if got := cli(tc.args...); got != tc.want {
			t.Errorf("redis-cli %q: %q, want %q", tc.args, got, tc.want)
		}
	}
	if got := cli("-3", "CLIENT", "INFO"); !strings.Contains(got, " resp=3 transport=shmconn") {
		t.Errorf("redis-cli -3 CLIENT INFO: %q", got)
	}
	if n := latencySamples(t, cli("--latency", "-i", "0.3")); n < 5 {
		t.Errorf("--latency: %d samples in 0.3 s at one per 10 ms", n)
	}
	if n := latencySamples(t, cli("--latency", "-i", "0.1", "--latency-sample-rate", "0")); n < 100 {
		t.Errorf("--latency back to back: %d samples in 0.1 s", n)
	}
	if n := s.infoField("shared_conns"); n < 8 {
		t.Fatalf("INFO shmconn shared_conns = %d after 8 redis-cli runs", n)
	}
}

func latencySamples(t *testing.T, out string) int {
	t.Helper()
	m := rawLatency.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("--latency printed %q", out)
	}
	n, _ := strconv.Atoi(m[1])
	return n
}
