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
// r.Read gets at most 32 KiB at a time, and no more than is committed
// (where nothing is, ReadFrom first commits as a one-byte Write would: at
// most twice what the conn has written, or a page), so that no byte taken
// from r is lost to ErrNoMemory. It fills ring memory itself where the
// segment cannot be truncated (a sealed memory file, over a unix socket);
// otherwise (a named segment, over TCP) it reads into a buffer of
// ReadFrom's, which copies what it got into the ring, so r never touches
// memory a peer can truncate: a truncation fails ReadFrom with
// ErrCorrupt, as it fails Write. A memory fault of r's own, which would
// otherwise kill the process, panics.
func (c *Conn) ReadFrom(r io.Reader) (int64, error) {
	n, err := c.readFrom(r)
	return n, c.opError("readfrom", err)
}

func (c *Conn) readFrom(r io.Reader) (total int64, err error) {
	var buf []byte // for reads bounced through it (see committedAhead), made at the first
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
		// Commit before reading, as a one-byte Write would if nothing
		// is committed here yet: bytes taken from r must not be lost to
		// ErrNoMemory (committing after the read lost them, found by an
		// adversarial review). So r.Read gets at most what is committed.
		ahead, err := c.committedAhead()
		if err != nil {
			return total, err
		}
		free = free[:min(len(free), ahead)]
		c.stats.bytesWritten.publish() // r.Read may take long: Stats shows what was copied so far
		var n int
		var rerr error
		lend := c.seg.Sealed()
		if lend {
			n, rerr = c.userCode(&finish, true, func() (int, error) { return r.Read(free) })
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
		if !lend {
			copy(free, buf[:n]) // a fault here is ours to catch
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
// is released when w.Write returns (WriteTo then returns net.ErrClosed,
// counting what w took, which the conn's Stats, final at Close, leave
// out). CloseRead does wait for it; give w a
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
	var buf []byte // for writes bounced through it (see committedAhead), made at the first
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
		n, err := c.checkRead(len(data))
		if err != nil {
			return total, err
		}
		data = data[:n]
		c.stats.bytesRead.publish() // w.Write may take long: Stats shows what was copied so far
		if !c.seg.Sealed() {
			// Bounce: w sees a copy, made here where a fault is ours to
			// catch (see committedAhead).
			if buf == nil {
				buf = make([]byte, copyChunk)
			}
			data = buf[:copy(buf, data)]
		}
		n, werr := c.userCode(&finish, false, func() (int, error) { return w.Write(data) })
		if c.closed.Load() {
			// w took its n bytes; they leave the ring with the conn.
			if n > 0 && n <= len(data) {
				total += int64(n)
			}
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
// how many bytes from the write position on are committed: all that
// ReadFrom may hand its reader, or fill from its buffer. Called under wmu.
//
// ReadFrom reads into the ring itself only where the segment cannot be
// truncated (Segment.Sealed); elsewhere it reads into a buffer of its own
// and copies that in, as WriteTo copies out, so that code of the caller's
// never touches shared memory that can fault: panic-on-fault (fault.Lent)
// saves only the goroutine that faults, and a writer such as an
// io.PipeWriter hands the bytes to another one, which died of SIGBUS
// (found by an adversarial review); a reader or writer making system calls
// got EFAULT where ErrCorrupt is promised.
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
