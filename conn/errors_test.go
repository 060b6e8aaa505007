package conn

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/shmconn/shmconn/internal/handshake"
	"github.com/shmconn/shmconn/internal/shmdir"
)

// relayTo relays every connection made to the address it returns (on
// loopback TCP) to addr, both ways.
func relayTo(t *testing.T, addr string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	serveUntilCleanup(t, ln, func(c net.Conn) {
		up, err := net.Dial("tcp", addr)
		if err != nil {
			return
		}
		// Plain copies: io.Copy between two TCP conns would splice through
		// pooled pipes, descriptors the garbage collector closes at some
		// later time, which tests counting descriptors would see.
		done := make(chan struct{})
		go func() {
			defer close(done)
			io.Copy(struct{ io.Writer }{up}, struct{ io.Reader }{c})
			up.Close() // the dialer went: so does the relay
		}()
		io.Copy(struct{ io.Writer }{c}, struct{ io.Reader }{up})
		c.Close()
		<-done
	})
	return ln.Addr().String()
}

// TestListenerCloseMidHandshake closes a Listener while a client is
// half-way through its hello: the handshake our Close cut off is counted
// as closed, not as the client's protocol error.
func TestListenerCloseMidHandshake(t *testing.T) {
	drops := make(chan error, 1)
	ln, err := (&ListenConfig{OnHandshakeError: func(_ net.Addr, err error) { drops <- err }}).Listen(t.Context(), "unix", listenAddr(t, "unix"))
	require.NoError(t, err)
	c, err := net.Dial("unix", ln.Addr().String())
	require.NoError(t, err)
	defer c.Close()
	_, err = c.Write(rawHello(0)[:6])
	require.NoError(t, err)
	// Wait until the listener is reading the rest of the hello.
	require.Eventually(t, func() bool {
		ln.mu.Lock()
		defer ln.mu.Unlock()
		return len(ln.raw) == 1
	}, 5*time.Second, time.Millisecond)
	time.Sleep(50 * time.Millisecond)
	require.NoError(t, ln.Close())
	require.ErrorIs(t, receive(t, drops, "the drop"), net.ErrClosed)
	require.Equal(t, HandshakeErrorStats{Closed: 1}, ln.Stats().HandshakeErrors)
}

// TestErrorTable checks each row of the error table in the package
// documentation (doc.go), in its order.
func TestErrorTable(t *testing.T) {
	// requireIs checks err matches every target.
	requireIs := func(t *testing.T, err error, targets ...error) {
		t.Helper()
		require.Error(t, err)
		for _, target := range targets {
			require.ErrorIs(t, err, target)
		}
	}
	// dropped listens with lc and returns its address and the errors its
	// OnHandshakeError hook receives.
	droppedOver := func(t *testing.T, network string, lc ListenConfig) (string, <-chan error) {
		errs := make(chan error, 10)
		lc.OnHandshakeError = func(_ net.Addr, err error) { errs <- err }
		ln, err := lc.Listen(context.Background(), network, listenAddr(t, network))
		require.NoError(t, err)
		t.Cleanup(func() { ln.Close() })
		return ln.Addr().String(), errs
	}
	dropped := func(t *testing.T, lc ListenConfig) (string, <-chan error) {
		return droppedOver(t, "unix", lc)
	}
	rawClient := func(t *testing.T, addr string, send []byte) net.Conn {
		c, err := net.Dial("unix", addr)
		require.NoError(t, err)
		t.Cleanup(func() { c.Close() })
		_, err = c.Write(send)
		require.NoError(t, err)
		return c
	}
	failedReply := func(status byte, version uint16) []byte {
		b, err := handshake.AppendReply(nil, handshake.Reply{Version: version, Status: status})
		require.NoError(t, err)
		return b
	}
	quick := Dialer{Timeout: 5 * time.Second}

	t.Run("dial reached a server that is not a listener", func(t *testing.T) {
		_, err := quick.Dial("unix", serveRaw(t, func(c net.Conn) { io.Copy(c, c) }))
		requireIs(t, err, ErrNotShmconn, ErrHandshake)
	})
	t.Run("listener got a client that is not a dialer", func(t *testing.T) {
		addr, errs := dropped(t, ListenConfig{})
		rawClient(t, addr, []byte("GET / HTTP/1.1\r\n\r\n"))
		requireIs(t, receive(t, errs, "the drop"), ErrNotShmconn, ErrHandshake)
	})
	t.Run("the peer speaks another version", func(t *testing.T) {
		_, err := quick.Dial("unix", fakeListener(t, failedReply(handshake.StatusRefused, handshake.Version+1)))
		requireIs(t, err, ErrVersion, ErrHandshake)
		// Another version's reply is not held to our version's rules
		// past its version: whatever follows, the dial reports the
		// version.
		future := append(append([]byte{}, handshake.ReplyMagic[:]...), handshake.Version+1, 0, 9, 200, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff)
		_, err = quick.Dial("unix", fakeListener(t, future))
		requireIs(t, err, ErrVersion, ErrHandshake)
		// A version-1 listener answers with version 1's magic.
		_, err = quick.Dial("unix", fakeListener(t, []byte{0, 'S', 'H', 'M', 1, 0, handshake.StatusRefused, 0}))
		requireIs(t, err, ErrVersion, ErrHandshake)
		addr, errs := dropped(t, ListenConfig{})
		c := rawClient(t, addr, append([]byte{0, 'S', 'H', 'M', 1, 0, 0, 0}, make([]byte, 8)...))
		requireIs(t, receive(t, errs, "the drop"), ErrVersion, ErrHandshake)
		// The version-1 dialer gets a refusal it can read: its magic,
		// our version, status refused.
		reply := make([]byte, 7)
		_, err = io.ReadFull(c, reply)
		require.NoError(t, err)
		require.Equal(t, []byte{0, 'S', 'H', 'M', handshake.Version, 0, handshake.StatusRefused}, reply)
	})
	t.Run("the handshake ran out of time", func(t *testing.T) {
		silent := serveRaw(t, func(c net.Conn) { io.Copy(io.Discard, c) })
		_, err := (&Dialer{Timeout: 50 * time.Millisecond}).Dial("unix", silent)
		requireIs(t, err, ErrHandshake, os.ErrDeadlineExceeded, context.DeadlineExceeded)
		var ne net.Error
		require.True(t, errors.As(err, &ne) && ne.Timeout())
		addr, errs := dropped(t, ListenConfig{HandshakeTimeout: 50 * time.Millisecond})
		rawClient(t, addr, rawHello(0)[:3])
		err = receive(t, errs, "the drop")
		requireIs(t, err, ErrHandshake, os.ErrDeadlineExceeded)
		require.True(t, errors.As(err, &ne) && ne.Timeout())
	})
	t.Run("the dial's context was cancelled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(20*time.Millisecond, cancel)
		_, err := quick.DialContext(ctx, "unix", serveRaw(t, func(c net.Conn) { io.Copy(io.Discard, c) }))
		requireIs(t, err, ErrHandshake, context.Canceled)
	})
	t.Run("malformed message or refusal", func(t *testing.T) {
		_, err := quick.Dial("unix", fakeListener(t, failedReply(handshake.StatusRefused, handshake.Version)))
		requireIs(t, err, ErrHandshake)
		_, err = quick.Dial("unix", fakeListener(t, failedReply(7, handshake.Version)))
		requireIs(t, err, ErrHandshake)
		addr, errs := dropped(t, ListenConfig{})
		rawClient(t, addr, append(rawHello(0)[:12], "0000000g\r\n"...))
		requireIs(t, receive(t, errs, "the drop"), ErrHandshake)
	})
	t.Run("client refused by AuthorizePeer", func(t *testing.T) {
		mine := errors.New("not you")
		addr, errs := dropped(t, ListenConfig{AuthorizePeer: func(PeerCred) error { return mine }})
		_, err := quick.Dial("unix", addr)
		requireIs(t, err, ErrHandshake)
		requireIs(t, receive(t, errs, "the drop"), ErrPeerNotAllowed, ErrHandshake, mine)
	})
	t.Run("no shared memory and no fallback", func(t *testing.T) {
		defer shmdir.Set(filepath.Join(t.TempDir(), "missing"))()
		// Over TCP, whose segments are files in that directory; over a unix
		// socket they need no directory.
		addr, errs := droppedOver(t, "tcp", ListenConfig{})
		_, err := (&Dialer{NoFallback: true, Timeout: 5 * time.Second}).Dial("tcp", addr)
		requireIs(t, err, ErrNoSharedMemory, ErrHandshake)
		requireIs(t, receive(t, errs, "the drop"), ErrNoSharedMemory, ErrHandshake)
	})
	t.Run("the segment was not mapped through this side socket", func(t *testing.T) {
		// A relay of our own uid between the two: the processes of
		// another uid and a swapped file are TestProcessSplicerGetsNoSegment
		// and TestSwappedSegmentFile.
		for _, noFallback := range []bool{false, true} {
			addr, errs := droppedOver(t, "tcp", ListenConfig{})
			relay := relayTo(t, addr)
			c, err := (&Dialer{NoFallback: noFallback, Timeout: 5 * time.Second}).Dial("tcp", relay)
			if c != nil {
				t.Cleanup(func() { c.Close() })
			}
			if noFallback {
				requireIs(t, err, ErrSegmentMismatch, ErrNoSharedMemory, ErrHandshake)
				requireIs(t, receive(t, errs, "the drop"), ErrSegmentMismatch, ErrNoSharedMemory, ErrHandshake)
				continue
			}
			require.NoError(t, err)
			_, shared := c.(*Conn)
			require.False(t, shared, "shared memory through a relay")
			c.Close()
		}
	})
	t.Run("a shortage that passes", func(t *testing.T) {
		// The listener's side; the dialer's, out of file descriptors, is
		// TestProcessOutOfFDs.
		c, err := quick.Dial("unix", fakeListener(t, failedReply(handshake.StatusBusy, handshake.Version)))
		require.Nil(t, c, "a busy listener is no reason to fall back")
		requireIs(t, err, ErrHandshake)
		require.True(t, transient(&os.PathError{Op: "open", Err: syscall.EMFILE}))
		require.False(t, transient(&os.PathError{Op: "open", Err: syscall.ENOENT}))
	})
	t.Run("invalid configuration", func(t *testing.T) {
		_, err := (&Dialer{RingSize: -1}).Dial("unix", "/nonexistent")
		requireIs(t, err, ErrConfig)
	})
	c1, c2 := newPair(t, "unix", ListenConfig{RingSize: MinRingSize}, Dialer{RingSize: MinRingSize})
	t.Run("deadline passed", func(t *testing.T) {
		require.NoError(t, c1.SetReadDeadline(time.Now().Add(-time.Second)))
		_, err := c1.Read(make([]byte, 1))
		requireIs(t, err, os.ErrDeadlineExceeded)
		var ne net.Error
		require.True(t, errors.As(err, &ne) && ne.Timeout())
		require.NoError(t, c1.SetReadDeadline(time.Time{}))
	})
	t.Run("the peer closed its writing end", func(t *testing.T) {
		require.NoError(t, c2.CloseWrite())
		for range 2 {
			_, err := c1.Read(make([]byte, 1))
			require.Equal(t, io.EOF, err, "bare and sticky")
		}
	})
	t.Run("Write after CloseWrite or the peer's Close", func(t *testing.T) {
		_, err := c2.Write([]byte("x"))
		requireIs(t, err, syscall.EPIPE)
		require.NoError(t, c1.Close())
		_, err = c2.Read(make([]byte, 1))
		require.Equal(t, io.EOF, err)
	})
	t.Run("use after Close", func(t *testing.T) {
		_, err := c1.Read(make([]byte, 1))
		requireIs(t, err, net.ErrClosed)
		_, err = c1.Write([]byte("x"))
		requireIs(t, err, net.ErrClosed)
		requireIs(t, c1.SetDeadline(time.Time{}), net.ErrClosed)
		requireIs(t, c1.CloseWrite(), net.ErrClosed)
	})
	t.Run("Close", func(t *testing.T) {
		c1, _ := newPair(t, "unix", ListenConfig{}, Dialer{})
		require.NoError(t, c1.Close(), "the first Close")
		requireIs(t, c1.Close(), net.ErrClosed)
	})
	t.Run("the peer died", func(t *testing.T) {
		c, p := acceptRaw(t, ListenConfig{RingSize: MinRingSize})
		p.side.Close() // end-of-file without the closed flags: a crash
		_, err := c.Read(make([]byte, 1))
		requireIs(t, err, syscall.ECONNRESET)
		_, err = c.Write([]byte("x"))
		requireIs(t, err, syscall.ECONNRESET)
	})
	t.Run("the peer broke the shared-memory protocol", func(t *testing.T) {
		c, p := acceptRaw(t, ListenConfig{RingSize: MinRingSize})
		u64(t, p.out(), specTail).Store(1 << 40)
		_, err := c.Read(make([]byte, 1))
		requireIs(t, err, ErrCorrupt)
	})
}
