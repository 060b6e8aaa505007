package atomicx

// Pause executes the CPU's spin-wait hint n times. On x86 each PAUSE tells
// the core it is in a spin loop: it yields pipeline resources to the
// sibling hyperthread and avoids the memory-order mis-speculation penalty
// when the awaited cache line finally changes. It never enters the kernel
// and never yields the goroutine; callers decide when to do that (package
// internal/spin paces the library's spinning waits).
func Pause(n int) {
	if n <= 0 {
		return
	}
	pause(uint32(n))
}

// Prefetch asks the CPU to start bringing the cache line holding *p into
// this core's cache, without waiting for it and without faulting. A ring
// consumer polling the producer's counter prefetches the line the next
// bytes will land on: when both change, the two transfers between the
// cores then overlap instead of following one another.
func Prefetch(p *byte) { prefetch(p) }
