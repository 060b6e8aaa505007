package atomicx

import "runtime"

// Pause executes the CPU's spin-wait hint n times. On x86 each PAUSE tells
// the core it is in a spin loop: it yields pipeline resources to the
// sibling hyperthread and avoids the memory-order mis-speculation penalty
// when the awaited cache line finally changes. It never enters the kernel
// and never yields the goroutine; callers decide when to do that.
func Pause(n int) {
	if n <= 0 {
		return
	}
	pause(uint32(n))
}

// Spinner paces a polling loop between two looks at shared memory: the
// pause hint each time, and every SpinnerYieldEvery looks a yield of the P
// (runtime.Gosched), so the goroutine being waited for can run in the same
// process without the poller hammering the cache line it writes. The zero
// value is ready to use; it is for one goroutine.
type Spinner struct{ n int }

// SpinnerYieldEvery is how many looks a Spinner makes between yields.
const SpinnerYieldEvery = 64

// Wait waits a little before the next look.
func (s *Spinner) Wait() {
	s.n++
	if s.n%SpinnerYieldEvery == 0 {
		runtime.Gosched()
		return
	}
	Pause(1)
}
