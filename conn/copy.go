package conn

import (
	"errors"
	"io"
	"net"

	"github.com/shmconn/shmconn/internal/fault"
)

// ReadFrom reads from r until io.EOF or an error and writes what it reads
// (io.Copy to a *Conn calls it). It waits for space as Write does, and
// stops as Write does: at the write deadline, Close, CloseWrite, the
// peer's CloseRead or its death. It returns how many bytes it handed to
// the peer (all of those r returned, in order) and, as io.Copy, a nil
// error at r's io.EOF.
//
// r.Read fills a buffer of ReadFrom's own, never shared memory, which
// ReadFrom then copies into the ring: what r returns (and what a reader
// such as io.TeeReader records of it) is what the peer gets, whatever the
// peer writes into its memory meanwhile. r.Read gets at most 32 KiB at a
// time, and no more than the ring has room for and is committed (where
// nothing is, ReadFrom first commits as a one-byte Write would: at most
// twice what the conn has written, or a page), so that no byte taken from
// r is lost to ErrNoMemory. Writes of other goroutines wait until
// ReadFrom returns, or end at Close, their deadline or CloseWrite.
//
// The deadline bounds waiting for the peer, not r.Read. Close does not
// wait for a Read blocked on r: it returns at once, the peer sees the end,
// and the shared memory is unmapped when r.Read returns (its bytes are
// dropped). CloseWrite waits for it (the end of stream comes after what r
// returns) unless Close comes first; give r a deadline, or close it, to
// bound that.
func (c *Conn) ReadFrom(r io.Reader) (int64, error) {
	n, err := c.readFrom(r)
	return n, c.opError("readfrom", err)
}

func (c *Conn) readFrom(r io.Reader) (total int64, err error) {
	finish := false
	defer c.finishIf(&finish) // after the lock is released
	if err := c.acquire(&c.wmu, c.wdl, errBrokenPipe); err != nil {
		return 0, err
	}
	defer c.wmu.Unlock()
	buf := make([]byte, copyChunk)
	for {
		free, err := c.reserveCommitted()
		if err != nil {
			return total, err
		}
		n, rerr := c.userCode(&finish, true, func() (int, error) { return r.Read(buf[:len(free)]) })
		if c.closed.Load() {
			return total, net.ErrClosed // what r gave is dropped, as by a socket's Close
		}
		if n < 0 || n > len(free) {
			return total, errInvalidRead
		}
		if err := c.publishCopy(free, buf[:n]); err != nil {
			return total, err
		}
		total += int64(n)
		switch {
		case rerr == io.EOF:
			return total, nil
		case rerr != nil:
			return total, rerr
		}
	}
}

// reserveCommitted waits for room in the ring and returns where ReadFrom's
// reader may next put bytes: at most copyChunk of them, committed (see
// committedAhead). Called under wmu.
func (c *Conn) reserveCommitted() (free []byte, err error) {
	defer fault.Catch(&err, fault.Guard(), corrupted)
	for {
		if err := c.writeStop(); err != nil {
			return nil, err
		}
		free, err = c.prod.Reserve(copyChunk)
		if err != nil {
			return nil, err
		}
		if len(free) > 0 {
			break
		}
		if err := c.awaitSpace(c.prod.Cap()); err != nil {
			return nil, err
		}
	}
	ahead, err := c.committedAhead()
	if err != nil {
		return nil, err
	}
	c.stats.bytesWritten.flush() // r.Read may take long: Stats shows what was copied so far
	return free[:min(len(free), ahead)], nil
}

// publishCopy copies b, what ReadFrom's reader returned, into free (from
// reserveCommitted) and publishes it. Called under wmu.
func (c *Conn) publishCopy(free, b []byte) (err error) {
	if len(b) == 0 {
		return nil
	}
	defer fault.Catch(&err, fault.Guard(), corrupted)
	copy(free, b)
	if err := c.prod.Publish(len(b)); err != nil {
		return err
	}
	c.produced(len(b))
	return nil
}

// WriteTo writes the bytes the peer sends to w until the peer closes its
// writing end (then it returns a nil error, as io.Copy does at io.EOF) or
// an error (io.Copy from a *Conn calls it). It waits for data as Read
// does, and stops as Read does: at the read deadline, Close, CloseRead or
// the peer's death. It returns how many bytes w took; those are consumed,
// the rest stay for the next Read.
//
// w.Write gets a copy in a buffer of WriteTo's own, never shared memory,
// at most 32 KiB at a time: the bytes are ours, as a socket's are, and a
// w that checks them and then keeps them keeps what it checked, whatever
// the peer writes into its memory meanwhile. Reads of other goroutines
// wait until WriteTo returns, or end at Close, their deadline or
// CloseRead.
//
// The deadline bounds waiting for the peer, not w.Write. Close does not
// wait for a Write blocked on w: it returns at once, and the shared memory
// is unmapped when w.Write returns (WriteTo then returns net.ErrClosed,
// counting what w took, which the conn's Stats, final at Close, leave
// out). CloseRead waits for it unless Close comes first; give w a
// deadline, or close it, to bound that.
func (c *Conn) WriteTo(w io.Writer) (int64, error) {
	n, err := c.writeTo(w)
	return n, c.opError("writeto", err)
}

func (c *Conn) writeTo(w io.Writer) (total int64, err error) {
	finish := false
	defer c.finishIf(&finish) // after the lock is released
	if err := c.acquire(&c.rmu, c.rdl, io.EOF); err != nil {
		return 0, eofIsEnd(err)
	}
	defer c.rmu.Unlock()
	buf := make([]byte, copyChunk)
	for {
		data, err := c.copyOut(buf)
		if err != nil {
			return total, eofIsEnd(err)
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
		if err := c.consumeCopied(n); err != nil {
			return total, err
		}
		total += int64(n)
		switch {
		case werr != nil:
			return total, werr
		case n < len(data):
			return total, io.ErrShortWrite
		}
	}
}

// copyOut waits for bytes in the ring and copies as many as fit into buf,
// for WriteTo's writer; they stay in the ring until consumeCopied. At the end of
// the stream it returns io.EOF. Called under rmu.
func (c *Conn) copyOut(buf []byte) (data []byte, err error) {
	defer fault.Catch(&err, fault.Guard(), corrupted)
	for {
		if err := c.readStop(); err != nil {
			return nil, err
		}
		data, err = c.cons.Peek()
		if err != nil {
			return nil, err
		}
		if len(data) > 0 {
			n, err := c.checkRead(min(len(data), len(buf)))
			if err != nil {
				return nil, err
			}
			c.stats.bytesRead.flush() // w.Write may take long: Stats shows what was copied so far
			return buf[:copy(buf, data[:n])], nil
		}
		if err := c.awaitData(); err != nil {
			return nil, err
		}
	}
}

// consumeCopied consumes n bytes that WriteTo's writer took. Called
// under rmu.
func (c *Conn) consumeCopied(n int) (err error) {
	if n == 0 {
		return nil
	}
	defer fault.Catch(&err, fault.Guard(), corrupted)
	if err := c.cons.Consume(n); err != nil {
		return err
	}
	c.consumed(n)
	return nil
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
// ReadFrom may take from its reader, so that none of them is lost to
// ErrNoMemory. Called under wmu.
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

// copyChunk bounds the bytes ReadFrom takes from one r.Read and WriteTo
// hands to one w.Write: io.Copy's own buffer size, large enough that the
// copy is never the bottleneck.
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
