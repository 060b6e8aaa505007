package conn

import (
	"context"
	"errors"
	"fmt"
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

	// Counters, if set, counts this Dialer's dials (and those of any
	// other Dialer given the same Counters); see Stats.
	Counters *Counters
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
// socket.
func (d *Dialer) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	size, err := ringSize("Dialer.RingSize", d.RingSize)
	if err == nil {
		err = d.Wait.validate()
	}
	if err != nil {
		return nil, &net.OpError{Op: "dial", Net: network, Err: err}
	}
	if d.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d.Timeout)
		defer cancel()
	}
	var nd net.Dialer
	side, err := nd.DialContext(ctx, network, address)
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
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() { side.SetDeadline(aLongTimeAgo) })
	c, err := d.negotiate(side, size)
	if !stop() {
		// The context ended during the handshake; even if it got through,
		// the caller has given up.
		if c != nil && c != side {
			c.(*Conn).abort()
		}
		return nil, ctx.Err()
	}
	if err != nil {
		return nil, err
	}
	if err := side.SetDeadline(time.Time{}); err != nil {
		if c != side {
			c.(*Conn).abort()
		}
		return nil, err
	}
	if sc, ok := c.(*Conn); ok {
		d.Counters.sharedConn(sc)
		sc.start()
	}
	return c, nil
}

func (d *Dialer) negotiate(side net.Conn, size int) (net.Conn, error) {
	hello := handshake.Hello{Version: handshake.Version, RingSize: uint32(size)}
	if !d.NoFallback {
		hello.Flags |= handshake.FlagFallback
	}
	if _, err := side.Write(handshake.AppendHello(nil, hello)); err != nil {
		return nil, err
	}
	rep, err := handshake.ReadReply(side)
	if err != nil {
		return nil, fmt.Errorf("%w: reading reply: %w", ErrHandshake, err)
	}
	switch {
	case rep.Version != handshake.Version:
		return nil, fmt.Errorf("%w: listener speaks version %d, we speak %d", ErrHandshake, rep.Version, handshake.Version)
	case rep.Status == handshake.StatusRefused:
		return nil, fmt.Errorf("%w: refused by listener", ErrHandshake)
	case rep.Status == handshake.StatusPlain:
		if d.NoFallback {
			return nil, fmt.Errorf("%w: the listener cannot share memory", ErrNoSharedMemory)
		}
		d.Counters.fallback(false)
		return side, nil
	case !validRingSize(int(rep.RingSize)) || int(rep.RingSize) > size:
		return nil, fmt.Errorf("%w: granted ring size %d (asked %d)", ErrHandshake, rep.RingSize, size)
	}
	seg, err := segment.Open(rep.Name, regionSize(int(rep.RingSize)), rep.Token)
	if err != nil {
		// Fall back only if both sides allow it: a listener that does not
		// would close the socket we hand out.
		if d.NoFallback || rep.Flags&handshake.ReplyFallback == 0 || errors.Is(err, segment.ErrName) {
			return nil, fmt.Errorf("%w: %w", ErrNoSharedMemory, err)
		}
		if _, err := side.Write([]byte{handshake.AckPlain}); err != nil {
			return nil, err
		}
		d.Counters.fallback(true)
		return side, nil
	}
	if _, err := side.Write([]byte{handshake.AckShared}); err != nil {
		seg.Close()
		return nil, err
	}
	c, err := newConn(side, seg, 0, d.Wait)
	if err != nil {
		seg.Close()
		return nil, fmt.Errorf("%w: %w", ErrHandshake, err)
	}
	return c, nil
}
