package spinpoll

import (
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestLeaderKeepsItsThread leads for longer than the runtime lets a
// goroutine run without a scheduling point (10 ms), many times over, with
// another P idle, and checks that the looks at the condition seldom
// changed OS thread. Preempted by the runtime, as a goroutine that runs 10 ms
// without a scheduling point is, a leader was often taken by the thread
// the runtime woke to look for work: it moved between threads, and CPUs
// (package spin's SchedPointInterval), every 10-20 ms.
//
// It counts moves, not threads: a leader may still move now and then
// (a collection stops the world and puts every goroutine on the global
// run queue; a goroutine made runnable while the idle P's thread wakes
// has the leader call runtime.Gosched): a collection every 50 ms put it
// on 2-3 threads, and so, in 2 runs of 30, did a runtime.GC just before
// the test, whose background work followed it. A handful of moves in
// 400 ms is that; a preempted leader (no goyield) moved 7-8 times here.
func TestLeaderKeepsItsThread(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2))
	p := Poller{spinAlways: true}
	tids := make(map[int]int)
	moves, last := 0, 0
	end := time.Now().Add(400 * time.Millisecond)
	ready := func() bool {
		tid := unix.Gettid()
		if last != 0 && tid != last {
			moves++
		}
		last = tid
		tids[tid]++
		return time.Now().After(end)
	}
	w := NewWaiter(ready, func() bool { return false })
	if out := p.Wait(w, func(<-chan struct{}) { t.Error("the only waiter parked") }); out != Done {
		t.Fatalf("Wait = %v, want Done", out)
	}
	if moves > 3 {
		t.Errorf("the leader moved between OS threads %d times (looks per thread id: %v), want at most 3", moves, tids)
	}
}
