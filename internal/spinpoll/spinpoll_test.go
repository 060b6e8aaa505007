package spinpoll

import (
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shmconn/shmconn/internal/spin"
)

// TestManyWaiters runs one goroutine per flag, each waiting until its flag
// is set, and checks that only one of them spins (the leader, with every
// other a follower) and that each returns once its flag is set, woken by
// the leader or by its own wake-up (as conn's followers are by the peer).
func TestManyWaiters(t *testing.T) {
	p := Poller{spinAlways: true}
	const n = 40
	var flags [n]atomic.Bool
	var wakes [n]chan struct{}
	for i := range wakes {
		wakes[i] = make(chan struct{})
	}
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
					case <-wakes[i]:
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
		close(wakes[i])
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
// park, and that the lead is dropped when the leader stops: the follower,
// not woken, ends its wait by its own wake-up.
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
	time.Sleep(10 * time.Millisecond)
	if p.Leading() || p.Followers() != 1 {
		t.Fatalf("after the leader stopped: leading %v, %d followers; want no leader, the follower parked", p.Leading(), p.Followers())
	}
	followerReady.Store(true)
	close(cancel) // the follower's own wake-up
	select {
	case <-followerDone:
	case <-time.After(10 * time.Second):
		t.Fatal("the follower did not return after its own wake-up")
	}
	if p.Leading() || p.Followers() != 0 {
		t.Fatal("lead or follower left after everybody left")
	}
}

// TestLeadSurvivesPanic checks the lead is dropped even if the leader's
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
// a leader whose own condition held drops the lead without waking anybody
// and takes it again when it waits again: with one busy conn among idle
// ones, nobody else is woken on its requests. When the busy one leaves
// for good, nobody leads, and the idle one still wakes by its own wake-up.
func TestLeadFollowsBusyWaiter(t *testing.T) {
	p := Poller{spinAlways: true}
	var idleReady, busyReady, stop atomic.Bool
	idle := NewWaiter(idleReady.Load, stop.Load)
	busy := NewWaiter(busyReady.Load, stop.Load)
	idleWake := make(chan struct{}) // the idle waiter's own wake-up (conn's side socket)
	var idleParks atomic.Int32
	idleDone := make(chan struct{})
	go func() {
		defer close(idleDone)
		for !idleReady.Load() && !stop.Load() {
			p.Wait(idle, func(c <-chan struct{}) {
				idleParks.Add(1)
				select {
				case <-c:
				case <-idleWake:
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
	// busy goes away for good: nobody leads, nobody was woken, and the
	// idle waiter's own wake-up ends its wait.
	if p.Leading() || p.Followers() != 1 {
		t.Fatalf("after the leader left: leading %v, %d followers; want no leader, 1 follower", p.Leading(), p.Followers())
	}
	idleReady.Store(true)
	close(idleWake)
	<-idleDone
	if p.Followers() != 0 {
		t.Fatalf("%d followers left", p.Followers())
	}
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

// TestLeaderLeaves checks that a leader whose condition held drops the
// lead without waking its follower, and that the follower's own wake-up
// then ends its wait with nobody leading.
func TestLeaderLeaves(t *testing.T) {
	p := Poller{spinAlways: true}
	var ready, followerReady, stop atomic.Bool
	leader := NewWaiter(ready.Load, stop.Load)
	follower := NewWaiter(followerReady.Load, stop.Load)
	var parks atomic.Int32
	ownWake := make(chan struct{})
	followerDone := make(chan struct{})
	go func() {
		for !p.Leading() {
			time.Sleep(time.Millisecond)
		}
		go func() {
			defer close(followerDone)
			for !followerReady.Load() {
				p.Wait(follower, func(c <-chan struct{}) {
					parks.Add(1)
					select {
					case <-c:
						t.Error("follower woken by the poller; its condition does not hold")
					case <-ownWake:
					}
				})
			}
		}()
		for p.Followers() != 1 {
			time.Sleep(time.Millisecond)
		}
		ready.Store(true)
	}()
	p.Wait(leader, func(<-chan struct{}) { t.Error("the first waiter parked") })
	if p.Leading() {
		t.Fatal("the lead stayed with a leader that returned")
	}
	time.Sleep(10 * time.Millisecond)
	if got := parks.Load(); got != 1 || p.Followers() != 1 {
		t.Fatalf("follower parked %d times, %d followers; want 1 and 1", got, p.Followers())
	}
	followerReady.Store(true)
	close(ownWake)
	<-followerDone
	if p.Leading() || p.Followers() != 0 {
		t.Fatalf("leading %v, %d followers after the follower's own wake-up", p.Leading(), p.Followers())
	}
}
