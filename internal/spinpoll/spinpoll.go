// Package spinpoll is the process-wide poller behind conn.WaitSpin: one
// goroutine that keeps watching the shared-memory conditions every parked
// spin-policy waiter is blocked on, and wakes the waiter in-process (a
// channel send, far cheaper than any syscall) the moment its condition
// holds.
//
// One poller serves every conn of the process, so a server with many
// conns burns at most one core while any waiter is parked, not one per
// conn, and none when nobody waits: the poller then blocks on a channel.
package spinpoll

import (
	"runtime"
	"runtime/debug"
	"sync"

	"github.com/shmconn/shmconn/atomicx"
)

// Waiter is one parked call. Ready must be a cheap read of shared memory
// that never blocks; it is called from the poller goroutine while the
// waiter is registered, and never after Remove returns.
type Waiter struct {
	Ready func() bool
	// C receives one value when Ready returned true. The poller removes the
	// waiter before it sends.
	C   chan struct{}
	idx int // position in Poller.waiters, -1 when not registered
}

// NewWaiter returns a waiter for the condition ready.
func NewWaiter(ready func() bool) *Waiter {
	return &Waiter{Ready: ready, C: make(chan struct{}, 1), idx: -1}
}

// Poller watches registered waiters. The zero value is not usable; use
// Default.
type Poller struct {
	mu      sync.Mutex
	waiters []*Waiter     // guarded by mu
	kick    chan struct{} // wakes an idle poller; capacity 1
}

// Default is the process-wide poller, started on first use.
var Default = sync.OnceValue(func() *Poller {
	p := &Poller{kick: make(chan struct{}, 1)}
	go p.run()
	return p
})

// Add registers w. If w is already ready it is woken on the next scan.
func (p *Poller) Add(w *Waiter) {
	p.mu.Lock()
	if w.idx < 0 {
		w.idx = len(p.waiters)
		p.waiters = append(p.waiters, w)
	}
	first := len(p.waiters) == 1
	p.mu.Unlock()
	if first {
		select {
		case p.kick <- struct{}{}:
		default:
		}
	}
}

// Remove unregisters w. After it returns the poller no longer calls
// w.Ready. Removing an unregistered waiter does nothing. It drains a wake-up
// the poller may have sent, so w can be reused.
func (p *Poller) Remove(w *Waiter) {
	p.mu.Lock()
	p.removeLocked(w)
	p.mu.Unlock()
	select {
	case <-w.C:
	default:
	}
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
	w.idx = -1
}

// Len returns the number of registered waiters.
func (p *Poller) Len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.waiters)
}

// Tuning of the scan loop. A scan of a few waiters takes tens of
// nanoseconds; pausing between scans keeps the poller from hammering the
// cache lines the peers write, and yielding every so often lets the
// goroutines it woke (and everything else) run on its P.
const (
	pauseBetweenScans = 4
	scansPerYield     = 64
)

func (p *Poller) run() {
	// A peer can truncate the shared file under us; see ready.
	debug.SetPanicOnFault(true)
	for scans := 0; ; scans++ {
		p.mu.Lock()
		if len(p.waiters) == 0 {
			p.mu.Unlock()
			<-p.kick
			continue
		}
		woke := false
		for i := 0; i < len(p.waiters); {
			w := p.waiters[i]
			if !ready(w) {
				i++
				continue
			}
			p.removeLocked(w) // moves another waiter into slot i
			select {
			case w.C <- struct{}{}:
			default:
			}
			woke = true
		}
		p.mu.Unlock()
		if woke || scans%scansPerYield == 0 {
			// Let the woken goroutine run here at once rather than wait
			// for another P to steal it.
			runtime.Gosched()
		} else {
			atomicx.Pause(pauseBetweenScans)
		}
	}
}

// ready calls w.Ready, treating a memory fault (a truncated shared file) as
// ready: the woken waiter then meets the fault in its own guarded code and
// reports it, and the poller lives on for everybody else.
func ready(w *Waiter) (ok bool) {
	defer func() {
		if r := recover(); r != nil {
			if _, fault := r.(interface{ Addr() uintptr }); !fault {
				panic(r)
			}
			ok = true
		}
	}()
	return w.Ready()
}
