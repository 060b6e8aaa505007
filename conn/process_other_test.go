//go:build !linux

package conn

import (
	"errors"
	"os/exec"
	"testing"
)

// Off Linux there are no mount namespaces, no memory cgroups and no
// inotify: the peer roles and helpers that need them do not exist, so the
// tests that use them skip or are not built.

// memoryRoles has no roles: the memory tests are Linux-only.
var memoryRoles = map[string]func(addr string) error{}

// playReliabilityPeer plays no role: the reliability tests are Linux-only.
func playReliabilityPeer(role, addr string) (played bool, err error) { return false, nil }

// mountPrivateDevShm cannot cover /dev/shm here.
func mountPrivateDevShm() error { return errors.ErrUnsupported }

// inMountNamespace leaves cmd as it is: there are no mount namespaces.
func inMountNamespace(*exec.Cmd) {}

// runInMountNamespace skips the test: segments are Linux-only, and so are
// the memory shortages it would run into.
func runInMountNamespace(t *testing.T, role string) string {
	t.Skip("shared memory is Linux-only")
	return ""
}
