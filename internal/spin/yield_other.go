//go:build !linux

package spin

import "runtime"

// osYield has no portable form; yielding the goroutine is the closest.
func osYield() { runtime.Gosched() }
