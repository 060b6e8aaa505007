package conn

import (
	"errors"
	"io"
	"net"

	"github.com/shmconn/shmconn/internal/fault"
)

// ReadFrom reads from r until io.EOF or an error, straight into the free
// space of the ring (io.Copy to a *Conn calls it): each byte is copied
// once, by r.Read. It waits for space as Write does, and stops as Write
// does: at the write deadline, Close, CloseWrite, the peer's CloseRead or
// its death. It returns how many bytes it handed to the peer (all of those
// r returned, in order) and, as io.Copy, a nil error at r's io.EOF.
//
// The deadline bounds waiting for the peer, not r.Read. Close does not
// wait for a Read blocked on r: it returns at once, the peer sees the end,
// and the shared memory is released when r.Read returns (its bytes are
// dropped). CloseWrite does wait for it (the end of stream comes after
// what r returns); give r a deadline, or close it, to bound that.
//
// It hands r.Read at most 32 KiB of the ring at a time, and no more than
// is committed already (committing a step first when nothing is, as a
// one-byte Write would), so a copy commits no more shared memory than a
// Write of the bytes it got would: at most twice those, or a page.
//
// r.Read fills ring memory itself. If the peer truncates the segment
// meanwhile, the fault that r.Read then raises ends ReadFrom with
// ErrCorrupt, as for Write; a memory fault of r's own, elsewhere, which
// would otherwise kill the process, panics instead.
func (c *Conn) ReadFrom(r io.Reader) (int64, error) {
	n, err := c.readFrom(r)
	return n, c.opError("readfrom", err)
}

func (c *Conn) readFrom(r io.Reader) (total int64, err error) {
	finish := false
	defer c.finishIf(&finish) // after the mutex is released
	defer fault.Catch(&err, fault.Guard(), corrupted)
	c.wmu.Lock()
	defer c.wmu.Unlock()
	for {
		if err := c.writeStop(); err != nil {
			return total, err
		}
		ahead, err := c.committedAhead()
		if err != nil {
			return total, err
		}
		free, err := c.prod.Reserve(min(ahead, copyChunk))
		if err != nil {
			return total, err
		}
		if len(free) == 0 {
			if err := c.awaitSpace(c.prod.Cap()); err != nil {
				return total, err
			}
			continue
		}
		n, rerr := c.userCode(&finish, true, func() (int, error) { return r.Read(free) })
		if c.closed.Load() {
			return total, net.ErrClosed // what r gave is dropped, as by a socket's Close
		}
		if n < 0 || n > len(free) {
			return total, errInvalidRead
		}
		if n > 0 {
			if err := c.prod.Commit(n); err != nil {
				return total, err
			}
			c.produced(n)
			total += int64(n)
		}
		switch {
		case rerr == io.EOF:
			return total, nil
		case rerr != nil:
			return total, rerr
		}
	}
}

// WriteTo writes the bytes the peer sends to w until the peer closes its
// writing end (then it returns a nil error, as io.Copy does at io.EOF) or
// an error, straight from the ring (io.Copy from a *Conn calls it): each
// byte is copied once, by w.Write. It waits for data as Read does, and
// stops as Read does: at the read deadline, Close, CloseRead or the peer's
// death. It returns how many bytes w took; those are consumed, the rest
// stay for the next Read.
//
// The deadline bounds waiting for the peer, not w.Write. Close does not
// wait for a Write blocked on w: it returns at once, and the shared memory
// is released when w.Write returns. CloseRead does wait for it; give w a
// deadline, or close it, to bound that.
//
// w.Write reads ring memory itself. If the peer truncates the segment
// meanwhile, the fault that w.Write then raises ends WriteTo with
// ErrCorrupt, as for Read; a memory fault of w's own, elsewhere, which
// would otherwise kill the process, panics instead.
func (c *Conn) WriteTo(w io.Writer) (int64, error) {
	n, err := c.writeTo(w)
	return n, c.opError("writeto", err)
}

func (c *Conn) writeTo(w io.Writer) (total int64, err error) {
	finish := false
	defer c.finishIf(&finish) // after the mutex is released
	defer fault.Catch(&err, fault.Guard(), corrupted)
	c.rmu.Lock()
	defer c.rmu.Unlock()
	for {
		if err := c.readStop(); err != nil {
			return total, eofIsEnd(err)
		}
		data, err := c.cons.Peek()
		if err != nil {
			return total, err
		}
		if len(data) == 0 {
			if err := c.awaitData(); err != nil {
				return total, eofIsEnd(err)
			}
			continue
		}
		n, werr := c.userCode(&finish, false, func() (int, error) { return w.Write(data) })
		if c.closed.Load() {
			return total, net.ErrClosed
		}
		if n < 0 || n > len(data) {
			return total, errInvalidWrite
		}
		if n > 0 {
			if err := c.cons.Release(n); err != nil {
				return total, err
			}
			c.consumed(n)
			total += int64(n)
		}
		switch {
		case werr != nil:
			return total, werr
		case n < len(data):
			return total, io.ErrShortWrite
		}
	}
}

// finishIf completes a Close that left the unmapping to this call (see
// userCode) if *finish says so.
func (c *Conn) finishIf(finish *bool) {
	if *finish {
		c.finishClose()
	}
}

// committedAhead commits the ring as a one-byte Write would and returns
// how many bytes from the write position on are committed: what ReadFrom
// may hand its reader. Handing it a whole chunk, committed beforehand,
// committed 64 KiB for a copy of 6 bytes (found by an adversarial review).
// Called under wmu.
func (c *Conn) committedAhead() (int, error) {
	if err := c.commit(1); err != nil {
		return 0, err
	}
	if c.committed == c.prod.Cap() {
		return c.committed, nil
	}
	// Not yet round the ring: the write position is c.wrote itself.
	return c.committed - int(c.wrote), nil
}

// copyChunk bounds the ring space ReadFrom hands to one r.Read: io.Copy's
// own buffer size, large enough that the copy is never the bottleneck.
const copyChunk = 32 << 10

// eofIsEnd maps io.EOF, the end of the stream, to the nil error a copy
// returns when it got everything.
func eofIsEnd(err error) error {
	if err == io.EOF {
		return nil
	}
	return err
}

// errInvalidRead and errInvalidWrite report a reader or writer that
// claimed more bytes than it was given, or fewer than none.
var (
	errInvalidRead  = errors.New("shmconn: invalid read result")
	errInvalidWrite = errors.New("shmconn: invalid write result")
)
