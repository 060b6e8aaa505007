package spinpoll

import (
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// waitAll runs one goroutine per flag, each waiting until its flag is set,
// and counts how many goroutines spin at once (callers of Ready from
// different goroutines that are not parked).
func TestManyWaiters(t *testing.T) {
	p := Poller{spinAlways: true}
	const n = 40
	var flags [n]atomic.Bool
	var stop atomic.Bool
	var wg sync.WaitGroup
	var returned atomic.Int32
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := NewWaiter(flags[i].Load, stop.Load)
			for !flags[i].Load() && !stop.Load() {
				p.Wait(w, func(c <-chan struct{}) {
					select {
					case <-c:
					case <-time.After(20 * time.Second):
						t.Errorf("waiter %d parked for 20s", i)
					}
				})
			}
			returned.Add(1)
		}()
	}
	time.Sleep(20 * time.Millisecond)
	if !p.Leading() {
		t.Fatal("nobody leads while 40 calls wait")
	}
	if f := p.Followers(); f != n-1 {
		t.Fatalf("%d followers, want %d: more than one spinner", f, n-1)
	}
	// Release them in random order, leader included.
	for _, i := range rand.Perm(n) {
		flags[i].Store(true)
		time.Sleep(100 * time.Microsecond)
	}
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		stop.Store(true)
		t.Fatalf("only %d of %d waiters returned", returned.Load(), n)
	}
	if p.Leading() || p.Followers() != 0 {
		t.Fatalf("after all returned: leading %v, %d followers", p.Leading(), p.Followers())
	}
}

// TestStop checks a leader gives up through Stop and a follower through
// park, and that the lead passes on when the leader stops.
func TestStop(t *testing.T) {
	p := Poller{spinAlways: true}
	var leaderStop, followerReady atomic.Bool
	never := func() bool { return false }
	leader := NewWaiter(never, leaderStop.Load)
	follower := NewWaiter(followerReady.Load, never)
	leaderDone := make(chan struct{})
	go func() {
		p.Wait(leader, func(<-chan struct{}) { t.Error("the first waiter parked") })
		close(leaderDone)
	}()
	for !p.Leading() {
		time.Sleep(time.Millisecond)
	}
	cancel := make(chan struct{})
	followerDone := make(chan struct{})
	go func() {
		for !followerReady.Load() {
			p.Wait(follower, func(c <-chan struct{}) {
				select {
				case <-c:
				case <-cancel:
				}
			})
		}
		close(followerDone)
	}()
	for p.Followers() != 1 {
		time.Sleep(time.Millisecond)
	}
	leaderStop.Store(true)
	<-leaderDone
	// The follower now leads (spinning on its own condition).
	time.Sleep(10 * time.Millisecond)
	if !p.Leading() || p.Followers() != 0 {
		t.Fatalf("lead not passed on: leading %v, %d followers", p.Leading(), p.Followers())
	}
	followerReady.Store(true)
	select {
	case <-followerDone:
	case <-time.After(10 * time.Second):
		t.Fatal("new leader did not see its condition")
	}
	if p.Leading() {
		t.Fatal("lead kept after everybody left")
	}
	close(cancel)
}

// TestLeadSurvivesPanic checks the lead is handed on even if the leader's
// condition panics.
func TestLeadSurvivesPanic(t *testing.T) {
	p := Poller{spinAlways: true}
	w := NewWaiter(func() bool { panic("boom") }, func() bool { return false })
	func() {
		defer func() {
			if recover() == nil {
				t.Fatal("panic swallowed")
			}
		}()
		p.Wait(w, nil)
	}()
	if p.Leading() {
		t.Fatal("a panicking leader kept the lead")
	}
}
