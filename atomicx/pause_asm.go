//go:build amd64 || arm64

package atomicx

// pause runs the spin hint n times; n must be at least 1.
//
//go:noescape
func pause(n uint32)
