//go:build unix

package spinpoll

import (
	"testing"

	"github.com/shmconn/shmconn/internal/testutil"
)

// TestScanTreatsFaultAsReady checks that a follower whose condition
// faults (its shared file was truncated) is woken and given the lead, to
// meet the fault in its own guarded code, while the leader lives on.
func TestScanTreatsFaultAsReady(t *testing.T) {
	m := testutil.TruncatedMapping(t)
	var p Poller
	leader := NewWaiter(func() bool { return false }, func() bool { return false })
	follower := NewWaiter(func() bool { return m[0] != 0 }, func() bool { return false })
	p.mu.Lock()
	p.leading = true
	p.addLocked(follower)
	p.mu.Unlock()

	if !p.scan(leader) {
		t.Fatal("a faulting follower was not treated as ready")
	}
	select {
	case <-follower.c:
	default:
		t.Fatal("the faulting follower was not woken")
	}
	if !follower.lead || leader.idx < 0 {
		t.Fatalf("lead not handed to the follower: follower.lead %v, leader parked %v", follower.lead, leader.idx >= 0)
	}
}
