// Package spinpoll is the waiting strategy behind conn.WaitSpin: calls that
// must not park on the kernel while the CPUs are free, yet must not burn
// one core each.
//
// At most one waiting goroutine per process spins: the leader. It watches
// its own condition and, in the same loop, the conditions of every other
// waiting call (the followers), which are parked on channels. When a
// follower's condition holds, the leader wakes it in-process (a channel
// send, far cheaper than any syscall) and hands it the lead, becoming a
// follower itself: the lead follows the busy conn. When the leader's own
// condition holds it returns but keeps the lead for AwayLimit, since a
// request handler waits again within microseconds. So with one busy conn
// among idle ones the leader is simply the goroutine waiting on the busy
// one, which sees its bytes the moment they land, with no hand-off and no
// other thread woken. The process burns at most one core on waiting, and
// none when nobody waits.
//
// On a contended host (package spin) spinning stops paying: the leader
// hands the lead on and returns Contended, and every waiter that gets the
// lead does the same, so all of them park with a kernel wake-up, as a
// socket reader would.
package spinpoll

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shmconn/shmconn/internal/fault"
	"github.com/shmconn/shmconn/internal/spin"
)

// Waiter is one waiting call. Ready and Stop must be cheap reads that never
// block. Ready is called from the leader's goroutine while the waiter is a
// follower, and never after Wait returns.
type Waiter struct {
	// Ready reports whether the awaited condition holds.
	Ready func() bool
	// Stop reports whether the call must give up (deadline, close). Only
	// the waiter's own goroutine calls it, while it leads, about every
	// spin.CheckInterval: it may read the clock.
	Stop func() bool
	// Poke, if set, is called after the waiter is signalled, for a
	// follower parked elsewhere than on the channel alone (conn's parked
	// calls read their side socket).
	Poke func()

	c    chan struct{} // wakes a parked follower; capacity 1
	idx  int           // position in Poller.waiters, -1 when not a follower; guarded by mu
	lead bool          // handed the lead while parked; guarded by mu
}

// NewWaiter returns a waiter for the condition ready, giving up when stop
// says so.
func NewWaiter(ready, stop func() bool) *Waiter {
	return &Waiter{Ready: ready, Stop: stop, c: make(chan struct{}, 1), idx: -1}
}

// Poller coordinates the waiters of one process. The zero value is ready to
// use; Default is the one conn uses.
type Poller struct {
	mu        sync.Mutex
	waiters   []*Waiter    // parked followers; guarded by mu
	leading   bool         // somebody leads, or the leader is away; guarded by mu
	away      bool         // the leader returned to its caller and will likely wait again soon; guarded by mu
	awayTimer *time.Timer  // hands the lead on if the leader stays away; guarded by mu
	armed     bool         // awayTimer is pending; guarded by mu
	awaySince time.Time    // when the leader last left; guarded by mu
	nwaiters  atomic.Int32 // len(waiters), for the leader's lock-free check

	// spinAlways keeps a leader spinning on a contended host: tests set
	// it, so that their spinning is not judged by the host's load.
	spinAlways bool
	// awayLimit replaces AwayLimit when set (tests).
	awayLimit time.Duration
}

// Default is the process-wide poller.
var Default = &Poller{}

// AwayLimit is how long a leader that returned to its caller (its own
// bytes arrived) keeps the lead before a follower is given it. A request
// handler answers and waits again within microseconds; handing the lead
// on at once would instead wake a follower on every request, which on a
// two-CPU host costs the peer its CPU (measured: p50 28 us instead of 2 us
// with 8 idle conns beside one busy one). The limit is enforced by a timer
// that is armed once and kept running while the leader keeps coming back,
// never armed per request: arming a runtime timer wakes the thread asleep
// in the netpoller, which cost 25-40 us per request (measured with 8 idle
// conns). So a follower whose bytes arrive while its leader has gone for
// good waits up to AwayLimit and a timer's lateness. The timer fires
// once per AwayLimit while a leader leads with followers: a process that
// spins a core anyway pays a thread wake-up per millisecond for it.
const AwayLimit = time.Millisecond

// Outcome says how a Wait ended.
type Outcome int

const (
	// Done: the condition may hold, or the call must stop; re-check.
	Done Outcome = iota
	// Contended: the CPUs are contended (see package spin); the caller
	// should park with a kernel wake-up instead of spinning.
	Contended
)

// Wait returns once w.Ready() holds, the call must stop, or spinning
// stopped paying: as the leader it spins on its own; as a follower it
// calls park(c), which must return when c receives or when the caller
// gives up (its deadline, its conn's close), whichever is first. The
// caller re-checks its condition after Wait returns.
func (p *Poller) Wait(w *Waiter, park func(c <-chan struct{})) Outcome {
	p.mu.Lock()
	for {
		if w.lead || !p.leading || p.away {
			w.lead = false
			p.leading = true
			p.away = false // the timer, if armed, stays: see AwayLimit
			p.watchLocked()
			p.mu.Unlock()
			out, demoted := p.lead(w)
			if !demoted {
				return out
			}
			p.mu.Lock() // w was made a follower; park below
		} else {
			p.addLocked(w)
		}
		p.mu.Unlock()

		park(w.c)

		p.mu.Lock()
		p.removeLocked(w)
		promoted := w.lead
		select { // a wake-up that raced with the caller giving up
		case <-w.c:
		default:
		}
		if !promoted {
			p.mu.Unlock()
			return Done
		}
		// Handed the lead: take it, even if only to hand it on.
	}
}

// forever is a spin budget that never ends.
const forever = time.Duration(1<<62 - 1)

// lead spins until w is ready or must stop, waking followers on the way.
// It returns demoted when it handed the lead to a follower whose bytes
// came first and added w to the followers; the lead then stays with the
// conn that is busy. It hands the lead on if Ready panics (a memory fault
// in a truncated segment), or the followers would wait forever.
func (p *Poller) lead(w *Waiter) (out Outcome, demoted bool) {
	left := false
	defer func() {
		if !left {
			p.handOff()
		}
	}()
	if spin.Contended() && !p.spinAlways {
		return Contended, false
	}
	var l spin.Loop
	l.Start(forever)
	defer l.Finish()
	for {
		if w.Ready() {
			left = true
			p.leave()
			return Done, false
		}
		if p.nwaiters.Load() > 0 && p.scan(w) {
			left = true
			return Done, true
		}
		tick, stop := l.Next()
		if tick && w.Stop() {
			return Done, false
		}
		if stop && !p.spinAlways {
			return Contended, false // preempted: spinning no longer pays
		}
	}
}

// scan wakes every follower whose condition holds. If one did, it makes
// the first of them the leader and leader a follower, and reports true.
func (p *Poller) scan(leader *Waiter) (demoted bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var next *Waiter
	for i := 0; i < len(p.waiters); {
		f := p.waiters[i]
		if !ready(f) {
			i++
			continue
		}
		p.removeLocked(f) // moves another follower into slot i
		if next == nil {
			next = f
		}
		signal(f)
	}
	if next == nil {
		return false
	}
	next.lead = true
	p.addLocked(leader)
	return true
}

// leave is the leader returning to its caller because its own condition
// holds: it keeps the lead for AwayLimit, so that the next Wait of the
// busy conn leads again without waking anybody.
func (p *Poller) leave() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.waiters) == 0 {
		p.leading = false
		return
	}
	p.away = true
	p.awaySince = time.Now()
}

// watchLocked makes sure the away timer runs while a leader leads with
// followers behind it. It is called where a leader starts to lead or a
// follower parks, never on the way from a leader's wake-up to its caller.
func (p *Poller) watchLocked() {
	if !p.armed && p.leading && len(p.waiters) > 0 {
		p.armAwayTimer(p.limit())
	}
}

func (p *Poller) limit() time.Duration {
	if p.awayLimit > 0 {
		return p.awayLimit
	}
	return AwayLimit
}

func (p *Poller) armAwayTimer(d time.Duration) {
	p.armed = true
	if p.awayTimer == nil {
		p.awayTimer = time.AfterFunc(d, p.awayExpired)
	} else {
		p.awayTimer.Reset(d)
	}
}

// awayExpired hands the lead on from a leader that stayed away AwayLimit,
// and keeps the timer running while a leader leads with followers.
func (p *Poller) awayExpired() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.armed = false
	switch gone := time.Since(p.awaySince); {
	case p.away && gone >= p.limit():
		p.away = false
		p.handOffLocked() // the new leader arms the timer when it leads
	case p.away:
		p.armAwayTimer(p.limit() - gone)
	default:
		p.watchLocked()
	}
}

// handOff passes the lead to a parked follower, or drops it if none.
func (p *Poller) handOff() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.handOffLocked()
}

func (p *Poller) handOffLocked() {
	if len(p.waiters) == 0 {
		p.leading = false
		return
	}
	next := p.waiters[0]
	p.removeLocked(next)
	next.lead = true
	signal(next)
}

func (p *Poller) addLocked(w *Waiter) {
	if w.idx >= 0 {
		return
	}
	w.idx = len(p.waiters)
	p.waiters = append(p.waiters, w)
	p.nwaiters.Store(int32(len(p.waiters)))
	p.watchLocked()
}

func (p *Poller) removeLocked(w *Waiter) {
	i := w.idx
	if i < 0 {
		return
	}
	last := len(p.waiters) - 1
	p.waiters[i] = p.waiters[last]
	p.waiters[i].idx = i
	p.waiters[last] = nil
	p.waiters = p.waiters[:last]
	p.nwaiters.Store(int32(len(p.waiters)))
	w.idx = -1
}

// Followers returns the number of parked followers.
func (p *Poller) Followers() int { return int(p.nwaiters.Load()) }

// Leading reports whether a waiter currently leads (and is not away).
func (p *Poller) Leading() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.leading && !p.away
}

func signal(w *Waiter) {
	select {
	case w.c <- struct{}{}:
	default:
	}
	if w.Poke != nil {
		w.Poke()
	}
}

// ready calls f.Ready for the leader, treating a memory fault (a truncated
// shared file) as ready: the woken follower then meets the fault in its own
// guarded code and reports it, and the leader lives on for everybody else.
func ready(f *Waiter) bool {
	ok, err := readyOrFault(f)
	return ok || err != nil
}

// readyOrFault calls f.Ready, reporting a memory fault as err.
func readyOrFault(f *Waiter) (ok bool, err error) {
	defer fault.Catch(&err, fault.Guard(), faultInReady)
	return f.Ready(), nil
}

func faultInReady(addr uintptr) error {
	return fmt.Errorf("spinpoll: memory fault at %#x in a follower's Ready", addr)
}
