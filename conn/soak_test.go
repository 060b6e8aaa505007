package conn

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/shmconn/shmconn/internal/testutil"
)

// openFDs counts this process's open file descriptors.
func openFDs(t *testing.T) int {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	require.NoError(t, err)
	return len(entries)
}

// TestSoak runs many connect/exchange/close cycles, with either side
// closing first, while peer processes streaming into the same listener
// are killed mid-stream, and checks nothing leaks: file descriptors,
// goroutines (TestMain) and segment files.
func TestSoak(t *testing.T) {
	cycles, kills := 10000, 12
	if testing.Short() {
		cycles, kills = 1000, 4
	}
	fdsBefore := openFDs(t)
	goroutinesBefore := runtime.NumGoroutine()

	addr := listenAddr(t, "unix")
	ln, err := (&ListenConfig{RingSize: MinRingSize}).Listen(context.Background(), "unix", addr)
	require.NoError(t, err)
	var served sync.WaitGroup
	served.Add(1)
	go func() {
		defer served.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			served.Add(1)
			go func() {
				defer served.Done()
				defer c.Close()
				// Echo one message, or drain a streaming peer until it
				// dies. Either way the conn must end cleanly.
				buf := make([]byte, 4096)
				for {
					n, err := c.Read(buf)
					if err != nil {
						return
					}
					if buf[0] == 'e' {
						c.Write(buf[:n])
						if buf[1] == 's' { // the server closes first
							return
						}
					}
				}
			}()
		}
	}()

	// Peers killed mid-stream, in the background.
	killErr := make(chan error, 1)
	go func() {
		for i := range kills {
			cmd := startPeerCmd("dial-stream", addr)
			if err := cmd.Start(); err != nil {
				killErr <- err
				return
			}
			time.Sleep(time.Duration(5+rand.IntN(30)) * time.Millisecond)
			cmd.Process.Signal(syscall.SIGKILL)
			cmd.Wait()
			_ = i
		}
		killErr <- nil
	}()

	const workers = 4
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			msg := make([]byte, 64)
			got := make([]byte, 64)
			d := Dialer{RingSize: MinRingSize, NoFallback: true}
			fail := func(err error) {
				t.Log(err) // shown even if the test later times out
				errs <- err
			}
			for i := w; i < cycles; i += workers {
				c, err := d.Dial("unix", addr)
				if err != nil {
					fail(fmt.Errorf("cycle %d: dial: %w", i, err))
					return
				}
				defer c.Close() // on failure; a second Close is harmless
				msg[0], msg[1] = 'e', "cs"[i%2]
				copy(msg[2:], fmt.Sprint(i))
				if _, err := c.Write(msg); err != nil {
					fail(fmt.Errorf("cycle %d: write: %w", i, err))
					return
				}
				c.SetReadDeadline(time.Now().Add(20 * time.Second))
				if _, err := io.ReadFull(c, got); err != nil || !bytes.Equal(got, msg) {
					fail(fmt.Errorf("cycle %d: echo %q, %v; %s", i, got, err, c.(*Conn).debugState()))
					return
				}
				if i%2 == 1 {
					// The server closes first: we see EOF.
					if n, err := c.Read(got); n != 0 || err != io.EOF {
						fail(fmt.Errorf("cycle %d: after server close: %d, %v", i, n, err))
						return
					}
				}
				if err := c.Close(); err != nil {
					fail(fmt.Errorf("cycle %d: close: %w", i, err))
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	require.NoError(t, <-killErr)
	require.NoError(t, ln.Close())
	served.Wait()

	require.Empty(t, testutil.SegmentFiles())
	require.Eventually(t, func() bool { return openFDs(t) <= fdsBefore }, 5*time.Second, 10*time.Millisecond,
		"fds: %d before, %d after", fdsBefore, openFDs(t))
	require.Eventually(t, func() bool { return runtime.NumGoroutine() <= goroutinesBefore+1 }, 5*time.Second, 10*time.Millisecond,
		"goroutines: %d before, %d after", goroutinesBefore, runtime.NumGoroutine())
}
