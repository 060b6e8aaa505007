//go:build linux

package conn

import (
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// TestIdleConnsCostNoCPU: under WaitAdaptive, conns whose every end has a
// Read waiting for bytes that do not come cost no CPU and no OS thread
// once their short spin and doze are over: the waiting calls park on the
// netpoller.
func TestIdleConnsCostNoCPU(t *testing.T) {
	threadsBefore := threads(t)
	conns := idlePairs(t)
	ended := make(chan error, len(conns))
	for _, c := range conns {
		go func() {
			_, err := c.Read(make([]byte, 1))
			ended <- err
		}()
	}
	time.Sleep(100 * time.Millisecond) // past every spin (at most 250 us) and a fresh doze (200 us)
	requireIdle(t, conns, ended, threadsBefore)
}

// idlePairs makes the 100 pairs of conns, both ends in this process, that
// the idle tests watch.
func idlePairs(t *testing.T) []*Conn {
	var conns []*Conn
	for range 100 {
		a, b := newPair(t, "unix", ListenConfig{RingSize: MinRingSize}, Dialer{RingSize: MinRingSize})
		conns = append(conns, a, b)
	}
	return conns
}

// requireIdle checks that conns, each with a call waiting whose error
// comes on ended, cost no CPU and hold no OS thread beyond the
// threadsBefore the process had, and that none of those calls dozes; then
// it closes the conns and checks the calls end.
func requireIdle(t *testing.T, conns []*Conn, ended <-chan error, threadsBefore int) {
	t.Helper()
	const window = 500 * time.Millisecond
	before := cpuTime(t)
	time.Sleep(window)
	used := cpuTime(t) - before
	threadsIdle := threads(t)
	t.Logf("%d conns, each with a Read waiting: %v of CPU in %v; OS threads %d before, %d while they wait",
		len(conns), used, window, threadsBefore, threadsIdle)
	require.Less(t, used, window/20, "idle conns burn CPU")
	require.Less(t, threadsIdle-threadsBefore, 10, "idle conns hold OS threads")
	require.Zero(t, dozers.Load(), "a waiting Read still dozes, holding a thread and a P")
	for _, c := range conns {
		c.Close()
	}
	for range conns {
		err := receive(t, ended, "the end of a waiting Read")
		require.True(t, err == io.EOF || errors.Is(err, net.ErrClosed), "%v", err)
	}
}

// cpuTime is the CPU time the process has used, user and system.
func cpuTime(t *testing.T) time.Duration {
	var ru unix.Rusage
	require.NoError(t, unix.Getrusage(unix.RUSAGE_SELF, &ru))
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// threads counts the process's OS threads.
func threads(t *testing.T) int {
	tasks, err := os.ReadDir("/proc/self/task")
	require.NoError(t, err)
	return len(tasks)
}
