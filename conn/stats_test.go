package conn

import (
	"io"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/shmconn/shmconn/internal/handshake"
)

// TestStats makes 100 dials with one Dialer's Counters: 70 get shared
// memory, 20 meet a listener that cannot create a segment and 10 one whose
// segment the dialer cannot open (a missing file, as another /dev/shm
// gives), both of which fall back to the socket. Then 3 dials without the
// fallback are refused, and 2 plain clients reach the real listener. The
// counters must say exactly that, and the traffic must add up.
func TestStats(t *testing.T) {
	addr := listenAddr(t, "unix")
	ln, err := (&ListenConfig{AcceptPlain: true}).Listen(t.Context(), "unix", addr)
	require.NoError(t, err)
	// Echo every client until it closes.
	serveUntilCleanup(t, ln, func(c net.Conn) { io.Copy(c, c) })

	reply := func(r handshake.Reply) []byte {
		r.Version = handshake.Version
		r.Flags = handshake.ReplyFallback
		b, err := handshake.AppendReply(nil, r)
		require.NoError(t, err)
		return b
	}
	noSegment := fakeListener(t, reply(handshake.Reply{Status: handshake.StatusPlain}))
	cannotOpen := fakeListener(t, reply(handshake.Reply{Status: handshake.StatusShared, RingSize: MinRingSize, Name: "shmconn-1-0123456789abcdef"}))
	refused := fakeListener(t, reply(handshake.Reply{Status: handshake.StatusRefused}))

	d := Dialer{Counters: new(Counters), RingSize: MinRingSize, Timeout: 5 * time.Second}
	dial := func(addr string, n int, shared bool) {
		for range n {
			c, err := d.Dial("unix", addr)
			require.NoError(t, err)
			_, isShm := c.(*Conn)
			require.Equal(t, shared, isShm)
			if shared {
				_, err = c.Write([]byte("ping"))
				require.NoError(t, err)
				_, err = io.ReadFull(c, make([]byte, 4))
				require.NoError(t, err)
			}
			require.NoError(t, c.Close())
		}
	}
	dial(addr, 70, true)
	dial(noSegment, 20, false)
	dial(cannotOpen, 10, false)
	strict := Dialer{Counters: d.Counters, NoFallback: true, Timeout: 5 * time.Second}
	for range 3 {
		_, err := strict.Dial("unix", refused)
		require.ErrorIs(t, err, ErrHandshake)
	}
	for range 2 {
		c, err := net.Dial("unix", addr)
		require.NoError(t, err)
		_, err = c.Write([]byte("PING\r\n"))
		require.NoError(t, err)
		_, err = io.ReadFull(c, make([]byte, 6))
		require.NoError(t, err)
		c.Close()
	}

	got := d.Stats()
	require.Equal(t, uint64(70), got.SharedConns)
	require.Equal(t, FallbackStats{NoSegment: 20, OpenFailed: 10}, got.Fallbacks)
	require.Equal(t, HandshakeErrorStats{Protocol: 3}, got.HandshakeErrors)
	require.Equal(t, uint64(70*4), got.BytesWritten)
	require.Equal(t, uint64(70*4), got.BytesRead)
	require.Equal(t, got, strict.Stats(), "Dialers sharing Counters share the counts")

	// The listener's side: the server's conns may still be closing.
	require.Eventually(t, func() bool {
		st := ln.Stats()
		return st.SharedConns == 70 && st.PlainAccepted == 2 && st.BytesRead == 70*4 && st.BytesWritten == 70*4
	}, 5*time.Second, time.Millisecond, "listener stats %+v", ln.Stats())
	require.Equal(t, uint64(0), (&Dialer{}).Stats().SharedConns, "a Dialer without Counters counts nothing")
}

// TestConnStats checks one conn's traffic counters, wake-ups included: a
// reader parked on an empty ring must be woken by a wake-up byte.
func TestConnStats(t *testing.T) {
	addr := listenAddr(t, "unix")
	ln, err := Listen("unix", addr)
	require.NoError(t, err)
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			accepted <- c
		}
	}()
	c, err := (&Dialer{Wait: WaitAdaptive}).Dial("unix", addr)
	require.NoError(t, err)
	defer c.Close()
	srv := <-accepted
	defer srv.Close()

	got := make(chan []byte, 1)
	go func() {
		b := make([]byte, 5)
		io.ReadFull(srv, b) // parks: nothing is written for a while
		got <- b
	}()
	time.Sleep(50 * time.Millisecond) // longer than any spin
	_, err = c.Write([]byte("hello"))
	require.NoError(t, err)
	require.Equal(t, "hello", string(<-got))

	cs, ss := c.(*Conn).Stats(), srv.(*Conn).Stats()
	require.Equal(t, uint64(5), cs.BytesWritten)
	require.Equal(t, uint64(5), ss.BytesRead)
	require.GreaterOrEqual(t, ss.Parks, uint64(1), "the server's Read parked")
	require.GreaterOrEqual(t, cs.WakeupsSent, uint64(1), "the client woke it")
	require.Eventually(t, func() bool { return srv.(*Conn).Stats().WakeupsReceived >= 1 }, 5*time.Second, time.Millisecond)
}

// BenchmarkHotPath64 writes 64 bytes on one end of a shared-memory pair
// and reads them on the other, in one goroutine: the Read and Write paths
// alone, with no waiting and no wake-ups, where the cost of counting
// would show if it had one (compare with the commit before Stats).
func BenchmarkHotPath64(b *testing.B) {
	addr := listenAddr(b, "unix")
	ln, err := Listen("unix", addr)
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			accepted <- c
		}
	}()
	c, err := Dial("unix", addr)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	srv := <-accepted
	defer srv.Close()
	msg, buf := make([]byte, 64), make([]byte, 64)
	b.SetBytes(64)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Write(msg); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(srv, buf); err != nil {
			b.Fatal(err)
		}
	}
}
