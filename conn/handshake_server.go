package conn

import (
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/shmconn/shmconn/internal/fault"
	"github.com/shmconn/shmconn/internal/handshake"
	"github.com/shmconn/shmconn/internal/pow2"
	"github.com/shmconn/shmconn/ring"
	"github.com/shmconn/shmconn/segment"
)

// negotiate runs the listener's side of the handshake with one client,
// step by step (SPEC.md): the conn to hand to Accept, or why the client
// was dropped.
func (l *Listener) negotiate(raw net.Conn) (net.Conn, error) {
	cred, err := l.authorize(raw)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(l.cfg.HandshakeTimeout)
	hello, plain, err := l.readHello(raw, deadline)
	if plain != nil || err != nil {
		return plain, err
	}
	h, err := parseHello(raw, hello)
	if err != nil {
		return nil, err
	}
	size := l.grant(h.RingSize)
	seg, err := l.createSegment(raw, h, size)
	if err != nil {
		return l.cannotShare(raw, h, err)
	}
	c, err := l.share(raw, h, seg, size)
	if sc, ok := c.(*Conn); ok {
		sc.peer = cred
	}
	return c, err
}

// authorize checks a unix client's credentials, and returns them for the
// conn (nil for other clients, which carry none).
func (l *Listener) authorize(raw net.Conn) (*PeerCred, error) {
	cred, ok, err := peerCred(raw)
	if err != nil {
		return nil, handshakeError("reading peer credentials", err)
	}
	if !ok {
		return nil, nil
	}
	if err := l.cfg.AuthorizePeer(cred); err != nil {
		return nil, handshakeErrorOf(ErrPeerNotAllowed, "authorizing peer", err)
	}
	return &cred, nil
}

// readHello reads the client's hello. With AcceptPlain, a client whose
// first bytes cannot begin a hello, or that sends less than the magic
// within PlainDetectTimeout (or before it ends its stream), is returned as
// a plain conn instead: a dialer
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
		case errors.Is(err, ErrNotShmconn) || n > 0 && err != nil || isTimeout(err) || err == io.EOF:
			// io.EOF with nothing read: a client that sent nothing and
			// shut its writing side, to read what the server says.
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

// parseHello decodes the client's hello, refusing (with a refusal the
// dialer can read, whatever its version) a version other than ours.
func parseHello(raw net.Conn, hello []byte) (handshake.Hello, error) {
	h, err := handshake.ParseHello(hello)
	if err != nil {
		return h, handshakeError("reading hello", err)
	}
	if h.Version != handshake.Version {
		raw.Write(handshake.AppendRefusal(nil))
		return h, handshakeErrorOf(ErrVersion, "reading hello", fmt.Errorf("the dialer speaks version %d, we speak %d", h.Version, handshake.Version))
	}
	return h, nil
}

// grant is the ring size given to a dialer that asked for requested.
func (l *Listener) grant(requested uint32) int {
	if requested == 0 {
		return l.ringCap
	}
	return min(l.ringCap, max(MinRingSize, pow2.Floor(int(min(requested, MaxRingSize)))))
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
// acts on its ack. The segment is closed unless it ends up in the conn.
func (l *Listener) share(raw net.Conn, h handshake.Hello, seg *segment.Segment, size int) (net.Conn, error) {
	if err := l.offer(raw, seg, size); err != nil {
		seg.Close()
		return nil, err
	}
	var ack [handshake.AckSize]byte
	if _, err := io.ReadFull(raw, ack[:]); err != nil {
		seg.Close()
		return nil, handshakeError("reading ack", err)
	}
	switch ack[0] {
	case handshake.AckShared:
		return l.confirm(raw, h, seg)
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

// offer sends the reply that offers seg, with rings of size bytes: by
// descriptor if it has one, else by name.
func (l *Listener) offer(raw net.Conn, seg *segment.Segment, size int) error {
	reply := l.reply(handshake.StatusShared)
	reply.RingSize, reply.Token, reply.Name = uint32(size), seg.Token(), seg.Name()
	fd := seg.FD()
	if fd >= 0 {
		reply.Flags |= handshake.ReplyDescriptor
	}
	if err := l.sendWith(raw, reply, fd); err != nil {
		return handshakeError("sending reply", err)
	}
	return nil
}

// confirm checks, once the dialer says it mapped seg, that the binding
// record in seg is the dialer's view of raw, and answers: ConfirmShared
// and the conn, or ConfirmPlain and the fallback (or, where either side
// does not allow it, the drop). A missing or different record means the
// dialer mapped another file (ours was swapped under its name), or it is
// not at the other end of raw: a relay passed our reply on to it.
func (l *Listener) confirm(raw net.Conn, h handshake.Hello, seg *segment.Segment) (net.Conn, error) {
	var bound bool
	rec, ok := handshake.Binding(raw.RemoteAddr(), raw.LocalAddr())
	if ok {
		var err error
		if bound, err = seg.ConfirmBinding(rec); err != nil {
			seg.Close()
			return nil, handshakeError("checking the binding", err)
		}
	}
	if !bound {
		seg.Close()
		mismatch := fmt.Errorf("%w: the dialer's binding is not in our segment", ErrSegmentMismatch)
		_, werr := raw.Write([]byte{handshake.ConfirmPlain})
		switch {
		case h.Flags&handshake.FlagFallback == 0 || l.cfg.NoFallback:
			return nil, handshakeErrorOf(ErrNoSharedMemory, "checking the binding", mismatch)
		case werr != nil:
			return nil, handshakeError("sending confirmation", werr)
		}
		l.fellBack(raw, mismatch)
		return l.plain(raw, nil)
	}
	return l.attach(raw, seg)
}

// attach builds the conn once the dialer has mapped seg and we confirmed
// its binding: nobody else may open it from then on, so its name goes.
func (l *Listener) attach(raw net.Conn, seg *segment.Segment) (net.Conn, error) {
	if err := seg.Unlink(); err != nil {
		seg.Close()
		return nil, handshakeError("unlinking the segment", err)
	}
	if _, err := raw.Write([]byte{handshake.ConfirmShared}); err != nil {
		seg.Close()
		return nil, handshakeError("sending confirmation", err)
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
	l.counters.fallback(reason == errDialerPlain || errors.Is(reason, ErrSegmentMismatch))
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
