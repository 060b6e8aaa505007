//go:build linux

package conn

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/shmconn/shmconn/internal/shmdir"
	"github.com/shmconn/shmconn/internal/testutil"
)

// Cross-process reliability tests: a hostile truncator of /dev/shm, and
// processes out of file descriptors. playReliabilityPeer plays their
// peers' roles.
func playReliabilityPeer(role, addr string) (bool, error) {
	switch role {
	case "truncate-shm":
		return true, truncateNewSegments(addr)
	case "dial-out-of-fds":
		return true, dialOutOfFDs(addr)
	case "listen-out-of-fds":
		return true, listenOutOfFDs(addr)
	case "splice-handshake":
		return true, spliceHandshake(addr)
	}
	return false, nil
}

// truncateNewSegments watches the segment directory and truncates every
// segment file that process pid creates as soon as it appears, as a
// same-uid process can, until killed. (Only pid's: other tests on the
// machine share /dev/shm.)
func truncateNewSegments(pid string) error {
	prefix := "shmconn-" + pid + "-"
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC)
	if err != nil {
		return err
	}
	if _, err := unix.InotifyAddWatch(fd, shmdir.Path(), unix.IN_CREATE); err != nil {
		return err
	}
	fmt.Println("watching")
	buf := make([]byte, 64<<10)
	for {
		n, err := unix.Read(fd, buf)
		if err != nil {
			return err
		}
		for off := 0; off+unix.SizeofInotifyEvent <= n; {
			nameLen := int(uint32(buf[off+12]) | uint32(buf[off+13])<<8 | uint32(buf[off+14])<<16 | uint32(buf[off+15])<<24)
			name := string(bytes.TrimRight(buf[off+unix.SizeofInotifyEvent:off+unix.SizeofInotifyEvent+nameLen], "\x00"))
			off += unix.SizeofInotifyEvent + nameLen
			if strings.HasPrefix(name, prefix) {
				unix.Truncate(filepath.Join(shmdir.Path(), name), 0)
			}
		}
	}
}

// leaveOneFD lowers the soft limit on file descriptors so that exactly one
// more can be opened, and returns the function that restores it.
func leaveOneFD() (restore func(), err error) {
	dir, err := os.Open("/proc/self/fd")
	if err != nil {
		return nil, err
	}
	names, err := dir.Readdirnames(-1)
	self := int(dir.Fd())
	dir.Close()
	if err != nil {
		return nil, err
	}
	var open []int
	for _, name := range names {
		if fd, err := strconv.Atoi(name); err == nil && fd != self {
			open = append(open, fd)
		}
	}
	// The limit caps descriptor numbers: find the one with one free
	// number below it.
	slices.Sort(open)
	limit, holes := 0, 0
	for i := 0; holes < 2; limit++ {
		if i < len(open) && open[i] == limit {
			i++
		} else {
			holes++
		}
	}
	limit--
	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &old); err != nil {
		return nil, err
	}
	tight := old
	tight.Cur = uint64(limit)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &tight); err != nil {
		return nil, err
	}
	return func() { syscall.Setrlimit(syscall.RLIMIT_NOFILE, &old) }, nil
}

// dialOutOfFDs dials with room for the side socket but not the segment.
func dialOutOfFDs(addr string) error {
	c, err := Dial("unix", addr) // opens what the runtime opens lazily
	if err != nil {
		return err
	}
	c.Close()
	restore, err := leaveOneFD()
	if err != nil {
		return err
	}
	c, err = Dial("unix", addr)
	restore()
	switch {
	case err == nil:
		fmt.Printf("got a %T\n", c)
		c.Close()
	case errors.Is(err, syscall.EMFILE) && errors.Is(err, ErrHandshake):
		fmt.Println("EMFILE")
	default:
		fmt.Println("error:", err)
	}
	return nil
}

// listenOutOfFDs listens with room for one accepted socket but not its
// segment, and reports what became of the first client.
func listenOutOfFDs(addr string) error {
	dropped := make(chan error, 1)
	lc := ListenConfig{
		OnHandshakeError: func(_ net.Addr, err error) { dropped <- err },
		OnFallback:       func(_ net.Addr, reason error) { dropped <- fmt.Errorf("fell back: %w", reason) },
	}
	ln, err := lc.Listen(context.Background(), "unix", addr)
	if err != nil {
		return err
	}
	defer ln.Close()
	restore, err := leaveOneFD()
	if err != nil {
		return err
	}
	fmt.Println("listening")
	err = <-dropped
	restore()
	if errors.Is(err, syscall.EMFILE) && errors.Is(err, ErrHandshake) {
		fmt.Println("EMFILE")
	} else {
		fmt.Println("error:", err)
	}
	return nil
}

// Row 9: a process one file descriptor short of mapping the segment fails
// the dial (it may retry) instead of falling back to the side socket for
// the conn's whole life; the same on the listener's side, which tells the
// dialer it is busy.
func TestProcessOutOfFDs(t *testing.T) {
	t.Run("dialer", func(t *testing.T) {
		var fallbacks atomic.Int64
		drops := make(chan error, 10)
		lc := ListenConfig{
			OnFallback:       func(net.Addr, error) { fallbacks.Add(1) },
			OnHandshakeError: func(_ net.Addr, err error) { drops <- err },
		}
		ln, err := lc.Listen(context.Background(), "unix", listenAddr(t, "unix"))
		require.NoError(t, err)
		defer ln.Close()
		serveConns(ln, echo)
		p := startPeer(t, "dial-out-of-fds", ln.Addr().String())
		p.expect(t, "EMFILE")
		p.wait(t)
		require.ErrorIs(t, receive(t, drops, "the listener's drop"), ErrHandshake)
		require.Zero(t, fallbacks.Load())
		require.Empty(t, testutil.SegmentFiles())
	})
	t.Run("listener", func(t *testing.T) {
		addr := listenAddr(t, "unix")
		p := startPeer(t, "listen-out-of-fds", addr)
		p.expect(t, "listening")
		var fellBack error
		c, err := (&Dialer{Timeout: 10 * time.Second, OnFallback: func(r error) { fellBack = r }}).Dial("unix", addr)
		require.Nil(t, c, "a listener out of file descriptors is no reason to fall back")
		require.ErrorIs(t, err, ErrHandshake)
		require.Contains(t, err.Error(), "try again")
		require.NoError(t, fellBack)
		p.expect(t, "EMFILE")
		p.wait(t)
	})
}

// Row 7: a same-uid process that truncates every segment file the moment
// it appears cannot crash a listener over TCP (where segments have names);
// the dials it spoils fall back or fail, and no byte echoed is wrong.
//
// scripts/test runs it without the race detector, which would turn a fault
// inside an atomic operation into a crash of the test binary (see
// raceEnabled), a fault that the library recovers from in any other build.
func TestProcessTruncatorCannotCrashListener(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector cannot recover faults inside atomics; scripts/test runs this test without it")
	}
	truncator := startPeer(t, "truncate-shm", strconv.Itoa(os.Getpid()))
	truncator.expect(t, "watching")
	var fallbacks, drops atomic.Int64
	lc := ListenConfig{
		OnFallback:       func(net.Addr, error) { fallbacks.Add(1) },
		OnHandshakeError: func(net.Addr, error) { drops.Add(1) },
	}
	ln, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	serveConns(ln, echo)
	dials := 1000
	if testing.Short() {
		dials = 200
	}
	var shared, plain, failed, corrupt int
	for i := range dials {
		c, err := (&Dialer{Timeout: 10 * time.Second}).Dial("tcp", ln.Addr().String())
		if err != nil {
			require.ErrorIs(t, err, ErrHandshake, "dial %d", i)
			failed++
			continue
		}
		if _, ok := c.(*Conn); ok {
			shared++
		} else {
			plain++
		}
		msg := fmt.Appendf(nil, "ping %d", i)
		c.SetDeadline(time.Now().Add(10 * time.Second))
		_, err = c.Write(msg)
		got := make([]byte, len(msg))
		if err == nil {
			_, err = io.ReadFull(c, got)
		}
		switch {
		case err == nil:
			require.Equal(t, msg, got, "dial %d", i)
		case errors.Is(err, ErrCorrupt) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) || err == io.EOF:
			corrupt++ // the mapping was truncated after both sides checked it
		default:
			t.Fatalf("dial %d: %v", i, err)
		}
		c.Close()
	}
	t.Logf("%d dials beside a truncator: %d on shared memory, %d fell back, %d failed the handshake, %d conns hit a truncated mapping; the listener saw %d fallbacks and %d drops",
		dials, shared, plain, failed, corrupt, fallbacks.Load(), drops.Load())
	require.NoError(t, ln.Close())
	require.Eventually(t, func() bool { return len(testutil.SegmentFiles()) == 0 }, 10*time.Second, 10*time.Millisecond,
		"left behind: %v", testutil.SegmentFiles())
}
