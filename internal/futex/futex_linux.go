package futex

import (
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Supported reports whether Wait blocks and Wake wakes on this system.
const Supported = true

// Wait blocks the calling thread while *word holds val, for at most d, or
// until a Wake on word (or a signal, or for no reason at all: callers
// re-check what they wait for). It returns at once if *word does not hold
// val. d must be positive and short: see the package doc.
func Wait(word *atomic.Uint32, val uint32, d time.Duration) {
	ts := unix.NsecToTimespec(int64(d))
	unix.RawSyscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(word)), futexWait, uintptr(val),
		uintptr(unsafe.Pointer(&ts)), 0, 0)
}

// Wake wakes the threads of any process blocked in Wait on word, and
// reports whether the call was made without error (it fails only for an
// address that is not mapped, or not aligned).
func Wake(word *atomic.Uint32) bool {
	_, _, e := unix.RawSyscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(word)), futexWake, maxWaiters, 0, 0, 0)
	return e == 0
}

// The futex operations, shared (without FUTEX_PRIVATE_FLAG): linux/futex.h.
const (
	futexWait = 0
	futexWake = 1
)

// maxWaiters is how many threads a Wake may wake: all of them (one waits,
// normally; a broken peer may wait on our word too, and must not take the
// wake-up meant for us).
const maxWaiters = 1<<31 - 1
