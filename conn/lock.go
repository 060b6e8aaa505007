package conn

import (
	"net"
	"os"
	"sync/atomic"
	"time"
)

// dirLock serializes the calls of one direction: Read and WriteTo, or
// Write and ReadFrom. WriteTo and ReadFrom hold it while the caller's
// writer or reader runs, for as long as that takes, so a call queued
// behind them must still end, as a blocked call does, at Close, at its
// deadline and when its direction is shut down (see Conn.acquire). Taking
// a free lock is one compare-and-swap and freeing it one atomic add, as
// with a sync.Mutex; only a call that finds it held waits, in a select.
//
// The held bit and the count of queued calls share one word, so Unlock
// learns from the add that frees the lock whether anyone is queued, and
// sends on freed if so; a queued call counts itself before it tries the
// lock, so either it finds the lock free or the Unlock finds it counted.
type dirLock struct {
	state atomic.Int32  // held (bit 0) + queued calls * oneQueued
	freed chan struct{} // capacity 1: the lock was freed while calls were queued
	shut  chan struct{} // closed when the direction is shut down (CloseRead, CloseWrite)
}

const (
	held      = 1
	oneQueued = 2
)

func (l *dirLock) init() {
	l.freed = make(chan struct{}, 1)
	l.shut = make(chan struct{})
}

// TryLock takes the lock if it is free.
func (l *dirLock) TryLock() bool {
	for {
		s := l.state.Load()
		if s&held != 0 {
			return false
		}
		if l.state.CompareAndSwap(s, s|held) {
			return true
		}
	}
}

// Unlock frees the lock and wakes a queued call, if any.
func (l *dirLock) Unlock() {
	if l.state.Add(-held) != 0 {
		notify(l.freed)
	}
}

// Lock takes the lock, waiting as long as it takes: for the calls that
// must (Close waits for a call copying in the ring, never for a blocked
// one, which Close wakes).
func (l *dirLock) Lock() {
	if l.state.CompareAndSwap(0, held) {
		return
	}
	l.state.Add(oneQueued)
	defer l.state.Add(-oneQueued)
	for !l.TryLock() {
		<-l.freed
	}
}

// acquire takes l for a call of its direction, whose deadline is dl,
// waiting while another call holds it, or returns why the call must not
// wait any longer: the conn is closed (net.ErrClosed), dl has passed
// (os.ErrDeadlineExceeded) or the direction is shut down (shutErr). With
// dl and shutErr nil only Close ends the wait.
func (c *Conn) acquire(l *dirLock, dl *deadline, shutErr error) error {
	if l.state.CompareAndSwap(0, held) {
		return nil
	}
	return c.acquireSlow(l, dl, shutErr)
}

func (c *Conn) acquireSlow(l *dirLock, dl *deadline, shutErr error) error {
	l.state.Add(oneQueued)
	defer l.state.Add(-oneQueued)
	for !l.TryLock() {
		if err := c.awaitFreed(l, dl, shutErr); err != nil {
			return err
		}
	}
	return nil
}

// awaitFreed waits until l may have been freed or dl moved (nil: look
// again), or the call must stop waiting (see acquire).
func (c *Conn) awaitFreed(l *dirLock, dl *deadline, shutErr error) error {
	var shut <-chan struct{}
	if shutErr != nil {
		shut = l.shut
	}
	var timeout <-chan time.Time
	var changed <-chan struct{}
	if dl != nil {
		var stop func()
		timeout, changed, stop = dl.watch()
		defer stop()
	}
	select {
	case <-l.freed:
	case <-changed:
	case <-c.done:
		return net.ErrClosed
	case <-shut:
		return shutErr
	case <-timeout:
		return os.ErrDeadlineExceeded
	}
	return nil
}
