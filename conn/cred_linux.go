package conn

import (
	"net"
	"os"

	"golang.org/x/sys/unix"
)

// peerCred returns the credentials of a unix socket's peer; ok is false for
// other sockets, which carry none.
func peerCred(c net.Conn) (cred PeerCred, ok bool, err error) {
	uc, isUnix := c.(*net.UnixConn)
	if !isUnix {
		return PeerCred{}, false, nil
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return PeerCred{}, false, err
	}
	var u *unix.Ucred
	var serr error
	if err := raw.Control(func(fd uintptr) {
		u, serr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return PeerCred{}, false, err
	}
	if serr != nil {
		return PeerCred{}, false, os.NewSyscallError("getsockopt", serr)
	}
	return PeerCred{PID: int(u.Pid), UID: int(u.Uid), GID: int(u.Gid)}, true, nil
}
