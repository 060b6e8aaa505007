package conn

import (
	"errors"
	"io"
	"net"

	"github.com/shmconn/shmconn/internal/fault"
)

// ReadFrom reads from r until io.EOF or an error, straight into the free
// space of the ring where it can (io.Copy to a *Conn calls it): each byte
// is then copied once, by r.Read (see below). It waits for space as Write does, and stops as Write
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
// r.Read fills ring memory itself, at most 32 KiB at a time, where that
// memory is committed and cannot be truncated (a segment passed as a
// sealed memory file, over a unix socket). Otherwise (a named segment,
// over TCP; the next bytes of the ring not yet committed) it reads into a
// buffer of ReadFrom's, and ReadFrom copies what it got into the ring, so
// a copy commits no more shared memory than a Write of those bytes would
// and r never touches memory a peer can truncate: a truncation fails
// ReadFrom with ErrCorrupt, as it fails Write. A memory fault of r's own,
// which would otherwise kill the process, panics.
func (c *Conn) ReadFrom(r io.Reader) (int64, error) {
	n, err := c.readFrom(r)
	return n, c.opError("readfrom", err)
}

func (c *Conn) readFrom(r io.Reader) (total int64, err error) {
	var buf []byte // for reads bounced through it (see lendable), made at the first
	finish := false
	defer c.finishIf(&finish) // after the mutex is released
	defer fault.Catch(&err, fault.Guard(), corrupted)
	c.wmu.Lock()
	defer c.wmu.Unlock()
	for {
		if err := c.writeStop(); err != nil {
			return total, err
		}
		free, err := c.prod.Reserve(copyChunk)
		if err != nil {
			return total, err
		}
		if len(free) == 0 {
			if err := c.awaitSpace(c.prod.Cap()); err != nil {
				return total, err
			}
			continue
		}
		c.stats.bytesWritten.publish() // r.Read may take long: Stats shows what was copied so far
		var n int
		var rerr error
		lend := c.lendable(len(free))
		if lend > 0 {
			n, rerr = c.userCode(&finish, true, func() (int, error) { return r.Read(free[:lend]) })
			free = free[:lend]
		} else {
			if buf == nil {
				buf = make([]byte, copyChunk)
			}
			n, rerr = c.userCode(&finish, true, func() (int, error) { return r.Read(buf[:len(free)]) })
		}
		if c.closed.Load() {
			return total, net.ErrClosed // what r gave is dropped, as by a socket's Close
		}
		if n < 0 || n > len(free) {
			return total, errInvalidRead
		}
		if lend == 0 && n > 0 {
			// Bounced: commit as a Write of these bytes would, then
			// copy them in (a fault here is ours to catch).
			if err := c.commit(n); err != nil {
				return total, err
			}
			copy(free, buf[:n])
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
// an error, straight from the ring where it can (io.Copy from a *Conn
// calls it): each byte is then copied once, by w.Write (see below). It
// waits for data as Read does, and
// stops as Read does: at the read deadline, Close, CloseRead or the peer's
// death. It returns how many bytes w took; those are consumed, the rest
// stay for the next Read.
//
// The deadline bounds waiting for the peer, not w.Write. Close does not
// wait for a Write blocked on w: it returns at once, and the shared memory
// is released when w.Write returns. CloseRead does wait for it; give w a
// deadline, or close it, to bound that.
//
// w.Write reads ring memory itself where the segment cannot be truncated
// (a sealed memory file, over a unix socket); otherwise WriteTo copies the
// bytes into a buffer of its own first, so w never touches memory a peer
// can truncate: a truncation fails WriteTo with ErrCorrupt, as it fails
// Read. A memory fault of w's own, which would otherwise kill the process,
// panics.
func (c *Conn) WriteTo(w io.Writer) (int64, error) {
	n, err := c.writeTo(w)
	return n, c.opError("writeto", err)
}

func (c *Conn) writeTo(w io.Writer) (total int64, err error) {
	var buf []byte // for writes bounced through it (see lendable), made at the first
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
		c.stats.bytesRead.publish() // w.Write may take long: Stats shows what was copied so far
		if !c.seg.Sealed() {
			// Bounce: w sees a copy, made here where a fault is ours to
			// catch (see lendable).
			if buf == nil {
				buf = make([]byte, copyChunk)
			}
			data = buf[:copy(buf, data)]
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

// lendable returns how many of the n free bytes at the write position
// ReadFrom may hand its reader to fill in place: those already committed,
// in a segment nobody can truncate (Segment.Sealed). Other bytes are
// bounced through a buffer of ReadFrom's own, as WriteTo bounces a
// truncatable segment's bytes, so that code of the caller's never touches
// shared memory that can fault:
//
//   - A named segment (over TCP) can be truncated by any process of the
//     uid; panic-on-fault (fault.Lent) saves only the goroutine that faults,
//     and a writer such as an io.PipeWriter hands the bytes to another one,
//     which died of SIGBUS (found by an adversarial review). A reader or
//     writer making system calls got EFAULT, where ErrCorrupt is promised.
//   - Uncommitted memory, committed for a whole chunk beforehand,
//     committed 64 KiB for a copy of 6 bytes (found by the same review),
//     and a step for a copy of none; bounced, it is committed for the bytes
//     the reader gave, as Write commits.
//
// Called under wmu.
func (c *Conn) lendable(n int) int {
	switch {
	case !c.seg.Sealed():
		return 0
	case c.committed == c.prod.Cap():
		return n
	default:
		// Not yet round the ring: the write position is c.wrote itself.
		return min(n, c.committed-int(c.wrote))
	}
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
