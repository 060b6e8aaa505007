package conn

import (
	"fmt"
	"net"
	"os"
	"sync/atomic"
	"time"

	"github.com/shmconn/shmconn/internal/futex"
	"github.com/shmconn/shmconn/internal/spin"
	"github.com/shmconn/shmconn/internal/spinpoll"
	"github.com/shmconn/shmconn/internal/trace"
	"github.com/shmconn/shmconn/ring"
)

// WaitPolicy says how a Read with nothing to read, or a Write into a full
// ring, waits for the peer. Its text form is its name, "adaptive" or
// "spin", for flags and configs; in JSON it also reads its integer
// values, 0 and 1 (see UnmarshalJSON).
type WaitPolicy int

const (
	// WaitAdaptive spins for a short window (50 us: longer than a round
	// trip through a peer that answers at once, much shorter than the
	// tens of microseconds a kernel wake-up of an idle CPU costs;
	// stretched up to 250 us when this direction's recent waits were a
	// little longer, as for a response its peer computes after a kernel
	// wake-up; shrunk to 5 us once four waits in a row outlasted it, back
	// at the first that ends within it; none for a Read whose own last
	// Write had to wake the peer: the answer comes after the peer's kernel
	// wake-up, and spinning would take the CPU the kernel would run the
	// peer on), yielding only to goroutines that wait for a P; then, on
	// Linux, it dozes (blocks its thread in a futex wait on its waiting
	// flag, which the peer wakes with a futex wake) for 200 us, or up to
	// 2 ms when its recent waits were that short (see the package doc for
	// what a doze costs), then parks on Go's netpoller
	// until the peer sends a wake-up. Back-to-back traffic stays in the
	// spin window and never touches the kernel; an idle conn costs no CPU
	// and no OS thread. The peer pays for a wake-up (a futex wake, or a
	// one-byte write on the side socket) only when this side has actually
	// dozed or parked. On a contended host (its spinners lose a
	// quarter of their time to other threads) it spins only 5 us, so the
	// kernel still favours it when it wakes, or 50 us right after a wait
	// that ended within 5 us (back-to-back traffic, whose peer is
	// running). All are times, not loop counts: the pause hint's cost
	// differs several-fold between CPUs. Under WaitSpin the same window
	// comes before a call hands over to the process's leader. It is the
	// zero value.
	WaitAdaptive WaitPolicy = iota
	// WaitSpin does not park on the kernel while the host has CPUs to
	// spare: one waiting call per process (the leader) spins, watching
	// its own conn and the conditions of every other waiting spin-policy
	// call (the followers, parked as WaitAdaptive parks); when a
	// follower's bytes arrive first it wakes that call in-process and
	// hands it the lead, so the lead stays with the busy conn. Latency
	// stays low at any request rate (the original redis-module-shm server
	// thread never slept either), at the price of one busy core per
	// process while any spin-policy call is waiting, whatever the number
	// of conns. The peer pays for no wake-up while its bytes go to the
	// leader's conn, and for one per message to a follower's. The
	// spinning thread gives its CPU to any thread waiting for it 2 us into
	// a wait and every 20 us after (spin.FirstOSYield, OSYieldInterval;
	// every 2 us while another thread shares its CPU; on systems other
	// than Linux every 20 us only). Every 2 ms it passes through the Go
	// scheduler without leaving its thread (spin.SchedPointInterval), so
	// that the runtime never preempts it, which would often move it to
	// another thread and CPU; a goroutine locked to its thread
	// (runtime.LockOSThread) pays for that pass with a sleep of its
	// thread, so do not wait with WaitSpin from one. On a contended host
	// (the spinner loses much of its time to other threads) spinning
	// would make it slower than a socket, so it then waits as
	// WaitAdaptive does until the contention has passed.
	WaitSpin
)

// String returns "adaptive" or "spin".
func (p WaitPolicy) String() string {
	switch p {
	case WaitAdaptive:
		return "adaptive"
	case WaitSpin:
		return "spin"
	}
	return fmt.Sprintf("WaitPolicy(%d)", int(p))
}

// ParseWaitPolicy is the inverse of String, for flags.
func ParseWaitPolicy(s string) (WaitPolicy, error) {
	switch s {
	case "adaptive", "":
		return WaitAdaptive, nil
	case "spin":
		return WaitSpin, nil
	}
	return 0, fmt.Errorf("%w: wait policy %q (want adaptive or spin)", ErrConfig, s)
}

func (p WaitPolicy) validate() error {
	if p != WaitAdaptive && p != WaitSpin {
		return fmt.Errorf("%w: Wait %v", ErrConfig, p)
	}
	return nil
}

// waiter is one direction's waiting state; it is used under that
// direction's mutex.
type waiter struct {
	dl          *deadline             // the direction's deadline
	ready       func() bool           // the condition (or a close flag) holds; read-only
	prepare     func() bool           // announce a park in shared memory; false: don't park
	prepareDoze func() bool           // announce a doze in shared memory; false: don't doze
	endDoze     func() bool           // turn the doze into a park; false: the peer claimed it
	cancel      func()                // withdraw the announcement
	word        *atomic.Uint32        // the waiting flag in shared memory, the doze's futex word
	wake        chan struct{}         // wake-ups passed on by the side's holder or CloseWrite; capacity 1
	polled      *spinpoll.Waiter      // for WaitSpin
	park        func(<-chan struct{}) // how a WaitSpin follower blocks
	window      spin.Window           // how long to spin, from recent waits
	ended       time.Duration         // when the last wait ended (since epoch); see await
	parked      atomic.Bool           // the call is parked (on the side socket or a channel)
	dozing      atomic.Bool           // the call dozes on word; pokeDoze reads it
	pokers      atomic.Int32          // pokeDoze calls that may touch word; doze waits for none
}

// initWaiters builds the two directions' waiters over the rings, once
// the rings and the deadlines are in place.
func (c *Conn) initWaiters() {
	// The closures capture the rings themselves: one load less in a
	// spinning call's every look.
	cons, p := c.cons, c.prod
	c.rwait = waiter{
		dl:          c.rdl,
		ready:       func() bool { return c.shutRead.Load() || cons.Pending() },
		prepare:     cons.PrepareWait,
		prepareDoze: cons.PrepareDoze,
		endDoze:     cons.EndDoze,
		word:        cons.Word(),
		cancel:      cons.CancelWait,
		wake:        make(chan struct{}, 1),
	}
	c.initSpin(&c.rwait)
	c.wwait = waiter{
		dl:          c.wdl,
		ready:       func() bool { return c.shutWrite.Load() || p.HasSpace(c.wantSpace) },
		prepare:     func() bool { return p.PrepareWait(c.wantSpace) },
		prepareDoze: func() bool { return p.PrepareDoze(c.wantSpace) },
		endDoze:     p.EndDoze,
		word:        p.Word(),
		cancel:      p.CancelWait,
		wake:        make(chan struct{}, 1),
	}
	c.initSpin(&c.wwait)
}

// initSpin prepares w for WaitSpin: its stop condition and the way a
// follower parks, built once so waiting allocates nothing.
func (c *Conn) initSpin(w *waiter) {
	stop := func() bool {
		c.carrier.poll()
		stop, _ := c.mustStop(w)
		return stop
	}
	w.polled = spinpoll.NewWaiter(w.ready, stop)
	w.polled.Poke = c.poke
	w.park = func(wake <-chan struct{}) {
		// A follower announces its own wait, as an adaptive call does
		// before it parks: the leader may see its bytes first, but need
		// not be there.
		if !w.prepare() {
			return
		}
		c.carrier.park(w, wake)
		w.cancel()
	}
}

// spinUntil spins until w.ready() may hold (done), the call must stop
// (done, with the error for a passed deadline or a closed conn), or the
// spin's budget is spent (not done).
func (c *Conn) spinUntil(w *waiter, l *spin.Loop) (done bool, err error) {
	for {
		if w.ready() {
			l.Finish()
			return true, nil
		}
		tick, stop := l.Next()
		if tick {
			if done, err := c.mustStop(w); done {
				l.Finish()
				return true, err
			}
		}
		if stop {
			return false, nil
		}
	}
}

// mustStop reports whether a waiting call must stop: its conn is closed
// (net.ErrClosed), its peer is gone (no error: the caller finds out what
// is left to read) or its deadline has passed (os.ErrDeadlineExceeded).
func (c *Conn) mustStop(w *waiter) (bool, error) {
	switch {
	case c.closed.Load():
		return true, net.ErrClosed
	case c.carrier.peerEnded():
		return true, nil
	case w.dl.expired():
		return true, os.ErrDeadlineExceeded
	}
	return false, nil
}

// quietGap is how long a direction must have gone without a wait before
// a Read that woke the peer dozes without spinning. Sparse traffic (a
// request after an idle spell) passes it; back-to-back traffic, whose
// next wait starts microseconds after the last one ended, never does, so
// two ends that happened to doze once go back to spinning rather than
// waking each other through the kernel for every message.
const quietGap = 50 * time.Microsecond

// await blocks until w.ready() may hold, the deadline passes, the conn is
// closed or the peer is gone. It returns an error only for a passed
// deadline or a closed conn; the caller re-checks everything else.
func (c *Conn) await(w *waiter) error {
	trace.Mark(trace.AwaitEnter)
	if c.policy == WaitSpin && c.carrier.canPoll() && !spin.Contended() {
		// Straight to the process's poller: the lead is free when the
		// call that held it has returned, as a request handler's has.
		// (A leader that cannot poll the carrier as it spins would miss
		// the peer's death.)
		if spinpoll.Default.Wait(w.polled, w.park) == spinpoll.Done {
			trace.Mark(trace.Ready)
			return nil
		}
	}
	start := time.Since(epoch)
	if w == &c.rwait && c.wokeReader.Load() && futex.Supported && start-w.ended > quietGap {
		// Our last message, sent after a quiet spell, woke the peer: its
		// answer comes after a kernel wake-up, and spinning would only
		// take the CPU the kernel would hand it. Doze at once.
		defer func() {
			w.ended = time.Since(epoch)
			w.window.Observe(w.ended - start)
		}()
		if done, err := c.mustStop(w); done || w.ready() {
			return err
		}
		return c.dozeThenPark(w)
	}
	var l spin.Loop
	l.Start(w.window.Budget())
	defer func() {
		d := l.Since()
		w.ended = start + d
		w.window.Observe(d)
	}()
	if done, err := c.spinUntil(w, &l); done {
		trace.Mark(trace.Ready)
		return err
	}
	return c.dozeThenPark(w)
}

// dozeThenPark dozes (see doze) and then, unless the doze found reason to
// look again, parks on the side socket until a wake-up.
func (c *Conn) dozeThenPark(w *waiter) error {
	switch c.doze(w) {
	case dozeLook:
		return nil
	case dozeSkipped:
		if !w.prepare() {
			return nil
		}
	}
	c.carrier.park(w, nil)
	w.cancel()
	return nil
}

// wake wakes the peer's call that waited as kind says, the value a
// WakeReader or WakeWriter claimed: ring.WaitDoze, a futex wake on word,
// the flag it dozes on; any other value but ring.WaitNone, the wake-up b
// through the carrier. A futex wake that fails (only an unmapped word
// could) goes through the carrier too: the doze parks on it in the end.
func (c *Conn) wake(kind uint32, word *atomic.Uint32, b byte) {
	switch kind {
	case ring.WaitNone:
		return
	case ring.WaitDoze:
		if futex.Wake(word) {
			c.stats.wakeupsSent.Add(1)
			c.stats.futexWakeupsSent.Add(1)
			return
		}
	}
	c.carrier.send(b)
}

// poke makes a call of either direction that is parked on the carrier or
// dozes look at the conn again: after its deadline moved, CloseWrite,
// Close, or a WaitSpin leader's wake-up.
func (c *Conn) poke() {
	c.carrier.poke()
	c.pokeDoze(&c.rwait)
	c.pokeDoze(&c.wwait)
}
