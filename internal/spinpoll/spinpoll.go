// Package spinpoll is the waiting strategy behind conn.WaitSpin: calls that
// must never park on the kernel, yet must not burn one core each.
//
// At most one waiting goroutine per process spins: the leader. It watches
// its own condition and, in the same loop, the conditions of every other
// waiting call (the followers), which are parked on channels. When a
// follower's condition holds, the leader wakes it in-process (a channel
// send, far cheaper than any syscall); when its own holds, it hands the
// lead to a follower and returns. With one busy conn the leader is simply
// the goroutine waiting on it, which sees its bytes the moment they land,
// with no hand-off at all. With many conns the process burns at most one
// core on waiting, and none when nobody waits.
package spinpoll

import (
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/shmconn/shmconn/atomicx"
)

// Waiter is one waiting call. Ready and Stop must be cheap reads that never
// block. Ready is called from the leader's goroutine while the waiter is a
// follower, and never after Wait returns.
type Waiter struct {
	// Ready reports whether the awaited condition holds.
	Ready func() bool
	// Stop reports whether the call must give up (deadline, close). Only
	// the waiter's own goroutine calls it, while it leads.
	Stop func() bool

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
}

// Default is the process-wide poller.
var Default = &Poller{}

// Tuning of the leader's loop. One pass reads a few cache lines; pausing
// between passes keeps it from hammering the lines the peers write. The
// leader yields its P right after waking a follower (so the follower runs
// here at once) and otherwise rarely, every few hundred microseconds, so
// nothing else on its P starves: each runtime.Gosched also wakes an idle P
// of the process, whose thread then competes for the CPU with the very
// peer we wait for (measured: yielding every ~2 us gave a p50 of 3.7 us at
// one request per ms, every ~100 us gave 0.5 us).
const (
	pausePerPass   = 2
	passesPerYield = 4096
)

// Wait returns once w.Ready() holds or the call must stop: as the leader it
// spins on its own; as a follower it calls park(c), which must return when
// c receives or when the caller gives up (its deadline, its conn's close),
// whichever is first. The caller re-checks its condition after Wait
// returns.
func (p *Poller) Wait(w *Waiter, park func(c <-chan struct{})) {
	for {
		p.mu.Lock()
		if w.lead || !p.leading {
			w.lead = false
			p.leading = true
			p.mu.Unlock()
			p.lead(w)
			return
		}
		p.addLocked(w)
		p.mu.Unlock()

		park(w.c)

		p.mu.Lock()
		p.removeLocked(w)
		promoted := w.lead
		p.mu.Unlock()
		select { // a wake-up that raced with the caller giving up
		case <-w.c:
		default:
		}
		if !promoted {
			return
		}
		// Handed the lead: take it, even if only to hand it on.
	}
}

// lead spins until w is ready or must stop, waking followers on the way,
// then hands the lead on. It hands it on even if Ready panics (a memory
// fault in a truncated segment), or the followers would wait forever.
func (p *Poller) lead(w *Waiter) {
	defer p.handOff()
	for pass := 1; ; pass++ {
		if w.Ready() || w.Stop() {
			return
		}
		woke := p.nwaiters.Load() > 0 && p.scan()
		if woke || pass%passesPerYield == 0 {
			// Let a woken follower run here at once, rather than wait
			// for another P to steal it.
			runtime.Gosched()
		} else {
			atomicx.Pause(pausePerPass)
		}
	}
}

// scan wakes every follower whose condition holds.
func (p *Poller) scan() (woke bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := 0; i < len(p.waiters); {
		f := p.waiters[i]
		if !ready(f) {
			i++
			continue
		}
		p.removeLocked(f) // moves another follower into slot i
		signal(f.c)
		woke = true
	}
	return woke
}

// handOff passes the lead to a parked follower, or drops it if none.
func (p *Poller) handOff() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.waiters) == 0 {
		p.leading = false
		return
	}
	next := p.waiters[0]
	p.removeLocked(next)
	next.lead = true
	signal(next.c)
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

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// ready calls f.Ready for the leader, treating a memory fault (a truncated
// shared file) as ready: the woken follower then meets the fault in its own
// guarded code and reports it, and the leader lives on for everybody else.
func ready(f *Waiter) (ok bool) {
	defer func() {
		if r := recover(); r != nil {
			if _, fault := r.(interface{ Addr() uintptr }); !fault {
				panic(r)
			}
			ok = true
		}
	}()
	return f.Ready()
}
