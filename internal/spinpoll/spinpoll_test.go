package spinpoll

import (
	"github.com/shmconn/shmconn/internal/spin"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestManyWaiters runs one goroutine per flag, each waiting until its flag
// is set, and checks that only one of them spins (the leader, with every
// other a follower) and that each returns once its flag is set.
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

// TestLeadFollowsBusyWaiter checks that when a follower's condition holds
// first, the follower is given the lead and the old leader parks, and that
// a leader whose own condition held keeps the lead while it is away for
// less than AwayLimit (an hour here, so the host's load cannot fail the
// test): with one busy conn among idle ones, nobody else is woken on its
// requests. Then the leader leaves for good, and the lead passes on.
func TestLeadFollowsBusyWaiter(t *testing.T) {
	p := Poller{spinAlways: true, awayLimit: time.Hour}
	var idleReady, busyReady, stop atomic.Bool
	idle := NewWaiter(idleReady.Load, stop.Load)
	busy := NewWaiter(busyReady.Load, stop.Load)
	var idleParks atomic.Int32
	idleDone := make(chan struct{})
	go func() {
		defer close(idleDone)
		for !idleReady.Load() && !stop.Load() {
			p.Wait(idle, func(c <-chan struct{}) {
				idleParks.Add(1)
				select {
				case <-c:
				case <-time.After(20 * time.Second):
					t.Error("idle waiter parked for 20s")
				}
			})
		}
	}()
	for !p.Leading() {
		time.Sleep(time.Millisecond)
	}
	// busy arrives as a follower; its condition holds: it gets the lead.
	busyReady.Store(true)
	p.Wait(busy, func(c <-chan struct{}) { <-c })
	for p.Followers() != 1 || idleParks.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	if got := idleParks.Load(); got != 1 {
		t.Fatalf("idle waiter parked %d times, want 1 (it leads no more)", got)
	}
	// busy now waits again at once, as a request handler does: it leads
	// again without waking the idle waiter.
	for i := range 100 {
		busyReady.Store(false)
		go func() {
			time.Sleep(20 * time.Microsecond)
			busyReady.Store(true)
		}()
		p.Wait(busy, func(c <-chan struct{}) { t.Errorf("busy waiter parked at round %d", i); <-c })
		for !busyReady.Load() {
			time.Sleep(10 * time.Microsecond) // the next request comes
		}
	}
	if got := idleParks.Load(); got != 1 {
		t.Fatalf("idle waiter woken %d times by a busy neighbour", got-1)
	}
	// busy goes away for good: when its time away runs out, the idle
	// waiter leads.
	p.mu.Lock()
	p.awayLimit = time.Nanosecond
	p.mu.Unlock()
	p.awayExpired()
	deadline := time.Now().Add(10 * time.Second)
	for !p.Leading() && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if !p.Leading() || p.Followers() != 0 {
		t.Fatalf("lead not handed on after the leader left: leading %v, %d followers", p.Leading(), p.Followers())
	}
	idleReady.Store(true)
	<-idleDone
}

// TestContendedHandsOn checks that on a contended host a leader stops
// spinning and every waiter is told to park with a kernel wake-up.
func TestContendedHandsOn(t *testing.T) {
	var p Poller
	spin.MarkContended()
	never := func() bool { return false }
	w := NewWaiter(never, never)
	if got := p.Wait(w, func(<-chan struct{}) { t.Error("parked on the poller") }); got != Contended {
		t.Fatalf("Wait on a contended host: %v, want Contended", got)
	}
	if p.Leading() {
		t.Fatal("lead kept on a contended host")
	}
}

// TestAwayLimit checks a leader that returned and never waits again gives
// the lead to a follower after AwayLimit.
func TestAwayLimit(t *testing.T) {
	p := Poller{spinAlways: true}
	var ready, followerReady, stop atomic.Bool
	leader := NewWaiter(ready.Load, stop.Load)
	follower := NewWaiter(followerReady.Load, stop.Load)
	go func() {
		for !p.Leading() {
			time.Sleep(time.Millisecond)
		}
		go func() {
			for !followerReady.Load() {
				p.Wait(follower, func(c <-chan struct{}) { <-c })
			}
		}()
		for p.Followers() != 1 {
			time.Sleep(time.Millisecond)
		}
		ready.Store(true)
	}()
	p.Wait(leader, func(<-chan struct{}) { t.Error("the first waiter parked") })
	start := time.Now()
	for !p.Leading() || p.Followers() != 0 {
		if time.Since(start) > 10*time.Second {
			t.Fatal("the lead stayed with a leader that left")
		}
		time.Sleep(time.Millisecond)
	}
	followerReady.Store(true)
	for p.Leading() {
		if time.Since(start) > 20*time.Second {
			t.Fatal("the new leader did not see its condition")
		}
		time.Sleep(time.Millisecond)
	}
}
