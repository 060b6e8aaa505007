package testutil

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// Child is a process a test started with StartChild.
type Child struct {
	Cmd    *exec.Cmd
	output SyncBuffer
	exited chan struct{}
}

// children are the pids of the processes StartChild started, for
// RunVerified's check for segment files left behind.
var children struct {
	sync.Mutex
	pids []int
}

// StartChild starts cmd and waits, up to 20 seconds, until it prints a
// line containing ready, in any case, on its standard output (redis-server
// 7.0 says "ready to accept connections", later ones "Ready ..."); it returns the child and
// the lines printed before that one. The child's standard output and
// error are kept for Output. When t ends the child is killed if it still
// runs, and its output logged if t failed.
func StartChild(t testing.TB, cmd *exec.Cmd, ready string) (*Child, []string) {
	t.Helper()
	c := &Child{Cmd: cmd, exited: make(chan struct{})}
	cmd.Stderr = &c.output
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	children.Lock()
	children.pids = append(children.pids, cmd.Process.Pid)
	children.Unlock()

	var before []string
	isReady := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			fmt.Fprintln(&c.output, sc.Text())
			if strings.Contains(strings.ToLower(sc.Text()), strings.ToLower(ready)) {
				close(isReady)
				break
			}
			before = append(before, sc.Text())
		}
		for sc.Scan() {
			fmt.Fprintln(&c.output, sc.Text())
		}
		cmd.Wait()
		close(c.exited)
	}()
	t.Cleanup(func() {
		c.Stop(t, os.Kill)
		if t.Failed() {
			t.Logf("%s output:\n%s", filepath.Base(cmd.Path), c.Output())
		}
	})
	select {
	case <-isReady:
	case <-c.exited:
		t.Fatalf("%s exited before it was ready: %v\n%s", filepath.Base(cmd.Path), cmd.ProcessState, c.Output())
	case <-time.After(20 * time.Second):
		t.Fatalf("%s not ready after 20s:\n%s", filepath.Base(cmd.Path), c.Output())
	}
	return c, before
}

// Stop sends sig unless the child has exited, waits up to 10 seconds for
// it to exit (then kills it and fails t) and returns its exit code, -1 if
// a signal ended it.
func (c *Child) Stop(t testing.TB, sig os.Signal) int {
	select {
	case <-c.exited:
	default:
		c.Cmd.Process.Signal(sig)
		select {
		case <-c.exited:
		case <-time.After(10 * time.Second):
			c.Cmd.Process.Kill()
			<-c.exited
			t.Errorf("%s did not exit within 10s of %v", filepath.Base(c.Cmd.Path), sig)
		}
	}
	return c.Cmd.ProcessState.ExitCode()
}

// Output is what the child has printed so far, both streams.
func (c *Child) Output() string { return c.output.String() }

// SelfCommand runs this test binary again with args and with env=1 in its
// environment: the binary's TestMain or an init function checks env and
// runs the program under test instead of the tests. The race detector's
// one-second sleep at exit is turned off, as it would slow every stop.
func SelfCommand(t testing.TB, env string, args ...string) *exec.Cmd {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, args...)
	cmd.Env = append(os.Environ(), env+"=1", "GORACE="+strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
	return cmd
}

// SegmentFilesOf lists the segment files named for the given processes
// (SegmentFiles lists those of other test binaries' dead processes too).
func SegmentFilesOf(pids ...int) []string {
	var files []string
	for _, f := range SegmentFiles() {
		for _, pid := range pids {
			if strings.HasPrefix(filepath.Base(f), fmt.Sprintf("shmconn-%d-", pid)) {
				files = append(files, f)
			}
		}
	}
	return files
}

// RunVerified runs the tests and, if they passed, fails them if segment
// files named for this process or for a child from StartChild remain, or
// goroutines leaked. It returns the exit code, for os.Exit.
func RunVerified(m *testing.M) int {
	code := m.Run()
	if code != 0 {
		return code
	}
	children.Lock()
	pids := append(children.pids, os.Getpid())
	children.Unlock()
	if left := SegmentFilesOf(pids...); len(left) > 0 {
		fmt.Println("FAIL: segment files left behind:", left)
		code = 1
	}
	if err := goleak.Find(); err != nil {
		fmt.Println("FAIL: goroutine leak:", err)
		code = 1
	}
	return code
}

// SyncBuffer is a bytes.Buffer that a child's output goroutines and the
// test may use at once.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
