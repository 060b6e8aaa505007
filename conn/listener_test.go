package conn

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
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
	// A shmconn client on the same port.
	c, err = (&Dialer{NoFallback: true}).Dial("tcp", addr)
	require.NoError(t, err)
	require.IsType(t, &Conn{}, c)
	check(c, "hi", "shared hi")
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
