// Package spinpoll is the waiting strategy behind conn.WaitSpin: calls that
// must not park on the kernel while the CPUs are free, yet must not burn
// one core each.
//
// At most one waiting goroutine per process spins: the leader. It watches
// its own condition and, in the same loop, the conditions of every other
// waiting call (the followers). A follower parks the way any parked call
// does, with its own kernel wake-up announced (conn sets its ring's waiting
// flag, so the peer's next bytes come with a wake-up), so it needs nobody
// to watch it; the leader only gets there first. When a follower's
// condition holds, the leader wakes it in-process (a channel send, far
// cheaper than any syscall) and hands it the lead, becoming a follower
// itself: the lead follows the busy conn. When the leader's own condition
// holds it returns and drops the lead, waking nobody: a request handler
// waits again within microseconds and leads again. So with one busy conn
// among idle ones the leader is simply the goroutine waiting on the busy
// one, which sees its bytes the moment they land, with no hand-off, no
// timer and no other thread woken. The process burns at most one core on
// waiting, and none when nobody waits.
//
// (No timer hands the lead on when a leader stays away, and followers do
// not rely on the leader alone: such a timer wakes a runtime thread every
// millisecond, which a spinner that yields its CPU then lets run beside
// it; measured, p50 of 12-31 us instead of 5 us with 8 idle conns.)
//
// On a contended host (package spin) spinning stops paying: the leader
// drops the lead and returns Contended, and so does every waiter that
// finds the host contended: all of them park with a kernel wake-up, as a
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
	mu       sync.Mutex
	waiters  []*Waiter    // parked followers; guarded by mu
	leading  bool         // somebody leads; guarded by mu
	nwaiters atomic.Int32 // len(waiters), for the leader's lock-free check

	// spinAlways keeps a leader spinning on a contended host: tests set
	// it, so that their spinning is not judged by the host's load.
	spinAlways bool
}

// Default is the process-wide poller.
var Default = &Poller{}

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
// calls park(c), which must return when c receives, when its own
// condition may hold (it announces its own wake-up) or when the caller gives
// up (its deadline, its conn's close), whichever is first. The caller
// re-checks its condition after Wait returns.
func (p *Poller) Wait(w *Waiter, park func(c <-chan struct{})) Outcome {
	p.mu.Lock()
	for {
		if w.lead || !p.leading {
			w.lead = false
			p.leading = true
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
// conn that is busy. Whatever else ends it (w's condition, w must stop,
// contention, a panic in Ready from a memory fault in a truncated
// segment) drops the lead: the followers have their own wake-ups.
func (p *Poller) lead(w *Waiter) (out Outcome, demoted bool) {
	left := false
	defer func() {
		if !left {
			p.leave()
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

// leave drops the lead. Nobody is woken to take it: the next waiter to
// come takes it, and followers meanwhile wait for their own wake-ups.
func (p *Poller) leave() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.leading = false
}

func (p *Poller) addLocked(w *Waiter) {
	if w.idx >= 0 {
		return
	}
	w.idx = len(p.waiters)
	p.waiters = append(p.waiters, w)
	p.nwaiters.Store(int32(len(p.waiters)))
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

// Leading reports whether a waiter currently leads.
func (p *Poller) Leading() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.leading
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
