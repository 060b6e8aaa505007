package conn

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/shmconn/shmconn/internal/handshake"
	"github.com/shmconn/shmconn/segment"
)

// Dialer connects to a Listener. Its zero value dials with defaults.
type Dialer struct {
	// RingSize is the capacity in bytes asked for each direction's ring,
	// rounded up to a power of two; the listener may grant less. 0 means
	// DefaultRingSize.
	RingSize int

	// Wait is how blocked Reads and Writes wait; see WaitPolicy.
	Wait WaitPolicy

	// Timeout bounds the whole dial, connection and handshake. 0 means
	// the context's deadline alone, and DefaultHandshakeTimeout for the
	// handshake if the context has none.
	Timeout time.Duration

	// NoFallback makes the dial fail with ErrNoSharedMemory when memory
	// cannot be shared, instead of returning the side socket as a plain
	// net.Conn.
	NoFallback bool

	// OnFallback, if set, is called when a dial falls back to the side
	// socket, with the reason: the listener cannot share memory, this
	// process cannot map the segment (another /dev/shm, another user), or
	// the two do not map one segment over one side socket
	// (ErrSegmentMismatch: a relay between them, a swapped file).
	// A shortage that passes (out of file descriptors or memory) never
	// falls back: the dial fails instead and may be retried.
	OnFallback func(reason error)

	// Counters, if set, counts this Dialer's dials (and those of any
	// other Dialer given the same Counters); see Stats.
	Counters *Counters

	// NetDialer, if set, connects the side socket: for a LocalAddr, a
	// Control function (socket options, a network namespace), KeepAlive
	// and the like. Its Timeout and Deadline bound the connect alone, on
	// top of Timeout and the context. nil means a zero net.Dialer.
	NetDialer *net.Dialer
}

// validate checks d's fields, naming the bad one as ListenConfig's
// validate does, and resolves the ring size to ask for.
func (d *Dialer) validate() (ringCap int, err error) {
	ringCap, err = ringSize("Dialer.RingSize", d.RingSize)
	switch {
	case err != nil:
	case d.Timeout < 0:
		err = fmt.Errorf("%w: Dialer.Timeout %v", ErrConfig, d.Timeout)
	default:
		err = validWait("Dialer.Wait", d.Wait)
	}
	return ringCap, err
}

// Dial connects to the shmconn Listener at address on network ("unix" or
// "tcp") with a zero Dialer.
func Dial(network, address string) (net.Conn, error) {
	var d Dialer
	return d.DialContext(context.Background(), network, address)
}

// Dial connects to address on network.
func (d *Dialer) Dial(network, address string) (net.Conn, error) {
	return d.DialContext(context.Background(), network, address)
}

// DialContext connects to address on network. Its signature is the one
// net/http's Transport.DialContext, gRPC's WithContextDialer (through a
// one-line adapter) and go-redis's Options.Dialer take. The result is a
// *Conn when memory is shared, else (with the fallback on) the side
// socket. A server that is not a shmconn listener is recognised by the
// first byte of its answer (most servers answer the hello, a line, at
// once) and the dial fails with ErrNotShmconn; only a server that never
// answers costs the whole timeout. The package documentation lists the
// errors.
func (d *Dialer) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	size, err := d.validate()
	if err != nil {
		return nil, &net.OpError{Op: "dial", Net: network, Err: err}
	}
	if d.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d.Timeout)
		defer cancel()
	}
	side, err := cmp.Or(d.NetDialer, new(net.Dialer)).DialContext(ctx, network, address)
	if err != nil {
		return nil, err
	}
	c, err := d.handshake(ctx, side, size)
	if err != nil {
		d.Counters.handshakeError(err)
		side.Close()
		return nil, &net.OpError{Op: "dial", Net: network, Source: side.LocalAddr(), Addr: side.RemoteAddr(), Err: err}
	}
	return c, nil
}

// aLongTimeAgo is a deadline that has passed: setting it aborts blocked
// socket calls.
var aLongTimeAgo = time.Unix(1, 0)

func (d *Dialer) handshake(ctx context.Context, side net.Conn, size int) (net.Conn, error) {
	dl := time.Now().Add(DefaultHandshakeTimeout)
	if t, ok := ctx.Deadline(); ok {
		dl = t
	}
	if err := side.SetDeadline(dl); err != nil {
		return nil, handshakeError("setting the deadline", err)
	}
	stop := context.AfterFunc(ctx, func() { side.SetDeadline(aLongTimeAgo) })
	c, fellBack, err := d.negotiate(side, size)
	if !stop() {
		// The context ended during the handshake; even if it got through,
		// the caller has given up. Report the context's reason, whatever
		// the aborted step said.
		if c != nil && c != side {
			c.(*Conn).abort()
		}
		return nil, handshakeError("handshake", context.Cause(ctx))
	}
	if err != nil {
		return nil, err
	}
	if err := side.SetDeadline(time.Time{}); err != nil {
		if c != side {
			c.(*Conn).abort()
		}
		return nil, handshakeError("clearing the deadline", err)
	}
	if sc, ok := c.(*Conn); ok {
		d.Counters.sharedConn(sc)
	} else if d.OnFallback != nil {
		d.OnFallback(fellBack)
	}
	return c, nil
}

// errListenerPlain is the fallback reason when the listener says it
// cannot share memory.
var errListenerPlain = errors.New("the listener cannot share memory")

// negotiate runs the dialer's side of the handshake: a *Conn, or the side
// socket and why it fell back, or why it failed.
func (d *Dialer) negotiate(side net.Conn, size int) (c net.Conn, fellBack, err error) {
	hello := handshake.Hello{Version: handshake.Version, RingSize: uint32(size)}
	if !d.NoFallback {
		hello.Flags |= handshake.FlagFallback
	}
	replies := newReplyReader(side)
	defer replies.close() // descriptors that came with a reply we do not use
	if replies.canTakeDescriptor() {
		hello.Flags |= handshake.FlagDescriptor
	}
	if _, err := side.Write(handshake.AppendHello(nil, hello)); err != nil {
		return nil, nil, handshakeError("sending hello", err)
	}
	rep, err := handshake.ReadReply(replies)
	if err != nil {
		return nil, nil, handshakeError("reading reply", err)
	}
	if rep.Status != handshake.StatusShared {
		// Only a shared reply may carry a descriptor.
		if _, err := replies.descriptor(rep); err != nil {
			return nil, nil, handshakeError("reading reply", err)
		}
	}
	switch {
	case rep.Status == handshake.StatusRefused:
		return nil, nil, handshakeError("reading reply", errors.New("refused by the listener"))
	case rep.Status == handshake.StatusBusy:
		return nil, nil, handshakeError("reading reply", errors.New("the listener is short of file descriptors or memory; try again"))
	case rep.Status == handshake.StatusPlain:
		if d.NoFallback {
			return nil, nil, handshakeErrorOf(ErrNoSharedMemory, "reading reply", errListenerPlain)
		}
		d.Counters.fallback(false)
		return side, errListenerPlain, nil
	case !validRingSize(int(rep.RingSize)) || int(rep.RingSize) > size:
		return nil, nil, handshakeError("reading reply", fmt.Errorf("%w: granted ring size %d (asked %d)", handshake.ErrProtocol, rep.RingSize, size))
	}
	fd, err := replies.descriptor(rep)
	if err != nil {
		return nil, nil, handshakeError("reading reply", err)
	}
	return d.attach(side, rep, fd)
}

// testHookOpenSegment, if set, runs before the dialer opens a named
// segment: tests swap the file there.
var testHookOpenSegment func(name string)

// attach maps the segment the listener created (passed as descriptor fd,
// or named in rep), binds it to the side socket and acknowledges it, or
// falls back to the side socket if both sides allow it.
func (d *Dialer) attach(side net.Conn, rep handshake.Reply, fd int) (c net.Conn, fellBack, err error) {
	seg, err := mapSegment(side, rep, fd)
	switch {
	case err != nil && transient(err):
		// Closing without an ack tells the listener to give up too.
		return nil, nil, handshakeError("mapping the segment", err)
	case err != nil && !d.mayFallBack(rep):
		// A listener that does not allow the fallback would close the
		// socket we hand out.
		return nil, nil, handshakeErrorOf(ErrNoSharedMemory, "mapping the segment", err)
	case err != nil:
		if _, err := side.Write([]byte{handshake.AckPlain}); err != nil {
			return nil, nil, handshakeError("sending ack", err)
		}
		d.Counters.fallback(true)
		return side, err, nil
	}
	if _, err := side.Write([]byte{handshake.AckShared}); err != nil {
		seg.Close()
		return nil, nil, handshakeError("sending ack", err)
	}
	if mismatch, err := readConfirmation(side, seg); err != nil {
		seg.Close()
		return nil, nil, err
	} else if mismatch != nil {
		seg.Close()
		if !d.mayFallBack(rep) {
			return nil, nil, handshakeErrorOf(ErrNoSharedMemory, "reading confirmation", mismatch)
		}
		d.Counters.fallback(true)
		return side, mismatch, nil
	}
	sc, err := newConn(side, seg, 0, d.Wait)
	if err != nil {
		seg.Close()
		return nil, nil, handshakeError("attaching the rings", err)
	}
	if cred, ok, err := peerCred(side); err != nil {
		sc.abort()
		return nil, nil, handshakeError("reading peer credentials", err)
	} else if ok {
		sc.peer = &cred
	}
	return sc, nil, nil
}

// mayFallBack reports whether both sides allow the fallback, as the
// listener's rep says for its side.
func (d *Dialer) mayFallBack(rep handshake.Reply) bool {
	return !d.NoFallback && rep.Flags&handshake.ReplyFallback != 0
}

// mapSegment maps the segment offered in rep (or passed as fd) and writes
// our binding record into it: how we see the side socket, for the
// listener to check that it is its segment we mapped and its socket we
// came through.
func mapSegment(side net.Conn, rep handshake.Reply, fd int) (seg *segment.Segment, err error) {
	if fd >= 0 {
		seg, err = segment.Map(fd, int(rep.RingSize), rep.Token)
	} else {
		if testHookOpenSegment != nil {
			testHookOpenSegment(rep.Name)
		}
		seg, err = segment.Open(rep.Name, int(rep.RingSize), rep.Token)
	}
	if err != nil {
		return nil, err
	}
	rec, _ := handshake.Binding(side.LocalAddr(), side.RemoteAddr())
	if err := seg.Bind(rec); err != nil {
		seg.Close()
		return nil, err
	}
	return seg, nil
}

// readConfirmation reads the listener's answer to our ack. mismatch, if
// not nil, says the listener did not find our binding in its segment
// (ConfirmPlain): we mapped another file, or a relay stands between us.
// A confirmation the segment does not bear out is such a relay's lie: an
// error.
func readConfirmation(side net.Conn, seg *segment.Segment) (mismatch, err error) {
	var b [handshake.ConfirmSize]byte
	if _, err := io.ReadFull(side, b[:]); err != nil {
		return nil, handshakeError("reading confirmation", err)
	}
	switch b[0] {
	case handshake.ConfirmPlain:
		return fmt.Errorf("%w: the listener did not find our binding in its segment", ErrSegmentMismatch), nil
	case handshake.ConfirmShared:
	default:
		return nil, handshakeError("reading confirmation", fmt.Errorf("%w: confirmation %#x", handshake.ErrProtocol, b[0]))
	}
	ok, err := seg.BindingConfirmed()
	switch {
	case err != nil:
		return nil, handshakeError("reading confirmation", err)
	case !ok:
		return nil, handshakeErrorOf(ErrSegmentMismatch, "reading confirmation", errors.New("the segment we mapped bears no confirmation"))
	}
	return nil, nil
}
