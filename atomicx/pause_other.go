//go:build !amd64 && !arm64

package atomicx

// pause has no hint to give on this architecture; an empty loop keeps the
// caller's spin roughly as long.
func pause(n uint32) {
	for i := uint32(0); i < n; i++ {
	}
}
