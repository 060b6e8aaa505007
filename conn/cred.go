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

// PeerCred returns the credentials of the process at the other end, as the
// kernel reported them when the side socket connected. ok is false over a
// TCP side socket, and on systems without SO_PEERCRED: neither carries
// credentials.
func (c *Conn) PeerCred() (cred PeerCred, ok bool) {
	if c.peer == nil {
		return PeerCred{}, false
	}
	return *c.peer, true
}
