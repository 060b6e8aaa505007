package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/shmconn/shmconn/internal/trace"
)

// TestAnalyze checks the join of two processes' stamps on a made-up pair
// of logs: legs, a server spinner's gap, a parked client.
func TestAnalyze(t *testing.T) {
	us := func(v int64) int64 { return 1_000_000_000 + v*1000 }
	var c, s trace.Log
	// Round trip 1: published at 1, the server sees it at 2, its Read returns
	// at 3, its Write is entered at 4 and publishes the echo at 5; the
	// client sees the echo at 6 and returns at 7.
	// Round trip 2 (from 1000): the server's spinner is off its CPU from 1002
	// to 1020, sees the bytes at 1021, echoes at 1022 (no stamps of its
	// Read's return or Write's entry: those steps are unknown); the client
	// parks and is woken at 1030, returns at 1031.
	c.Points[trace.WriteEnter] = []int64{us(0), us(1000)}
	c.Points[trace.Published] = []int64{us(1), us(1001)}
	c.Points[trace.Ready] = []int64{us(6)}
	c.Points[trace.Park] = []int64{us(1025)}
	c.Points[trace.Unpark] = []int64{us(1030)}
	c.Points[trace.ReadDone] = []int64{us(7), us(1031)}
	s.Points[trace.Ready] = []int64{us(2), us(1021)}
	s.Points[trace.ReadDone] = []int64{us(3)}
	s.Points[trace.WriteEnter] = []int64{us(4)}
	s.Points[trace.Published] = []int64{us(5), us(1022)}
	s.Gaps = [][2]int64{{us(1002), us(1020)}}

	rounds := analyze(&c, &s)
	require.Len(t, rounds, 2)
	one := leg{time.Microsecond, true}
	want := []round{
		{total: leg{7 * time.Microsecond, true}, up: one, server: leg{3 * time.Microsecond, true}, down: one,
			cWrite: one, sRead: one, sApp: one, sWrite: one, cRead: one},
		{total: leg{31 * time.Microsecond, true}, up: leg{20 * time.Microsecond, true}, server: one, down: leg{8 * time.Microsecond, true},
			cWrite: one, cRead: one, serverGap: true, parked: true},
	}
	require.Equal(t, want, rounds)
	slow, sg, cg, pk, none := slowRounds(rounds)
	require.Equal(t, []int{1, 1, 0, 0, 0}, []int{slow, sg, cg, pk, none})
}

// TestNeedsTraceBuild checks that a binary without the trace points says
// how to build one instead of printing empty figures.
func TestNeedsTraceBuild(t *testing.T) {
	if trace.Enabled {
		t.Skip("built with -tags shmconntrace; TestTracedRun covers this build")
	}
	var out, errOut bytes.Buffer
	require.Equal(t, 2, run([]string{"-n", "10"}, &out, &errOut))
	require.Contains(t, errOut.String(), "-tags shmconntrace")
	require.Empty(t, out.String())
}

// TestTracedRun builds the command with its trace points and runs a short
// measurement between two real processes.
func TestTracedRun(t *testing.T) {
	bin := buildTraced(t)

	// Its own temporary directory, so that what another run on this host
	// has in the shared one is not taken for ours.
	tmp := t.TempDir()
	for _, wait := range []string{"spin", "adaptive"} {
		// A bound on a hung pair of processes, far above the second a run
		// takes.
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, "-n", "200", "-interval", "300us", "-server-wait", wait)
		cmd.Env = append(os.Environ(), "TMPDIR="+tmp)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		require.NoError(t, cmd.Run(), "stderr: %s", stderr.String())
		text := stdout.String()
		require.Contains(t, text, "200 round trips of 64 bytes, one every 300µs; server "+wait+", client adaptive", text)
		for _, name := range []string{"total", "up", "server", "down"} {
			require.Regexp(t, regexp.MustCompile(`(?m)^ *`+name+` +\d+ +\d+\.\d us`), text)
		}
		// Every round trip has a total, and nearly every one an up leg: a
		// client descheduled between publishing and stamping it stamps
		// after the server saw the bytes, and that round's up leg is
		// unknown (seen on this loaded host: 199 of 200).
		require.Regexp(t, regexp.MustCompile(`(?m)^ *total +200 `), text)
		up := regexp.MustCompile(`(?m)^ *up +(\d+) `).FindStringSubmatch(text)
		require.NotNil(t, up, text)
		n, err := strconv.Atoi(up[1])
		require.NoError(t, err)
		require.GreaterOrEqual(t, n, 190, "round trips with an up leg: %s", text)
		require.Contains(t, text, "slow round trips")
	}
	// More round trips than stamps are kept: it says so, and counts only
	// the round trips it has stamps for.
	cmd := exec.Command(bin, "-n", fmt.Sprint(trace.Capacity+100), "-interval", "10us", "-warmup", "0")
	cmd.Env = append(os.Environ(), "TMPDIR="+tmp)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	require.NoError(t, cmd.Run(), "stderr: %s", stderr.String())
	require.Contains(t, stderr.String(), "stamps past the 65536 kept per point were dropped")
	require.Contains(t, stdout.String(), fmt.Sprintf("%d round trips", trace.Capacity))

	// The command removed its socket directory.
	left, err := os.ReadDir(tmp)
	require.NoError(t, err)
	for _, e := range left {
		t.Errorf("left behind: %s", e.Name())
	}
}

// TestKilledClientLeavesNothing kills the client outright mid-run and
// checks that its server child ends and removes the socket directory,
// and that an interrupted client does both itself.
func TestKilledClientLeavesNothing(t *testing.T) {
	bin := buildTraced(t)

	for _, sig := range []os.Signal{os.Kill, syscall.SIGTERM} {
		tmp := t.TempDir()
		cmd := exec.Command(bin, "-n", "1000000", "-interval", "1ms")
		cmd.Env = append(os.Environ(), "TMPDIR="+tmp)
		require.NoError(t, cmd.Start())
		// Running: its socket directory is there.
		require.Eventually(t, func() bool {
			e, _ := os.ReadDir(tmp)
			return len(e) > 0
		}, 10*time.Second, 10*time.Millisecond)
		time.Sleep(200 * time.Millisecond) // well into the round trips
		require.NoError(t, cmd.Process.Signal(sig))
		cmd.Wait()
		// The child, which the parent's end of its stdin outlives only
		// by a moment, removes the directory if the parent could not.
		require.Eventually(t, func() bool {
			e, _ := os.ReadDir(tmp)
			return len(e) == 0 && !running(bin)
		}, 10*time.Second, 20*time.Millisecond, "after %v: a process of %s or a file in %s is left", sig, bin, tmp)
	}
}

// running reports whether a process runs the executable at path.
func running(path string) bool {
	procs, _ := filepath.Glob("/proc/[0-9]*/exe")
	for _, p := range procs {
		if exe, err := os.Readlink(p); err == nil && exe == path {
			return true
		}
	}
	return false
}

// buildTraced builds the command with its trace points and returns the
// binary's path.
func buildTraced(t *testing.T) string {
	// From PATH: runtime.GOROOT is empty in a test built with -trimpath.
	goCmd, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command to build the binary with")
	}
	bin := filepath.Join(t.TempDir(), "roundtrace")
	out, err := exec.Command(goCmd, "build", "-tags", "shmconntrace", "-o", bin, ".").CombinedOutput()
	require.NoError(t, err, "go build: %s", out)
	return bin
}
