//go:build unix

package testutil

import (
	"os"
	"syscall"
	"testing"
)

// TruncatedMapping maps a page of a file and then truncates the file, so
// that touching the page raises SIGBUS, as it does when a peer truncates a
// shared segment under us. The mapping is removed when t ends.
func TruncatedMapping(t testing.TB) []byte {
	t.Helper()
	f, err := os.CreateTemp(t.TempDir(), "truncated")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	size := os.Getpagesize()
	if err := f.Truncate(int64(size)); err != nil {
		t.Fatal(err)
	}
	m, err := syscall.Mmap(int(f.Fd()), 0, size, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Munmap(m) })
	if err := f.Truncate(0); err != nil {
		t.Fatal(err)
	}
	return m
}
