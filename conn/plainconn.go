package conn

import (
	"errors"
	"net"
	"sync"
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

// closeWrite half-closes c if it can.
func closeWrite(c net.Conn) error {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return &net.OpError{Op: "close", Net: c.LocalAddr().Network(), Err: errors.ErrUnsupported}
}

// trackClose arranges for release to run once when c is closed.
func trackClose(c net.Conn, release func()) net.Conn {
	if sc, ok := c.(*Conn); ok {
		sc.res.onClose = release
		return sc
	}
	return &trackedConn{Conn: c, release: release}
}

// trackedConn is a plain conn that gives back its MaxConns slot on Close.
type trackedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *trackedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

// CloseWrite shuts down the writing side if the socket supports it.
func (c *trackedConn) CloseWrite() error { return closeWrite(c.Conn) }
