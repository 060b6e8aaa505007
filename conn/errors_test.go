package conn

import (
	"context"
	"errors"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
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

// TestErrorTable checks each row of the error table in the package
// documentation (doc.go), one case per row, in the table's order; the
// rows are read from doc.go, so a row without a case (or a case without a
// row) fails, and so does an exported error of errors.go that no row
// names.
func TestErrorTable(t *testing.T) {
	// requireIs checks err matches every target.
	requireIs := func(t *testing.T, err error, targets ...error) {
		t.Helper()
		require.Error(t, err)
		for _, target := range targets {
			require.ErrorIs(t, err, target)
		}
	}
	// droppedOver listens on network with lc and returns its address and
	// the errors its OnHandshakeError hook receives.
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
	// blocked runs call, checks it is still waiting after a moment, and
	// returns what it will return.
	blocked := func(t *testing.T, call func() error) <-chan error {
		done := make(chan error, 1)
		go func() { done <- call() }()
		time.Sleep(20 * time.Millisecond)
		select {
		case err := <-done:
			t.Fatalf("the call did not block: %v", err)
		default:
		}
		return done
	}
	pair := func(t *testing.T) (dialed, accepted *Conn) {
		return newPair(t, "unix", ListenConfig{RingSize: MinRingSize}, Dialer{RingSize: MinRingSize})
	}
	quick := Dialer{Timeout: 5 * time.Second}

	rows := []struct {
		failure string // the row's first line in the table, failure column
		check   func(t *testing.T)
	}{
		{"Dial reached a server that is not a listener", func(t *testing.T) {
			_, err := quick.Dial("unix", serveRaw(t, func(c net.Conn) { io.Copy(c, c) }))
			requireIs(t, err, ErrNotShmconn, ErrHandshake)
		}},
		{"Listener got a client that is not a Dialer", func(t *testing.T) {
			addr, errs := dropped(t, ListenConfig{})
			start := time.Now()
			rawClient(t, addr, []byte("GET / HTTP/1.1\r\n\r\n"))
			requireIs(t, receive(t, errs, "the drop"), ErrNotShmconn, ErrHandshake)
			require.Less(t, time.Since(start), DefaultHandshakeTimeout/2, "dropped at its first byte that differs from the magic, not at the deadline")
		}},
		{"the peer speaks another handshake version", func(t *testing.T) {
			_, err := quick.Dial("unix", fakeListener(t, failedReply(handshake.StatusRefused, handshake.Version+1)))
			requireIs(t, err, ErrVersion, ErrHandshake)
			// Another version's reply is not held to our version's rules
			// past its version: whatever follows, the dial reports the
			// version.
			future := append(append([]byte{}, handshake.ReplyMagic[:]...), handshake.Version+1, 0, 9, 200, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff)
			_, err = quick.Dial("unix", fakeListener(t, future))
			requireIs(t, err, ErrVersion, ErrHandshake)
			addr, errs := dropped(t, ListenConfig{})
			c := rawClient(t, addr, handshake.AppendHello(nil, handshake.Hello{Version: handshake.Version + 1}))
			requireIs(t, receive(t, errs, "the drop"), ErrVersion, ErrHandshake)
			// The dialer of another version gets a refusal it can read:
			// the reply's magic, our version, status refused.
			reply := make([]byte, 7)
			_, err = io.ReadFull(c, reply)
			require.NoError(t, err)
			require.Equal(t, append(handshake.ReplyMagic[:], handshake.Version, 0, handshake.StatusRefused), reply)
		}},
		{"the handshake ran out of time (Dialer.Timeout,", func(t *testing.T) {
			silent := serveRaw(t, func(c net.Conn) { io.Copy(io.Discard, c) })
			_, err := (&Dialer{Timeout: 50 * time.Millisecond}).Dial("unix", silent)
			requireIs(t, err, ErrHandshake, os.ErrDeadlineExceeded, context.DeadlineExceeded)
			var ne net.Error
			require.True(t, errors.As(err, &ne) && ne.Timeout())
			ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
			defer cancel()
			_, err = (&Dialer{}).DialContext(ctx, "unix", silent)
			requireIs(t, err, ErrHandshake, os.ErrDeadlineExceeded, context.DeadlineExceeded)
			require.True(t, errors.As(err, &ne) && ne.Timeout())
			addr, errs := dropped(t, ListenConfig{HandshakeTimeout: 50 * time.Millisecond})
			rawClient(t, addr, rawHello(0)[:3])
			err = receive(t, errs, "the drop")
			requireIs(t, err, ErrHandshake, os.ErrDeadlineExceeded)
			require.True(t, errors.As(err, &ne) && ne.Timeout())
		}},
		{"the dial's context was cancelled", func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			time.AfterFunc(20*time.Millisecond, cancel)
			_, err := quick.DialContext(ctx, "unix", serveRaw(t, func(c net.Conn) { io.Copy(io.Discard, c) }))
			requireIs(t, err, ErrHandshake, context.Canceled)
		}},
		{"malformed message, or refused by the listener", func(t *testing.T) {
			_, err := quick.Dial("unix", fakeListener(t, failedReply(handshake.StatusRefused, handshake.Version)))
			requireIs(t, err, ErrHandshake)
			_, err = quick.Dial("unix", fakeListener(t, failedReply(7, handshake.Version)))
			requireIs(t, err, ErrHandshake)
			addr, errs := dropped(t, ListenConfig{})
			rawClient(t, addr, append(rawHello(0)[:12], "0000000g\r\n"...))
			requireIs(t, receive(t, errs, "the drop"), ErrHandshake)
		}},
		{"client refused by AuthorizePeer", func(t *testing.T) {
			mine := errors.New("not you")
			addr, errs := dropped(t, ListenConfig{AuthorizePeer: func(PeerCred) error { return mine }})
			_, err := quick.Dial("unix", addr)
			requireIs(t, err, ErrHandshake)
			requireIs(t, receive(t, errs, "the drop"), ErrPeerNotAllowed, ErrHandshake, mine)
		}},
		{"no shared memory, and no fallback on one side", func(t *testing.T) {
			defer shmdir.Set(filepath.Join(t.TempDir(), "missing"))()
			// Over TCP, whose segments are files in that directory; over a
			// unix socket they need no directory.
			addr, errs := droppedOver(t, "tcp", ListenConfig{})
			_, err := (&Dialer{NoFallback: true, Timeout: 5 * time.Second}).Dial("tcp", addr)
			requireIs(t, err, ErrNoSharedMemory, ErrHandshake)
			requireIs(t, receive(t, errs, "the drop"), ErrNoSharedMemory, ErrHandshake)
		}},
		{"the two sides do not map one segment over one", func(t *testing.T) {
			// A relay of our own uid between the two: the processes of
			// another uid and a swapped file are TestProcessSplicerGetsNoSegment
			// and TestSwappedSegmentFile.
			for _, noFallback := range []bool{false, true} {
				fellBack := make(chan error, 1)
				addr, errs := droppedOver(t, "tcp", ListenConfig{OnFallback: func(_ net.Addr, err error) { fellBack <- err }})
				relay := relayTo(t, addr)
				d := Dialer{NoFallback: noFallback, Timeout: 5 * time.Second}
				var dialerFellBack error
				d.OnFallback = func(err error) { dialerFellBack = err }
				c, err := d.Dial("tcp", relay)
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
				requireIs(t, dialerFellBack, ErrSegmentMismatch, ErrHandshake)
				requireIs(t, receive(t, fellBack, "the listener's fallback"), ErrSegmentMismatch, ErrHandshake)
				c.Close()
			}
		}},
		{"a shortage that passes (out of file descriptors", func(t *testing.T) {
			// The listener's side; the dialer's, out of file descriptors, is
			// TestProcessOutOfFDs.
			c, err := quick.Dial("unix", fakeListener(t, failedReply(handshake.StatusBusy, handshake.Version)))
			require.Nil(t, c, "a busy listener is no reason to fall back")
			requireIs(t, err, ErrHandshake)
			require.True(t, transient(&os.PathError{Op: "open", Err: syscall.EMFILE}))
			require.False(t, transient(&os.PathError{Op: "open", Err: syscall.ENOENT}))
		}},
		{"a Dialer or ListenConfig field out of range", func(t *testing.T) {
			_, err := (&Dialer{RingSize: -1}).Dial("unix", "/nonexistent")
			requireIs(t, err, ErrConfig)
			_, err = (&ListenConfig{RingSize: -1}).Listen(context.Background(), "unix", listenAddr(t, "unix"))
			requireIs(t, err, ErrConfig)
		}},
		{"a deadline passed", func(t *testing.T) {
			c, _ := pair(t)
			require.NoError(t, c.SetReadDeadline(time.Now().Add(-time.Second)))
			_, err := c.Read(make([]byte, 1))
			requireIs(t, err, os.ErrDeadlineExceeded)
			var ne net.Error
			require.True(t, errors.As(err, &ne) && ne.Timeout())
			require.NoError(t, c.SetReadDeadline(time.Now().Add(20*time.Millisecond)))
			_, err = c.Read(make([]byte, 1))
			require.True(t, errors.As(err, &ne) && ne.Timeout(), "a deadline that passes during the call: %v", err)
		}},
		{"the peer closed its writing end (Read), or", func(t *testing.T) {
			c1, c2 := pair(t)
			require.NoError(t, c2.CloseWrite())
			for range 2 {
				_, err := c1.Read(make([]byte, 1))
				require.Equal(t, io.EOF, err, "bare and sticky")
			}
			require.NoError(t, c2.CloseRead())
			for range 2 {
				_, err := c2.Read(make([]byte, 1))
				require.Equal(t, io.EOF, err, "bare and sticky after CloseRead")
			}
		}},
		{"Write after CloseWrite, or after the peer closed", func(t *testing.T) {
			c1, c2 := pair(t)
			require.NoError(t, c2.CloseWrite())
			_, err := c2.Write([]byte("x"))
			requireIs(t, err, syscall.EPIPE)
			require.NoError(t, c2.Close())
			_, err = c1.Write([]byte("x"))
			requireIs(t, err, syscall.EPIPE)
			c1, _ = pair(t)
			done := blocked(t, func() error { _, err := c1.Write(make([]byte, 2*MinRingSize)); return err })
			require.NoError(t, c1.CloseWrite())
			requireIs(t, receive(t, done, "the blocked Write"), syscall.EPIPE)
		}},
		{"use after Close, or a call blocked when Close", func(t *testing.T) {
			c, _ := pair(t)
			done := blocked(t, func() error { _, err := c.Read(make([]byte, 1)); return err })
			require.NoError(t, c.Close(), "the first Close")
			requireIs(t, receive(t, done, "the blocked Read"), net.ErrClosed)
			_, err := c.Read(make([]byte, 1))
			requireIs(t, err, net.ErrClosed)
			_, err = c.Write([]byte("x"))
			requireIs(t, err, net.ErrClosed)
			requireIs(t, c.SetDeadline(time.Time{}), net.ErrClosed)
			requireIs(t, c.CloseWrite(), net.ErrClosed)
			requireIs(t, c.Close(), net.ErrClosed)
		}},
		{"Accept after the Listener's Close, or a", func(t *testing.T) {
			drops := make(chan error, 1)
			ln, err := (&ListenConfig{OnHandshakeError: func(_ net.Addr, err error) { drops <- err }}).Listen(t.Context(), "unix", listenAddr(t, "unix"))
			require.NoError(t, err)
			rawClient(t, ln.Addr().String(), rawHello(0)[:6])
			require.Eventually(t, func() bool {
				ln.mu.Lock()
				defer ln.mu.Unlock()
				return len(ln.raw) == 1
			}, 5*time.Second, time.Millisecond, "the client's handshake never began")
			time.Sleep(50 * time.Millisecond) // into its read of the hello's rest
			require.NoError(t, ln.Close())
			_, err = ln.Accept()
			requireIs(t, err, net.ErrClosed)
			requireIs(t, receive(t, drops, "the drop"), net.ErrClosed)
			require.Equal(t, HandshakeErrorStats{Closed: 1}, ln.Stats().HandshakeErrors)
		}},
		{"the peer died without closing", func(t *testing.T) {
			c, p := acceptRaw(t, ListenConfig{RingSize: MinRingSize})
			p.side.Close() // end-of-file without the closed flags: a crash
			_, err := c.Read(make([]byte, 1))
			requireIs(t, err, syscall.ECONNRESET)
			_, err = c.Write([]byte("x"))
			requireIs(t, err, syscall.ECONNRESET)
		}},
		{"the peer broke the shared-memory protocol", func(t *testing.T) {
			c, p := acceptRaw(t, ListenConfig{RingSize: MinRingSize})
			u64(t, p.out(), specTail).Store(1 << 40)
			_, err := c.Read(make([]byte, 1))
			requireIs(t, err, ErrCorrupt)
			// A truncated segment: TestTruncatedSegment.
		}},
		{"a Write (or ReadFrom) needs a page while", func(t *testing.T) {
			// Out of /dev/shm; out of the memory cgroup's headroom is
			// TestListenerInMemoryCgroup, and ReadFrom TestCopyOutOfMemory.
			out := runInMountNamespace(t, "nomem-write")
			require.Contains(t, out, "write that cannot commit: ")
			require.Contains(t, out, "recovered")
		}},
		{"a Read (or WriteTo) of pages the peer published", func(t *testing.T) {
			// Out of /dev/shm; out of the memory cgroup's headroom is
			// TestProcessUnwrittenPages.
			out := runInMountNamespace(t, "nomem-read")
			require.Contains(t, out, "read of unwritten pages: ")
			require.Contains(t, out, "writeto of unwritten pages: ")
			require.Contains(t, out, "recovered")
		}},
	}

	table := docErrorTable(t)
	var failures []string
	for _, row := range rows {
		failures = append(failures, row.failure)
	}
	require.Equal(t, table.order, failures, "the cases follow the table's rows, one each")
	for _, name := range exportedErrors(t) {
		require.Contains(t, table.matches, name, "no row of the table names %s", name)
	}
	for _, row := range rows {
		t.Run(row.failure, row.check)
	}
}

// errorTable is the error table of the package documentation.
type errorTable struct {
	order   []string // each row's first line, failure column
	matches string   // the "errors.Is matches" column, all rows
}

// docErrorTable reads the error table from doc.go: the lines between its
// rule of dashes and the next blank line, a row starting at each line
// whose failure column does not start with a space.
func docErrorTable(t *testing.T) errorTable {
	b, err := os.ReadFile("doc.go")
	require.NoError(t, err)
	var tbl errorTable
	width := 0
	var matches strings.Builder
	for line := range strings.Lines(string(b)) {
		text, ok := strings.CutPrefix(strings.TrimRight(line, "\n"), "//\t")
		switch {
		case width == 0 && ok && strings.HasPrefix(text, "---"):
			width = strings.Index(text, "  ") + 2
			continue
		case width == 0:
			continue
		case !ok:
			require.NotEmpty(t, tbl.order, "no rows under the rule")
			tbl.matches = matches.String()
			return tbl
		}
		failure, match := text, ""
		if len(text) > width {
			failure, match = text[:width], text[width:]
		}
		matches.WriteString(match + "\n")
		if !strings.HasPrefix(failure, " ") {
			tbl.order = append(tbl.order, strings.TrimSpace(failure))
		}
	}
	t.Fatal("no error table in doc.go")
	return tbl
}

// exportedErrors lists the exported variables of errors.go.
func exportedErrors(t *testing.T) []string {
	f, err := parser.ParseFile(token.NewFileSet(), "errors.go", nil, 0)
	require.NoError(t, err)
	var names []string
	for _, d := range f.Decls {
		if g, ok := d.(*ast.GenDecl); ok && g.Tok == token.VAR {
			for _, spec := range g.Specs {
				for _, n := range spec.(*ast.ValueSpec).Names {
					if n.IsExported() {
						names = append(names, n.Name)
					}
				}
			}
		}
	}
	require.NotEmpty(t, names)
	return names
}
