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
	"runtime"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/shmconn/shmconn/internal/futex"
	"github.com/shmconn/shmconn/internal/handshake"
	"github.com/shmconn/shmconn/internal/spin"
	"github.com/shmconn/shmconn/ring"
)

// needDozers skips a test that needs a call to doze: with one P nobody
// dozes.
func needDozers(t *testing.T) {
	if maxDozers() == 0 {
		t.Skip("GOMAXPROCS 1: calls never doze")
	}
}

// stretchDoze makes every doze of the test last up to d, so that the test
// can catch a call dozing.
func stretchDoze(t *testing.T, d time.Duration) {
	old := dozeSlice
	dozeSlice = d
	t.Cleanup(func() { dozeSlice = old })
}

// TestProcessDozeWoken: with a peer process echoing, a round trip whose
// request had to wake the peer dozes for the echo (no spin), and the
// peer's futex wake ends that doze; a request sent while the peer dozes
// for it wakes it with a futex wake. Every byte comes back intact.
func TestProcessDozeWoken(t *testing.T) {
	needDozers(t)
	fdsBefore := openFDs(t)
	c, p := peerConn(t, "dial-echo")
	msg := make([]byte, 64)
	got := make([]byte, len(msg))
	start := time.Now()
	var st Stats
	for i := 0; time.Since(start) < 20*time.Second; i++ {
		if i%2 == 0 {
			// Sparse: the peer parks on its side socket meanwhile.
			time.Sleep(2 * time.Millisecond)
		}
		for j := range msg {
			msg[j] = byte(i + j)
		}
		_, err := c.Write(msg)
		require.NoError(t, err)
		_, err = io.ReadFull(c, got)
		require.NoError(t, err)
		require.Equal(t, msg, got, "round trip %d", i)
		st = c.Stats()
		if i >= 50 && st.DozeWakeups >= 3 && st.FutexWakeupsSent >= 3 {
			break
		}
	}
	t.Logf("%+v", st)
	require.GreaterOrEqual(t, st.Dozes, uint64(3), "our Reads dozed")
	require.GreaterOrEqual(t, st.DozeWakeups, uint64(3), "the peer's futex wakes ended our dozes")
	require.GreaterOrEqual(t, st.FutexWakeupsSent, uint64(3), "we woke the peer's dozes")
	require.LessOrEqual(t, st.DozeWakeups, st.WakeupsReceived)
	require.LessOrEqual(t, st.FutexWakeupsSent, st.WakeupsSent)
	require.NoError(t, c.Close())
	p.wait(t)
	require.Equal(t, fdsBefore, openFDs(t), "descriptors left open")
}

// dozingConn connects to a peer process that reads nothing and returns
// our end, once the peer is connected.
func dozingConn(t *testing.T) *Conn {
	c, p := peerConn(t, "dial-idle")
	p.expect(t, "connected")
	return c
}

// peerConn connects to a peer process playing role and returns our end
// and the peer.
func peerConn(t *testing.T, role string) (*Conn, *peer) {
	t.Helper()
	addr := listenAddr(t, "unix")
	ln, err := (&ListenConfig{RingSize: MinRingSize}).Listen(context.Background(), "unix", addr)
	require.NoError(t, err)
	p := startPeer(t, role, addr)
	c := acceptOne(t, ln)
	ln.Close()
	return c, p
}

// awaitDoze waits until w's call dozes.
func awaitDoze(t *testing.T, w *waiter) {
	t.Helper()
	require.Eventually(t, w.dozing.Load, 10*time.Second, 100*time.Microsecond, "the call never dozed")
}

// TestDozeInterrupted: Close, a moved deadline, a deadline that passes and
// CloseWrite end a dozing call at once, however long its doze may last;
// no doze outlives its call.
func TestDozeInterrupted(t *testing.T) {
	needDozers(t)
	stretchDoze(t, 20*time.Second)
	// A few ms, with room for a busy host. Without a poke a doze this
	// long ends when the runtime's preemption signal interrupts its futex
	// wait, some 10-20 ms in.
	const soon = 5 * time.Millisecond
	read := func(c *Conn) <-chan error {
		ch := make(chan error, 1)
		go func() {
			_, err := c.Read(make([]byte, 1))
			ch <- err
		}()
		return ch
	}
	t.Run("close", func(t *testing.T) {
		c := dozingConn(t)
		done := read(c)
		awaitDoze(t, &c.rwait)
		start := time.Now()
		require.NoError(t, c.Close())
		require.ErrorIs(t, receive(t, done, "the Read's end"), net.ErrClosed)
		took := time.Since(start)
		t.Logf("Close ended a dozing Read in %v", took)
		require.Less(t, took, soon)
		require.EqualValues(t, 1, c.Stats().Dozes)
	})
	t.Run("moved deadline", func(t *testing.T) {
		c := dozingConn(t)
		require.NoError(t, c.SetReadDeadline(time.Now().Add(time.Hour)))
		done := read(c)
		awaitDoze(t, &c.rwait)
		start := time.Now()
		require.NoError(t, c.SetReadDeadline(time.Now()))
		require.ErrorIs(t, receive(t, done, "the Read's end"), os.ErrDeadlineExceeded)
		took := time.Since(start)
		t.Logf("a moved deadline ended a dozing Read in %v", took)
		require.Less(t, took, soon)
		require.Zero(t, c.Stats().Parks-c.Stats().Dozes, "the Read parked on the side socket")
	})
	t.Run("deadline passes", func(t *testing.T) {
		c := dozingConn(t)
		start := time.Now()
		require.NoError(t, c.SetReadDeadline(start.Add(50*time.Millisecond)))
		err := receive(t, read(c), "the Read's end")
		took := time.Since(start)
		require.ErrorIs(t, err, os.ErrDeadlineExceeded)
		t.Logf("a Read with a 50 ms deadline dozed and ended after %v", took)
		require.Less(t, took, 50*time.Millisecond+soon)
		require.GreaterOrEqual(t, c.Stats().Dozes, uint64(1))
	})
	t.Run("closewrite", func(t *testing.T) {
		c := dozingConn(t)
		done := make(chan error, 1)
		go func() {
			_, err := c.Write(make([]byte, 2*MinRingSize)) // the peer reads nothing: waits for space
			done <- err
		}()
		awaitDoze(t, &c.wwait)
		start := time.Now()
		require.NoError(t, c.CloseWrite())
		require.ErrorIs(t, receive(t, done, "the Write's end"), syscall.EPIPE)
		took := time.Since(start)
		t.Logf("CloseWrite ended a dozing Write in %v", took)
		require.Less(t, took, soon)
	})
	t.Run("gc", func(t *testing.T) {
		// A garbage collection stops the world, which waits for the
		// dozing thread: the runtime's preemption signal interrupts its
		// futex wait, so it does not wait for the doze's bound.
		c := dozingConn(t)
		done := read(c)
		awaitDoze(t, &c.rwait)
		start := time.Now()
		runtime.GC()
		took := time.Since(start)
		t.Logf("a collection beside a dozing Read took %v", took)
		require.Less(t, took, time.Second)
		require.NoError(t, c.Close())
		require.ErrorIs(t, receive(t, done, "the Read's end"), net.ErrClosed)
	})
	require.Zero(t, dozers.Load(), "a doze outlived its call")
}

// TestDozeHostilePeer: a peer that stores any value in the flags, wakes
// our doze's futex in a loop, or never wakes us costs us at most a doze's
// bound per wait: bytes arrive intact, no call hangs or panics.
func TestDozeHostilePeer(t *testing.T) {
	needDozers(t)
	t.Run("flag values", func(t *testing.T) {
		// The peer sets the flag our Writes claim to anything: they wake
		// by the value's kind and carry on.
		c, p := acceptRaw(t, ListenConfig{RingSize: MinRingSize})
		flag := u32(t, p.in(), specReaderWaiting)
		tail, head := u64(t, p.in(), specTail), u64(t, p.in(), specHead)
		go io.Copy(io.Discard, p.side)
		values := []uint32{ring.WaitDoze, ring.WaitPark, 3, 0xffffffff, ring.WaitDoze}
		var sent bytes.Buffer
		for i := range 200 {
			flag.Store(values[i%len(values)])
			msg := fmt.Appendf(nil, "message %d;", i)
			at := tail.Load()
			_, err := c.Write(msg)
			require.NoError(t, err)
			require.Zero(t, flag.Load(), "value %d not claimed", values[i%len(values)])
			got := make([]byte, len(msg))
			for j := range got {
				got[j] = p.seg.Data(1)[int((at+uint64(j))%p.cap)]
			}
			sent.Write(got)
			head.Store(tail.Load())
		}
		want := new(bytes.Buffer)
		for i := range 200 {
			fmt.Fprintf(want, "message %d;", i)
		}
		require.Equal(t, want.String(), sent.String())
		st := c.Stats()
		require.EqualValues(t, 80, st.FutexWakeupsSent, "one futex wake per WaitDoze claimed")
		require.EqualValues(t, 200, st.WakeupsSent)
	})
	t.Run("futex storm", func(t *testing.T) {
		// The peer wakes our Read's futex without pause, and sets our
		// flag to odd values now and then; then it publishes properly.
		c, p := acceptRaw(t, ListenConfig{RingSize: MinRingSize})
		ours := u32(t, p.out(), specReaderWaiting)
		stop := make(chan struct{})
		stormed := make(chan struct{})
		go func() {
			defer close(stormed)
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				futex.Wake(ours)
				if i%1000 == 999 {
					ours.Store(7)
				}
			}
		}()
		done := make(chan []byte, 1)
		go func() {
			b := make([]byte, 64)
			n, err := io.ReadAtLeast(c, b, len("under a storm"))
			if err != nil {
				b = []byte(err.Error())
			}
			done <- b[:n]
		}()
		time.Sleep(50 * time.Millisecond)
		p.publish(t, []byte("under a storm"))
		require.Equal(t, "under a storm", string(receive(t, done, "the Read's bytes")))
		close(stop)
		<-stormed
	})
	t.Run("never wakes", func(t *testing.T) {
		// The peer publishes and never wakes us: the doze ends at its
		// bound, the Read parks and ends at its deadline; a late wake-up
		// then brings the bytes.
		c, p := acceptRaw(t, ListenConfig{RingSize: MinRingSize})
		ours := u32(t, p.out(), specReaderWaiting)
		tail := u64(t, p.out(), specTail)
		data := p.seg.Data(0)
		published := make(chan struct{})
		go func() {
			defer close(published)
			// Once the doze has ended by itself and the Read parks.
			for ours.Load() != ring.WaitPark {
				time.Sleep(10 * time.Microsecond)
			}
			copy(data, "unwoken")
			tail.Store(uint64(len("unwoken")))
		}()
		start := time.Now()
		require.NoError(t, c.SetReadDeadline(start.Add(300*time.Millisecond)))
		buf := make([]byte, 64)
		n, err := c.Read(buf)
		<-published
		require.Zero(t, n)
		require.ErrorIs(t, err, os.ErrDeadlineExceeded)
		require.Less(t, time.Since(start), 2*time.Second)
		require.EqualValues(t, 1, c.Stats().Dozes)
		require.NoError(t, c.SetReadDeadline(time.Now().Add(10*time.Second)))
		_, err = p.side.Write([]byte{handshake.WakeData})
		require.NoError(t, err)
		n, err = c.Read(buf)
		require.NoError(t, err)
		require.Equal(t, "unwoken", string(buf[:n]))
	})
	require.Zero(t, dozers.Load(), "a doze outlived its call")
}

// TestOldVersionRefused: a peer of handshake version 3, which knows no
// doze and would never wake one, is refused, either way round.
func TestOldVersionRefused(t *testing.T) {
	// A version-3 dialer gets status 2 and our version.
	ln, err := Listen("unix", listenAddr(t, "unix"))
	require.NoError(t, err)
	defer ln.Close()
	go func() {
		if c, err := ln.Accept(); err == nil {
			c.Close()
		}
	}()
	side, err := net.Dial("unix", ln.Addr().String())
	require.NoError(t, err)
	defer side.Close()
	_, err = side.Write([]byte("\xffSHM0003000000000000\r\n"))
	require.NoError(t, err)
	side.SetReadDeadline(time.Now().Add(10 * time.Second))
	var reply [7]byte
	_, err = io.ReadFull(side, reply[:])
	require.NoError(t, err)
	require.Equal(t, []byte{0, 's', 'h', 'm', handshake.Version, 0, handshake.StatusRefused}, reply[:], "reply: magic, our version, refused")

	// A version-3 listener's reply fails our dial with ErrVersion.
	old, err := handshake.AppendReply(nil, handshake.Reply{Version: 3, Status: handshake.StatusShared, RingSize: MinRingSize})
	require.NoError(t, err)
	_, err = (&Dialer{Timeout: 10 * time.Second}).Dial("unix", fakeListener(t, old))
	require.ErrorIs(t, err, ErrVersion)
}

// TestDozersBounded: however many calls wait at once, at most maxDozers
// doze; the others park at once.
func TestDozersBounded(t *testing.T) {
	needDozers(t)
	stretchDoze(t, 20*time.Second)
	var conns []*Conn
	ended := make(chan error, 8)
	for range 8 {
		a, b := newPair(t, "unix", ListenConfig{RingSize: MinRingSize}, Dialer{RingSize: MinRingSize})
		conns = append(conns, a, b)
		go func() {
			_, err := a.Read(make([]byte, 1))
			ended <- err
		}()
	}
	var most atomic.Int32
	deadline := time.Now().Add(200 * time.Millisecond)
	for time.Now().Before(deadline) {
		most.Store(max(most.Load(), dozers.Load()))
		runtime.Gosched()
	}
	t.Logf("GOMAXPROCS %d: at most %d of 8 Reads dozed at once", runtime.GOMAXPROCS(0), most.Load())
	require.LessOrEqual(t, most.Load(), maxDozers())
	require.GreaterOrEqual(t, most.Load(), int32(1))
	for _, c := range conns {
		c.Close()
	}
	for range 8 {
		err := receive(t, ended, "a Read's end")
		require.True(t, errors.Is(err, net.ErrClosed) || err == io.EOF, "%v", err)
	}
	require.Zero(t, dozers.Load())
}

// TestNoSpinAfterWakingPeer: a Write that had to wake the peer's reader
// marks the conn so that the Read for the answer dozes without spinning;
// a Write the peer was spinning for (no flag set) does not.
func TestNoSpinAfterWakingPeer(t *testing.T) {
	needDozers(t)
	stretchDoze(t, 20*time.Second)
	c, p := acceptRaw(t, ListenConfig{RingSize: MinRingSize})
	go io.Copy(io.Discard, p.side)
	flag := u32(t, p.in(), specReaderWaiting)
	_, err := c.Write([]byte("a"))
	require.NoError(t, err)
	require.False(t, c.wokeReader.Load(), "no wake-up was owed")
	flag.Store(ring.WaitPark)
	_, err = c.Write([]byte("b"))
	require.NoError(t, err)
	require.True(t, c.wokeReader.Load(), "the Write woke the peer")
	done := make(chan error, 1)
	go func() {
		_, err := c.Read(make([]byte, 1))
		done <- err
	}()
	awaitDoze(t, &c.rwait)
	p.publish(t, []byte("x"))
	require.NoError(t, receive(t, done, "the Read's end"))
	_, err = c.Write([]byte("c"))
	require.NoError(t, err)
	require.False(t, c.wokeReader.Load(), "no wake-up was owed")
}

// TestBackToBackLeavesDoze: two ends that doze during sparse traffic go
// back to spinning once messages come back to back, rather than waking
// each other through the kernel for every message (each Read dozing at
// once because its own Write woke the peer). See quietGap.
func TestBackToBackLeavesDoze(t *testing.T) {
	needDozers(t)
	c, p := peerConn(t, "dial-echo")
	msg := make([]byte, 64)
	roundTrip := func() {
		_, err := c.Write(msg)
		require.NoError(t, err)
		_, err = io.ReadFull(c, msg)
		require.NoError(t, err)
	}
	const n = 2000
	for try := 0; ; try++ {
		// Sparse first: both ends end up dozing or parked, and our
		// next Write wakes the peer.
		for i := 0; i < 20; i++ {
			time.Sleep(2 * time.Millisecond)
			roundTrip()
		}
		before := c.Stats().Dozes
		for i := 0; i < n; i++ {
			roundTrip()
		}
		dozes := c.Stats().Dozes - before
		t.Logf("%d dozes in %d back-to-back round trips", dozes, n)
		if dozes < n/10 {
			break
		}
		// A host too busy to let a spin catch the answer dozes too;
		// a conn stuck dozing does so every time.
		require.Less(t, try, 2, "back-to-back Reads kept dozing: %d of %d round trips", dozes, n)
	}
	require.NoError(t, c.Close())
	p.wait(t)
}

// TestKilledPeerEndsLongDoze: a peer killed while our Read dozes (no Close
// to wake the doze) is seen within pollEvery, not when a doze learned from
// a request every few milliseconds would end.
func TestKilledPeerEndsLongDoze(t *testing.T) {
	needDozers(t)
	c, p := peerConn(t, "dial-idle")
	p.expect(t, "connected")
	for range 30 {
		c.rwait.window.Observe(spin.MaxDoze * 9 / 10)
	}
	require.Equal(t, spin.MaxDoze, c.rwait.window.Doze())
	done := make(chan error, 1)
	go func() {
		_, err := c.Read(make([]byte, 1))
		done <- err
	}()
	awaitDoze(t, &c.rwait)
	start := time.Now()
	require.NoError(t, p.cmd.Process.Kill())
	err := receive(t, done, "the Read's end")
	took := time.Since(start)
	t.Logf("a Read dozing for up to %v saw its peer killed after %v: %v", spin.MaxDoze, took, err)
	require.Error(t, err)
	require.Less(t, took, spin.MaxDoze/2, "the doze ran on after the peer died")
	require.NoError(t, c.Close())
}
