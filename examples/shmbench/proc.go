package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/shmconn/shmconn/conn"
)

// dialer dials one of the compared transports.
type dialer struct {
	network string // "shm", "unix" or "tcp"
	addr    string
	shm     conn.Dialer
}

func (d dialer) dial(ctx context.Context) (net.Conn, error) {
	if d.network != "shm" {
		var nd net.Dialer
		return nd.DialContext(ctx, d.network, d.addr)
	}
	c, err := d.shm.DialContext(ctx, "unix", d.addr)
	if err != nil {
		return nil, err
	}
	if _, ok := c.(*conn.Conn); !ok {
		c.Close()
		return nil, fmt.Errorf("dialed %T, not shared memory", c)
	}
	return c, nil
}

// raiseFileLimit lifts the soft limit on open files to the hard one: a
// thousand conns need a thousand side sockets on each side.
func raiseFileLimit() {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err == nil && rl.Cur < rl.Max {
		rl.Cur = rl.Max
		syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl)
	}
}

// cpuTime returns the user and system CPU time this process has used.
// getrusage is exact to the microsecond (the kernel scales it from the
// scheduler's nanosecond clock), where /proc/PID/stat counts 10 ms ticks.
func cpuTime() (time.Duration, error) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, os.NewSyscallError("getrusage", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), nil
}

// threadCount returns the OS threads of process pid ("self" for this one).
func threadCount(pid string) (int, error) {
	b, err := os.ReadFile("/proc/" + pid + "/status")
	if err != nil {
		return 0, err
	}
	for line := range bytes.Lines(b) {
		if v, ok := bytes.CutPrefix(line, []byte("Threads:")); ok {
			return strconv.Atoi(string(bytes.TrimSpace(v)))
		}
	}
	return 0, fmt.Errorf("no Threads line in /proc/%s/status", pid)
}

// child is a peer process, seen from the parent.
type child struct {
	name  string
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *bufio.Reader
	addr  string        // what it listens on, from its ready line
	done  chan struct{} // closed when the process has been reaped
	err   error         // its exit status, set before done is closed
}

// childStartTimeout bounds a child's start, 1000 handshakes included.
const childStartTimeout = 60 * time.Second

// startChild runs this executable in the role env describes, with files
// as its fds 3 and up, and waits for its ready line.
func startChild(name string, env []string, files []*os.File, stderr io.Writer) (*child, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = stderr
	cmd.ExtraFiles = files
	dieWithParent(cmd)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	c := &child{name: name, cmd: cmd, stdin: stdin, out: bufio.NewReader(stdout), done: make(chan struct{})}
	ready := make(chan error, 1)
	go func() {
		line, err := c.out.ReadString('\n')
		if err == nil {
			var ok bool
			if c.addr, ok = strings.CutPrefix(strings.TrimSpace(line), "ready "); !ok {
				err = fmt.Errorf("unexpected line %q", line)
			}
		}
		ready <- err
		if err == nil {
			return
		}
		// The child failed before it got ready; its stderr says why.
		c.err = cmd.Wait()
		close(c.done)
	}()
	select {
	case err = <-ready:
	case <-time.After(childStartTimeout):
		err = fmt.Errorf("not ready after %v", childStartTimeout)
	}
	if err != nil {
		c.kill()
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	go func() {
		c.err = cmd.Wait()
		close(c.done)
	}()
	return c, nil
}

func (c *child) pid() int { return c.cmd.Process.Pid }

// procStats is what a child reports about itself.
type procStats struct {
	cpu     time.Duration
	threads int
}

// stats asks the child for its CPU time and thread count.
func (c *child) stats() (procStats, error) {
	var s procStats
	if _, err := io.WriteString(c.stdin, "stats\n"); err != nil {
		return s, fmt.Errorf("%s: %w", c.name, err)
	}
	line, err := c.out.ReadString('\n')
	if err != nil {
		return s, fmt.Errorf("%s: %w", c.name, err)
	}
	var ns int64
	if _, err := fmt.Sscanf(line, "stats %d %d\n", &ns, &s.threads); err != nil {
		return s, fmt.Errorf("%s: stats line %q: %w", c.name, line, err)
	}
	s.cpu = time.Duration(ns)
	return s, nil
}

// stopGrace is how long a child gets to close its conns and exit.
const stopGrace = 5 * time.Second

// stop closes the child's stdin, which tells it to close its conns and
// exit, and reaps it, killing it if it takes too long.
func (c *child) stop() error {
	c.stdin.Close()
	select {
	case <-c.done:
		return c.err
	case <-time.After(stopGrace):
		c.kill()
		return fmt.Errorf("%s: killed after %v", c.name, stopGrace)
	}
}

// kill ends the child at once and reaps it.
func (c *child) kill() {
	c.cmd.Process.Kill()
	c.stdin.Close()
	<-c.done
}
