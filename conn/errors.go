package conn

import (
	"errors"
	"net"
	"syscall"

	"github.com/shmconn/shmconn/ring"
)

var (
	// ErrCorrupt means the peer broke the shared-memory protocol (a counter
	// outside the ring's invariants). The conn is unusable; close it.
	ErrCorrupt = ring.ErrCorrupt
	// ErrHandshake means the side-socket negotiation failed.
	ErrHandshake = errors.New("shmconn: handshake failed")
	// ErrNoSharedMemory means shared memory could not be had: a dial or an
	// accepted client could not set it up and the fallback to the side
	// socket was turned off, or a Write could not commit a page of its ring
	// (a full /dev/shm, a memory cgroup at its limit). Such a Write wrote
	// nothing more; the conn stays usable and a later Write may succeed.
	ErrNoSharedMemory = errors.New("shmconn: no shared memory")
	// ErrConfig means a Dialer or ListenConfig field is out of range.
	ErrConfig = errors.New("shmconn: invalid configuration")
)

// errPeerReset is what Read and Write report when the peer vanished
// without closing (its process died): the side socket hit end-of-file but
// the peer never marked its ring closed. It is ECONNRESET, as a TCP conn
// would report.
var errPeerReset error = syscall.ECONNRESET

// errBrokenPipe is what Write reports when the peer closed its reading
// end, or after our own CloseWrite.
var errBrokenPipe error = syscall.EPIPE

// opError wraps err for op the way package net does: io.EOF and nil pass
// through, everything else becomes a *net.OpError (whose Err is
// os.ErrDeadlineExceeded itself for timeouts, so Timeout() holds).
func (c *Conn) opError(op string, err error) error {
	if err == nil {
		return nil
	}
	return &net.OpError{Op: op, Net: c.network, Source: c.side.LocalAddr(), Addr: c.side.RemoteAddr(), Err: err}
}
