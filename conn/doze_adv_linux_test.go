//go:build linux

package conn

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/shmconn/shmconn/internal/futex"
	"github.com/shmconn/shmconn/internal/handshake"
	"github.com/shmconn/shmconn/ring"
)

// echoPeer connects a peer process that echoes everything (it dozes for
// each request), with env added to its environment, and returns our end.
func echoPeer(t *testing.T, env ...string) *Conn {
	t.Helper()
	addr := listenAddr(t, "unix")
	ln, err := (&ListenConfig{RingSize: MinRingSize}).Listen(context.Background(), "unix", addr)
	require.NoError(t, err)
	startPeerWith(t, "dial-echo", addr, func(cmd *exec.Cmd) { cmd.Env = append(cmd.Env, env...) })
	c := acceptOne(t, ln)
	ln.Close()
	return c
}

// TestDozeYieldsToRunnable: a goroutine made runnable on the P of a call
// that dozes again and again, each doze woken before its slice ends (back
// to back round trips, where every Read dozes at once after its Write woke
// the peer), runs within about a slice, as the package doc promises, even
// while the process's other P is busy. (A timer's lag is logged, not
// checked: a timer on the busy P waits for that P.) The peer is a
// raw one on the other P, which answers each request only once our Read
// dozes, so that no wait is served by a spin.
func TestDozeYieldsToRunnable(t *testing.T) {
	needDozers(t)
	if runtime.GOMAXPROCS(0) != 2 {
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2))
	}
	c, p := acceptRaw(t, ListenConfig{RingSize: MinRingSize})
	var stop atomic.Bool
	peerDone := make(chan struct{})
	go func() { // busy on the other P: it steals nobody's goroutines
		defer close(peerDone)
		dozePeer(t, p, &stop)
	}()
	defer func() { stop.Store(true); <-peerDone }()
	readied := make(chan time.Time, 1)
	lags := make(chan time.Duration, 1000)
	go func() {
		for at := range readied {
			lags <- time.Since(at)
		}
		close(lags)
	}()
	sleeps := make(chan time.Duration, 1000)
	go func() {
		defer close(sleeps)
		for !stop.Load() {
			at := time.Now()
			time.Sleep(time.Millisecond)
			select {
			case sleeps <- time.Since(at) - time.Millisecond:
			default:
			}
		}
	}()
	msg := []byte("ping")
	buf := make([]byte, len(msg))
	start := time.Now()
	next := start
	rounds := 0
	for time.Since(start) < time.Second {
		_, err := c.Write(msg)
		require.NoError(t, err)
		_, err = io.ReadFull(c, buf)
		require.NoError(t, err)
		rounds++
		if now := time.Now(); now.After(next) {
			select {
			case readied <- now: // on this P's run queue
				next = now.Add(20 * time.Millisecond)
			default:
			}
		}
	}
	close(readied)
	stop.Store(true)
	st := c.Stats()
	ready, sleep := medianOf(lags), medianOf(sleeps)
	t.Logf("%d round trips, %d dozes, %d woken; beside them a goroutine readied waited %v (median), a 1 ms sleep overslept %v (median)",
		rounds, st.Dozes, st.DozeWakeups, ready, sleep)
	require.Greater(t, st.DozeWakeups, uint64(rounds/2), "the round trips were not served by dozes")
	require.Less(t, ready, time.Millisecond, "a goroutine waited behind back-to-back dozes")
}

// dozePeer plays a raw peer that echoes 4-byte requests, without ever
// yielding its thread, until stop: it keeps its own reader flag at
// WaitDoze (so our Writes wake it, and our Reads then doze at once), and
// answers once our Read dozes (or after a while, if it parked), waking it
// as its flag says.
func dozePeer(t *testing.T, p *rawPeer, stop *atomic.Bool) {
	inTail, inHead := u64(t, p.in(), specTail), u64(t, p.in(), specHead)
	theirFlag := u32(t, p.in(), specReaderWaiting)
	outTail, ours := u64(t, p.out(), specTail), u32(t, p.out(), specReaderWaiting)
	in, out := p.seg.Data(1), p.seg.Data(0)
	for !stop.Load() {
		theirFlag.Store(ring.WaitDoze)
		h := inHead.Load()
		for inTail.Load()-h < 4 {
			if stop.Load() {
				return
			}
		}
		var req [4]byte
		for i := range req {
			req[i] = in[int((h+uint64(i))%p.cap)]
		}
		inHead.Store(h + 4)
		for waited := time.Now(); ours.Load() != ring.WaitDoze && time.Since(waited) < time.Millisecond; {
		}
		at := outTail.Load()
		for i, b := range req {
			out[int((at+uint64(i))%p.cap)] = b
		}
		outTail.Store(at + 4)
		switch ours.Swap(ring.WaitNone) {
		case ring.WaitDoze:
			futex.Wake(ours)
		case ring.WaitPark:
			p.side.Write([]byte{handshake.WakeData})
		}
	}
}

// medianOf drains ch and returns the median of what it held.
func medianOf(ch <-chan time.Duration) time.Duration {
	var all []time.Duration
	for d := range ch {
		all = append(all, d)
	}
	if len(all) == 0 {
		return 0
	}
	slices.Sort(all)
	return all[len(all)/2]
}

func init() {
	memoryRoles["doze-cpu"] = dozeCPU
}

// dozeCPU accepts one conn over unix and keeps a Read waiting on it, then
// prints the CPU time the process used in half a second, and how often
// the Read dozed and parked meanwhile: "cpu <ns> dozes <n> parks <n>".
func dozeCPU(string) error {
	c, stop, err := acceptAnnounced("unix")
	if err != nil {
		return err
	}
	defer stop()
	go func() {
		buf := make([]byte, 64)
		for {
			if _, err := c.Read(buf); err != nil {
				return
			}
		}
	}()
	time.Sleep(50 * time.Millisecond) // the Read has dozed and parked
	fmt.Println("reading")
	var ru0, ru1 unix.Rusage
	st0 := c.(*Conn).Stats()
	unix.Getrusage(unix.RUSAGE_SELF, &ru0)
	time.Sleep(dozeCPUWindow)
	unix.Getrusage(unix.RUSAGE_SELF, &ru1)
	st := c.(*Conn).Stats()
	used := ru1.Utime.Nano() + ru1.Stime.Nano() - ru0.Utime.Nano() - ru0.Stime.Nano()
	fmt.Printf("cpu %d dozes %d parks %d\n", used, st.Dozes-st0.Dozes, st.Parks-st0.Parks)
	return nil
}

// dozeCPUWindow is how long dozeCPU measures.
const dozeCPUWindow = 500 * time.Millisecond

// TestDozeStormCPU: a peer process that futex-wakes the flag word of our
// waiting Read without pause, after one wake-up byte for nothing (the
// Read looks, finds nothing, spins and dozes again), costs our process
// next to no CPU: the doze, woken again and again for nothing, ends at its
// bound and the Read parks on the side socket.
func TestDozeStormCPU(t *testing.T) {
	needDozers(t)
	cmd, stderr, lines, side, seg, _ := hostileDial(t, "unix", "doze-cpu")
	go io.Copy(io.Discard, side)
	require.True(t, lines.Scan(), "the child's first line")
	require.Equal(t, "reading", lines.Text())
	ours := u32(t, seg.Control(0), specReaderWaiting)
	_, err := side.Write([]byte{handshake.WakeData})
	require.NoError(t, err)
	for start := time.Now(); time.Since(start) < dozeCPUWindow+100*time.Millisecond; {
		futex.Wake(ours)
	}
	var used time.Duration
	var dozes, parks int
	result := childResult(t, cmd, stderr, lines)
	_, err = fmt.Sscanf(result, "cpu %d dozes %d parks %d", &used, &dozes, &parks)
	require.NoError(t, err, "child said %q", result)
	t.Logf("under a futex storm the waiting process used %v of CPU in %v; its Read dozed %d times, parked %d", used, dozeCPUWindow, dozes, parks-dozes)
	require.Less(t, used, dozeCPUWindow/10, "woken for nothing, a doze burns CPU")
}

// TestCloseWhileDozing: Close at any moment of a Read's wait (spinning,
// dozing, turning its doze into a park, parked), beside a goroutine
// moving the read deadline without pause and the peer writing now and
// then, ends the Read with net.ErrClosed or its bytes, never a fault: no
// poke or doze touches the flag word once Close has unmapped it.
func TestCloseWhileDozing(t *testing.T) {
	needDozers(t)
	ln, err := (&ListenConfig{RingSize: MinRingSize}).Listen(context.Background(), "unix", listenAddr(t, "unix"))
	require.NoError(t, err)
	defer ln.Close()
	r := rand.New(rand.NewPCG(1, 2))
	var closedDozing int
	start := time.Now()
	rounds := 0
	for ; time.Since(start) < time.Second; rounds++ {
		a, b, err := dialPair(ln, Dialer{RingSize: MinRingSize})
		require.NoError(t, err)
		read := make(chan error, 1)
		go func() {
			_, err := a.Read(make([]byte, 8))
			read <- err
		}()
		stop := make(chan struct{})
		poked := make(chan struct{})
		go func() {
			defer close(poked)
			for {
				select {
				case <-stop:
					return
				default:
				}
				if a.SetReadDeadline(time.Now().Add(time.Hour)) != nil {
					return
				}
				runtime.Gosched()
			}
		}()
		if rounds%2 == 0 {
			for until := time.Now().Add(5 * time.Millisecond); !a.rwait.dozing.Load() && time.Now().Before(until); {
				runtime.Gosched()
			}
		} else {
			spinFor(time.Duration(r.IntN(400)) * time.Microsecond)
		}
		if r.IntN(4) == 0 {
			b.Write([]byte("x"))
		}
		if a.rwait.dozing.Load() {
			closedDozing++
		}
		require.NoError(t, a.Close())
		err = receive(t, read, "the Read's end")
		require.True(t, err == nil || errors.Is(err, net.ErrClosed), "%v", err)
		close(stop)
		<-poked
		b.Close()
	}
	t.Logf("%d conns closed beside a waiting Read, %d while it dozed", rounds, closedDozing)
	require.Zero(t, dozers.Load(), "a doze outlived its call")
	require.Greater(t, closedDozing, 0, "no Close caught a doze")
}

// spinFor waits d without leaving the goroutine.
func spinFor(d time.Duration) {
	for start := time.Now(); time.Since(start) < d; {
	}
}

func init() {
	memoryRoles["trunc-doze"] = func(string) error { return truncListener("read") }
}

// TestTruncatedUnderDoze: a peer that truncates the named segment while
// our Read dozes on its flag word there fails the Read with ErrCorrupt;
// the process lives.
func TestTruncatedUnderDoze(t *testing.T) {
	needDozers(t)
	cmd, stderr, lines, side, seg, fd := hostileDial(t, "tcp", "trunc-doze")
	go io.Copy(io.Discard, side)
	tail, ours := u64(t, seg.Control(0), specTail), u32(t, seg.Control(0), specReaderWaiting)
	data := seg.Data(0)
	caught := false
	for i := 0; i < 100 && !caught; i++ {
		at := tail.Load()
		copy(data[at%MinRingSize:], "ping")
		tail.Store(at + 4)
		switch ours.Swap(ring.WaitNone) {
		case ring.WaitDoze:
			futex.Wake(ours)
		case ring.WaitPark:
			_, err := side.Write([]byte{handshake.WakeData})
			require.NoError(t, err)
		}
		// The Read takes the bytes, spins, then dozes.
		for until := time.Now().Add(20 * time.Millisecond); time.Now().Before(until); {
			if ours.Load() == ring.WaitDoze {
				caught = true
				break
			}
		}
	}
	require.True(t, caught, "the Read never dozed")
	require.NoError(t, unix.Ftruncate(fd, 0))
	require.Contains(t, childResult(t, cmd, stderr, lines), ErrCorrupt.Error())
}

// TestDozeNoLostWakeups: request and response at random gaps (0-300 us,
// so that either side spins, dozes or parks, and a wake-up may meet a doze
// as it begins or ends) between two processes, with a CPU profile running
// (its SIGPROF interrupts futex waits), once one round trip at a time and
// once with bursts larger than the ring, so that a Write waits for space
// while the Read of its conn waits for bytes (four Ps each side: two may
// doze at once): no round trip or burst waits long. A lost wake-up would
// leave it waiting for the doze's bound and then for a wake-up that never
// comes: every wait here is for the last bytes sent.
func TestDozeNoLostWakeups(t *testing.T) {
	needDozers(t)
	if err := pprof.StartCPUProfile(io.Discard); err == nil {
		defer pprof.StopCPUProfile()
	}
	const stall = 50 * time.Millisecond
	run := dozeStressTime
	t.Run("ping-pong", func(t *testing.T) {
		c := echoPeer(t)
		r := rand.New(rand.NewPCG(3, 4))
		msg, got := make([]byte, 64), make([]byte, 64)
		var worst time.Duration
		rounds := 0
		for start := time.Now(); time.Since(start) < run; rounds++ {
			n := randomGap(r, msg)
			sent := time.Now()
			_, err := c.Write(msg[:n])
			require.NoError(t, err)
			_, err = io.ReadFull(c, got[:n])
			require.NoError(t, err)
			worst = max(worst, time.Since(sent))
			require.Equal(t, msg[:n], got[:n], "round trip %d", rounds)
		}
		st := c.Stats()
		t.Logf("%d round trips, the slowest %v; %d dozes, %d woken, %d parks", rounds, worst, st.Dozes, st.DozeWakeups, st.Parks-st.Dozes)
		require.Less(t, worst, stall)
		require.NotZero(t, st.DozeWakeups, "no doze was woken")
	})
	t.Run("both-ways", func(t *testing.T) {
		// Bursts of up to four rings' worth: our Write waits for space
		// while our Read waits for the echo, and so do the peer's. Each
		// burst must be echoed whole before the next: a lost wake-up
		// leaves nothing to rescue it, and the burst stalls.
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(4))
		c := echoPeer(t, "GOMAXPROCS=4")
		r := rand.New(rand.NewPCG(5, 6))
		out := make([]byte, 4*MinRingSize)
		in := make([]byte, len(out))
		var most atomic.Int32
		sampled := make(chan struct{})
		defer func() { <-sampled }()
		go func() { // how many calls of ours doze at once
			defer close(sampled)
			for start := time.Now(); time.Since(start) < run; time.Sleep(50 * time.Microsecond) {
				most.Store(max(most.Load(), dozers.Load()))
			}
		}()
		var worst time.Duration
		bursts := 0
		for start := time.Now(); time.Since(start) < run; bursts++ {
			n := randomGap(r, out)
			sent := time.Now()
			wrote := make(chan error, 1)
			go func() {
				_, err := c.Write(out[:n])
				wrote <- err
			}()
			require.NoError(t, c.SetReadDeadline(sent.Add(10*time.Second)))
			_, err := io.ReadFull(c, in[:n])
			require.NoError(t, err, "burst %d of %d bytes", bursts, n)
			require.NoError(t, <-wrote)
			worst = max(worst, time.Since(sent))
			require.Equal(t, out[:n], in[:n], "burst %d", bursts)
		}
		st := c.Stats()
		t.Logf("%d bursts, the slowest %v; %d dozes, %d woken, %d futex wakes sent; at most %d calls dozed at once",
			bursts, worst, st.Dozes, st.DozeWakeups, st.FutexWakeupsSent, most.Load())
		require.Less(t, worst, stall)
	})
}

// randomGap waits 0-300 us, then fills a random length of b, at least a
// byte, with random bytes and returns that length.
func randomGap(r *rand.Rand, b []byte) int {
	spinFor(time.Duration(r.IntN(300)) * time.Microsecond)
	n := 1 + r.IntN(len(b))
	for i := range b[:n] {
		b[i] = byte(r.Uint32())
	}
	return n
}

// dozeStressTime is how long each part of TestDozeNoLostWakeups runs.
var dozeStressTime = 500 * time.Millisecond

// TestDozeGOMAXPROCSDrop: GOMAXPROCS set to 1 while a Read dozes (its
// doze stretched, so that only the runtime's preemption can end it) takes
// effect at once; the dozing Read is woken by the peer's bytes, and from
// then on no call dozes (it would hold the only P).
func TestDozeGOMAXPROCSDrop(t *testing.T) {
	needDozers(t)
	stretchDoze(t, 20*time.Second)
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	a, b := newPair(t, "unix", ListenConfig{RingSize: MinRingSize}, Dialer{RingSize: MinRingSize})
	read := make(chan error, 1)
	go func() {
		_, err := io.ReadFull(a, make([]byte, 4))
		read <- err
	}()
	awaitDoze(t, &a.rwait)
	start := time.Now()
	runtime.GOMAXPROCS(1)
	took := time.Since(start)
	_, err := b.Write([]byte("wake"))
	require.NoError(t, err)
	require.NoError(t, receive(t, read, "the dozing Read's end"))
	woke := time.Since(start)
	dozes := a.Stats().Dozes + b.Stats().Dozes
	for range 100 {
		_, err := b.Write([]byte("ping"))
		require.NoError(t, err)
		_, err = io.ReadFull(a, make([]byte, 4))
		require.NoError(t, err)
	}
	t.Logf("GOMAXPROCS 1 beside a dozing Read took %v, the Read woke %v after", took, woke)
	require.Less(t, woke, time.Second)
	require.Equal(t, dozes, a.Stats().Dozes+b.Stats().Dozes, "a call dozed with one P")
	require.Zero(t, dozers.Load())
}

// TestIdleAfterTrafficCostsNoCPU: conns that exchanged messages at a
// rhythm their dozes learned (a round trip every 1 ms: dozes of about 1.5 ms),
// then went idle with a Read waiting at every end, cost no CPU and hold
// no thread once their dozes are over.
func TestIdleAfterTrafficCostsNoCPU(t *testing.T) {
	needDozers(t)
	threadsBefore := threads(t)
	conns := idlePairs(t)
	ended := make(chan error, len(conns))
	var talking sync.WaitGroup
	for i := 0; i < len(conns); i += 2 {
		a, b := conns[i], conns[i+1]
		go func() { // echo
			buf := make([]byte, 8)
			for {
				n, err := b.Read(buf)
				if err == nil {
					_, err = b.Write(buf[:n])
				}
				if err != nil {
					ended <- err
					return
				}
			}
		}()
		talking.Add(1)
		go func() {
			buf := make([]byte, 8)
			for range 20 {
				time.Sleep(time.Millisecond)
				if _, err := a.Write(buf); err != nil {
					break
				}
				if _, err := io.ReadFull(a, buf); err != nil {
					break
				}
			}
			talking.Done()
			_, err := a.Read(buf) // waits: nothing more comes
			ended <- err
		}()
	}
	talking.Wait()
	time.Sleep(100 * time.Millisecond) // past every spin and doze
	var dozes uint64
	for _, c := range conns {
		dozes += c.Stats().Dozes
	}
	t.Logf("%d dozes before", dozes)
	require.NotZero(t, dozes)
	requireIdle(t, conns, ended, threadsBefore)
}

// TestDozeSignalsKeepBound: signals that interrupt a doze's futex wait
// (SIGURG, the runtime's preemption signal, sent to every thread of the
// process every 500 us) neither end the doze early nor stretch it: it
// waits on with the time it has left, and parks at its bound.
func TestDozeSignalsKeepBound(t *testing.T) {
	needDozers(t)
	const bound = 50 * time.Millisecond
	stretchDoze(t, bound)
	a, _ := newPair(t, "unix", ListenConfig{RingSize: MinRingSize}, Dialer{RingSize: MinRingSize})
	stop := make(chan struct{})
	signalled := make(chan int)
	go func() {
		n := 0
		defer func() { signalled <- n }()
		pid := unix.Getpid()
		for {
			select {
			case <-stop:
				return
			case <-time.After(500 * time.Microsecond):
			}
			tasks, err := os.ReadDir("/proc/self/task")
			if err != nil {
				return
			}
			for _, task := range tasks {
				if tid, err := strconv.Atoi(task.Name()); err == nil && unix.Tgkill(pid, tid, unix.SIGURG) == nil {
					n++
				}
			}
		}
	}()
	read := make(chan error, 1)
	go func() {
		_, err := a.Read(make([]byte, 1))
		read <- err
	}()
	awaitDoze(t, &a.rwait)
	start := time.Now()
	for a.rwait.dozing.Load() && time.Since(start) < 10*time.Second {
		time.Sleep(100 * time.Microsecond)
	}
	dozed := time.Since(start)
	close(stop)
	n := <-signalled
	require.NoError(t, a.Close())
	require.ErrorIs(t, receive(t, read, "the Read's end"), net.ErrClosed)
	t.Logf("a doze of %v beside %d signals to the process's threads lasted %v", bound, n, dozed)
	require.Greater(t, n, 20)
	require.Greater(t, dozed, bound*8/10, "signals ended the doze early")
	require.Less(t, dozed, 4*bound, "signals stretched the doze")
	require.EqualValues(t, 1, a.Stats().Dozes)
}

// TestPeerCloseEndsDoze: the peer's Close ends our dozing Read at once
// with io.EOF, however long the doze may last, as its CloseWrite does:
// a doze does not watch the side socket, whose end a parked Read sees.
func TestPeerCloseEndsDoze(t *testing.T) {
	needDozers(t)
	stretchDoze(t, 20*time.Second)
	a, b := newPair(t, "unix", ListenConfig{RingSize: MinRingSize}, Dialer{RingSize: MinRingSize})
	read := make(chan error, 1)
	go func() {
		_, err := a.Read(make([]byte, 1))
		read <- err
	}()
	awaitDoze(t, &a.rwait)
	start := time.Now()
	require.NoError(t, b.Close())
	require.ErrorIs(t, receive(t, read, "the Read's end"), io.EOF)
	took := time.Since(start)
	t.Logf("the peer's Close ended a dozing Read in %v", took)
	require.Less(t, took, 5*time.Millisecond)
}

// TestReadAndWriteDozeTogether: with two dozer slots, a Read waiting for
// bytes and a Write waiting for space on one conn doze at once, on the two
// flags of its two rings, and the peer's Write and Read wake each its own
// with a futex wake, however long the dozes may last.
func TestReadAndWriteDozeTogether(t *testing.T) {
	needDozers(t)
	stretchDoze(t, 20*time.Second)
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(4))
	a, b := newPair(t, "unix", ListenConfig{RingSize: MinRingSize}, Dialer{RingSize: MinRingSize})
	read, wrote := make(chan error, 1), make(chan error, 1)
	go func() {
		_, err := io.ReadFull(a, make([]byte, 5))
		read <- err
	}()
	big := make([]byte, 2*MinRingSize) // the peer reads nothing yet: the Write waits for space
	go func() {
		_, err := a.Write(big)
		wrote <- err
	}()
	awaitDoze(t, &a.rwait)
	awaitDoze(t, &a.wwait)
	require.EqualValues(t, 2, dozers.Load())
	start := time.Now()
	_, err := b.Write([]byte("hello"))
	require.NoError(t, err)
	require.NoError(t, receive(t, read, "the Read's end"))
	readWoken := time.Since(start)
	require.True(t, a.wwait.dozing.Load(), "waking the Read ended the Write's doze")
	start = time.Now()
	got, err := io.ReadAll(io.LimitReader(b, int64(len(big))))
	require.NoError(t, err)
	require.Len(t, got, len(big))
	require.NoError(t, receive(t, wrote, "the Write's end"))
	t.Logf("the Read was woken in %v; the Write's bytes all came in %v", readWoken, time.Since(start))
	require.Less(t, readWoken, 100*time.Millisecond)
	require.Less(t, time.Since(start), time.Second)
	st := b.Stats()
	require.GreaterOrEqual(t, st.FutexWakeupsSent, uint64(2), "the peer woke both dozes with futex wakes")
}
