package integration

import (
	"testing"

	"github.com/shmconn/shmconn/internal/testutil"
)

// TestMain fails the run if a test leaves a segment file in /dev/shm or a
// goroutine behind.
func TestMain(m *testing.M) {
	testutil.VerifyMain(m)
}
