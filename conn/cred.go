package conn

import (
	"fmt"
	"os"
)

// PeerCred is what the kernel says about the process at the other end of
// a unix side socket, read when it connected (SO_PEERCRED).
type PeerCred struct {
	PID, UID, GID int
}

// sameUserOrRoot is the default AuthorizePeer.
func sameUserOrRoot(c PeerCred) error {
	if c.UID == os.Getuid() || c.UID == 0 {
		return nil
	}
	return fmt.Errorf("%w: uid %d (pid %d) is neither uid %d nor root", ErrPeerNotAllowed, c.UID, c.PID, os.Getuid())
}
