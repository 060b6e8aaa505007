package conn

import (
	"bytes"
	"errors"
	"io"
	"os"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/shmconn/shmconn/internal/futex"
	"github.com/shmconn/shmconn/internal/handshake"
	"github.com/shmconn/shmconn/internal/trace"
	"github.com/shmconn/shmconn/ring"
)

// This file is the wake-up carrier: everything that moves a wake-up from
// one process to the other, and notices the peer's end, goes through it.
// The rest of the package uses six calls: wake (wake the peer's parked or
// dozing reader or writer as its flag says; never blocks), doze (see
// doze.go: block this call's thread briefly on its own flag word, which
// the peer wakes with a futex wake, before parkOnSide), parkOnSide (park a
// call until a wake-up for it, its deadline, close or the peer's end),
// pokeSide (make a parked or dozing call look again), pollSide (a spinning call's
// look for the peer's end) and peerEnded. Beside these the rest of the
// package reads four of the carrier's fields: side (the socket itself, for
// addresses, Close and the handshake), rawSide (nil: WaitSpin cannot poll,
// see await), and peerDead and peerGone (the peer's end, which Read, Write
// and block look at). Another carrier (an eventfd passed at the handshake)
// replaces this file and those fields' uses; the decision to wake at all
// (the ring's waiting flags) and how long to spin first (package spin) are
// not the carrier's.
//
// The side socket carries wake-up bytes and, by its end-of-file, the
// peer's end. Nobody reads it while no call waits: a parked call reads it
// itself, so that the kernel wakes that very goroutine when the peer's
// wake-up arrives, as it wakes a socket's reader. (A goroutine that read
// the socket for everybody and passed wake-ups on through a channel
// costs a second goroutine wake-up per wake-up, which the runtime serves
// by waking another thread: measured, parked round trips took 3x a unix
// socket's.) At most one call reads at a time, the side's holder; a call
// that parks while another holds the side waits for the holder to pass
// its wake-up on. A peer's death is noticed by whoever reads next: a
// parked call at once, a spinning WaitSpin leader within pollSideEvery,
// a spinning or dozing call when it parks.
//
// Every system call on the wake-up path is raw (unix.RawSyscall, inside
// the side socket's RawConn where the call may have to wait): the wake-up
// write, the side socket's reads and the futex calls. A system call the
// runtime is told of (entersyscall) wakes the runtime's sysmon thread
// whenever it sleeps deeply, which it does between sparse requests: one
// more thread woken, on the other CPU, at every hop. The socket is
// non-blocking, so a raw read or write never blocks; a read that finds
// nothing returns to RawConn.Read, which parks on the netpoller and keeps
// the read deadline.

// pollSideEvery is how often a spinning WaitSpin leader looks at its side
// socket for the peer's end (a non-blocking read, about a microsecond).
const pollSideEvery = time.Millisecond

// sideState is a conn's side-socket reading state; the side socket is
// read only by the holder of Conn.sideMu.
type sideState struct {
	holder   atomic.Pointer[waiter] // the waiter whose call reads the side now
	deadline int64                  // read deadline set on the side (deadline.at units); guarded by sideMu
	lastPoll atomic.Int64           // when the leader last ran pollSide: monotonic nanoseconds since epoch

	// One raw read of the side socket (see readRaw), built once so that
	// reading allocates nothing; guarded by sideMu.
	buf    [64]byte
	n      int
	errno  syscall.Errno
	wait   bool // readFn lets RawConn.Read wait for the poller on EAGAIN
	readFn func(fd uintptr) bool
}

// readOnce is sideState.readFn: one raw read into buf, retried on EINTR.
// It reports whether RawConn.Read is done: always when it must not wait,
// else unless the socket was empty.
func (s *sideState) readOnce(fd uintptr) bool {
	for {
		n, _, e := unix.RawSyscall(unix.SYS_READ, fd, uintptr(unsafe.Pointer(&s.buf[0])), uintptr(len(s.buf)))
		if e == syscall.EINTR {
			continue
		}
		s.n, s.errno = int(n), e
		if e != 0 {
			s.n = 0
		}
		return !s.wait || e != syscall.EAGAIN
	}
}

// readRaw reads the side socket once with a raw system call, waiting on
// the netpoller (until the side's read deadline) if wait is set and
// nothing is there. It returns the bytes read (in sideRd.buf), or io.EOF
// at the socket's end, or the error (RawConn's: closed, deadline; the
// read's: EAGAIN without wait, a reset). Called under sideMu, with
// rawSide set.
func (c *Conn) readRaw(wait bool) ([]byte, error) {
	s := &c.sideRd
	s.wait = wait
	if err := c.rawSide.Read(s.readFn); err != nil {
		return nil, err
	}
	switch {
	case s.errno != 0:
		return nil, s.errno
	case s.n == 0:
		return nil, io.EOF
	}
	return s.buf[:s.n], nil
}

// otherWaiter returns the waiter of the other direction.
func (c *Conn) otherWaiter(w *waiter) *waiter {
	if w == &c.rwait {
		return &c.wwait
	}
	return &c.rwait
}

// parkOnSide parks w's call until its condition may hold (a wake-up for
// it, or wake, if not nil, receives), its deadline passes or moves, the
// conn closes or the peer goes. It reads the side socket itself if nobody
// else does.
func (c *Conn) parkOnSide(w *waiter, wake <-chan struct{}) {
	c.stats.parks.Add(1)
	trace.Mark(trace.Park)
	if trace.Enabled {
		// Under the constant: a deferred call, even of an empty
		// function, is still made at every return.
		defer trace.Mark(trace.Unpark)
	}
	w.parked.Store(true)
	defer w.parked.Store(false)
	if !c.sideMu.TryLock() {
		c.block(w, w.wake, wake)
		return
	}
	c.sideRd.holder.Store(w)
	c.readSide(w, wake)
	c.sideRd.holder.Store(nil)
	c.sideMu.Unlock()
	// A call of the other direction may be parked on its channel, waiting
	// for wake-ups nobody reads now: let it look and take the side.
	if other := c.otherWaiter(w); other.parked.Load() {
		notify(other.wake)
	}
}

// readSide reads the side socket for w's call until there is reason to
// look at the conn again. Wake-ups for the other direction are passed on.
func (c *Conn) readSide(w *waiter, wake <-chan struct{}) {
	var buf [64]byte
	for {
		c.setSideDeadline(w.dl.at.Load())
		// After the deadline is in place (which clears a poke), so a
		// reason given before a poke is seen here.
		if c.closed.Load() || c.peerDead.Load() || w.dl.expired() || w.ready() || len(wake) > 0 {
			return
		}
		select {
		case <-w.wake: // passed on by the other direction, or CloseWrite
			return
		default:
		}
		var b []byte
		var err error
		if c.rawSide != nil {
			b, err = c.readRaw(true)
		} else {
			var n int
			n, err = c.side.Read(buf[:])
			b = buf[:n]
		}
		if c.dispatch(w, b) {
			return
		}
		switch {
		case err == nil:
		case errors.Is(err, os.ErrDeadlineExceeded):
			// Our deadline, or a poke: look again.
			c.sideRd.deadline = -1 // unknown now: set it again
		default:
			if !c.closed.Load() {
				c.peerEnded()
			}
			return
		}
	}
}

// setSideDeadline puts the side's read deadline at at (deadline.at units,
// 0 for none), skipping the call when it is there already: with no
// deadline, parking arms no timer.
func (c *Conn) setSideDeadline(at int64) {
	if at == c.sideRd.deadline {
		return
	}
	c.sideRd.deadline = at
	var t time.Time
	if at != 0 {
		t = epoch.Add(time.Duration(at))
	}
	c.side.SetReadDeadline(t)
}

// dispatch hands wake-up bytes to the calls they are for and reports
// whether one was for w. Other bytes are ignored: a confused peer can cost
// us a read, never a wrong decision (waiters re-check shared memory).
func (c *Conn) dispatch(w *waiter, b []byte) (mine bool) {
	if len(b) > 0 {
		c.stats.wakeupsReceived.Add(uint64(len(b)))
	}
	for _, v := range b {
		var to *waiter
		switch v {
		case handshake.WakeData:
			to = &c.rwait
		case handshake.WakeSpace:
			to = &c.wwait
		default:
			continue
		}
		if to == w {
			mine = true
		} else {
			notify(to.wake)
		}
	}
	return mine
}

// peerEnded records that the side socket ended: the peer closed or died.
func (c *Conn) peerEnded() {
	c.peerOnce.Do(func() {
		c.peerDead.Store(true)
		close(c.peerGone)
	})
}

// pokeSide makes the side's holder, if any, and a dozing call look at the
// conn again: after its deadline moved, CloseWrite, Close, or a WaitSpin
// leader's wake-up.
func (c *Conn) pokeSide() {
	if c.sideRd.holder.Load() != nil {
		c.side.SetReadDeadline(aLongTimeAgo)
	}
	c.pokeDoze(&c.rwait)
	c.pokeDoze(&c.wwait)
}

// pollSide reads what the side socket holds without waiting, if nobody
// else reads it: wake-ups are passed on, end-of-file recorded. A spinning
// WaitSpin leader calls it now and then, since it never parks to see the
// peer's end.
func (c *Conn) pollSide() {
	if c.rawSide == nil || !c.sideMu.TryLock() {
		return
	}
	defer c.sideMu.Unlock()
	b, err := c.readRaw(false) // one attempt: never wait for the poller
	var errno syscall.Errno
	switch {
	case err == nil:
		c.dispatch(nil, b)
	case err == io.EOF:
		c.peerEnded()
	case errors.As(err, &errno) && errno != syscall.EAGAIN:
		c.peerEnded()
	}
}

// wake wakes the peer's call that waited as kind says, the value a
// WakeReader or WakeWriter claimed: ring.WaitDoze, a futex wake on word,
// the flag it dozes on; any other value but ring.WaitNone, the byte b on
// the side socket. A futex wake that fails (only an unmapped word could)
// is sent as a byte: the doze parks on the side socket in the end.
func (c *Conn) wake(kind uint32, word *atomic.Uint32, b byte) {
	switch kind {
	case ring.WaitNone:
		return
	case ring.WaitDoze:
		if futex.Wake(word) {
			c.stats.wakeupsSent.Add(1)
			c.stats.futexWakeupsSent.Add(1)
			return
		}
	}
	c.sendWake(b)
}

var wakeMsgs = [256][]byte{
	handshake.WakeData:  {handshake.WakeData},
	handshake.WakeSpace: {handshake.WakeSpace},
}

// wakeWait bounds how long a wake-up write may hold up the Read or Write
// that sends it on a side conn without a descriptor (tryWake needs one).
const wakeWait = time.Millisecond

// sendWake wakes the peer's parked reader or writer without ever making
// its caller wait for the peer. One non-blocking write (tryWake) is what
// almost every wake-up takes; a wake-up that does not fit (the peer has
// stopped reading its side socket, whose buffer then holds hundreds of
// wake-ups) is handed to sendLate. None is dropped: the ones already
// queued may be of the other kind.
func (c *Conn) sendWake(b byte) {
	c.wakeMu.Lock()
	defer c.wakeMu.Unlock()
	c.stats.wakeupsSent.Add(1)
	if c.lateBusy {
		if !bytes.Contains(c.late, wakeMsgs[b]) {
			c.late = append(c.late, b)
		}
		return
	}
	if c.tryWake(b) {
		return
	}
	if c.rawSide == nil {
		// A short deadline stands in for the non-blocking write.
		c.side.SetWriteDeadline(time.Now().Add(wakeWait))
		if _, err := c.side.Write(wakeMsgs[b]); err == nil || !isTimeout(err) {
			return
		}
	}
	c.late = append(c.late[:0], b)
	c.lateBusy = true
	c.lateDone.Add(1)
	go c.sendLate()
}

// sendLate writes the wake-ups that did not fit, blocking for as long as
// the peer does not read, until it does or Close closes the side socket.
// A peer that never reads its side socket costs us this goroutine, and
// its own parked calls their wake-ups.
func (c *Conn) sendLate() {
	defer c.lateDone.Done()
	c.wakeMu.Lock()
	defer c.wakeMu.Unlock()
	for len(c.late) > 0 {
		b := append([]byte(nil), c.late...)
		c.late = c.late[:0]
		c.wakeMu.Unlock()
		c.side.SetWriteDeadline(time.Time{})
		_, err := c.side.Write(b)
		c.wakeMu.Lock()
		if err != nil {
			c.late = c.late[:0]
		}
	}
	c.lateBusy = false
}

// tryWake makes one non-blocking write of the wake-up byte, which is what
// almost every wake-up takes. It goes around the side socket's deadline on
// purpose: setting a deadline arms a runtime timer, and arming one can
// wake the thread sleeping in the netpoller, a second thread woken for
// every wake-up (measured: parked round trips 3.5x a unix socket's with
// it). It reports whether nothing more is to be done: the byte went out,
// or the socket is closed. The caller handles a full socket buffer.
func (c *Conn) tryWake(b byte) bool {
	if c.rawSide == nil {
		return false
	}
	c.wakeByte = b
	err := c.rawSide.Write(c.wakeFn)
	switch {
	case err != nil: // closed
		return true
	case c.wakeErrno == 0 && c.wakeN == 1:
		return true
	case c.wakeErrno == syscall.EAGAIN || c.wakeErrno == syscall.EINTR:
		return false
	}
	c.side.Close() // the peer sees the conn end rather than sleep forever
	return true
}

// writeWake is Conn.wakeFn: one raw write of the wake-up byte wakeByte,
// never waiting for the poller. Called under wakeMu.
func (c *Conn) writeWake(fd uintptr) bool {
	m := wakeMsgs[c.wakeByte]
	n, _, e := unix.RawSyscall(unix.SYS_WRITE, fd, uintptr(unsafe.Pointer(&m[0])), uintptr(len(m)))
	c.wakeN, c.wakeErrno = int(n), e
	return true
}
