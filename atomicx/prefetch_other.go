//go:build !amd64 && !arm64

package atomicx

// prefetch has no instruction to give on this architecture.
func prefetch(*byte) {}
