//go:build !linux

package spin

import "runtime"

// osYield has no portable form; yielding the goroutine is the closest.
func osYield() { runtime.Gosched() }

// firstOSYield is OSYieldInterval here: runtime.Gosched wakes an idle P,
// another thread (see the package doc), each time, which every
// FirstOSYield would cost the peer's CPU; FirstOSYield's gain was
// measured for Linux's placement of woken threads.
const firstOSYield = OSYieldInterval
