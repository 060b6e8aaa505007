package conn

import (
	"testing"

	"github.com/shmconn/shmconn/internal/testutil"
)

func TestMain(m *testing.M) {
	if runAsPeer() {
		return
	}
	testutil.VerifyMain(m)
}
