//go:build (amd64 || arm64) && !race

package atomicx

import (
	"sync/atomic"
	"unsafe"
)

func storeRelease(a *atomic.Uint64, v uint64) { storeRelease64((*uint64)(unsafe.Pointer(a)), v) }

//go:noescape
func storeRelease64(addr *uint64, v uint64)
