package conn

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

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
	// server speaks first) or shuts its writing side before sending
	// anything, is accepted as an ordinary socket conn, with
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
	// not writable), the dialer cannot map ours, or its binding is not in
	// ours (ErrSegmentMismatch: a relay between us, a swapped file). A shortage that passes
	// (out of file descriptors or memory) never falls back: the dialer is
	// told to try again. It may be called from several goroutines at once.
	OnFallback func(remote net.Addr, reason error)

	// NetListenConfig, if set, makes the side socket's listener in
	// Listen: for a Control function (socket options such as
	// SO_REUSEPORT), KeepAlive and the like. nil means a zero
	// net.ListenConfig.
	NetListenConfig *net.ListenConfig
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
		err = validWait("ListenConfig.Wait", lc.Wait)
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
	ln, err := cmp.Or(lc.NetListenConfig, new(net.ListenConfig)).Listen(ctx, network, address)
	if err != nil {
		return nil, err
	}
	return lc.serve(ln, ringCap), nil
}

// newListener wraps an existing listener (tests wrap theirs to hide the
// side socket's descriptor). The Listener owns ln from then on.
func (lc *ListenConfig) newListener(ln net.Listener) (*Listener, error) {
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
