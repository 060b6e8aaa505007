package conn

import (
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// dirLock serializes the calls of one direction: Read and WriteTo, or
// Write and ReadFrom. WriteTo and ReadFrom hold it while the caller's
// writer or reader runs, for as long as that takes, so a call queued
// behind them must still end, as a blocked call does, at Close, at its
// deadline and when its direction is shut down (see Conn.acquire). Taking
// a free lock costs a sync.Mutex's TryLock; only a call that finds it held
// waits, in a select.
//
// A queued call counts itself in queued, then tries the mutex; Unlock
// frees the mutex, then loads queued. Both are sequentially consistent
// atomics (sync.Mutex's state is one), so either the queued call finds
// the mutex free or Unlock finds it counted and sends on freed.
type dirLock struct {
	mu     sync.Mutex
	queued atomic.Int32  // calls waiting in acquireSlow; loaded by Unlock after unlocking
	freed  chan struct{} // capacity 1: the mutex was freed while calls were queued
	shut   chan struct{} // closed when the direction is shut down (CloseRead, CloseWrite)
}

func (l *dirLock) init() {
	l.freed = make(chan struct{}, 1)
	l.shut = make(chan struct{})
}

// Lock takes the lock, waiting as long as it takes: for the calls that
// must (Close waits for a call copying in the ring, never for a blocked
// one, which Close wakes).
func (l *dirLock) Lock() { l.mu.Lock() }

// TryLock takes the lock if it is free.
func (l *dirLock) TryLock() bool { return l.mu.TryLock() }

// Unlock frees the lock and wakes a queued call, if any.
func (l *dirLock) Unlock() {
	l.mu.Unlock()
	if l.queued.Load() > 0 {
		notify(l.freed)
	}
}

// acquire takes l for a call of its direction, whose deadline is dl,
// waiting while another call holds it, or returns why the call must not
// wait any longer: the conn is closed (net.ErrClosed), dl has passed
// (os.ErrDeadlineExceeded) or the direction is shut down (shutErr). With
// dl and shutErr nil only Close ends the wait.
func (c *Conn) acquire(l *dirLock, dl *deadline, shutErr error) error {
	if l.mu.TryLock() {
		return nil
	}
	return c.acquireSlow(l, dl, shutErr)
}

func (c *Conn) acquireSlow(l *dirLock, dl *deadline, shutErr error) error {
	l.queued.Add(1)
	defer l.queued.Add(-1)
	for !l.mu.TryLock() {
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
