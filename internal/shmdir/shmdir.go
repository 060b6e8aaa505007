// Package shmdir holds the directory where named segment files live. It
// is internal so that no user can move it: every process of a connection
// must look in the same place, and only the project's tests have a reason
// to point it elsewhere (at a missing directory, or another file system).
package shmdir

import "sync/atomic"

// defaultDir is the tmpfs every Linux system mounts for POSIX shared memory.
const defaultDir = "/dev/shm"

// dir is the directory tests set; nil means defaultDir. It is atomic because
// a test may set it while goroutines of an earlier test still read it.
var dir atomic.Pointer[string]

// Path returns the directory where named segment files live.
func Path() string {
	if d := dir.Load(); d != nil {
		return *d
	}
	return defaultDir
}

// Set points Path at d, for tests, and returns the function that restores
// the directory it replaced:
//
//	t.Cleanup(shmdir.Set(t.TempDir()))
func Set(d string) (restore func()) {
	old := dir.Swap(&d)
	return func() { dir.Store(old) }
}
