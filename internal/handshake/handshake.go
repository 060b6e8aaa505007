// Package handshake is the wire format shmconn speaks on the side socket
// before bytes move to shared memory. It is specified in SPEC.md at the
// repository root; this package is its only implementation here.
//
// Every message has a fixed-size part read in one bounded read, and at most
// one variable part whose length is checked against a small limit before a
// single byte of it is read. Parsers never panic on any input.
package handshake

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/shmconn/shmconn/segment"
)

// Magic opens every hello. Its first byte is zero, which no text protocol
// (RESP, HTTP, SMTP) ever sends first, so a listener can tell a shmconn
// dialer from a plain client by the first byte alone.
var Magic = [4]byte{0, 'S', 'H', 'M'}

// Version is the protocol version this package speaks.
const Version = 1

// Sizes of the messages.
const (
	HelloSize      = 16
	replyFixedSize = 32
	// MaxReplySize bounds a reply: the fixed part and the longest name.
	MaxReplySize = replyFixedSize + segment.MaxNameLen
	AckSize      = 1
)

// Hello flags.
const (
	// FlagFallback says the dialer will carry the stream over the side
	// socket if shared memory cannot be set up.
	FlagFallback uint16 = 1 << 0
	knownFlags          = FlagFallback
)

// Reply flags.
const (
	// ReplyFallback says the listener will carry the stream over the side
	// socket if the dialer cannot map the segment (ack AckPlain).
	ReplyFallback   uint32 = 1 << 0
	knownReplyFlags        = ReplyFallback
)

// Reply statuses.
const (
	// StatusShared: the segment is created; name and token follow.
	StatusShared byte = 0
	// StatusPlain: the listener cannot share memory. If both sides allow
	// the fallback the side socket carries the stream from now on;
	// otherwise the listener closes it.
	StatusPlain byte = 1
	// StatusRefused: the listener will not serve this dialer (version,
	// flags); it closes the socket after the reply.
	StatusRefused byte = 2
)

// Acknowledgements, the dialer's last word.
const (
	// AckShared: the dialer mapped the segment; the creator may unlink it.
	AckShared byte = 'M'
	// AckPlain: the dialer cannot map the segment and falls back to the
	// side socket.
	AckPlain byte = 'P'
)

// Wake-up bytes sent on the side socket once the conn is up: one per park
// the peer announced in shared memory.
const (
	// WakeData: bytes were published into the ring the peer reads.
	WakeData byte = 'd'
	// WakeSpace: space was freed in the ring the peer writes.
	WakeSpace byte = 's'
)

// ErrProtocol means the peer sent something that is not this protocol.
var ErrProtocol = errors.New("shmconn: handshake protocol error")

// Hello is the dialer's first message.
type Hello struct {
	Version  uint16
	Flags    uint16
	RingSize uint32 // requested bytes per direction; 0 asks for the default
}

// AppendHello encodes h.
func AppendHello(b []byte, h Hello) []byte {
	b = append(b, Magic[:]...)
	b = binary.LittleEndian.AppendUint16(b, h.Version)
	b = binary.LittleEndian.AppendUint16(b, h.Flags)
	b = binary.LittleEndian.AppendUint32(b, h.RingSize)
	return binary.LittleEndian.AppendUint32(b, 0)
}

// ParseHello decodes a hello. The version is returned as sent, for the
// caller to refuse; unknown flags and reserved bits are errors.
func ParseHello(b []byte) (Hello, error) {
	if len(b) != HelloSize {
		return Hello{}, fmt.Errorf("%w: hello of %d bytes", ErrProtocol, len(b))
	}
	if [4]byte(b[:4]) != Magic {
		return Hello{}, fmt.Errorf("%w: bad magic %q", ErrProtocol, b[:4])
	}
	h := Hello{
		Version:  binary.LittleEndian.Uint16(b[4:]),
		Flags:    binary.LittleEndian.Uint16(b[6:]),
		RingSize: binary.LittleEndian.Uint32(b[8:]),
	}
	if h.Version == Version && (h.Flags&^knownFlags != 0 || binary.LittleEndian.Uint32(b[12:]) != 0) {
		return Hello{}, fmt.Errorf("%w: unknown flags %#x", ErrProtocol, h.Flags)
	}
	return h, nil
}

// Reply is the listener's answer.
type Reply struct {
	Version  uint16
	Status   byte
	RingSize uint32 // granted bytes per direction (StatusShared)
	Flags    uint32 // ReplyFallback
	Token    segment.Token
	Name     string // segment file name (StatusShared)
}

// AppendReply encodes r. The name must be at most segment.MaxNameLen bytes.
func AppendReply(b []byte, r Reply) ([]byte, error) {
	if len(r.Name) > segment.MaxNameLen {
		return nil, fmt.Errorf("%w: name of %d bytes", ErrProtocol, len(r.Name))
	}
	b = append(b, Magic[:]...)
	b = binary.LittleEndian.AppendUint16(b, r.Version)
	b = append(b, r.Status, byte(len(r.Name)))
	b = binary.LittleEndian.AppendUint32(b, r.RingSize)
	b = binary.LittleEndian.AppendUint32(b, r.Flags)
	b = append(b, r.Token[:]...)
	return append(b, r.Name...), nil
}

// ReadReply reads and decodes one reply from r, reading no more than the
// fixed part plus the announced name length, which must be within bounds.
func ReadReply(r io.Reader) (Reply, error) {
	var fixed [replyFixedSize]byte
	if _, err := io.ReadFull(r, fixed[:]); err != nil {
		return Reply{}, err
	}
	rep, nameLen, err := parseReplyFixed(fixed[:])
	if err != nil {
		return Reply{}, err
	}
	name := make([]byte, nameLen)
	if _, err := io.ReadFull(r, name); err != nil {
		return Reply{}, err
	}
	rep.Name = string(name)
	return rep, checkReply(rep)
}

// ParseReply decodes a whole reply from b, which must hold exactly one.
func ParseReply(b []byte) (Reply, error) {
	if len(b) < replyFixedSize {
		return Reply{}, fmt.Errorf("%w: reply of %d bytes", ErrProtocol, len(b))
	}
	rep, nameLen, err := parseReplyFixed(b[:replyFixedSize])
	if err != nil {
		return Reply{}, err
	}
	if len(b) != replyFixedSize+nameLen {
		return Reply{}, fmt.Errorf("%w: reply of %d bytes with a %d-byte name", ErrProtocol, len(b), nameLen)
	}
	rep.Name = string(b[replyFixedSize:])
	return rep, checkReply(rep)
}

func parseReplyFixed(b []byte) (Reply, int, error) {
	if [4]byte(b[:4]) != Magic {
		return Reply{}, 0, fmt.Errorf("%w: bad magic %q", ErrProtocol, b[:4])
	}
	rep := Reply{
		Version:  binary.LittleEndian.Uint16(b[4:]),
		Status:   b[6],
		RingSize: binary.LittleEndian.Uint32(b[8:]),
	}
	nameLen := int(b[7])
	if nameLen > segment.MaxNameLen {
		return Reply{}, 0, fmt.Errorf("%w: name of %d bytes", ErrProtocol, nameLen)
	}
	rep.Flags = binary.LittleEndian.Uint32(b[12:])
	if rep.Flags&^knownReplyFlags != 0 {
		return Reply{}, 0, fmt.Errorf("%w: unknown reply flags %#x", ErrProtocol, rep.Flags)
	}
	copy(rep.Token[:], b[16:32])
	return rep, nameLen, nil
}

func checkReply(r Reply) error {
	switch r.Status {
	case StatusShared:
		if !segment.ValidName(r.Name) {
			return fmt.Errorf("%w: segment name %q", ErrProtocol, r.Name)
		}
	case StatusPlain, StatusRefused:
		if r.Name != "" {
			return fmt.Errorf("%w: name with status %d", ErrProtocol, r.Status)
		}
	default:
		return fmt.Errorf("%w: status %d", ErrProtocol, r.Status)
	}
	return nil
}
