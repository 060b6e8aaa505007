//go:build amd64 || arm64

package atomicx

// prefetch asks the CPU to bring the cache line at addr into this core's
// cache; it never faults, whatever addr is.
//
//go:noescape
func prefetch(addr *byte)
