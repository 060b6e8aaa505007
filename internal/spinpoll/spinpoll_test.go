package spinpoll

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestWakesReadyWaiters(t *testing.T) {
	p := Default()
	const n = 50
	var flags [n]atomic.Bool
	ws := make([]*Waiter, n)
	for i := range ws {
		ws[i] = NewWaiter(flags[i].Load)
		p.Add(ws[i])
	}
	var wg sync.WaitGroup
	for i := n - 1; i >= 0; i-- {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case <-ws[i].C:
			case <-time.After(10 * time.Second):
				t.Errorf("waiter %d not woken", i)
			}
		}()
		flags[i].Store(true)
	}
	wg.Wait()
	if l := p.Len(); l != 0 {
		t.Fatalf("%d waiters left registered", l)
	}
}

func TestRemoveStopsPolling(t *testing.T) {
	p := Default()
	var calls atomic.Int64
	w := NewWaiter(func() bool { calls.Add(1); return false })
	p.Add(w)
	p.Add(w) // idempotent
	deadline := time.Now().Add(10 * time.Second)
	for calls.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	p.Remove(w)
	p.Remove(w)
	after := calls.Load()
	if after == 0 {
		t.Fatal("registered waiter never polled")
	}
	time.Sleep(20 * time.Millisecond)
	if calls.Load() != after {
		t.Fatal("waiter polled after Remove returned")
	}
	if p.Len() != 0 {
		t.Fatal("waiter still registered")
	}
}

// TestIdlePollerBlocks checks the poller stops scanning when nobody waits,
// by watching that a lone waiter added after a quiet period is still
// served (the kick path).
func TestIdlePollerBlocks(t *testing.T) {
	p := Default()
	time.Sleep(10 * time.Millisecond)
	var ready atomic.Bool
	ready.Store(true)
	w := NewWaiter(ready.Load)
	p.Add(w)
	select {
	case <-w.C:
	case <-time.After(10 * time.Second):
		t.Fatal("waiter added to an idle poller never woken")
	}
}
