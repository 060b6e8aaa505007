// Package atomicx holds the few layout and atomic helpers the lock-free
// rings need: how far apart hot words must sit (FalseSharingRange), typed
// atomic views over a []byte at fixed offsets (for memory shared with
// another process, where Go cannot place a struct for us), a release-only
// store, and the CPU's spin hint (Pause).
//
// The views are ordinary sync/atomic values laid over the caller's memory;
// StoreRelease adds the one weaker store the rings publish counters with.
// Which ordering each protocol needs is written down where it is used
// (package ring). The race detector cannot see another process, so it
// cannot check them.
package atomicx

import (
	"errors"
	"fmt"
	"sync/atomic"
	"unsafe"
)

// FalseSharingRange is how far apart two independently written hot words
// must be so that writes to one never slow readers of the other: two
// 64-byte cache lines. On x86 the adjacent-line prefetcher fetches lines
// in 128-byte pairs, so one line of separation is not enough. It is part
// of the rings' shared layout (package ring pins the offsets it gives).
const FalseSharingRange = 128

// ErrAlignment reports a view requested at a misaligned address or offset.
var ErrAlignment = errors.New("atomicx: misaligned atomic view")

// ErrBounds reports a view that does not fit in the memory given.
var ErrBounds = errors.New("atomicx: atomic view out of bounds")

// Uint64At returns an atomic view of the 8 bytes of mem at off. The address
// must be 8-byte aligned: a misaligned atomic is not atomic on every CPU and
// faults on some.
func Uint64At(mem []byte, off int) (*atomic.Uint64, error) {
	if err := check(mem, off, 8); err != nil {
		return nil, err
	}
	return (*atomic.Uint64)(unsafe.Pointer(&mem[off])), nil
}

// Uint32At returns an atomic view of the 4 bytes of mem at off, which must
// be 4-byte aligned.
func Uint32At(mem []byte, off int) (*atomic.Uint32, error) {
	if err := check(mem, off, 4); err != nil {
		return nil, err
	}
	return (*atomic.Uint32)(unsafe.Pointer(&mem[off])), nil
}

func check(mem []byte, off, size int) error {
	if off < 0 || size > len(mem) || off > len(mem)-size {
		return fmt.Errorf("%w: %d bytes at offset %d of %d", ErrBounds, size, off, len(mem))
	}
	if uintptr(unsafe.Pointer(&mem[off]))%uintptr(size) != 0 {
		return fmt.Errorf("%w: %d-byte view at offset %d", ErrAlignment, size, off)
	}
	return nil
}
