package conn

import (
	"context"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// copyTransports are the conns the tests of calls beside io.Copy run on:
// shared memory over a unix socket (a sealed memory file) and over TCP (a
// named segment), and a plain conn from a Listener that accepts plain
// clients (tracked for MaxConns), the fallback's kind of conn.
var copyTransports = []struct {
	name  string
	plain bool
	pair  func(t *testing.T) (a, b net.Conn)
}{
	{"unix", false, func(t *testing.T) (net.Conn, net.Conn) { return newPair(t, "unix", ListenConfig{}, Dialer{}) }},
	{"tcp", false, func(t *testing.T) (net.Conn, net.Conn) { return newPair(t, "tcp", ListenConfig{}, Dialer{}) }},
	{"plain", true, plainPair},
}

// plainPair returns a plain conn accepted by a Listener and its client,
// both closed at the end of the test.
func plainPair(t *testing.T) (net.Conn, net.Conn) {
	lc := ListenConfig{AcceptPlain: true, PlainDetectTimeout: 50 * time.Millisecond, MaxConns: 4}
	ln, err := lc.Listen(context.Background(), "tcp", listenAddr(t, "tcp"))
	require.NoError(t, err)
	defer ln.Close()
	ch := acceptAsync(ln)
	b, err := net.Dial("tcp", ln.Addr().String())
	require.NoError(t, err)
	t.Cleanup(func() { b.Close() })
	r := receive(t, ch, "the plain conn")
	require.NoError(t, r.err)
	t.Cleanup(func() { r.c.Close() })
	return r.c, b
}

// stuckWriter's first Write says it has begun on entered and takes the
// bytes only when release is closed; later Writes take them at once.
type stuckWriter struct {
	entered, release chan struct{}
	calls            int
}

func newStuck() *stuckWriter {
	return &stuckWriter{entered: make(chan struct{}), release: make(chan struct{})}
}

func (w *stuckWriter) Write(p []byte) (int, error) {
	if w.calls++; w.calls == 1 {
		close(w.entered)
		<-w.release
	}
	return len(p), nil
}

// stuckReader is stuckWriter's reader: its first Read gives one byte when
// release is closed, later ones io.EOF.
type stuckReader stuckWriter

func (r *stuckReader) Read(p []byte) (int, error) {
	if r.calls++; r.calls > 1 {
		return 0, io.EOF
	}
	close(r.entered)
	<-r.release
	return copy(p, "r"), nil
}

// queuedCall is the outcome of a call queued behind a copy, and when it
// came.
type queuedCall struct {
	err error
	at  time.Time
}

// TestCallQueuedBehindCopy: a Read queued behind a WriteTo whose writer
// never returns, and a Write queued behind a ReadFrom whose reader never
// returns, still end within 100 ms of Close, of their deadline (set before
// the call or while it waits), and of CloseRead or CloseWrite; so does the
// CloseRead or CloseWrite itself at Close. (A plain conn's ReadFrom holds
// no lock while in the reader: a Write beside it is not queued at all.)
func TestCallQueuedBehindCopy(t *testing.T) {
	for _, tr := range copyTransports {
		for _, dir := range []string{"read-behind-writeto", "write-behind-readfrom"} {
			for _, how := range []string{"close", "deadline", "deadline-moved", "shut"} {
				t.Run(tr.name+"/"+dir+"/"+how, func(t *testing.T) {
					a, b := tr.pair(t)
					testQueuedBehindCopy(t, a, b, tr.plain, dir == "read-behind-writeto", how)
				})
			}
		}
	}
}

func testQueuedBehindCopy(t *testing.T, a, b net.Conn, plain, reading bool, how string) {
	stuck := newStuck()
	copied := make(chan error, 1)
	go func() {
		var err error
		if reading {
			_, err = io.Copy(stuck, a) // a's WriteTo
		} else {
			_, err = io.Copy(a, (*stuckReader)(stuck)) // a's ReadFrom
		}
		copied <- err
	}()
	defer func() {
		close(stuck.release)
		receive(t, copied, "the copy's end")
	}()
	if reading {
		_, err := b.Write([]byte("w"))
		require.NoError(t, err)
	}
	receive(t, stuck.entered, "the copy's call of the user's code")

	setDeadline, shut := a.SetWriteDeadline, closeWrite
	if reading {
		setDeadline, shut = a.SetReadDeadline, closeRead
	}
	const dl = 100 * time.Millisecond
	var at time.Time // the deadline
	if how == "deadline" {
		at = time.Now().Add(dl)
		require.NoError(t, setDeadline(at))
	}
	queued := make(chan queuedCall, 1)
	go func() {
		var err error
		if reading {
			_, err = a.Read(make([]byte, 10))
		} else {
			_, err = a.Write([]byte("queued"))
		}
		queued <- queuedCall{err, time.Now()}
	}()
	if plain && !reading {
		r := receive(t, queued, "the plain Write")
		require.NoError(t, r.err, "a Write beside a plain conn's ReadFrom")
		return
	}
	if how != "deadline" {
		time.Sleep(50 * time.Millisecond) // the call is queued
		select {
		case r := <-queued:
			t.Fatalf("the call did not wait: %v", r.err)
		default:
		}
	}
	shutDone := make(chan error, 1)
	switch how {
	case "close":
		at = time.Now()
		require.NoError(t, a.Close())
	case "deadline-moved":
		at = time.Now().Add(dl)
		require.NoError(t, setDeadline(at))
	case "shut":
		at = time.Now()
		go func() { shutDone <- shut(a) }()
	}
	var r queuedCall
	select {
	case r = <-queued:
	case <-time.After(2 * time.Second):
		t.Fatalf("the queued call still waits 2 s after the %s", how)
	}
	late := r.at.Sub(at)
	require.Less(t, late, 100*time.Millisecond, "the queued call returned %v after the %s", late, how)
	switch how {
	case "close":
		var op *net.OpError
		require.ErrorAs(t, r.err, &op)
		require.ErrorIs(t, r.err, net.ErrClosed)
	case "deadline", "deadline-moved":
		require.GreaterOrEqual(t, late, time.Duration(0), "returned before the deadline")
		var op *net.OpError
		require.ErrorAs(t, r.err, &op)
		require.Equal(t, os.ErrDeadlineExceeded, op.Err)
		require.True(t, op.Timeout())
	case "shut":
		if reading {
			require.Equal(t, io.EOF, r.err)
		} else {
			require.ErrorIs(t, r.err, syscall.EPIPE)
		}
		// CloseRead or CloseWrite waits for the user's code, but not past
		// Close.
		closed := time.Now()
		require.NoError(t, a.Close())
		select {
		case <-shutDone:
		case <-time.After(100 * time.Millisecond):
			t.Fatalf("the half-close still waits %v after Close", time.Since(closed))
		}
	}
}
