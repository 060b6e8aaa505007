package conn

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/shmconn/shmconn/internal/handshake"
	"github.com/shmconn/shmconn/internal/trace"
)

// carrier is a conn's wake-up carrier: it moves a wake-up from one
// process to the other for a call parked on it, and notices the peer's
// end. This one is the side socket: a wake-up is one byte written to it,
// the peer's end its end-of-file.
//
// A Conn holds one carrier value and calls it only through these methods:
// send (a wake-up byte of a kind, handshake.WakeData or WakeSpace; never
// blocks), park (park a call until a wake-up for it, its deadline, close
// or the peer's end), poke (make a parked call look at the conn again),
// canPoll and poll (a spinning WaitSpin leader's look for the peer's end),
// peerEnded, close and waitLate (Close's part), and localAddr and
// remoteAddr. No code outside this file touches a carrier's fields (the
// package's tests aside). Another carrier replaces this file and nothing
// else in the conn (resources.side is the socket a dropped conn closes;
// one that needs something at the handshake, such as an eventfd passed
// over the side socket, adds that to the handshake). What is not the
// carrier's: the decision to wake at all (the
// ring's waiting flags, read by Conn.wake), the doze (doze.go: a futex
// wait on the ring's flag word, which Conn.wake ends with a futex wake
// and Conn.poke with pokeDoze), how long to spin first (package spin) and
// the waiters (wait.go), whose wake channel and parked flag it uses to
// pass wake-ups between the two directions.
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
// parked call at once, a spinning WaitSpin leader within pollEvery,
// a spinning or dozing call when it parks.
//
// The wake-up write and the non-waiting poll of the side socket are raw
// system calls (unix.RawSyscall inside the side socket's RawConn), as are,
// outside the carrier, the futex calls. A system call the runtime is told
// of (entersyscall) wakes the runtime's sysmon thread whenever it sleeps
// deeply, which it does between sparse requests: one more thread woken,
// on the other CPU, at every hop. The socket is non-blocking, so a raw
// read or write never blocks. A parked call reads through side.Read (see
// readSide).
type carrier struct {
	// Immutable after init.
	side    net.Conn        // the side socket
	rawSide syscall.RawConn // side's descriptor, for wake-ups that never wait; nil if it has none
	closed  *atomic.Bool    // the conn's: Close was called; set before done is closed
	done    <-chan struct{} // the conn's: closed by Close
	rwait   *waiter         // the conn's reader, which WakeData bytes are for
	wwait   *waiter         // the conn's writer, which WakeSpace bytes are for
	stats   *connStats

	// The peer's end.
	peerDead atomic.Bool   // side socket ended; set before peerGone is closed
	peerGone chan struct{} // closed when a reader of the side socket finds it ended
	peerOnce sync.Once

	// The side socket's reader: the side is read only by the holder of
	// sideMu.
	sideMu   sync.Mutex
	sideRd   sideState
	lastPoll atomic.Int64 // when a WaitSpin leader last ran pollNow: time.Since(epoch) in nanoseconds

	// Wake-up writes, guarded by wakeMu (which also serializes them with
	// their deadline).
	wakeMu    sync.Mutex
	late      []byte         // wake-ups waiting for room in the side socket, one of each kind
	lateBusy  bool           // sendLate is running
	lateDone  sync.WaitGroup // sendLate goroutines
	wakeByte  byte           // the byte wakeFn writes
	wakeN     int            // what wakeFn's write returned
	wakeErrno syscall.Errno
	wakeFn    func(fd uintptr) bool // writeWake, built once so that waking allocates nothing
}

// init sets k up over the side socket side for the conn whose Close sets
// closed and closes done, and whose waiters are rwait and wwait.
func (k *carrier) init(side net.Conn, closed *atomic.Bool, done <-chan struct{}, rwait, wwait *waiter, stats *connStats) {
	k.side, k.closed, k.done, k.rwait, k.wwait, k.stats = side, closed, done, rwait, wwait, stats
	k.peerGone = make(chan struct{})
	if sc, ok := side.(syscall.Conn); ok {
		k.rawSide, _ = sc.SyscallConn()
	}
	k.sideRd.deadline = -1 // unknown: the first park sets it
	k.sideRd.readFn = k.sideRd.readOnce
	k.wakeFn = k.writeWake
}

// pollEvery is how often a spinning WaitSpin leader looks at its side
// socket for the peer's end (a non-blocking read, about a microsecond).
const pollEvery = time.Millisecond

// sideState is a carrier's side-socket reading state; the side socket is
// read only by the holder of carrier.sideMu.
type sideState struct {
	holder   atomic.Pointer[waiter] // the waiter whose call reads the side now
	deadline int64                  // read deadline set on the side (deadline.at units); guarded by sideMu

	// One raw read of the side socket (see readRaw), built once so that
	// reading allocates nothing; guarded by sideMu.
	buf    [64]byte
	n      int
	errno  syscall.Errno
	readFn func(fd uintptr) bool
}

// readOnce is sideState.readFn: one raw read into buf, retried on EINTR.
// It always reports RawConn.Read done: the read never waits for the
// poller (EAGAIN is the caller's to handle).
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
		return true
	}
}

// readRaw reads the side socket once with a raw system call, without
// waiting. It returns the bytes read (in sideRd.buf), or io.EOF at the
// socket's end, or the error (RawConn's: closed; the read's: EAGAIN, a
// reset). Called under sideMu, with rawSide set.
func (k *carrier) readRaw() ([]byte, error) {
	s := &k.sideRd
	if err := k.rawSide.Read(s.readFn); err != nil {
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
func (k *carrier) otherWaiter(w *waiter) *waiter {
	if w == k.rwait {
		return k.wwait
	}
	return k.rwait
}

// park parks w's call until its condition may hold (a wake-up for it, or
// wake, if not nil, receives), its deadline passes or moves, the conn
// closes or the peer goes. It reads the side socket itself if nobody else
// does.
func (k *carrier) park(w *waiter, wake <-chan struct{}) {
	k.stats.parks.Add(1)
	trace.Mark(trace.Park)
	if trace.Enabled {
		// Under the constant: a deferred call, even of an empty
		// function, is still made at every return.
		defer trace.Mark(trace.Unpark)
	}
	w.parked.Store(true)
	defer w.parked.Store(false)
	if !k.sideMu.TryLock() {
		k.block(w, w.wake, wake)
		return
	}
	k.sideRd.holder.Store(w)
	k.readSide(w, wake)
	k.sideRd.holder.Store(nil)
	k.sideMu.Unlock()
	// A call of the other direction may be parked on its channel, waiting
	// for wake-ups nobody reads now: let it look and take the side.
	if other := k.otherWaiter(w); other.parked.Load() {
		notify(other.wake)
	}
}

// readSide reads the side socket for w's call until there is reason to
// look at the conn again. Wake-ups for the other direction are passed on.
func (k *carrier) readSide(w *waiter, wake <-chan struct{}) {
	var buf [64]byte
	for {
		k.setSideDeadline(w.dl.at.Load())
		// After the deadline is in place (which clears a poke), so a
		// reason given before a poke is seen here.
		if k.closed.Load() || k.peerDead.Load() || w.dl.expired() || w.ready() || len(wake) > 0 {
			return
		}
		select {
		case <-w.wake: // passed on by the other direction, or CloseWrite
			return
		default:
		}
		// The parked read goes through side.Read, not a raw read: one
		// parked through RawConn.Read (its func reporting not done on
		// EAGAIN) hung
		// TestWriteSizesAroundBatches (WaitSpin, 2 of 80 runs under the
		// race detector; cause not found), side.Read did not in 80.
		n, err := k.side.Read(buf[:])
		b := buf[:n]
		if k.dispatch(w, b) {
			return
		}
		switch {
		case err == nil:
		case errors.Is(err, os.ErrDeadlineExceeded):
			// Our deadline, or a poke: look again.
			k.sideRd.deadline = -1 // unknown now: set it again
		default:
			if !k.closed.Load() {
				k.endPeer()
			}
			return
		}
	}
}

// block parks the calling goroutine until wake or extra (either may be
// nil) fires, the conn closes, the peer goes, the deadline passes or
// moves. It is how a call parks while another call reads the side socket.
func (k *carrier) block(w *waiter, wake, extra <-chan struct{}) {
	timeout, changed := w.dl.arm()
	defer w.dl.disarm()
	select {
	case <-wake:
	case <-extra:
	case <-k.done:
	case <-k.peerGone:
	case <-timeout:
	case <-changed:
	}
}

// setSideDeadline puts the side's read deadline at at (deadline.at units,
// 0 for none), skipping the call when it is there already: with no
// deadline, parking arms no timer.
func (k *carrier) setSideDeadline(at int64) {
	if at == k.sideRd.deadline {
		return
	}
	k.sideRd.deadline = at
	var t time.Time
	if at != 0 {
		t = epoch.Add(time.Duration(at))
	}
	k.side.SetReadDeadline(t)
}

// dispatch hands wake-up bytes to the calls they are for and reports
// whether one was for w. Other bytes are ignored: a confused peer can cost
// us a read, never a wrong decision (waiters re-check shared memory).
func (k *carrier) dispatch(w *waiter, b []byte) (mine bool) {
	if len(b) > 0 {
		k.stats.wakeupsReceived.Add(uint64(len(b)))
	}
	for _, v := range b {
		var to *waiter
		switch v {
		case handshake.WakeData:
			to = k.rwait
		case handshake.WakeSpace:
			to = k.wwait
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

// peerEnded reports whether the side socket ended: the peer closed or
// died.
func (k *carrier) peerEnded() bool { return k.peerDead.Load() }

// endPeer records that the side socket ended.
func (k *carrier) endPeer() {
	k.peerOnce.Do(func() {
		k.peerDead.Store(true)
		close(k.peerGone)
	})
}

// poke makes the side's holder, if any, look at the conn again: after
// its deadline moved, CloseWrite, Close, or a WaitSpin leader's wake-up.
func (k *carrier) poke() {
	if k.sideRd.holder.Load() != nil {
		k.side.SetReadDeadline(aLongTimeAgo)
	}
}

// canPoll reports whether poll can see the peer's end: only a side socket
// that hides its descriptor cannot be read without waiting.
func (k *carrier) canPoll() bool { return k.rawSide != nil }

// poll runs pollNow if pollEvery has passed since it last did. A spinning
// WaitSpin leader calls it as it spins, since it never parks to see the
// peer's end.
func (k *carrier) poll() {
	if t := int64(time.Since(epoch)); t-k.lastPoll.Load() > int64(pollEvery) {
		k.lastPoll.Store(t)
		k.pollNow()
	}
}

// pollNow reads what the side socket holds without waiting, if nobody
// else reads it: wake-ups are passed on, end-of-file recorded.
func (k *carrier) pollNow() {
	if k.rawSide == nil || !k.sideMu.TryLock() {
		return
	}
	defer k.sideMu.Unlock()
	b, err := k.readRaw()
	var errno syscall.Errno
	switch {
	case err == nil:
		k.dispatch(nil, b)
	case err == io.EOF:
		k.endPeer()
	case errors.As(err, &errno) && errno != syscall.EAGAIN:
		k.endPeer()
	}
}

var wakeMsgs = [256][]byte{
	handshake.WakeData:  {handshake.WakeData},
	handshake.WakeSpace: {handshake.WakeSpace},
}

// wakeWait bounds how long a wake-up write may hold up the Read or Write
// that sends it on a side conn without a descriptor (tryWake needs one).
const wakeWait = time.Millisecond

// send wakes the peer's parked reader (b is handshake.WakeData) or
// writer (WakeSpace) without ever making
// its caller wait for the peer. One non-blocking write (tryWake) is what
// almost every wake-up takes; a wake-up that does not fit (the peer has
// stopped reading its side socket, whose buffer then holds hundreds of
// wake-ups) is handed to sendLate. None is dropped: the ones already
// queued may be of the other kind.
func (k *carrier) send(b byte) {
	k.wakeMu.Lock()
	defer k.wakeMu.Unlock()
	k.stats.wakeupsSent.Add(1)
	if k.lateBusy {
		if !bytes.Contains(k.late, wakeMsgs[b]) {
			k.late = append(k.late, b)
		}
		return
	}
	if k.tryWake(b) {
		return
	}
	if k.rawSide == nil {
		// A short deadline stands in for the non-blocking write.
		k.side.SetWriteDeadline(time.Now().Add(wakeWait))
		if _, err := k.side.Write(wakeMsgs[b]); err == nil || !isTimeout(err) {
			return
		}
	}
	k.late = append(k.late[:0], b)
	k.lateBusy = true
	k.lateDone.Add(1)
	go k.sendLate()
}

// sendLate writes the wake-ups that did not fit, blocking for as long as
// the peer does not read, until it does or Close closes the side socket.
// A peer that never reads its side socket costs us this goroutine, and
// its own parked calls their wake-ups.
func (k *carrier) sendLate() {
	defer k.lateDone.Done()
	k.wakeMu.Lock()
	defer k.wakeMu.Unlock()
	for len(k.late) > 0 {
		b := append([]byte(nil), k.late...)
		k.late = k.late[:0]
		k.wakeMu.Unlock()
		k.side.SetWriteDeadline(time.Time{})
		_, err := k.side.Write(b)
		k.wakeMu.Lock()
		if err != nil {
			k.late = k.late[:0]
		}
	}
	k.lateBusy = false
}

// tryWake makes one non-blocking write of the wake-up byte, which is what
// almost every wake-up takes. It goes around the side socket's deadline on
// purpose: setting a deadline arms a runtime timer, and arming one can
// wake the thread sleeping in the netpoller, a second thread woken for
// every wake-up (measured: parked round trips 3.5x a unix socket's with
// it). It reports whether nothing more is to be done: the byte went out,
// or the socket is closed. The caller handles a full socket buffer.
func (k *carrier) tryWake(b byte) bool {
	if k.rawSide == nil {
		return false
	}
	k.wakeByte = b
	err := k.rawSide.Write(k.wakeFn)
	switch {
	case err != nil: // closed
		return true
	case k.wakeErrno == 0 && k.wakeN == 1:
		return true
	case k.wakeErrno == syscall.EAGAIN || k.wakeErrno == syscall.EINTR:
		return false
	}
	k.side.Close() // the peer sees the conn end rather than sleep forever
	return true
}

// writeWake is Conn.wakeFn: one raw write of the wake-up byte wakeByte,
// never waiting for the poller. Called under wakeMu.
func (k *carrier) writeWake(fd uintptr) bool {
	m := wakeMsgs[k.wakeByte]
	n, _, e := unix.RawSyscall(unix.SYS_WRITE, fd, uintptr(unsafe.Pointer(&m[0])), uintptr(len(m)))
	k.wakeN, k.wakeErrno = int(n), e
	return true
}

// close closes the side socket: the peer sees end-of-file, a call reading
// the side returns, and so does a sendLate blocked on a peer that does not
// read. Its error is not the caller's concern: the socket is ours alone
// and carried only wake-ups.
func (k *carrier) close() { k.side.Close() }

// waitLate waits for the sendLate goroutines, which close ends.
func (k *carrier) waitLate() { k.lateDone.Wait() }

// localAddr returns the side socket's local address.
func (k *carrier) localAddr() net.Addr { return k.side.LocalAddr() }

// remoteAddr returns the side socket's remote address.
func (k *carrier) remoteAddr() net.Addr { return k.side.RemoteAddr() }
