package conn

import (
	"context"
	"errors"
	"net"
	"os"
	"syscall"

	"github.com/shmconn/shmconn/internal/handshake"
	"github.com/shmconn/shmconn/ring"
	"github.com/shmconn/shmconn/segment"
)

// Errors. The package documentation has a table of which failure reports
// which of them.
var (
	// ErrCorrupt means the peer broke the shared-memory protocol (a counter
	// outside the ring's invariants, a segment truncated under us). The
	// conn is unusable; close it.
	ErrCorrupt = ring.ErrCorrupt
	// ErrHandshake means the side-socket negotiation failed. Every dial or
	// accept that fails after the side socket connected matches it, along
	// with one of the more specific errors below where one applies.
	ErrHandshake = handshake.ErrHandshake
	// ErrNotShmconn means the peer does not speak the shmconn handshake:
	// a Dialer reached some other server (its answer did not start with
	// the reply's magic), or a Listener without AcceptPlain got a client
	// that is not a Dialer. It matches ErrHandshake.
	ErrNotShmconn = handshake.ErrNotShmconn
	// ErrVersion means the peer speaks another version of the handshake.
	// It matches ErrHandshake.
	ErrVersion = handshake.ErrVersion
	// ErrNoSharedMemory means shared memory could not be set up and the
	// fallback to the side socket was turned off on either side. It
	// matches ErrHandshake.
	ErrNoSharedMemory error = &handshake.Kind{Msg: "shmconn: shared memory unavailable and fallback disabled", Parent: ErrHandshake}
	// ErrPeerNotAllowed means a client was refused by
	// ListenConfig.AuthorizePeer (or by the default rule: same uid or
	// root). It matches ErrHandshake.
	ErrPeerNotAllowed error = &handshake.Kind{Msg: "shmconn: peer not allowed", Parent: ErrHandshake}
	// ErrSegmentMismatch means the two sides of a handshake do not share
	// one segment over one side socket: the dialer mapped another file
	// than the listener's (the file was swapped in /dev/shm), or it
	// reached the listener through a relay (a process between the two
	// side sockets). Both sides fall back with it as the reason, or,
	// with the fallback off, fail with it and ErrNoSharedMemory. It
	// matches ErrHandshake.
	ErrSegmentMismatch error = &handshake.Kind{Msg: "shmconn: the peer did not map our segment through this side socket", Parent: ErrHandshake}
	// ErrNoMemory means a page of shared memory could not be committed: a
	// Write reached a page of its ring not yet backed by memory while
	// /dev/shm was full or the memory cgroup near its limit (shmconn
	// leaves a reserve rather than wake the OOM killer). That Write wrote
	// nothing more; the conn stays usable, and a later Write may succeed
	// once memory is freed. A Read (or WriteTo) fails with it, consuming
	// nothing, where the peer published pages that are not in memory
	// (pages it never wrote), which reading would commit on our side. A
	// dial that cannot get shared memory falls back, or fails with
	// ErrNoSharedMemory.
	ErrNoMemory = segment.ErrNoMemory
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
	return &net.OpError{Op: op, Net: c.network, Source: c.carrier.localAddr(), Addr: c.carrier.remoteAddr(), Err: err}
}

// stepError is a handshake step that failed because of err. It matches
// kind (ErrHandshake or a more specific kind of it) and err; when err is
// a timeout it is one too, and matches os.ErrDeadlineExceeded and
// context.DeadlineExceeded, whichever deadline expired, so a *net.OpError
// around it answers Timeout() as package net's would.
type stepError struct {
	kind error // nil if err already matches ErrHandshake
	step string
	err  error
}

// handshakeError reports that step failed because of err.
func handshakeError(step string, err error) error {
	e := &stepError{step: step, err: err}
	if !errors.Is(err, ErrHandshake) {
		e.kind = ErrHandshake
	}
	return e
}

// handshakeErrorOf reports that step failed because of err, a failure of
// the more specific kind.
func handshakeErrorOf(kind error, step string, err error) error {
	return &stepError{kind: kind, step: step, err: err}
}

func (e *stepError) Error() string {
	s := e.step + ": " + e.err.Error()
	if e.kind != nil {
		s = e.kind.Error() + ": " + s
	}
	return s
}

func (e *stepError) Unwrap() []error {
	if e.kind == nil {
		return []error{e.err}
	}
	return []error{e.kind, e.err}
}

// Timeout reports whether the step ran out of time.
func (e *stepError) Timeout() bool { return isTimeout(e.err) }

// Is makes a timed-out step match both deadline errors: which one expired
// (the socket's or the context's) is an accident of timing.
func (e *stepError) Is(target error) bool {
	return (target == os.ErrDeadlineExceeded || target == context.DeadlineExceeded) && e.Timeout()
}

func isTimeout(err error) bool {
	var t interface{ Timeout() bool }
	return errors.As(err, &t) && t.Timeout()
}

// transient reports whether err is a shortage that passes: out of file
// descriptors or memory, interrupted. Setting up shared memory that fails
// so fails the dial, to be retried, rather than carrying the conn over
// the side socket for its whole life.
func transient(err error) bool {
	for _, e := range []error{syscall.EMFILE, syscall.ENFILE, syscall.ENOMEM, syscall.EAGAIN, syscall.EINTR} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}
