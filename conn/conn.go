package conn

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
	"weak"

	"github.com/shmconn/shmconn/internal/fault"
	"github.com/shmconn/shmconn/internal/handshake"
	"github.com/shmconn/shmconn/internal/trace"
	"github.com/shmconn/shmconn/ring"
	"github.com/shmconn/shmconn/segment"
)

// Conn is a connection whose bytes travel through shared memory. It
// implements net.Conn, CloseRead, CloseWrite, io.ReaderFrom and
// io.WriterTo. Any number of goroutines may call its methods at once: Reads
// (and WriteTo) are serialized by one lock, Writes (and ReadFrom) by
// another, and Close, CloseRead, CloseWrite and the deadline setters may be
// called at any time and wake blocked calls, also those waiting for a
// lock; none of them waits for the peer.
//
// A Conn is built in layers, each in a file of its own: the two rings
// (package ring) over one segment (package segment); per direction a lock
// (lock.go), a deadline (deadline.go) and a waiter, which spins, dozes
// (doze.go) or parks (wait.go); and the wake-up carrier (side.go), on
// which a waiter parks and through which the peer's wake-ups and its end
// arrive. Read and Write (this file) and ReadFrom and WriteTo (copy.go)
// run over these.
//
// Conn deliberately has no SyscallConn or NetConn method: the side socket
// carries wake-ups, not the stream, and clients that look for those methods
// (go-redis does) must not read from it.
type Conn struct {
	// Immutable after construction.
	seg     *segment.Segment
	policy  WaitPolicy
	network string    // for errors: "shm"
	peer    *PeerCred // the peer's credentials, nil over TCP; set before the conn is handed out

	// Read side, guarded by rmu.
	rmu     dirLock
	cons    *ring.Consumer
	rwait   waiter
	eof     bool    // io.EOF was returned: it is returned for good
	checked pageSet // pages of the ring cons reads that a read has checked (see checkRead)

	// Write side, guarded by wmu.
	wmu       dirLock
	prod      *ring.Producer
	prodArea  int // the segment direction prod writes into
	wwait     waiter
	wantSpace int    // bytes the parked writer waits for
	wrote     uint64 // bytes ever written into prod
	committed int    // bytes [0, committed) of prod's data area are backed by memory

	rdl, wdl *deadline

	// wokeReader says that the last publish of ours had to wake the
	// peer's reader (under wmu; read by our Read): its answer then comes
	// after a kernel wake-up, tens of microseconds, and spinning for it
	// only takes the CPU the kernel would hand the peer.
	wokeReader atomic.Bool

	// ReadFrom and WriteTo run the user's Read or Write while holding
	// their direction's lock, for as long as that takes: Close must not
	// wait for them.
	userCalls userCalls

	shutWrite atomic.Bool // CloseWrite was called; read by Write's loop and its waiter
	shutRead  atomic.Bool // CloseRead was called; read by Read's loop and its waiter

	// Accessed atomically or through channels.
	closed    atomic.Bool   // Close was called; set before done is closed
	done      chan struct{} // closed by Close
	closeOnce sync.Once
	res       *resources      // what a dropped conn gives back; see dropped
	cleanup   runtime.Cleanup // gives back res if the conn is dropped unclosed

	// The wake-up carrier: the side socket, its reader and its writes,
	// and the peer's end (see side.go).
	carrier carrier

	stats    *connStats // this conn's traffic (see stats.go); apart, so that the counters hold it past a dropped conn's collection
	counters *Counters  // the Listener's or Dialer's, set before the conn is handed out; nil: none
}

var _ net.Conn = (*Conn)(nil)

// A ring's control block is the segment's: the two packages agree on its
// size without importing each other.
var _ [segment.ControlSize - ring.ControlSize]struct{}
var _ [ring.ControlSize - segment.ControlSize]struct{}

// newConn builds a conn over a mapped segment whose rings are initialized:
// we produce into direction prod and consume direction 1-prod. Nobody
// reads the side socket until a call parks (see side.go).
func newConn(side net.Conn, seg *segment.Segment, prod int, policy WaitPolicy) (_ *Conn, err error) {
	defer fault.Catch(&err, fault.Guard(), corrupted)
	p, err := ring.NewProducerSplit(seg.Control(prod), seg.Data(prod))
	if err != nil {
		return nil, err
	}
	cons, err := ring.NewConsumerSplit(seg.Control(1-prod), seg.Data(1-prod))
	if err != nil {
		return nil, err
	}
	// Space goes back to the peer in quarters of the ring, not after
	// every read: a Read then writes nothing the peer's core must fetch
	// back. Our Write waits for at most half the ring (wantSpace), which
	// the batching requires.
	cons.SetConsumeBatch(cons.Cap() / 4)
	c := &Conn{
		seg:      seg,
		policy:   policy,
		network:  "shm",
		cons:     cons,
		checked:  newPageSet(cons.Cap()),
		prod:     p,
		prodArea: prod,
		res:      &resources{side: side, seg: seg, prod: p, cons: cons},
		stats:    new(connStats),
		rdl:      newDeadline(),
		wdl:      newDeadline(),
		done:     make(chan struct{}),
	}
	c.carrier.init(side, &c.closed, c.done, &c.rwait, &c.wwait, c.stats)
	c.rmu.init()
	c.wmu.init()
	c.initWaiters()
	// A conn the program drops without Close gives its memory back once
	// it is unreachable (nothing holds a conn while no call is made on
	// it: parked calls read the side socket themselves).
	c.res.self = weak.Make(c)
	c.cleanup = runtime.AddCleanup(c, dropped, c.res)
	return c, nil
}

// resources are what a conn holds outside the Go heap, and what must learn
// of its end. They must not point back at the Conn, or a dropped conn would
// never become unreachable.
type resources struct {
	side     net.Conn
	seg      *segment.Segment
	prod     *ring.Producer
	cons     *ring.Consumer
	self     weak.Pointer[Conn] // the conn's key in counters
	counters *Counters          // set with Conn.counters
	onClose  func()             // run once when the conn ends, if set before it is handed out
}

// dropped gives back the resources of a conn that became unreachable without
// Close, as an os.File closes its descriptor: nobody can call it any more,
// so nothing else touches the mapping. The peer is told as by Close (both
// rings marked closed, then the side socket closed), and the mapping goes.
// Its traffic goes into the counters' totals, as a closed conn's does.
func dropped(r *resources) {
	// The counters take the conn's traffic before the peer can learn of
	// its end.
	if r.counters != nil {
		r.counters.connDropped(r.self)
	}
	markClosed(r.prod, r.cons)
	r.side.Close()
	r.seg.Close()
	if r.onClose != nil {
		r.onClose()
	}
}

func notify(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// Read reads up to len(b) bytes. It returns what is readable now (at least
// one byte), or blocks until something is; after the peer closed its end it
// returns the bytes left, then io.EOF.
func (c *Conn) Read(b []byte) (int, error) {
	n, err := c.read(b)
	if err != nil && err != io.EOF {
		err = c.opError("read", err)
	}
	return n, err
}

func (c *Conn) read(b []byte) (n int, err error) {
	defer fault.Catch(&err, fault.Guard(), corrupted)
	if err := c.acquire(&c.rmu, c.rdl, io.EOF); err != nil {
		return 0, err
	}
	defer c.rmu.Unlock()
	for {
		if err := c.readStop(); err != nil {
			return 0, err
		}
		n, err := c.readRing(b)
		if n > 0 {
			c.consumed(n)
			trace.Mark(trace.ReadDone)
			return n, nil
		}
		if err != nil {
			return 0, err
		}
		if len(b) == 0 {
			return 0, nil
		}
		if err := c.awaitData(); err != nil {
			return 0, err
		}
	}
}

// readRing reads what is readable now into b, at most len(b) bytes, once
// checkRead has checked the pages that takes (until every page has been
// checked). Called under rmu.
func (c *Conn) readRing(b []byte) (int, error) {
	if c.checked.left == 0 || len(b) == 0 {
		return c.cons.Read(b)
	}
	a, err := c.cons.Len()
	if err != nil || a == 0 {
		return 0, err
	}
	// No more than was checked: the peer may publish more meanwhile.
	n, err := c.checkRead(min(len(b), a))
	if err != nil {
		return 0, err
	}
	return c.cons.Read(b[:n])
}

// readStop reports why a read must not go on: the conn is closed, the read
// deadline has passed, or the stream has ended for us (io.EOF). Called
// under rmu.
func (c *Conn) readStop() error {
	switch {
	case c.closed.Load():
		return net.ErrClosed
	case c.rdl.expired():
		return os.ErrDeadlineExceeded
	case c.eof || c.shutRead.Load():
		// Whatever the peer publishes after closing (it may clear its
		// flag and go on), the stream has ended.
		return io.EOF
	}
	return nil
}

// consumed accounts for n bytes taken out of the ring and wakes the peer's
// writer if it parked for space. Called under rmu.
func (c *Conn) consumed(n int) {
	c.stats.bytesRead.add(n)
	c.wake(c.cons.WakeWriter(), c.cons.WriterWord(), handshake.WakeSpace)
}

// awaitData is what a read does when it found the ring empty: io.EOF once
// the peer closed and everything it wrote has been read, errPeerReset if
// it died without closing, else it waits (see await) and returns nil for
// the caller to look again. Called under rmu.
func (c *Conn) awaitData() error {
	if c.cons.WriterClosed() {
		// The producer stored its last tail before the flag; one more
		// look either finds those bytes or confirms the end.
		if l, err := c.cons.Len(); l == 0 && err == nil {
			c.eof = true
			return io.EOF
		}
		return nil
	}
	if c.carrier.peerEnded() {
		if l, err := c.cons.Len(); l == 0 && err == nil && !c.cons.WriterClosed() {
			return errPeerReset
		}
		return nil
	}
	c.stats.bytesRead.flush() // before waiting, for Stats
	return c.await(&c.rwait)
}

// Write writes all of b, blocking while the ring is full, or returns how
// much it wrote and why it stopped.
func (c *Conn) Write(b []byte) (int, error) {
	n, err := c.write(b)
	return n, c.opError("write", err)
}

func (c *Conn) write(b []byte) (written int, err error) {
	trace.Mark(trace.WriteEnter)
	defer fault.Catch(&err, fault.Guard(), corrupted)
	if err := c.acquire(&c.wmu, c.wdl, errBrokenPipe); err != nil {
		return 0, err
	}
	defer c.wmu.Unlock()
	for {
		if err := c.writeStop(); err != nil {
			return written, err
		}
		if err := c.commit(len(b) - written); err != nil {
			return written, err
		}
		n, err := c.prod.Write(b[written:])
		if n > 0 {
			trace.Mark(trace.Published)
			c.produced(n)
			written += n
			if written == len(b) {
				// Done, even if the peer closed meanwhile: the bytes were
				// handed over, as with a socket.
				return written, nil
			}
			continue
		}
		if err != nil || len(b) == 0 {
			return written, err
		}
		if err := c.awaitSpace(len(b) - written); err != nil {
			return written, err
		}
	}
}

// writeStop reports why a write must not go on: the conn is closed, the
// write deadline has passed, the stream is shut (EPIPE) or the peer died.
// Called under wmu.
func (c *Conn) writeStop() error {
	switch {
	case c.closed.Load():
		return net.ErrClosed
	case c.wdl.expired():
		return os.ErrDeadlineExceeded
	case c.shutWrite.Load() || c.prod.ReaderClosed():
		return errBrokenPipe
	case c.carrier.peerEnded():
		return errPeerReset
	}
	return nil
}

// produced accounts for n bytes published into the ring and wakes the
// peer's reader if it parked. Called under wmu.
func (c *Conn) produced(n int) {
	c.wrote += uint64(n)
	c.stats.bytesWritten.add(n)
	k := c.prod.WakeReader()
	if woke := k != ring.WaitNone; woke != c.wokeReader.Load() {
		c.wokeReader.Store(woke)
	}
	c.wake(k, c.prod.ReaderWord(), handshake.WakeData)
}

// awaitSpace waits (see await) for room for want more bytes, or half the
// ring if that is less. That amount holds only while the call spins, so a
// big write does not copy a few bytes at every small read of the peer:
// once parked, any read of the peer wakes it (the peer cannot tell how
// much room it waits for), and the caller writes what fits. Called under
// wmu.
func (c *Conn) awaitSpace(want int) error {
	c.wantSpace = min(want, c.prod.Cap()/2)
	c.stats.bytesWritten.flush() // before waiting, for Stats
	return c.await(&c.wwait)
}

// maxCommitStep bounds a commit step (see commit), so that no one Write
// of a ring larger than the default stalls long: populating 256 KiB took
// 0.3-0.4 ms here, 1 MiB 1 ms, 8 MiB 9.5 ms (the half of a 16 MiB ring a
// doubling step would ask for).
const maxCommitStep = 256 << 10

// commit makes sure the next n bytes written into our ring land on
// committed memory. Pages are committed as the writer first reaches them,
// so an idle conn costs a few pages; once the writer has gone round the
// ring this costs one comparison. Running out of memory (a full /dev/shm,
// the memory cgroup's limit) is an error for this Write, not a SIGBUS.
//
// A step commits at least as much again as is committed already (1, 2,
// 4, ... pages), so a ring is committed in a few steps, not a page at a
// time: a step costs some eight system calls (the memory cgroup's
// figures, then the pages), which may also wake the runtime's sysmon
// thread, and with 64-byte messages one step per page put them into one
// round trip in 64: 130-170 us, the p99 of a sparse exchange. A step
// grows no larger than maxCommitStep. When memory is short, the step
// shrinks to what this Write needs.
func (c *Conn) commit(n int) error {
	capacity := c.prod.Cap()
	if c.committed == capacity {
		return nil
	}
	need := int(min(c.wrote+uint64(n), uint64(capacity)))
	if need <= c.committed {
		return nil
	}
	end := min(capacity, max(need, c.committed+min(c.committed, maxCommitStep)))
	err := c.seg.Commit(c.prodArea, c.committed, end-c.committed)
	if errors.Is(err, segment.ErrNoMemory) && end > need {
		// A step that a full tmpfs cannot hold fails part way, keeping
		// the pages it did populate: give back those past what this
		// Write needs, or they stay taken from every other conn. Nothing
		// was written there (the writer has not been round the ring);
		// if this fails they stay, as they would have.
		_ = c.seg.Decommit(c.prodArea, need, end-need)
		end = need
		err = c.seg.Commit(c.prodArea, c.committed, end-c.committed)
	}
	if err != nil {
		if errors.Is(err, segment.ErrNoMemory) {
			return err
		}
		return fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	c.committed = min(capacity, (end+segment.PageSize-1)&^(segment.PageSize-1))
	return nil
}

// CloseWrite shuts down the writing side: the peer reads what was written,
// then io.EOF. Reading goes on. Later Writes fail with EPIPE, and so does
// a Write blocked for space when CloseWrite is called (having written
// part of its buffer, which the peer reads before io.EOF), as on a TCP
// conn: CloseWrite never waits for the peer.
func (c *Conn) CloseWrite() error {
	// A Write copying into the ring publishes that piece first: marking
	// the ring closed under the write mutex puts end-of-stream after every
	// byte a Write reported written.
	return c.shutdown(&c.shutWrite, &c.wwait, &c.wmu, func() {
		c.prod.Close()
		c.wake(c.prod.WakeReader(), c.prod.ReaderWord(), handshake.WakeData)
	})
}

// CloseRead shuts down the reading side, as a TCP conn's does: Reads
// from then on, and a Read blocked when it is called, return io.EOF (what
// a TCP conn's Read returns after CloseRead on Linux), and the bytes left
// in the ring are dropped. From then on the peer's Writes fail with EPIPE,
// and so does one blocked for space, rather than wait forever for a
// reader. Writing goes on. CloseRead never waits for the peer.
func (c *Conn) CloseRead() error {
	return c.shutdown(&c.shutRead, &c.rwait, &c.rmu, func() {
		c.cons.Close()
		c.wake(c.cons.WakeWriter(), c.cons.WriterWord(), handshake.WakeSpace)
	})
}

// shutdown is CloseRead's and CloseWrite's common part for one direction:
// it sets shut, wakes the direction's blocked call (w's condition includes
// shut: it returns) and those queued for its lock l, then, under l, with
// no call of that direction in the ring any more, runs closeEnd to mark
// our end of the ring closed and wake the peer if it parked on that ring.
// Waiting for l (behind a ReadFrom or WriteTo in the caller's code) ends at
// Close, which marks the ring closed itself.
func (c *Conn) shutdown(shut *atomic.Bool, w *waiter, l *dirLock, closeEnd func()) (err error) {
	if c.closed.Load() {
		return c.opError("close", net.ErrClosed)
	}
	if shut.Swap(true) {
		return nil
	}
	close(l.shut)
	notify(w.wake)
	c.poke()
	defer fault.Catch(&err, fault.Guard(), corrupted)
	if c.acquire(l, nil, nil) != nil {
		return nil // closed
	}
	defer l.Unlock()
	if c.closed.Load() {
		return nil // Close marked the ring closed
	}
	closeEnd()
	return nil
}

// Close closes the conn. Blocked Reads and Writes (also those waiting
// behind a ReadFrom or WriteTo) return an error wrapping net.ErrClosed;
// the peer reads what was written, then io.EOF, and its Writes fail.
// Close waits for calls in flight to leave the shared memory,
// then unmaps it; it never waits for the peer, nor for a ReadFrom or
// WriteTo blocked in the user's Read or Write (the memory is unmapped when
// that returns). The first Close returns nil (unless unmapping fails),
// later ones an error wrapping net.ErrClosed.
func (c *Conn) Close() error {
	first := false
	c.closeOnce.Do(func() {
		first = true
		c.closed.Store(true)
		close(c.done)
	})
	if !first {
		return c.opError("close", net.ErrClosed)
	}
	c.cleanup.Stop()
	c.poke() // a call parked reading the side socket sees done
	writeHeld := c.userCalls.beginClose()
	// Mark both rings closed before the side socket ends, so the peer can
	// tell an orderly close (io.EOF) from a crash (connection reset). This
	// is done under the write mutex: a Write still copying (a blocked one
	// has returned, done is closed) publishes its bytes first, so the
	// peer never sees end-of-stream before data that was accepted. A
	// ReadFrom inside the user's Read holds that mutex for as long as the
	// user's Read takes, and copies nothing meanwhile: then the flags (two
	// atomic stores) are set beside it.
	if !writeHeld {
		c.wmu.Lock()
	}
	markClosed(c.prod, c.cons)
	c.wakeDozingReader()
	if !writeHeld {
		c.wmu.Unlock()
	}
	// The peer sees end-of-file; a call reading the side returns.
	c.carrier.close()
	if !c.userCalls.endClose() {
		// A ReadFrom or WriteTo is inside the user's Read or Write,
		// holding its side's lock: the last of them out unmaps
		// (finishClose).
		return nil
	}
	return c.opError("close", c.finishClose())
}

// finishClose waits for calls in flight to leave the shared memory, then
// unmaps it and reports the conn closed.
func (c *Conn) finishClose() error {
	c.rmu.Lock()
	c.wmu.Lock()
	c.stats.bytesRead.flush()
	c.stats.bytesWritten.flush()
	err := c.seg.Close()
	c.wmu.Unlock()
	c.rmu.Unlock()
	c.carrier.waitLate()
	if c.counters != nil {
		c.counters.connClosed(c)
	}
	if c.res.onClose != nil {
		c.res.onClose()
	}
	return err
}

// userCode runs f, the user's Read or Write on a buffer of ours (ReadFrom,
// writing, or WriteTo), unless Close has begun. If Close ran meanwhile and
// this was the last such call, it sets *finish: the caller must then drop
// what f returned and call finishClose once it has released its
// direction's lock.
func (c *Conn) userCode(finish *bool, writing bool, f func() (int, error)) (int, error) {
	if !c.userCalls.enter(writing) {
		return 0, net.ErrClosed
	}
	defer func() {
		if c.userCalls.leave(writing) {
			*finish = true
		}
	}()
	return f()
}

// abort ends a conn that was never handed out: the caller closes the
// side socket.
func (c *Conn) abort() {
	c.cleanup.Stop()
	c.closed.Store(true)
	close(c.done)
	c.seg.Close()
}

// markClosed sets both rings' closed flags (atomic stores in shared
// memory), surviving a truncated mapping.
func markClosed(prod *ring.Producer, cons *ring.Consumer) {
	var err error
	defer fault.Catch(&err, fault.Guard(), corrupted)
	prod.Close()
	cons.Close()
}

// LocalAddr returns the side socket's local address.
func (c *Conn) LocalAddr() net.Addr { return c.carrier.localAddr() }

// RemoteAddr returns the side socket's remote address.
func (c *Conn) RemoteAddr() net.Addr { return c.carrier.remoteAddr() }

// SetDeadline sets the read and write deadlines.
func (c *Conn) SetDeadline(t time.Time) error { return c.setDeadline(t, c.rdl, c.wdl) }

// SetReadDeadline sets the deadline for Reads, including one in progress.
func (c *Conn) SetReadDeadline(t time.Time) error { return c.setDeadline(t, c.rdl) }

// SetWriteDeadline sets the deadline for Writes, including one in
// progress. A Write that times out may have written part of its buffer.
func (c *Conn) SetWriteDeadline(t time.Time) error { return c.setDeadline(t, c.wdl) }

// setDeadline moves the deadlines given to t and makes a call parked
// reading the side socket look at its own again.
func (c *Conn) setDeadline(t time.Time, ds ...*deadline) error {
	if c.closed.Load() {
		return c.opError("set", net.ErrClosed)
	}
	for _, d := range ds {
		d.set(t)
	}
	c.poke()
	return nil
}

// ringSize returns the capacity of each of the two rings, in bytes.
func (c *Conn) ringSize() int { return c.prod.Cap() }
