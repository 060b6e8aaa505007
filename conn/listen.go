package conn

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/shmconn/shmconn/internal/fault"
	"github.com/shmconn/shmconn/internal/handshake"
	"github.com/shmconn/shmconn/ring"
	"github.com/shmconn/shmconn/segment"
)

// ListenConfig configures a Listener. Its zero value listens with
// defaults.
type ListenConfig struct {
	// RingSize is the largest ring capacity, per direction, granted to a
	// dialer (which may ask for less). 0 means DefaultRingSize.
	RingSize int

	// Wait is how blocked Reads and Writes of accepted conns wait; see
	// WaitPolicy.
	Wait WaitPolicy

	// HandshakeTimeout bounds each client's negotiation, so a client that
	// connects and says nothing costs one goroutine for a bounded time. 0
	// means DefaultHandshakeTimeout.
	HandshakeTimeout time.Duration

	// MaxPendingHandshakes bounds the clients negotiating (or negotiated
	// and not yet taken by Accept) at once; more wait in the kernel's
	// backlog. 0 means 1024.
	MaxPendingHandshakes int

	// AcceptPlain serves clients that do not speak shmconn on the same
	// socket: a client whose first byte is not the handshake's magic, or
	// that sends nothing within PlainDetectTimeout (a protocol where the
	// server speaks first), is accepted as an ordinary socket conn, with
	// the bytes already read replayed to the application. Without it such
	// clients are dropped.
	AcceptPlain bool

	// PlainDetectTimeout is how long, with AcceptPlain, a silent client is
	// waited for before it is taken for a plain client. 0 means 200ms.
	PlainDetectTimeout time.Duration

	// NoFallback refuses dialers when memory cannot be shared, instead of
	// carrying their stream over the side socket.
	NoFallback bool

	// MaxConns bounds the conns accepted and not yet closed. At the bound,
	// new clients wait in the kernel's backlog until a conn closes. 0 means
	// no bound.
	MaxConns int

	// AuthorizePeer decides, for a unix side socket, whether the client
	// process may connect, from the credentials the kernel reports for it.
	// A non-nil error drops the client. nil means the default rule: the
	// same uid as this process, or root. TCP clients carry no credentials
	// and are not checked (their segment is still created mode 0600, so
	// only our uid can map it).
	AuthorizePeer func(PeerCred) error

	// OnHandshakeError, if set, is told about every client dropped during
	// the handshake. Dropped clients never make Accept fail. It may be
	// called from several goroutines at once.
	OnHandshakeError func(remote net.Addr, err error)

	// OnFallback, if set, is told about every dialer whose conn falls back
	// to the side socket, and why: we cannot create segments (no /dev/shm,
	// not writable), or the dialer cannot map ours. A shortage that passes
	// (out of file descriptors or memory) never falls back: the dialer is
	// told to try again. It may be called from several goroutines at once.
	OnFallback func(remote net.Addr, reason error)
}

const (
	defaultMaxPending         = 1024
	defaultPlainDetectTimeout = 200 * time.Millisecond
)

func (lc *ListenConfig) validate() (ringCap int, err error) {
	ringCap, err = ringSize("ListenConfig.RingSize", lc.RingSize)
	switch {
	case err != nil:
	case lc.HandshakeTimeout < 0:
		err = fmt.Errorf("%w: ListenConfig.HandshakeTimeout %v", ErrConfig, lc.HandshakeTimeout)
	case lc.MaxPendingHandshakes < 0:
		err = fmt.Errorf("%w: ListenConfig.MaxPendingHandshakes %d", ErrConfig, lc.MaxPendingHandshakes)
	case lc.MaxConns < 0:
		err = fmt.Errorf("%w: ListenConfig.MaxConns %d", ErrConfig, lc.MaxConns)
	case lc.PlainDetectTimeout < 0:
		err = fmt.Errorf("%w: ListenConfig.PlainDetectTimeout %v", ErrConfig, lc.PlainDetectTimeout)
	default:
		err = lc.Wait.validate()
	}
	return ringCap, err
}

// Listener accepts shmconn conns. It is a net.Listener: hand it to
// http.Serve, grpc.Server.Serve, redcon or your own loop. Clients
// negotiate in their own goroutines, so a slow or hostile client never
// holds up Accept or other clients.
type Listener struct {
	ln      net.Listener
	cfg     ListenConfig
	ringCap int
	slots   chan struct{} // one per pending handshake
	live    chan struct{} // one per accepted, unclosed conn; nil: no bound

	ready chan net.Conn // negotiated conns for Accept

	mu      sync.Mutex
	raw     map[net.Conn]struct{} // sockets mid-handshake, closed by Close
	failErr error                 // set before failed is closed

	counters Counters // see Stats

	failed    chan struct{} // closed when the underlying listener failed
	done      chan struct{} // closed by Close
	closeOnce sync.Once
	wg        sync.WaitGroup
}

var _ net.Listener = (*Listener)(nil)

// Listen announces on the local network address ("unix" or "tcp") with a
// zero ListenConfig.
func Listen(network, address string) (*Listener, error) {
	var lc ListenConfig
	return lc.Listen(context.Background(), network, address)
}

// Listen announces on the local network address. Before it does, it
// removes segment files left behind by crashed processes.
func (lc *ListenConfig) Listen(ctx context.Context, network, address string) (*Listener, error) {
	ringCap, err := lc.validate()
	if err != nil {
		return nil, &net.OpError{Op: "listen", Net: network, Err: err}
	}
	lc.removeStale() // best effort: a failure here must not stop a server
	var nlc net.ListenConfig
	ln, err := nlc.Listen(ctx, network, address)
	if err != nil {
		return nil, err
	}
	return lc.serve(ln, ringCap), nil
}

// NewListener wraps an existing listener, such as one inherited from a
// supervisor. The Listener owns ln from then on.
func (lc *ListenConfig) NewListener(ln net.Listener) (*Listener, error) {
	ringCap, err := lc.validate()
	if err != nil {
		return nil, &net.OpError{Op: "listen", Net: ln.Addr().Network(), Addr: ln.Addr(), Err: err}
	}
	lc.removeStale()
	return lc.serve(ln, ringCap), nil
}

// removeStale reaps segment files of crashed creators. A file younger than
// a few handshakes may belong to a live process in another pid namespace.
func (lc *ListenConfig) removeStale() {
	hs := lc.HandshakeTimeout
	if hs == 0 {
		hs = DefaultHandshakeTimeout
	}
	segment.RemoveStale(max(time.Minute, 3*hs))
}

func (lc *ListenConfig) serve(ln net.Listener, ringCap int) *Listener {
	cfg := *lc
	if cfg.HandshakeTimeout == 0 {
		cfg.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if cfg.MaxPendingHandshakes == 0 {
		cfg.MaxPendingHandshakes = defaultMaxPending
	}
	if cfg.PlainDetectTimeout == 0 {
		cfg.PlainDetectTimeout = defaultPlainDetectTimeout
	}
	if cfg.AuthorizePeer == nil {
		cfg.AuthorizePeer = sameUserOrRoot
	}
	l := &Listener{
		ln:      ln,
		cfg:     cfg,
		ringCap: ringCap,
		slots:   make(chan struct{}, cfg.MaxPendingHandshakes),
		ready:   make(chan net.Conn),
		raw:     make(map[net.Conn]struct{}),
		failed:  make(chan struct{}),
		done:    make(chan struct{}),
	}
	if cfg.MaxConns > 0 {
		l.live = make(chan struct{}, cfg.MaxConns)
	}
	l.wg.Add(1)
	go l.acceptLoop()
	return l
}

// Accept waits for the next negotiated conn: a *Conn, or a plain socket
// conn for a client that fell back or (with AcceptPlain) never spoke
// shmconn. After Close it returns an error wrapping net.ErrClosed.
func (l *Listener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ready:
		return c, nil
	case <-l.done:
	case <-l.failed:
		select {
		case <-l.done:
		default:
			return nil, l.failErr
		}
	}
	return nil, &net.OpError{Op: "accept", Net: l.ln.Addr().Network(), Addr: l.ln.Addr(), Err: net.ErrClosed}
}

// Close stops listening, aborts handshakes in progress and closes conns
// negotiated but not yet accepted. Conns already accepted stay open.
func (l *Listener) Close() error {
	err := net.ErrClosed
	l.closeOnce.Do(func() {
		close(l.done)
		err = l.ln.Close()
		l.mu.Lock()
		for c := range l.raw {
			c.Close()
		}
		l.mu.Unlock()
		l.wg.Wait()
	})
	if err != nil {
		return &net.OpError{Op: "close", Net: l.ln.Addr().Network(), Addr: l.ln.Addr(), Err: err}
	}
	return nil
}

// Addr returns the side socket's listening address.
func (l *Listener) Addr() net.Addr { return l.ln.Addr() }

func (l *Listener) acceptLoop() {
	defer l.wg.Done()
	var backoff time.Duration
	for {
		if l.live != nil {
			select {
			case l.live <- struct{}{}:
			case <-l.done:
				return
			}
		}
		select {
		case l.slots <- struct{}{}:
		case <-l.done:
			l.releaseLive()
			return
		}
		raw, err := l.ln.Accept()
		if err != nil {
			<-l.slots
			l.releaseLive()
			select {
			case <-l.done:
				return
			default:
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || isTemporary(err) {
				// Out of file descriptors and the like: back off and
				// retry, as net/http's Server does.
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				select {
				case <-time.After(backoff):
				case <-l.done:
					return
				}
				continue
			}
			l.failErr = err
			close(l.failed)
			return
		}
		backoff = 0
		l.mu.Lock()
		select {
		case <-l.done:
			l.mu.Unlock()
			raw.Close()
			<-l.slots
			l.releaseLive()
			return
		default:
		}
		l.raw[raw] = struct{}{}
		l.mu.Unlock()
		l.wg.Add(1)
		go l.serveClient(raw)
	}
}

// releaseLive frees a MaxConns slot.
func (l *Listener) releaseLive() {
	if l.live != nil {
		<-l.live
	}
}

func isTemporary(err error) bool {
	var t interface{ Temporary() bool }
	return errors.As(err, &t) && t.Temporary()
}

// serveClient negotiates with one client and hands the result to Accept.
func (l *Listener) serveClient(raw net.Conn) {
	defer l.wg.Done()
	defer func() { <-l.slots }()
	c, err := l.negotiate(raw)
	l.mu.Lock()
	delete(l.raw, raw)
	l.mu.Unlock()
	if err != nil {
		l.counters.handshakeError(err)
		raw.Close()
		l.releaseLive()
		if l.cfg.OnHandshakeError != nil {
			l.cfg.OnHandshakeError(raw.RemoteAddr(), err)
		}
		return
	}
	if l.live != nil {
		c = trackClose(c, l.releaseLive)
	}
	select {
	case l.ready <- c:
	case <-l.done:
		c.Close()
	}
}

// negotiate runs the listener's side of the handshake with one client:
// the conn to hand to Accept, or why the client was dropped.
func (l *Listener) negotiate(raw net.Conn) (net.Conn, error) {
	if err := l.authorize(raw); err != nil {
		return nil, err
	}
	deadline := time.Now().Add(l.cfg.HandshakeTimeout)
	hello, plain, err := l.readHello(raw, deadline)
	if plain != nil || err != nil {
		return plain, err
	}
	h, err := handshake.ParseHello(hello)
	if err != nil {
		return nil, handshakeError("reading hello", err)
	}
	if h.Version != handshake.Version {
		raw.Write(handshake.AppendRefusal(nil, h.Version))
		return nil, handshakeErrorOf(ErrVersion, "reading hello", fmt.Errorf("the dialer speaks version %d, we speak %d", h.Version, handshake.Version))
	}
	size := l.grant(h.RingSize)
	seg, err := l.createSegment(raw, h, size)
	if err != nil {
		return l.cannotShare(raw, h, err)
	}
	return l.share(raw, h, seg, size)
}

// authorize checks a unix client's credentials.
func (l *Listener) authorize(raw net.Conn) error {
	cred, ok, err := peerCred(raw)
	if err != nil {
		return handshakeError("reading peer credentials", err)
	}
	if ok {
		if err := l.cfg.AuthorizePeer(cred); err != nil {
			return handshakeErrorOf(ErrPeerNotAllowed, "authorizing peer", err)
		}
	}
	return nil
}

// readHello reads the client's hello. With AcceptPlain, a client whose
// first bytes cannot begin a hello, or that sends less than the magic
// within PlainDetectTimeout, is returned as a plain conn instead: a dialer
// sends its whole hello at once. Once the magic is complete the client is
// a dialer, and a hello that stops short is a handshake error.
func (l *Listener) readHello(raw net.Conn, deadline time.Time) (hello []byte, plain net.Conn, err error) {
	var b [handshake.HelloSize]byte
	n := 0
	if l.cfg.AcceptPlain {
		detect := time.Now().Add(l.cfg.PlainDetectTimeout)
		if deadline.Before(detect) {
			detect = deadline
		}
		if err := raw.SetReadDeadline(detect); err != nil {
			return nil, nil, handshakeError("reading hello", err)
		}
		n, err = handshake.ReadHello(raw, b[:len(handshake.Magic)], 0)
		switch {
		case errors.Is(err, ErrNotShmconn) || n > 0 && err != nil || isTimeout(err):
			l.counters.plainClient()
			plain, err = l.plain(raw, b[:n])
			return nil, plain, err
		case err != nil:
			return nil, nil, handshakeError("reading hello", err)
		}
	}
	if err := raw.SetDeadline(deadline); err != nil {
		return nil, nil, handshakeError("reading hello", err)
	}
	n, err = handshake.ReadHello(raw, b[:], n)
	if err != nil {
		return nil, nil, handshakeError("reading hello", err)
	}
	return b[:n], nil, nil
}

// grant is the ring size given to a dialer that asked for requested.
func (l *Listener) grant(requested uint32) int {
	if requested == 0 {
		return l.ringCap
	}
	return min(l.ringCap, max(MinRingSize, floorPow2(int(min(requested, MaxRingSize)))))
}

// createSegment creates a segment for rings of size bytes and lays the
// rings out in it: an anonymous memory file if the dialer can take it as a
// descriptor (over a unix socket), else a named file in /dev/shm. Until
// the dialer maps a named file, anyone of our uid can truncate it, so
// touching it may fault: the fault becomes an error.
func (l *Listener) createSegment(raw net.Conn, h handshake.Hello, size int) (seg *segment.Segment, err error) {
	if h.Flags&handshake.FlagDescriptor != 0 && descriptorSocket(raw) != nil {
		seg, err = segment.CreateAnonymous(size)
	} else {
		seg, err = segment.Create(size)
	}
	if err != nil {
		return nil, err
	}
	if err := initRings(seg); err != nil {
		seg.Close()
		return nil, err
	}
	return seg, nil
}

// initRings makes both of a new segment's rings empty. It touches only the
// first page (the control blocks): data pages are committed by the writer
// that first reaches them.
func initRings(seg *segment.Segment) (err error) {
	defer fault.Catch(&err, fault.Guard(), corrupted)
	return errors.Join(
		ring.InitSplit(seg.Control(0), seg.Data(0)),
		ring.InitSplit(seg.Control(1), seg.Data(1)))
}

// cannotShare answers a dialer when the segment could not be created
// (because of err): fall back to the side socket if both sides allow it,
// fail the dial if the shortage passes, refuse it otherwise.
func (l *Listener) cannotShare(raw net.Conn, h handshake.Hello, err error) (net.Conn, error) {
	fallback := h.Flags&handshake.FlagFallback != 0 && !l.cfg.NoFallback
	reply := l.reply(handshake.StatusPlain)
	switch {
	case transient(err):
		reply.Status = handshake.StatusBusy
	case l.cfg.NoFallback && h.Flags&handshake.FlagFallback != 0:
		// A dialer that wants the fallback when we do not is refused, or
		// it would take our closing for a plain conn. A dialer without
		// it gives up on StatusPlain on its own, with a clear error.
		reply.Status = handshake.StatusRefused
	}
	serr := l.send(raw, reply)
	switch {
	case reply.Status == handshake.StatusBusy:
		return nil, handshakeError("creating the segment", err)
	case !fallback:
		return nil, handshakeErrorOf(ErrNoSharedMemory, "creating the segment", err)
	case serr != nil:
		return nil, handshakeError("sending reply", serr)
	}
	l.fellBack(raw, err)
	return l.plain(raw, nil)
}

// share offers the segment, with rings of size bytes, to the dialer and
// waits for its ack.
func (l *Listener) share(raw net.Conn, h handshake.Hello, seg *segment.Segment, size int) (net.Conn, error) {
	reply := l.reply(handshake.StatusShared)
	reply.RingSize, reply.Token, reply.Name = uint32(size), seg.Token(), seg.Name()
	fd := seg.FD()
	if fd >= 0 {
		reply.Flags |= handshake.ReplyDescriptor
	}
	if err := l.sendWith(raw, reply, fd); err != nil {
		seg.Close()
		return nil, handshakeError("sending reply", err)
	}
	var ack [handshake.AckSize]byte
	if _, err := io.ReadFull(raw, ack[:]); err != nil {
		seg.Close()
		return nil, handshakeError("reading ack", err)
	}
	switch ack[0] {
	case handshake.AckShared:
		if err := seg.Unlink(); err != nil {
			seg.Close()
			return nil, handshakeError("unlinking the segment", err)
		}
		c, err := newConn(raw, seg, 1, l.cfg.Wait)
		if err == nil {
			err = raw.SetDeadline(time.Time{})
		}
		if err != nil {
			seg.Close()
			return nil, handshakeError("attaching the rings", err)
		}
		l.counters.sharedConn(c)
		return c, nil
	case handshake.AckPlain:
		seg.Close()
		if h.Flags&handshake.FlagFallback == 0 || l.cfg.NoFallback {
			return nil, handshakeErrorOf(ErrNoSharedMemory, "reading ack", errDialerPlain)
		}
		l.fellBack(raw, errDialerPlain)
		return l.plain(raw, nil)
	default:
		seg.Close()
		return nil, handshakeError("reading ack", fmt.Errorf("%w: ack %#x", handshake.ErrProtocol, ack[0]))
	}
}

// errDialerPlain is the fallback reason when the dialer cannot map the
// segment.
var errDialerPlain = errors.New("the dialer cannot map the segment")

// reply starts a reply with our version and fallback flag.
func (l *Listener) reply(status byte) handshake.Reply {
	r := handshake.Reply{Version: handshake.Version, Status: status}
	if !l.cfg.NoFallback {
		r.Flags = handshake.ReplyFallback
	}
	return r
}

// fellBack counts and reports a conn that goes on over the side socket.
func (l *Listener) fellBack(raw net.Conn, reason error) {
	l.counters.fallback(reason == errDialerPlain)
	if l.cfg.OnFallback != nil {
		l.cfg.OnFallback(raw.RemoteAddr(), reason)
	}
}

func (l *Listener) send(raw net.Conn, r handshake.Reply) error { return l.sendWith(raw, r, -1) }

// sendWith sends r with descriptor fd attached, if fd >= 0.
func (l *Listener) sendWith(raw net.Conn, r handshake.Reply, fd int) error {
	b, err := handshake.AppendReply(nil, r)
	switch {
	case err != nil:
	case fd >= 0:
		err = sendWithDescriptor(descriptorSocket(raw), b, fd)
	default:
		_, err = raw.Write(b)
	}
	return err
}

// plain returns raw as an ordinary conn, replaying the bytes already read.
func (l *Listener) plain(raw net.Conn, read []byte) (net.Conn, error) {
	if err := raw.SetDeadline(time.Time{}); err != nil {
		return nil, handshakeError("clearing the deadline", err)
	}
	if len(read) == 0 {
		return raw, nil
	}
	return &replayConn{Conn: raw, pending: append([]byte(nil), read...)}, nil
}

func floorPow2(n int) int {
	p := 1
	for p*2 <= n {
		p *= 2
	}
	return p
}

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
