package spinpoll

import (
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestLeaderKeepsItsThread leads for longer than the runtime lets a
// goroutine run without a scheduling point (10 ms), many times over, with
// another P idle, and checks that every look at the condition ran on one
// OS thread. Preempted by the runtime, as a goroutine that runs 10 ms
// without a scheduling point is, a leader was often taken by the thread
// the runtime woke to look for work: it moved between threads, and CPUs
// (package spin's SchedPointInterval).
func TestLeaderKeepsItsThread(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2))
	p := Poller{spinAlways: true}
	tids := make(map[int]int)
	end := time.Now().Add(400 * time.Millisecond)
	ready := func() bool {
		tids[unix.Gettid()]++
		return time.Now().After(end)
	}
	w := NewWaiter(ready, func() bool { return false })
	if out := p.Wait(w, func(<-chan struct{}) { t.Error("the only waiter parked") }); out != Done {
		t.Fatalf("Wait = %v, want Done", out)
	}
	if len(tids) != 1 {
		t.Errorf("the leader ran on %d OS threads (looks per thread id: %v), want one", len(tids), tids)
	}
}
