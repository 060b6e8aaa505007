package conn

import (
	"runtime"
	"sync/atomic"
	"time"

	"github.com/shmconn/shmconn/internal/fault"
	"github.com/shmconn/shmconn/internal/futex"
	"github.com/shmconn/shmconn/internal/handshake"
	"github.com/shmconn/shmconn/internal/spin"
	"github.com/shmconn/shmconn/internal/trace"
	"github.com/shmconn/shmconn/ring"
)

// A doze is how a WaitAdaptive call waits first once its spin is over (or
// at once, when its own last message had to wake the peer): it blocks its
// thread in a futex wait on its own waiting flag word in the shared
// segment (ring.WaitDoze), and the peer wakes it with a futex wake on that
// word (ring: the waker wakes by the kind it claims). A doze lasts
// spin.DozeSlice (200 us), or up to spin.MaxDoze (20 ms) when the
// direction's recent waits were that short (a request every few
// milliseconds: the next comes within the doze), taken in slices of spin.DozeSlice and
// ended after a slice when goroutines wait for a P; a doze passes through
// the scheduler first when no doze or spin did for a slice, so that dozes
// back to back, each woken within its slice, still let the P run its
// timers and the goroutines queued on it. Raw system calls keep
// the runtime out of it: the goroutine keeps its P and thread, and one
// thread is woken per hop, on the waker's CPU, where a park on the
// netpoller wakes two or three (the netpoller's, a spinning M that hands
// the goroutine to another, sysmon), often on the other, idle CPU; see
// package futex. A doze nobody wakes within the bound turns into the usual
// park (ring: EndDoze), so an idle conn still costs no CPU and no thread
// once its doze has passed.
//
// The price is bounded: a dozing thread holds its P, so other goroutines
// cannot use it for one slice at most, a garbage collector's
// stop-the-world waits for the futex wait to end (the runtime's
// preemption signal interrupts it), and at most maxDozers calls doze at
// once; none with GOMAXPROCS 1, and none on systems without futexes.

// dozeSlice is spin.DozeSlice; tests stretch it to catch a call dozing.
var dozeSlice = spin.DozeSlice

// dozers counts the calls of the process dozing now.
var dozers atomic.Int32

// maxDozers is how many calls may doze at once: half the Ps, at least
// one, none with a single P (the dozer would hold the only one).
func maxDozers() int32 {
	n := runtime.GOMAXPROCS(0)
	if n < 2 {
		return 0
	}
	return int32(max(1, n/2))
}

// dozeOutcome is how a doze ended.
type dozeOutcome int

const (
	dozeSkipped dozeOutcome = iota // no doze: the call parks as it would have
	dozeLook                       // the wait may be over, or must stop: look again, announced nothing
	dozeParked                     // nobody woke the doze: its flag announces a park (ring.WaitPark)
)

// doze blocks w's call on its flag word for as long as its window says
// (less if its deadline is nearer), if the process has a dozer slot free. It returns
// dozeParked only with the flag moved from the doze to a park, for the
// caller to park on the side socket without announcing again.
func (c *Conn) doze(w *waiter) dozeOutcome {
	if !futex.Supported {
		return dozeSkipped
	}
	// Back-to-back dozes, each woken before its slice ends, would never
	// let the P schedule: let it run its timers and the goroutines queued
	// on it once a slice.
	spin.SchedPoint(dozeSlice)
	if !takeDozer() {
		return dozeSkipped
	}
	defer dozers.Add(-1)
	if !w.prepareDoze() {
		return dozeLook
	}
	c.stats.parks.Add(1)
	c.stats.dozes.Add(1)
	trace.Mark(trace.Park)
	w.dozing.Store(true)
	defer endDozing(w) // also if the segment faults under the doze
	return c.dozeOn(w)
}

// endDozing ends what doze began. A poke that saw dozing may still touch
// the word: it must be done before the call returns, after which Close may
// unmap the word.
func endDozing(w *waiter) {
	w.dozing.Store(false)
	for w.pokers.Load() != 0 {
		runtime.Gosched()
	}
	trace.Mark(trace.Unpark)
}

// takeDozer takes a dozer slot if one is free.
func takeDozer() bool {
	limit := maxDozers()
	for {
		n := dozers.Load()
		if n >= limit {
			return false
		}
		if dozers.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// dozeOn waits on w's flag word while it holds ring.WaitDoze, until the
// bound, and ends the doze: withdrawn if the call must look again (its
// condition may hold, it must stop, the peer claimed the flag or a poke
// moved it), or turned into a park.
func (c *Conn) dozeOn(w *waiter) dozeOutcome {
	now := int64(time.Since(epoch))
	end := now + int64(max(w.window.Doze(), dozeSlice))
	if at := w.dl.at.Load(); at != 0 {
		end = min(end, at)
	}
	sliceEnd := now + int64(dozeSlice)
	for {
		if v := w.word.Load(); v != ring.WaitDoze {
			if v == ring.WaitNone {
				c.dozeWoken() // the peer claimed it
			}
			w.cancel() // a poke's WaitPark, or a broken peer's value
			return dozeLook
		}
		if stop, _ := c.mustStop(w); stop || w.ready() {
			w.cancel()
			return dozeLook
		}
		if now >= end {
			break
		}
		if now >= sliceEnd {
			if spin.Runnable() {
				break // goroutines wait for our P: park, giving it up
			}
			// A peer that died (no Close to wake us) is seen within
			// pollEvery: a doze may last MaxDoze.
			if c.carrier.canPoll() {
				c.carrier.poll()
			}
			sliceEnd = now + int64(dozeSlice)
		}
		futex.Wait(w.word, ring.WaitDoze, time.Duration(min(end, sliceEnd)-now))
		now = int64(time.Since(epoch))
	}
	if !w.endDoze() {
		// The peer claimed the flag as the doze ended: its wake-up is
		// for a wait that is over.
		c.dozeWoken()
		return dozeLook
	}
	return dozeParked
}

func (c *Conn) dozeWoken() {
	c.stats.wakeupsReceived.Add(1)
	c.stats.dozeWakeups.Add(1)
}

// pokeDoze makes w's call look at the conn again if it dozes: it moves
// the flag from the doze to a park, so that a futex wait not yet begun
// returns at once, and wakes the futex. A poke that finds no doze touches
// nothing: the memory may be unmapped by then (see endDozing).
func (c *Conn) pokeDoze(w *waiter) {
	if !futex.Supported {
		return
	}
	w.pokers.Add(1)
	defer w.pokers.Add(-1)
	if !w.dozing.Load() {
		return
	}
	var err error // a fault in the shared segment: the doze finds it too
	defer fault.Catch(&err, fault.Guard(), corrupted)
	if w.word.CompareAndSwap(ring.WaitDoze, ring.WaitPark) {
		futex.Wake(w.word)
	}
}

// wakeDozingReader wakes the peer's Read if it dozes, after Close has
// marked our ring closed: a doze does not watch the side socket, whose end
// tells a parked Read. A parked one's claimed flag needs no byte: the
// side socket ends next. Called where Close marks the ring closed (under
// wmu, or beside a ReadFrom in the user's Read, which is not in the ring:
// the claim touches no field of the producer's but its fence).
func (c *Conn) wakeDozingReader() {
	var err error // a fault in the shared segment: the peer truncated it
	defer fault.Catch(&err, fault.Guard(), corrupted)
	if k := c.prod.WakeReader(); k == ring.WaitDoze {
		c.wake(k, c.prod.ReaderWord(), handshake.WakeData)
	}
}
