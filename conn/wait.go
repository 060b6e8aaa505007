package conn

import (
	"fmt"
	"net"
	"os"
	"runtime"
	"time"

	"github.com/shmconn/shmconn/atomicx"
	"github.com/shmconn/shmconn/internal/spinpoll"
	"github.com/shmconn/shmconn/ring"
)

// WaitPolicy says how a Read with nothing to read, or a Write into a full
// ring, waits for the peer.
type WaitPolicy int

const (
	// WaitAdaptive spins for a short window (AdaptiveSpin), yielding to
	// other goroutines, then parks on Go's netpoller until the peer sends
	// a wake-up. Back-to-back traffic stays in the spin window and never
	// touches the kernel; an idle conn costs no CPU and no OS thread. The
	// peer pays for a wake-up (a one-byte write on the side socket) only
	// when this side has actually parked. It is the zero value.
	WaitAdaptive WaitPolicy = iota
	// WaitSpin never parks on the kernel: after the same spin window, one
	// waiting call per process (the leader) keeps spinning, watching its
	// own conn and the conditions of every other waiting spin-policy call,
	// which it wakes in-process; when its own bytes arrive it hands the
	// lead on. Latency stays low at any request rate (the original
	// redis-module-shm server thread never slept either), at the price of
	// one busy core per process while any spin-policy call is waiting,
	// whatever the number of conns. The peer never pays for a wake-up.
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

// AdaptiveSpin is how long a waiting call spins before it parks (or, under
// WaitSpin, before it hands over to the process's poller). It is longer
// than a round trip through a peer that answers at once (about a
// microsecond here) with room for the peer's own work, and much shorter
// than the tens of microseconds a kernel wake-up of an idle CPU costs, so
// a sparse or idle conn gives the CPU back quickly.
const AdaptiveSpin = 50 * time.Microsecond

// Spin loop tuning: how often the spinning call looks at its deadline, and
// how often it looks at the clock and yields its P, so a spinning goroutine
// never starves the one it waits for in the same process. Yielding is kept
// rare (every ~25 us) because each runtime.Gosched also wakes an idle P,
// whose thread then competes with the peer process for the CPU.
const (
	spinCheckEvery = 16
	spinYieldEvery = 1024
)

// waiter is one direction's waiting state; it is used under that
// direction's mutex.
type waiter struct {
	dl      *deadline             // the direction's deadline
	ready   func() bool           // the condition (or a close flag) holds; read-only
	prepare func() bool           // announce a park in shared memory; false: don't park
	cancel  func()                // withdraw the announcement
	wake    chan struct{}         // wake-ups from the peer, via the monitor; capacity 1
	polled  *spinpoll.Waiter      // for WaitSpin
	park    func(<-chan struct{}) // how a WaitSpin follower blocks
	recheck *time.Timer           // the one look after parking; see block
}

// initSpin prepares w for WaitSpin: its stop condition and the way a
// follower parks, built once so waiting allocates nothing.
func (c *Conn) initSpin(w *waiter) {
	stop := func() bool { return c.closed.Load() || c.peerDead.Load() || w.dl.expired() }
	w.polled = spinpoll.NewWaiter(w.ready, stop)
	w.park = func(wake <-chan struct{}) { c.block(w, wake, false) }
}

// recheckAfter is ring.RecheckAfter; a variable so a test can widen the
// window it exercises.
var recheckAfter = ring.RecheckAfter

// block parks the calling goroutine until wake fires, the conn closes, the
// peer goes, the deadline passes or moves. With recheck it also looks at
// w.ready once, ring.RecheckAfter after parking: a wake-up announced in
// shared memory can be missed in a window of nanoseconds (see package
// ring), and that look turns the miss into a short delay.
func (c *Conn) block(w *waiter, wake <-chan struct{}, recheck bool) {
	timeout, changed := w.dl.park()
	defer w.dl.unpark()
	var again <-chan time.Time
	if recheck {
		if w.recheck == nil {
			w.recheck = time.NewTimer(recheckAfter)
		} else {
			w.recheck.Reset(recheckAfter)
		}
		defer w.recheck.Stop()
		again = w.recheck.C
	}
	for {
		select {
		case <-wake:
		case <-c.done:
		case <-c.peerGone:
		case <-timeout:
		case <-changed:
		case <-again:
			if !w.ready() {
				again = nil // nothing was missed: park without bound
				continue
			}
		}
		return
	}
}

// await blocks until w.ready() may hold, the deadline passes, the conn is
// closed or the peer is gone. It returns an error only for a passed
// deadline or a closed conn; the caller re-checks everything else.
func (c *Conn) await(w *waiter) error {
	start := time.Now()
	for i := 1; ; i++ {
		if w.ready() {
			return nil
		}
		if i%spinCheckEvery == 0 {
			if c.closed.Load() {
				return net.ErrClosed
			}
			if c.peerDead.Load() {
				return nil
			}
			if i%spinYieldEvery == 0 {
				if w.dl.expired() {
					return os.ErrDeadlineExceeded
				}
				if time.Since(start) > AdaptiveSpin {
					break
				}
				runtime.Gosched()
			}
		}
		atomicx.Pause(1)
	}
	if c.policy == WaitSpin {
		spinpoll.Default.Wait(w.polled, w.park)
		return nil
	}
	if !w.prepare() {
		return nil
	}
	c.block(w, w.wake, true)
	w.cancel()
	return nil
}
