package conn

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/shmconn/shmconn/internal/shmdir"
	"github.com/shmconn/shmconn/segment"
)

func TestMaxConns(t *testing.T) {
	ln, err := (&ListenConfig{MaxConns: 2}).Listen(context.Background(), "unix", listenAddr(t, "unix"))
	require.NoError(t, err)
	defer ln.Close()
	addr := ln.Addr().String()
	var conns []net.Conn
	for range 2 {
		c, err := Dial("unix", addr)
		require.NoError(t, err)
		defer c.Close()
		a, err := ln.Accept()
		require.NoError(t, err)
		conns = append(conns, a)
	}
	// The third client waits in the backlog: its dial does not complete.
	third := make(chan error, 1)
	go func() {
		c, err := (&Dialer{Timeout: 10 * time.Second}).Dial("unix", addr)
		if err == nil {
			defer c.Close()
		}
		third <- err
	}()
	select {
	case err := <-third:
		t.Fatalf("third dial finished at the bound: %v", err)
	case <-time.After(200 * time.Millisecond):
	}
	require.NoError(t, conns[0].Close())
	select {
	case err := <-third:
		require.NoError(t, err)
	case <-time.After(5 * time.Second):
		t.Fatal("third client not served after a conn closed")
	}
	a, err := ln.Accept()
	require.NoError(t, err)
	a.Close()
	conns[1].Close()
}

// TestMaxPendingHandshakes: silent clients hold at most
// MaxPendingHandshakes handshake slots, each until HandshakeTimeout. With
// a slot free an honest client is served at once; with all held it waits
// in the kernel's backlog until a silent one is dropped, and is served
// then.
func TestMaxPendingHandshakes(t *testing.T) {
	const timeout = time.Second
	for _, silent := range []int{1, 2} {
		lc := ListenConfig{MaxPendingHandshakes: 2, HandshakeTimeout: timeout}
		ln, err := lc.Listen(context.Background(), "unix", listenAddr(t, "unix"))
		require.NoError(t, err)
		defer ln.Close()
		serveConns(ln, echo)
		addr := ln.Addr().String()
		start := time.Now()
		for range silent {
			c, err := net.Dial("unix", addr)
			require.NoError(t, err)
			defer c.Close()
		}
		require.Eventually(t, func() bool {
			ln.mu.Lock()
			defer ln.mu.Unlock()
			return len(ln.raw) == silent
		}, 5*time.Second, time.Millisecond, "the silent clients never held their slots")
		c, err := (&Dialer{Timeout: 10 * time.Second}).Dial("unix", addr)
		require.NoError(t, err)
		took := time.Since(start)
		c.Close()
		t.Logf("%d silent clients, 2 slots: served after %v", silent, took)
		if silent < 2 {
			require.Less(t, took, timeout, "served behind silent clients although a slot was free")
		} else {
			require.GreaterOrEqual(t, took, timeout*9/10, "served while silent clients held every slot")
		}
	}
}

// TestMaxConnsDropped: a conn dropped without Close gives its MaxConns slot
// back once collected, a shared one and a plain one (AcceptPlain) alike.
// The plain one's socket is closed by the runtime's finalizer; its slot
// must come back too, or at the bound the listener accepts nobody again.
func TestMaxConnsDropped(t *testing.T) {
	for _, kind := range []string{"shared", "plain"} {
		t.Run(kind, func(t *testing.T) {
			lc := ListenConfig{MaxConns: 1, AcceptPlain: true, PlainDetectTimeout: 50 * time.Millisecond}
			ln, err := lc.Listen(t.Context(), "unix", listenAddr(t, "unix"))
			require.NoError(t, err)
			defer ln.Close()
			dial := func() (net.Conn, error) {
				if kind == "shared" {
					return (&Dialer{NoFallback: true}).Dial("unix", ln.Addr().String())
				}
				c, err := net.Dial("unix", ln.Addr().String())
				if err == nil {
					_, err = c.Write([]byte("PING\r\n")) // not the handshake's magic
				}
				return c, err
			}
			first, err := dial()
			require.NoError(t, err)
			defer first.Close()
			func() {
				a, err := ln.Accept()
				require.NoError(t, err)
				_ = a // dropped without Close
			}()
			second := make(chan net.Conn, 1)
			go func() {
				c, _ := dial() // waits in the backlog while the slot is taken
				second <- c
			}()
			ch := acceptAsync(ln)
			deadline := time.Now().Add(10 * time.Second)
			for {
				runtime.GC()
				select {
				case r := <-ch:
					require.NoError(t, r.err)
					r.c.Close()
					c := <-second
					require.NotNil(t, c, "the second dial failed")
					c.Close()
					return
				case <-time.After(20 * time.Millisecond):
				}
				if time.Now().After(deadline) {
					ln.Close() // ends the Accept and the dial
					<-ch
					if c := <-second; c != nil {
						c.Close()
					}
					t.Fatal("no second Accept 10s after the first conn was dropped: its slot was never given back")
				}
			}
		})
	}
}

func TestAuthorizePeer(t *testing.T) {
	creds := make(chan PeerCred, 1)
	lc := ListenConfig{AuthorizePeer: func(c PeerCred) error {
		creds <- c
		return ErrPeerNotAllowed
	}}
	ln, err := lc.Listen(context.Background(), "unix", listenAddr(t, "unix"))
	require.NoError(t, err)
	defer ln.Close()
	_, err = (&Dialer{Timeout: 2 * time.Second}).Dial("unix", ln.Addr().String())
	require.Error(t, err, "refused peer got a conn")
	seen := <-creds
	require.Equal(t, os.Getpid(), seen.PID)
	require.Equal(t, os.Getuid(), seen.UID)

	require.NoError(t, sameUserOrRoot(PeerCred{UID: os.Getuid()}))
	require.NoError(t, sameUserOrRoot(PeerCred{UID: 0}))
	if os.Getuid() != 12345 {
		require.ErrorIs(t, sameUserOrRoot(PeerCred{UID: 12345}), ErrPeerNotAllowed)
	}
}

// TestListenRemovesStale plants the file a crashed creator would leave and
// checks Listen removes it.
func TestListenRemovesStale(t *testing.T) {
	// Make a real segment, then rename it as if a dead process made it.
	s, err := segment.Create(MinRingSize)
	require.NoError(t, err)
	stale := filepath.Join(shmdir.Path(), "shmconn-2147483646-00000000000000aa")
	require.NoError(t, os.Link(filepath.Join(shmdir.Path(), s.Name()), stale))
	require.NoError(t, s.Close())
	_, err = os.Stat(stale)
	require.NoError(t, err)
	// Old enough that no live handshake can own it.
	old := time.Now().Add(-time.Hour)
	require.NoError(t, os.Chtimes(stale, old, old))

	ln, err := Listen("unix", listenAddr(t, "unix"))
	require.NoError(t, err)
	defer ln.Close()
	_, err = os.Stat(stale)
	require.True(t, errors.Is(err, os.ErrNotExist), "stale segment survived Listen: %v", err)
}

// TestTrackedConnLivesThroughCalls: a plain conn whose last use is a
// blocked Write or Read is not closed by the garbage collector under that
// call (its MaxConns cleanup once did, cutting a reply short).
func TestTrackedConnLivesThroughCalls(t *testing.T) {
	for _, call := range []string{"write", "read"} {
		t.Run(call, func(t *testing.T) {
			lc := ListenConfig{MaxConns: 4, AcceptPlain: true, PlainDetectTimeout: 50 * time.Millisecond}
			ln, err := lc.Listen(t.Context(), "unix", listenAddr(t, "unix"))
			require.NoError(t, err)
			defer ln.Close()
			cl, err := net.Dial("unix", ln.Addr().String())
			require.NoError(t, err)
			defer cl.Close()
			_, err = cl.Write([]byte("*")) // not the handshake's magic: a plain client
			require.NoError(t, err)
			a, err := ln.Accept()
			require.NoError(t, err)
			require.IsType(t, &trackedConn{}, a)
			_, err = io.ReadFull(a, make([]byte, 1))
			require.NoError(t, err)
			big := make([]byte, 16<<20) // more than the socket buffers: Write blocks
			res := make(chan error, 1)
			if call == "write" {
				go lastWrite(a, big, res)
			} else {
				go lastRead(a, res)
			}
			a = nil
			for range 10 {
				runtime.GC()
				time.Sleep(10 * time.Millisecond)
			}
			require.NoError(t, cl.SetDeadline(time.Now().Add(10*time.Second)))
			if call == "write" {
				n, err := io.CopyN(io.Discard, cl, int64(len(big)))
				require.NoError(t, err, "the reply was cut after %d bytes", n)
			} else {
				_, err = cl.Write([]byte("hello"))
				require.NoError(t, err)
			}
			require.NoError(t, <-res, "the server's last call")
		})
	}
}

// lastWrite and lastRead make c's last use a blocked call.
//
//go:noinline
func lastWrite(c net.Conn, b []byte, res chan<- error) {
	_, err := c.Write(b)
	res <- err
}

//go:noinline
func lastRead(c net.Conn, res chan<- error) {
	_, err := c.Read(make([]byte, 5))
	res <- err
}

// TestAcceptPlain serves a plain client and a shmconn client on one socket.
func TestAcceptPlain(t *testing.T) {
	lc := ListenConfig{AcceptPlain: true, PlainDetectTimeout: 50 * time.Millisecond}
	ln, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	serveConns(ln, func(c net.Conn) error {
		kind := "plain "
		if _, ok := c.(*Conn); ok {
			kind = "shared "
		}
		c.Write([]byte(kind))
		return echo(c)
	})
	addr := ln.Addr().String()
	check := func(c net.Conn, send, want string) {
		t.Helper()
		defer c.Close()
		if send != "" {
			_, err := c.Write([]byte(send))
			require.NoError(t, err)
		}
		buf := make([]byte, len(want))
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err := io.ReadFull(c, buf)
		require.NoError(t, err)
		require.Equal(t, want, string(buf))
	}
	// A RESP client: its first bytes are replayed to the application.
	c, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	check(c, "*1\r\n$4\r\nPING\r\n", "plain *1\r\n$4\r\nPING\r\n")
	// A client that sends one byte and pauses.
	c, err = net.Dial("tcp", addr)
	require.NoError(t, err)
	c.Write([]byte("x"))
	time.Sleep(20 * time.Millisecond)
	check(c, "yz", "plain xyz")
	// A client that waits for the server to speak first.
	c, err = net.Dial("tcp", addr)
	require.NoError(t, err)
	check(c, "", "plain ")
	// One that says nothing and shuts its writing side at once, to read
	// a banner (nc -N < /dev/null): the end of its stream is no hello
	// either, and must not count as a handshake error.
	c, err = net.Dial("tcp", addr)
	require.NoError(t, err)
	require.NoError(t, c.(*net.TCPConn).CloseWrite())
	check(c, "", "plain ")
	// A shmconn client on the same port.
	c, err = (&Dialer{NoFallback: true}).Dial("tcp", addr)
	require.NoError(t, err)
	require.IsType(t, &Conn{}, c)
	check(c, "hi", "shared hi")
}

// TestPlainHalfClose: a plain conn a Listener hands out keeps the socket's
// CloseWrite and CloseRead through the wrappers it may come in (replaying
// the bytes read to tell it from a dialer, giving back its MaxConns slot on
// Close), and after CloseRead its Reads end with io.EOF as the bare
// socket's do, after the replayed bytes if they were not read yet.
func TestPlainHalfClose(t *testing.T) {
	for _, network := range []string{"tcp", "unix"} {
		for _, tc := range []struct {
			name      string
			bare      bool     // a socket from net.Listen, for reference
			maxConns  int      // > 0: the conn tracks its slot
			replay    bool     // the client speaks before it is accepted
			readFirst bool     // read the client's byte before CloseRead
			want      net.Conn // the accepted conn's type, unless bare
		}{
			{name: "bare", bare: true, readFirst: true},
			{name: "replayed", replay: true, readFirst: true, want: &replayConn{}},
			{name: "replayed unread", replay: true, want: &replayConn{}},
			{name: "tracked", maxConns: 4, readFirst: true, want: &trackedConn{}},
			{name: "tracked replayed", maxConns: 4, replay: true, readFirst: true, want: &trackedConn{}},
			{name: "tracked replayed unread", maxConns: 4, replay: true, want: &trackedConn{}},
		} {
			t.Run(network+"/"+tc.name, func(t *testing.T) {
				var ln net.Listener
				var err error
				if tc.bare {
					ln, err = net.Listen(network, listenAddr(t, network))
				} else {
					lc := ListenConfig{AcceptPlain: true, PlainDetectTimeout: 50 * time.Millisecond, MaxConns: tc.maxConns}
					ln, err = lc.Listen(t.Context(), network, listenAddr(t, network))
				}
				require.NoError(t, err)
				defer ln.Close()
				c, err := net.Dial(network, ln.Addr().String())
				require.NoError(t, err)
				defer c.Close()
				// One byte that rules out the magic: the listener has
				// read all the client sent when it hands the conn out.
				if tc.replay {
					_, err = c.Write([]byte("*"))
					require.NoError(t, err)
				}
				sc, err := ln.Accept()
				require.NoError(t, err)
				defer sc.Close()
				if !tc.bare {
					require.IsType(t, tc.want, sc)
				}
				if !tc.replay {
					_, err = c.Write([]byte("*"))
					require.NoError(t, err)
				}
				require.NoError(t, sc.SetDeadline(time.Now().Add(5*time.Second)))
				require.NoError(t, c.SetDeadline(time.Now().Add(5*time.Second)))
				want := "*"
				if tc.readFirst {
					_, err = io.ReadFull(sc, make([]byte, 1))
					require.NoError(t, err)
					want = ""
				}

				cr, ok := sc.(interface{ CloseRead() error })
				require.True(t, ok, "%T has no CloseRead", sc)
				require.NoError(t, cr.CloseRead())
				got, err := io.ReadAll(sc)
				require.NoError(t, err, "ReadAll stops at io.EOF")
				require.Equal(t, want, string(got))
				n, err := sc.Read(make([]byte, 1))
				require.Equal(t, 0, n)
				require.Equal(t, io.EOF, err, "a later Read")

				cw, ok := sc.(interface{ CloseWrite() error })
				require.True(t, ok, "%T has no CloseWrite", sc)
				_, err = sc.Write([]byte("bye"))
				require.NoError(t, err, "writing goes on after CloseRead")
				require.NoError(t, cw.CloseWrite())
				got, err = io.ReadAll(c)
				require.NoError(t, err)
				require.Equal(t, "bye", string(got), "the client reads to EOF")
			})
		}
	}

	// A wrapped conn that cannot half-close says so.
	p, q := net.Pipe()
	defer p.Close()
	defer q.Close()
	require.ErrorIs(t, (&replayConn{Conn: p}).CloseRead(), errors.ErrUnsupported)
	require.ErrorIs(t, (&trackedConn{Conn: p}).CloseWrite(), errors.ErrUnsupported)
}

// TestListenerCannotShare makes the listener unable to create segments:
// dialers that allow it fall back to the side socket, others fail.
func TestListenerCannotShare(t *testing.T) {
	defer shmdir.Set(filepath.Join(t.TempDir(), "missing"))()

	// Over TCP: a unix side socket would pass an anonymous segment, which
	// needs no directory. Every fallback is reported, on both sides, with
	// its reason.
	listenerSaw := make(chan error, 1)
	lc := ListenConfig{OnFallback: func(_ net.Addr, reason error) { listenerSaw <- reason }}
	ln, err := lc.Listen(context.Background(), "tcp", listenAddr(t, "tcp"))
	require.NoError(t, err)
	defer ln.Close()
	serveConns(ln, echo)
	var dialerSaw error
	c, err := (&Dialer{OnFallback: func(reason error) { dialerSaw = reason }}).Dial("tcp", ln.Addr().String())
	require.NoError(t, err)
	defer c.Close()
	require.IsType(t, &net.TCPConn{}, c, "fallback must hand out the side socket itself")
	require.ErrorIs(t, dialerSaw, errListenerPlain)
	require.ErrorIs(t, receive(t, listenerSaw, "the listener's fallback report"), os.ErrNotExist)
	_, err = c.Write([]byte("plain"))
	require.NoError(t, err)
	buf := make([]byte, 5)
	_, err = io.ReadFull(c, buf)
	require.NoError(t, err)
	require.Equal(t, "plain", string(buf))

	_, err = (&Dialer{NoFallback: true}).Dial("tcp", ln.Addr().String())
	require.ErrorIs(t, err, ErrNoSharedMemory)

	noFallback, err := (&ListenConfig{NoFallback: true}).Listen(context.Background(), "tcp", listenAddr(t, "tcp"))
	require.NoError(t, err)
	defer noFallback.Close()
	_, err = (&Dialer{Timeout: 2 * time.Second}).Dial("tcp", noFallback.Addr().String())
	require.Error(t, err)

	// The same listener over a unix socket shares memory all the same.
	ux, err := Listen("unix", listenAddr(t, "unix"))
	require.NoError(t, err)
	defer ux.Close()
	serveConns(ux, echo)
	c, err = Dial("unix", ux.Addr().String())
	require.NoError(t, err)
	defer c.Close()
	require.IsType(t, &Conn{}, c, "an anonymous segment needs no /dev/shm")
}
