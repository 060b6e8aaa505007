package futex

import (
	"runtime"
	"sync/atomic"
	"testing"
	"time"
)

// TestWaitBounded: a wait nobody wakes ends after its bound, and one on a
// word that does not hold the value returns at once.
func TestWaitBounded(t *testing.T) {
	if !Supported {
		t.Skip("no futex on " + runtime.GOOS)
	}
	var w atomic.Uint32
	start := time.Now()
	Wait(&w, 1, time.Second)
	if d := time.Since(start); d > 100*time.Millisecond {
		t.Fatalf("wait on a word not holding its value took %v", d)
	}
	w.Store(2)
	start = time.Now()
	Wait(&w, 2, 2*time.Millisecond)
	if d := time.Since(start); d < time.Millisecond || d > time.Second {
		t.Fatalf("a 2 ms wait nobody woke took %v", d)
	}
}

// TestWake: a waiter is woken long before its bound.
func TestWake(t *testing.T) {
	if !Supported {
		t.Skip("no futex on " + runtime.GOOS)
	}
	if runtime.GOMAXPROCS(0) < 2 {
		t.Skip("a waiting thread holds the only P")
	}
	var w atomic.Uint32
	w.Store(2)
	woke := make(chan time.Duration, 1)
	go func() {
		start := time.Now()
		for w.Load() == 2 && time.Since(start) < 20*time.Second {
			Wait(&w, 2, 10*time.Second)
		}
		woke <- time.Since(start)
	}()
	time.Sleep(20 * time.Millisecond)
	w.Store(0)
	if !Wake(&w) {
		t.Fatal("Wake failed")
	}
	if d := <-woke; d > 5*time.Second {
		t.Fatalf("woken after %v", d)
	}
}
