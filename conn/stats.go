package conn

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"weak"

	"github.com/shmconn/shmconn/atomicx"
)

// Stats is a snapshot of what a Listener, a Dialer's Counters or one Conn
// has done: whether conns got shared memory, why those that did not fell
// back, how handshakes failed, and the traffic of the shared-memory conns.
// The traffic of conns still open is included as of the snapshot.
type Stats struct {
	// SharedConns counts conns set up over shared memory.
	SharedConns uint64
	// Fallbacks counts conns that went on over the side socket because
	// memory could not be shared, by reason.
	Fallbacks FallbackStats
	// PlainAccepted counts clients a Listener with AcceptPlain served that
	// never spoke shmconn (a real redis-cli, a browser). Always 0 for a
	// Dialer.
	PlainAccepted uint64
	// HandshakeErrors counts dials or accepted clients that failed during
	// the handshake, by kind.
	HandshakeErrors HandshakeErrorStats

	// Traffic of the shared-memory conns.
	BytesRead, BytesWritten uint64
	WakeupsSent             uint64 // wake-ups sent to a parked or dozing peer: bytes written to the side socket and futex wakes
	FutexWakeupsSent        uint64 // of WakeupsSent, the futex wakes of a dozing peer
	WakeupsReceived         uint64 // wake-up bytes read from the side socket, and dozes the peer ended
	DozeWakeups             uint64 // of WakeupsReceived, the dozes the peer ended (it claimed the flag and woke the futex)
	Parks                   uint64 // times a Read or Write blocked on the kernel (WaitSpin followers and dozes included)
	Dozes                   uint64 // of Parks, those that blocked the thread on a futex briefly (see WaitAdaptive); one that parks after it counts once more
}

// FallbackStats are the reasons a conn went on over the side socket.
type FallbackStats struct {
	// NoSegment: the listener could not create a segment (no /dev/shm,
	// out of memory or of file descriptors).
	NoSegment uint64
	// OpenFailed: the dialer could not map the listener's segment (another
	// /dev/shm, another user, a segment it refused to trust), or the two
	// sides found they do not map one segment over one side socket
	// (ErrSegmentMismatch).
	OpenFailed uint64
}

// HandshakeErrorStats are the kinds of handshake failure.
type HandshakeErrorStats struct {
	Timeout        uint64 // the handshake ran out of time, or its context ended
	NoSharedMemory uint64 // ErrNoSharedMemory: no fallback allowed
	Protocol       uint64 // a malformed, unexpected or refused handshake message (other version, fallback not allowed)
	Closed         uint64 // the side socket closed during the handshake: the peer closed or reset it, or Listener.Close cut the handshake off
	Other          uint64 // anything else, such as an unauthorized peer
}

// Counters accumulates Stats for any number of Dialers sharing it (set
// Dialer.Counters); a Listener keeps its own. Its methods are safe for
// concurrent use. Counting costs an atomic add per dial, per wake-up and
// per park, and a non-atomic add per Read or Write call (never per byte, and
// never on a line the peer process or the other direction touches).
type Counters struct {
	sharedConns   atomic.Uint64
	noSegment     atomic.Uint64
	openFailed    atomic.Uint64
	plainAccepted atomic.Uint64
	hsErrors      [hsKinds]atomic.Uint64

	mu     sync.Mutex
	live   map[weak.Pointer[Conn]]*connStats // open conns and their traffic, read at snapshot; weak, so a dropped conn can be collected
	closed connStats                         // traffic of conns already closed
}

// Handshake error kinds, the indexes of Counters.hsErrors.
const (
	hsTimeout = iota
	hsNoSharedMemory
	hsProtocol
	hsClosed
	hsOther
	hsKinds
)

// connStats is one conn's traffic. The byte counts are kept by the
// direction that moves the bytes, on lines of their own, so counting never
// makes the reader and the writer of a conn share a cache line, and costs
// a non-atomic add on the hot path; see byteCount.
type connStats struct {
	bytesRead    byteCount // under rmu
	bytesWritten byteCount // under wmu
	// Written by the carrier's wake-up writer and side reader (side.go)
	// and by waiting calls of either direction: rare events.
	wakeupsSent      atomic.Uint64
	futexWakeupsSent atomic.Uint64
	wakeupsReceived  atomic.Uint64
	dozeWakeups      atomic.Uint64
	parks            atomic.Uint64
	dozes            atomic.Uint64
}

// byteCount counts one direction's bytes. The calls of that direction,
// serialized by its mutex, add to pending, a non-atomic field; it is flushed
// every flushEvery calls, before the call waits, and whenever a snapshot
// can take the mutex. A snapshot is therefore exact for an idle or a
// blocked direction and at most flushEvery calls behind for a busy one.
type byteCount struct {
	pending uint64 // guarded by the direction's mutex
	calls   uint64 // guarded by the direction's mutex
	flushed atomic.Uint64
	_       [atomicx.FalseSharingRange - 24]byte
}

const flushEvery = 64

// add counts n bytes; the direction's mutex is held.
func (b *byteCount) add(n int) {
	b.pending += uint64(n)
	if b.calls++; b.calls%flushEvery == 0 {
		b.flush()
	}
}

// flush makes pending visible to snapshots; the direction's mutex is
// held.
func (b *byteCount) flush() {
	if b.pending != 0 {
		b.flushed.Add(b.pending)
		b.pending = 0
	}
}

// load returns the flushed count, first flushing what is pending if
// the direction is not in a call (mu free).
func (b *byteCount) load(mu *dirLock) uint64 {
	if mu.TryLock() {
		b.flush()
		mu.Unlock()
	}
	return b.flushed.Load()
}

// collected returns the count of a conn that was collected: what was
// flushed and what its calls left pending. Nothing can add to pending
// any more, the conn being unreachable, nor flush it: its mutex went
// with it. Only the conn's cleanup may call it: the runtime orders a
// cleanup after every use of what it was registered for, so reading
// pending there is no race, where any other goroutine's read (a
// Snapshot's) would be one.
func (b *byteCount) collected() uint64 { return b.flushed.Load() + b.pending }

// addFlushedTo adds the flushed traffic of a collected conn, whose
// cleanup has not run yet, to st: all that any snapshot showed of it.
func (s *connStats) addFlushedTo(st *Stats) {
	st.BytesRead += s.bytesRead.flushed.Load()
	st.BytesWritten += s.bytesWritten.flushed.Load()
	s.addRareTo(st)
}

// statsInto adds c's traffic to st.
func (c *Conn) statsInto(st *Stats) {
	s := c.stats
	st.BytesRead += s.bytesRead.load(&c.rmu)
	st.BytesWritten += s.bytesWritten.load(&c.wmu)
	s.addRareTo(st)
}

func (s *connStats) addRareTo(st *Stats) {
	st.WakeupsSent += s.wakeupsSent.Load()
	st.FutexWakeupsSent += s.futexWakeupsSent.Load()
	st.WakeupsReceived += s.wakeupsReceived.Load()
	st.DozeWakeups += s.dozeWakeups.Load()
	st.Parks += s.parks.Load()
	st.Dozes += s.dozes.Load()
}

// fold adds the traffic of a closed conn (all of it flushed) or of a
// collected one (see byteCount.collected) to s.
func (s *connStats) fold(from *connStats, collected bool) {
	read, written := from.bytesRead.flushed.Load(), from.bytesWritten.flushed.Load()
	if collected {
		read, written = from.bytesRead.collected(), from.bytesWritten.collected()
	}
	s.bytesRead.flushed.Add(read)
	s.bytesWritten.flushed.Add(written)
	s.wakeupsSent.Add(from.wakeupsSent.Load())
	s.futexWakeupsSent.Add(from.futexWakeupsSent.Load())
	s.wakeupsReceived.Add(from.wakeupsReceived.Load())
	s.dozeWakeups.Add(from.dozeWakeups.Load())
	s.parks.Add(from.parks.Load())
	s.dozes.Add(from.dozes.Load())
}

// Snapshot returns the counts so far. A nil Counters has counted nothing.
func (cs *Counters) Snapshot() Stats {
	var st Stats
	if cs == nil {
		return st
	}
	st.SharedConns = cs.sharedConns.Load()
	st.Fallbacks = FallbackStats{NoSegment: cs.noSegment.Load(), OpenFailed: cs.openFailed.Load()}
	st.PlainAccepted = cs.plainAccepted.Load()
	st.HandshakeErrors = HandshakeErrorStats{
		Timeout:        cs.hsErrors[hsTimeout].Load(),
		NoSharedMemory: cs.hsErrors[hsNoSharedMemory].Load(),
		Protocol:       cs.hsErrors[hsProtocol].Load(),
		Closed:         cs.hsErrors[hsClosed].Load(),
		Other:          cs.hsErrors[hsOther].Load(),
	}
	cs.mu.Lock()
	defer cs.mu.Unlock()
	st.BytesRead += cs.closed.bytesRead.flushed.Load()
	st.BytesWritten += cs.closed.bytesWritten.flushed.Load()
	cs.closed.addRareTo(&st)
	for w, s := range cs.live {
		if c := w.Value(); c != nil {
			c.statsInto(&st)
		} else {
			// Collected, its cleanup (connDropped) still to come: its
			// traffic must not drop out of the totals meanwhile. What it
			// left pending shows once the cleanup has run.
			s.addFlushedTo(&st)
		}
	}
	return st
}

// sharedConn counts c as set up over shared memory and follows its
// traffic until it closes. Safe on a nil Counters.
func (cs *Counters) sharedConn(c *Conn) {
	if cs == nil {
		return
	}
	cs.sharedConns.Add(1)
	cs.mu.Lock()
	if cs.live == nil {
		cs.live = map[weak.Pointer[Conn]]*connStats{}
	}
	cs.live[weak.Make(c)] = c.stats
	cs.mu.Unlock()
	c.counters = cs
	c.res.counters = cs
}

// connClosed moves a closed conn's traffic into the totals.
func (cs *Counters) connClosed(c *Conn) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if _, ok := cs.live[weak.Make(c)]; ok {
		delete(cs.live, weak.Make(c))
		cs.closed.fold(c.stats, false)
	}
}

// connDropped moves the traffic of a conn collected without Close (see
// dropped) into the totals, as connClosed does for a closed one, what its
// last calls left pending included.
func (cs *Counters) connDropped(w weak.Pointer[Conn]) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if s, ok := cs.live[w]; ok {
		delete(cs.live, w)
		cs.closed.fold(s, true)
	}
}

// fallback counts a conn that went on over the side socket.
func (cs *Counters) fallback(openFailed bool) {
	switch {
	case cs == nil:
	case openFailed:
		cs.openFailed.Add(1)
	default:
		cs.noSegment.Add(1)
	}
}

// plainClient counts a client that never spoke shmconn.
func (cs *Counters) plainClient() {
	if cs != nil {
		cs.plainAccepted.Add(1)
	}
}

// handshakeError counts a failed handshake by its kind.
func (cs *Counters) handshakeError(err error) {
	if cs == nil || err == nil {
		return
	}
	cs.hsErrors[handshakeErrorKind(err)].Add(1)
}

func handshakeErrorKind(err error) int {
	var ne net.Error
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded), errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, context.Canceled), errors.As(err, &ne) && ne.Timeout():
		return hsTimeout
	case errors.Is(err, ErrNoSharedMemory):
		return hsNoSharedMemory
	case isEOF(err), errors.Is(err, net.ErrClosed):
		// net.ErrClosed: our own Listener.Close cut it off.
		return hsClosed
	case errors.Is(err, ErrHandshake):
		return hsProtocol
	}
	return hsOther
}

// isEOF reports whether err says the peer closed or reset the socket.
func isEOF(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// Stats returns what the Listener has counted since it started: every
// client it negotiated with, and the traffic of the shared-memory conns it
// accepted.
func (l *Listener) Stats() Stats { return l.counters.Snapshot() }

// Stats returns the counts of d.Counters, or zero Stats when d has none.
func (d *Dialer) Stats() Stats { return d.Counters.Snapshot() }

// Stats returns this conn's traffic: bytes, wake-ups and parks, and
// SharedConns 1.
func (c *Conn) Stats() Stats {
	st := Stats{SharedConns: 1}
	c.statsInto(&st)
	return st
}
