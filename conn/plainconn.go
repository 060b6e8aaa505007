package conn

import (
	"errors"
	"net"
	"runtime"
	"sync"
	"time"
)

// replayConn is a plain conn whose first bytes were consumed while telling
// it from a dialer; Read returns them first.
type replayConn struct {
	net.Conn
	mu      sync.Mutex
	pending []byte
}

func (c *replayConn) Read(b []byte) (int, error) {
	c.mu.Lock()
	if len(c.pending) > 0 {
		n := copy(b, c.pending)
		c.pending = c.pending[n:]
		c.mu.Unlock()
		return n, nil
	}
	c.mu.Unlock()
	return c.Conn.Read(b)
}

// CloseWrite shuts down the writing side if the socket supports it.
func (c *replayConn) CloseWrite() error { return closeWrite(c.Conn) }

// CloseRead shuts down the reading side if the socket supports it. The
// bytes read while telling the client from a dialer are still returned
// first, as a Linux socket still returns the bytes it had received.
func (c *replayConn) CloseRead() error { return closeRead(c.Conn) }

// closeReader and closeWriter are the half-closes of *net.TCPConn,
// *net.UnixConn and *Conn, which users reach by type assertion; the
// wrappers handed to users must keep both.
type (
	closeReader interface{ CloseRead() error }
	closeWriter interface{ CloseWrite() error }
)

var (
	_ closeReader = (*replayConn)(nil)
	_ closeWriter = (*replayConn)(nil)
	_ closeReader = (*trackedConn)(nil)
	_ closeWriter = (*trackedConn)(nil)
)

// closeRead and closeWrite shut down one direction of c if it can, so that
// a wrapper hides neither method of the socket it wraps.
func closeRead(c net.Conn) error  { return closeHalf(c, closeReader.CloseRead) }
func closeWrite(c net.Conn) error { return closeHalf(c, closeWriter.CloseWrite) }

// closeHalf calls shut on c if c is an H, and otherwise fails as
// unsupported (a plain conn that is neither TCP nor unix).
func closeHalf[H any](c net.Conn, shut func(H) error) error {
	if h, ok := c.(H); ok {
		return shut(h)
	}
	return &net.OpError{Op: "close", Net: c.LocalAddr().Network(), Err: errors.ErrUnsupported}
}

// trackClose arranges for release to run once when c is closed, or when
// it is dropped without Close and collected.
func trackClose(c net.Conn, release func()) net.Conn {
	if sc, ok := c.(*Conn); ok {
		sc.res.onClose = release
		return sc
	}
	t := &trackedConn{Conn: c, slot: &slot{release: release}}
	// The cleanup holds the socket, not t: the socket's own finalizer
	// would close it, but nothing would give the slot back, and at
	// MaxConns the listener would stop accepting for good.
	t.cleanup = runtime.AddCleanup(t, droppedPlain, plainResources{c, t.slot})
	return t
}

// trackedConn is a plain conn that gives back its MaxConns slot on Close.
type trackedConn struct {
	net.Conn
	slot    *slot
	cleanup runtime.Cleanup
}

// slot is a MaxConns slot, given back once.
type slot struct {
	once    sync.Once
	release func()
}

func (s *slot) giveBack() { s.once.Do(s.release) }

// plainResources is what a trackedConn dropped without Close gives back.
type plainResources struct {
	sock net.Conn
	slot *slot
}

// droppedPlain closes the socket of a trackedConn dropped without Close
// and gives its slot back.
func droppedPlain(r plainResources) {
	r.sock.Close()
	r.slot.giveBack()
}

// Its methods keep c reachable until they return: the methods they would
// be, promoted from the socket, stop using c once they have loaded the
// socket, and a conn whose last use is a blocked Read or Write would be
// collected under it, its cleanup closing the socket in the middle of the
// call; a last SetDeadline or CloseWrite could fail as on a closed conn.
func (c *trackedConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	runtime.KeepAlive(c)
	return n, err
}

func (c *trackedConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	runtime.KeepAlive(c)
	return n, err
}

func (c *trackedConn) Close() error {
	err := c.Conn.Close()
	c.cleanup.Stop()
	c.slot.giveBack()
	return err
}

// CloseWrite shuts down the writing side if the socket supports it.
func (c *trackedConn) CloseWrite() error {
	defer runtime.KeepAlive(c)
	return closeWrite(c.Conn)
}

// CloseRead shuts down the reading side if the socket supports it.
func (c *trackedConn) CloseRead() error {
	defer runtime.KeepAlive(c)
	return closeRead(c.Conn)
}

func (c *trackedConn) SetDeadline(t time.Time) error {
	defer runtime.KeepAlive(c)
	return c.Conn.SetDeadline(t)
}

func (c *trackedConn) SetReadDeadline(t time.Time) error {
	defer runtime.KeepAlive(c)
	return c.Conn.SetReadDeadline(t)
}

func (c *trackedConn) SetWriteDeadline(t time.Time) error {
	defer runtime.KeepAlive(c)
	return c.Conn.SetWriteDeadline(t)
}
