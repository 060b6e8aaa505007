package conn

import (
	"fmt"
	"io"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
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

// pieces gives n pieces of 100 bytes, then blocks until release is closed,
// then ends.
type pieces struct {
	n       int
	release chan struct{}
}

func (r *pieces) Read(b []byte) (int, error) {
	if r.n == 0 {
		<-r.release
		return 0, io.EOF
	}
	r.n--
	return copy(b, make([]byte, 100)), nil
}

// TestStatsDuringCopy: a ReadFrom or WriteTo that waits in the caller's
// reader or writer shows the bytes it moved so far, not only once the
// copy returns: an idle proxy must show its traffic.
func TestStatsDuringCopy(t *testing.T) {
	t.Run("ReadFrom", func(t *testing.T) {
		a, b := newPair(t, "unix", ListenConfig{}, Dialer{})
		r := &pieces{n: 10, release: make(chan struct{})}
		done := make(chan error, 1)
		go func() {
			_, err := a.ReadFrom(r)
			done <- err
		}()
		_, err := io.ReadFull(b, make([]byte, 1000))
		require.NoError(t, err)
		require.Eventually(t, func() bool { return a.Stats().BytesWritten == 1000 }, 5*time.Second, time.Millisecond,
			"the writer's Stats while ReadFrom waits in its reader")
		close(r.release)
		require.NoError(t, <-done)
	})
	t.Run("WriteTo", func(t *testing.T) {
		a, b := newPair(t, "unix", ListenConfig{}, Dialer{})
		w := &gatedWriter{gates: []chan struct{}{make(chan struct{}), make(chan struct{})}}
		done := make(chan error, 1)
		go func() {
			_, err := a.WriteTo(w)
			done <- err
		}()
		_, err := b.Write(make([]byte, 500)) // the writer's first call waits at its gate
		require.NoError(t, err)
		require.Eventually(t, func() bool { return w.calls.Load() == 1 }, 5*time.Second, time.Millisecond)
		_, err = b.Write(make([]byte, 500)) // in the ring before the first call returns
		require.NoError(t, err)
		close(w.gates[0]) // the second call, with these, waits at its gate
		require.Eventually(t, func() bool { return a.Stats().BytesRead == 500 }, 5*time.Second, time.Millisecond,
			"the reader's Stats while WriteTo waits in its writer")
		close(w.gates[1])
		require.NoError(t, b.Close())
		require.NoError(t, <-done)
		require.Equal(t, uint64(1000), a.Stats().BytesRead)
	})
}

// gatedWriter takes every Write's bytes, its call i waiting first until
// gates[i] is closed (calls past the gates do not wait).
type gatedWriter struct {
	calls atomic.Int32
	gates []chan struct{}
}

func (w *gatedWriter) Write(b []byte) (int, error) {
	if i := int(w.calls.Add(1)) - 1; i < len(w.gates) {
		<-w.gates[i]
	}
	return len(b), nil
}

// TestStatsDroppedConn: the listener's totals keep the traffic of a conn
// dropped without Close once it is collected, as they keep a closed one's,
// and never go down meanwhile: a counter since the listener started must
// not: neither back to 0 after the collection, nor a dip between the
// collection and the conn's cleanup, nor a loss of what its last calls had
// not flushed yet.
func TestStatsDroppedConn(t *testing.T) {
	for _, seen := range []bool{false, true} {
		t.Run(fmt.Sprintf("snapshot-before=%v", seen), func(t *testing.T) {
			ln, err := Listen("unix", listenAddr(t, "unix"))
			require.NoError(t, err)
			defer ln.Close()
			cl, err := (&Dialer{NoFallback: true}).Dial("unix", ln.Addr().String())
			require.NoError(t, err)
			defer cl.Close()
			func() {
				a, err := ln.Accept()
				require.NoError(t, err)
				_, err = cl.Write(make([]byte, 1000))
				require.NoError(t, err)
				_, err = io.ReadFull(a, make([]byte, 1000)) // one call: its count is pending, not flushed
				require.NoError(t, err)
				// a is dropped without Close
			}()
			if seen {
				require.Equal(t, uint64(1000), ln.Stats().BytesRead)
			}
			// The dropped conn's end reaches the dialer once it is
			// collected and its cleanup has run.
			require.NoError(t, cl.SetReadDeadline(time.Now().Add(10*time.Second)))
			eof := make(chan error, 1)
			go func() {
				_, err := cl.Read(make([]byte, 1))
				eof <- err
			}()
			shown := ln.Stats().BytesRead
			for cleaned := false; !cleaned; {
				runtime.GC()
				// Until the cleanup has run, a snapshot shows what was
				// flushed of the conn, not what its last call left
				// pending; never less than any snapshot before.
				now := ln.Stats().BytesRead
				require.GreaterOrEqual(t, now, shown, "the totals after a collection")
				shown = now
				select {
				case err := <-eof:
					require.ErrorIs(t, err, io.EOF, "the dialer's Read after the drop")
					cleaned = true
				case <-time.After(time.Millisecond):
				}
			}
			require.Equal(t, uint64(1000), ln.Stats().BytesRead, "the totals after the conn's cleanup")
		})
	}
}

// TestCountersSharedAndDropped: Counters shared by two Dialers whose conns
// are closed or dropped (some collected at once) while another goroutine
// takes snapshots: the totals never go down, end exact once every dropped
// conn is collected, and the live set ends empty. Run under -race it
// checks that a snapshot reads nothing of a collected conn that its last
// calls wrote without the race detector seeing an order (such as its
// pending counts).
func TestCountersSharedAndDropped(t *testing.T) {
	ln, err := Listen("unix", listenAddr(t, "unix"))
	require.NoError(t, err)
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(io.Discard, c); c.Close() }()
		}
	}()
	cs := &Counters{}
	ds := []*Dialer{{NoFallback: true, Counters: cs}, {NoFallback: true, Counters: cs}}
	stop := make(chan struct{})
	bad := make(chan string, 1)
	go func() {
		var last Stats
		for {
			select {
			case <-stop:
				return
			default:
			}
			st := cs.Snapshot()
			if st.BytesWritten < last.BytesWritten || st.Parks < last.Parks || st.WakeupsSent < last.WakeupsSent {
				select {
				case bad <- fmt.Sprintf("went down: %+v -> %+v", last, st):
				default:
				}
			}
			last = st
			runtime.Gosched()
		}
	}()
	var want atomic.Int64
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 40 {
				c, err := ds[(g+i)%2].Dial("unix", ln.Addr().String())
				if err != nil {
					t.Error(err)
					return
				}
				for j := range 1 + i%5 {
					n, _ := c.Write(make([]byte, 100+j*1000))
					want.Add(int64(n))
				}
				if i%2 == 0 {
					c.Close()
				}
				if i%7 == 0 {
					runtime.GC()
				}
			}
		})
	}
	wg.Wait()
	deadline := time.Now().Add(20 * time.Second)
	for cs.Snapshot().BytesWritten != uint64(want.Load()) && time.Now().Before(deadline) {
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
	for range 5 {
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
	close(stop)
	select {
	case s := <-bad:
		t.Fatal(s)
	default:
	}
	require.Equal(t, uint64(want.Load()), cs.Snapshot().BytesWritten)
	live := func() int { cs.mu.Lock(); defer cs.mu.Unlock(); return len(cs.live) }
	t.Logf("live entries left: %d", live())
	for d := time.Now().Add(10 * time.Second); live() > 0 && time.Now().Before(d); {
		runtime.GC()
		time.Sleep(50 * time.Millisecond)
	}
	require.Zero(t, live(), "dropped conns never collected")
}
