//go:build !linux

package futex

import (
	"sync/atomic"
	"time"
)

// Supported reports whether Wait blocks and Wake wakes on this system.
const Supported = false

// Wait returns at once: this system has no futex.
func Wait(word *atomic.Uint32, val uint32, d time.Duration) {}

// Wake does nothing and reports false: this system has no futex.
func Wake(word *atomic.Uint32) bool { return false }
