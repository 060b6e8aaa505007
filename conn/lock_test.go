package conn

import (
	"errors"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestDirLockContention: goroutines taking one dirLock every way a conn
// does (Lock, TryLock, acquire without a deadline and with one that keeps
// expiring and moving while they wait) keep mutual exclusion (the race
// detector checks the plain counter) and none waits for a wake-up that
// never comes: every acquire gets the lock or reports its deadline, and the
// test ends.
func TestDirLockContention(t *testing.T) {
	rounds := 2000
	if testing.Short() {
		rounds = 300
	}
	c := &Conn{done: make(chan struct{})}
	var l dirLock
	l.init()
	dl := newDeadline()
	var holders, holds int // guarded by l
	var timeouts atomic.Int64
	hold := func() {
		if holders++; holders != 1 {
			t.Error("two holders at once")
		}
		holds++
		if holds%16 == 0 {
			time.Sleep(30 * time.Microsecond) // long enough for a deadline to pass while others wait
		} else {
			runtime.Gosched() // the others find the lock held and queue
		}
		holders--
		l.Unlock()
	}
	take := func(how int) {
		switch how {
		case 0:
			l.Lock()
		case 1:
			if !l.TryLock() {
				return
			}
		case 2:
			if err := c.acquire(&l, nil, nil); err != nil {
				t.Errorf("acquire without a deadline: %v", err)
				return
			}
		case 3:
			if err := c.acquire(&l, dl, nil); err != nil {
				if !errors.Is(err, os.ErrDeadlineExceeded) {
					t.Errorf("acquire: %v", err)
				}
				timeouts.Add(1)
				return
			}
		}
		hold()
	}
	stop := make(chan struct{})
	moved := make(chan struct{})
	go func() { // moves the deadline into the near future, again and again
		defer close(moved)
		for {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Microsecond):
				dl.set(time.Now().Add(20 * time.Microsecond))
			}
		}
	}()
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range rounds {
				take((g + i) % 4)
			}
		})
	}
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("a call still waits for the lock: a lost wake-up")
	}
	close(stop)
	<-moved
	if l.state.Load() != 0 {
		t.Errorf("lock state %d after all calls, want 0 (free, nobody queued)", l.state.Load())
	}
	t.Logf("%d holds, %d acquires timed out", holds, timeouts.Load())
}
