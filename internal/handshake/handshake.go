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
	"net"

	"github.com/shmconn/shmconn/segment"
)

// Magic opens every hello. Its first byte, 0xff, never occurs in UTF-8
// text, so no text protocol (RESP, HTTP, SMTP) sends it first, and a
// listener can tell a shmconn dialer from a plain client by its first
// bytes. It is not zero: C servers that look for a line end with strchr
// (Redis does) would stop at a zero byte and never answer.
var Magic = [4]byte{0xff, 'S', 'H', 'M'}

// ReplyMagic opens every reply. It differs from Magic so that a server
// that echoes what it reads is never taken for a listener.
var ReplyMagic = [4]byte{0, 's', 'h', 'm'}

// helloEnd closes every hello, whose other bytes are the magic and hex
// digits: a line-based server (Redis, memcached, SMTP, an HTTP server
// reading its request line) sees one line and answers at once, with bytes
// that do not start with ReplyMagic, so a dialer that reached the wrong
// server learns it at once instead of after a timeout.
var helloEnd = [2]byte{'\r', '\n'}

// Version is the protocol version this package speaks. A peer of another
// version is refused with ErrVersion (see AppendRefusal, ReadReply).
const Version = 4

// Sizes of the messages.
const (
	HelloSize      = 22
	replyFixedSize = 32
	// MaxReplySize bounds a reply: the fixed part and the longest name.
	MaxReplySize = replyFixedSize + segment.MaxNameLen
	AckSize      = 1
	ConfirmSize  = 1
	// replyVersionEnd is where a reply's version ends: what every
	// version's reply begins with (the magic, then the version).
	replyVersionEnd = 6
)

// Hello flags.
const (
	// FlagFallback says the dialer will carry the stream over the side
	// socket if shared memory cannot be set up.
	FlagFallback uint16 = 1 << 0
	// FlagDescriptor says the dialer can take the segment as a descriptor
	// passed with the reply (SCM_RIGHTS): it sets it only on a unix side
	// socket.
	FlagDescriptor uint16 = 1 << 1
	knownFlags            = FlagFallback | FlagDescriptor // the others are reserved: zero in this version
)

// Reply flags.
const (
	// ReplyFallback says the listener will carry the stream over the side
	// socket if the dialer cannot map the segment (ack AckPlain).
	ReplyFallback uint32 = 1 << 0
	// ReplyDescriptor says the segment is an anonymous memory file whose
	// descriptor is attached to the reply (SCM_RIGHTS) instead of named:
	// the name is empty. Only with StatusShared, only to a dialer that set
	// FlagDescriptor.
	ReplyDescriptor uint32 = 1 << 1
	knownReplyFlags        = ReplyFallback | ReplyDescriptor // the others are reserved: zero in this version
)

// Reply statuses.
const (
	// StatusShared: the segment is created; its token and its name (or,
	// with ReplyDescriptor, its descriptor) come with the reply.
	StatusShared byte = 0
	// StatusPlain: the listener cannot share memory. If both sides allow
	// the fallback the side socket carries the stream from now on;
	// otherwise the listener closes it.
	StatusPlain byte = 1
	// StatusRefused: the listener will not serve this dialer (version,
	// flags); it closes the socket after the reply.
	StatusRefused byte = 2
	// StatusBusy: the listener is short of a resource that comes back
	// (file descriptors, memory) and cannot create the segment now; it
	// closes the socket after the reply, and the dialer may try again.
	StatusBusy byte = 3
)

// Acknowledgements, the dialer's last word.
const (
	// AckShared: the dialer mapped the segment; the creator may unlink it.
	AckShared byte = 'M'
	// AckPlain: the dialer cannot map the segment and falls back to the
	// side socket.
	AckPlain byte = 'P'
)

// Confirmations, the listener's answer to AckShared: whether it found
// the dialer's binding record in its segment.
const (
	// ConfirmShared: the listener found the record and marked it confirmed
	// in the segment; the conn is up.
	ConfirmShared byte = 'K'
	// ConfirmPlain: the record was missing or wrong (the dialer mapped
	// another file, or reached us through a relay). Both sides fall back
	// to the side socket if both allow it; otherwise the listener closes
	// it.
	ConfirmPlain byte = 'P'
)

// Wake-up bytes sent on the side socket once the conn is up: one per park
// the peer announced in shared memory.
const (
	// WakeData: bytes were published into the ring the peer reads.
	WakeData byte = 'd'
	// WakeSpace: space was freed in the ring the peer writes.
	WakeSpace byte = 's'
)

// Errors. Every handshake failure matches ErrHandshake; the others are
// more specific kinds of it. Package conn exports them.
var (
	// ErrHandshake means the side-socket negotiation failed.
	ErrHandshake = errors.New("shmconn: handshake failed")
	// ErrNotShmconn means the peer does not speak this protocol at all: its
	// first bytes are not a hello (or not a reply).
	ErrNotShmconn error = &Kind{"shmconn: peer does not speak the shmconn handshake", ErrHandshake}
	// ErrVersion means the peer speaks another version of this protocol.
	ErrVersion error = &Kind{"shmconn: peer speaks another protocol version", ErrHandshake}
	// ErrProtocol means the peer sent a malformed message of this protocol.
	ErrProtocol error = &Kind{"shmconn: handshake protocol error", ErrHandshake}
)

// Kind is a sentinel error that is a more specific kind of another one:
// errors.Is(k, k.Parent) holds.
type Kind struct {
	Msg    string
	Parent error
}

func (k *Kind) Error() string { return k.Msg }
func (k *Kind) Unwrap() error { return k.Parent }

// Hello is the dialer's first message.
type Hello struct {
	Version  uint16
	Flags    uint16
	RingSize uint32 // requested bytes per direction; 0 asks for the default
}

// AppendHello encodes h: the magic, version, flags and ring size as 4, 4
// and 8 lowercase hex digits, CRLF.
func AppendHello(b []byte, h Hello) []byte {
	b = append(b, Magic[:]...)
	b = fmt.Appendf(b, "%04x%04x%08x", h.Version, h.Flags, h.RingSize)
	return append(b, helloEnd[:]...)
}

// ParseHello decodes a hello. The version is returned as sent, for the
// caller to refuse; in a hello of this version a reserved flag bit set is
// an error.
func ParseHello(b []byte) (Hello, error) {
	if len(b) != HelloSize {
		return Hello{}, fmt.Errorf("%w: hello of %d bytes", ErrProtocol, len(b))
	}
	if err := CheckHelloPrefix(b); err != nil {
		return Hello{}, err
	}
	var h Hello
	fields := []*uint64{new(uint64), new(uint64), new(uint64)}
	for i, f := range [][]byte{b[4:8], b[8:12], b[12:20]} {
		v, err := parseHex(f)
		if err != nil {
			return Hello{}, err
		}
		*fields[i] = v
	}
	h.Version, h.Flags, h.RingSize = uint16(*fields[0]), uint16(*fields[1]), uint32(*fields[2])
	switch {
	case [2]byte(b[20:]) != helloEnd:
		return Hello{}, fmt.Errorf("%w: hello ends in %q, not CRLF", ErrProtocol, b[20:])
	case h.Version == Version && h.Flags&^knownFlags != 0:
		return Hello{}, fmt.Errorf("%w: reserved hello flag bits %#x set", ErrProtocol, h.Flags&^knownFlags)
	}
	return h, nil
}

// parseHex decodes lowercase hex digits, refusing anything else, so that
// every value has exactly one encoding.
func parseHex(b []byte) (uint64, error) {
	var v uint64
	for _, c := range b {
		switch {
		case '0' <= c && c <= '9':
			v = v<<4 | uint64(c-'0')
		case 'a' <= c && c <= 'f':
			v = v<<4 | uint64(c-'a'+10)
		default:
			return 0, fmt.Errorf("%w: %q in a hello is not lowercase hex", ErrProtocol, b)
		}
	}
	return v, nil
}

// CheckHelloPrefix reports whether b, the first bytes read from a client,
// can still be the start of a hello: ErrNotShmconn as soon as one byte of
// the magic differs. Once the magic is complete the client is a dialer,
// whatever follows.
func CheckHelloPrefix(b []byte) error {
	n := min(len(b), len(Magic))
	if string(b[:n]) != string(Magic[:n]) {
		return fmt.Errorf("%w: it sent %q", ErrNotShmconn, b[:n])
	}
	return nil
}

// ReadHello fills b[n:] from r, b[:n] having been read before, checking
// each byte of the magic as it arrives, so a client that does not speak
// shmconn is told apart at once. Pass a b shorter than a hello to read
// only that much (the magic, say). Until the magic is complete it reads
// no byte past it. It returns how much of b is filled.
func ReadHello(r io.Reader, b []byte, n int) (int, error) {
	n, err := readChecked(r, b[:min(len(b), len(Magic))], n, CheckHelloPrefix)
	if err != nil || n == len(b) {
		return n, err
	}
	return readChecked(r, b, n, CheckHelloPrefix)
}

// readChecked fills b[n:] from r, calling check on what has arrived after
// every read, and stops at the first error check or r returns.
func readChecked(r io.Reader, b []byte, n int, check func([]byte) error) (int, error) {
	for n < len(b) {
		m, err := r.Read(b[n:])
		n += m
		if cerr := check(b[:n]); cerr != nil {
			return n, cerr
		}
		if err != nil {
			if err == io.EOF && n > 0 {
				err = io.ErrUnexpectedEOF
			}
			return n, err
		}
	}
	return n, nil
}

// Reply is the listener's answer.
type Reply struct {
	Version  uint16
	Status   byte
	RingSize uint32 // granted bytes per direction (StatusShared)
	Flags    uint32 // ReplyFallback
	Token    segment.Token
	Name     string // segment file name (StatusShared without ReplyDescriptor)
}

// AppendReply encodes r. The name must be at most segment.MaxNameLen bytes.
func AppendReply(b []byte, r Reply) ([]byte, error) {
	if len(r.Name) > segment.MaxNameLen {
		return nil, fmt.Errorf("%w: name of %d bytes", ErrProtocol, len(r.Name))
	}
	return appendReply(b, ReplyMagic, r), nil
}

func appendReply(b []byte, magic [4]byte, r Reply) []byte {
	b = append(b, magic[:]...)
	b = binary.LittleEndian.AppendUint16(b, r.Version)
	b = append(b, r.Status, byte(len(r.Name)))
	b = binary.LittleEndian.AppendUint32(b, r.RingSize)
	b = binary.LittleEndian.AppendUint32(b, r.Flags)
	b = append(b, r.Token[:]...)
	return append(b, r.Name...)
}

// AppendRefusal encodes the reply refusing a hello of another version:
// our version, status refused, so the dialer can report the mismatch.
func AppendRefusal(b []byte) []byte {
	return appendReply(b, ReplyMagic, Reply{Version: Version, Status: StatusRefused})
}

// checkReplyPrefix reports whether b, the first bytes of a reply, can
// still be one: ErrNotShmconn as soon as one byte of the magic differs.
func checkReplyPrefix(b []byte) error {
	n := min(len(b), len(ReplyMagic))
	if string(b[:n]) == string(ReplyMagic[:n]) {
		return nil
	}
	if n == len(Magic) && [4]byte(b) == Magic {
		return fmt.Errorf("%w: it echoed our hello", ErrNotShmconn)
	}
	return fmt.Errorf("%w: it answered %q", ErrNotShmconn, b[:n])
}

// ReadReply reads and decodes one reply from r, checking each byte of the
// magic as it arrives (so a server that is not a listener is recognised
// by its first byte), and reading no more than the fixed part plus the
// announced name length, which must be within bounds. A reply of another
// version is read only up to its version: the error is ErrVersion,
// whatever follows.
func ReadReply(r io.Reader) (Reply, error) {
	var fixed [replyFixedSize]byte
	if _, err := readChecked(r, fixed[:replyVersionEnd], 0, checkReplyPrefix); err != nil {
		return Reply{}, err
	}
	if v, err := replyVersion(fixed[:replyVersionEnd]); err != nil {
		return Reply{Version: v}, err
	}
	if _, err := readChecked(r, fixed[:], replyVersionEnd, checkReplyPrefix); err != nil {
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
	if err := checkReplyPrefix(b[:min(len(b), replyVersionEnd)]); err != nil {
		return Reply{}, err
	}
	if len(b) >= replyVersionEnd {
		if v, err := replyVersion(b[:replyVersionEnd]); err != nil {
			return Reply{Version: v}, err
		}
	}
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

// replyVersion reads the version of a reply from its first bytes (the
// magic, checked, and the version) and refuses any but ours: another
// version's reply is not held to our version's rules beyond that.
func replyVersion(b []byte) (uint16, error) {
	v := binary.LittleEndian.Uint16(b[len(ReplyMagic):])
	if v != Version {
		return v, fmt.Errorf("%w: the listener speaks version %d, we speak %d", ErrVersion, v, Version)
	}
	return v, nil
}

func parseReplyFixed(b []byte) (Reply, int, error) {
	if err := checkReplyPrefix(b); err != nil {
		return Reply{}, 0, err
	}
	if _, err := replyVersion(b); err != nil {
		return Reply{}, 0, err
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
		return Reply{}, 0, fmt.Errorf("%w: reserved reply flag bits %#x set", ErrProtocol, rep.Flags&^knownReplyFlags)
	}
	copy(rep.Token[:], b[16:32])
	return rep, nameLen, nil
}

func checkReply(r Reply) error {
	switch r.Status {
	case StatusShared:
		if r.Flags&ReplyDescriptor != 0 {
			if r.Name != "" {
				return fmt.Errorf("%w: a name with a descriptor", ErrProtocol)
			}
			return nil
		}
		if !segment.ValidName(r.Name) {
			return fmt.Errorf("%w: segment name %q", ErrProtocol, r.Name)
		}
	case StatusPlain, StatusRefused, StatusBusy:
		if r.Name != "" || r.Flags&ReplyDescriptor != 0 {
			return fmt.Errorf("%w: name or descriptor with status %d", ErrProtocol, r.Status)
		}
	default:
		return fmt.Errorf("%w: status %d", ErrProtocol, r.Status)
	}
	return nil
}

// Kinds of endpoint in a binding record.
const (
	endpointUnknown byte = 0 // not an address a binding can name
	endpointIP      byte = 1 // a TCP address: IPv6 (IPv4 mapped) and port
	endpointUnix    byte = 2 // a unix socket's name
)

// maxUnixName bounds a unix socket's name (sun_path).
const maxUnixName = 108

// Binding is the binding record the dialer writes into the segment
// (SPEC.md section 3): its side socket's local address, then its remote
// address. The listener builds the record it expects from its own socket
// with the two swapped. ok is false if either address cannot be written
// (not TCP or unix): a record with such an address binds nothing, and the
// listener refuses it.
func Binding(local, remote net.Addr) (rec []byte, ok bool) {
	rec, okLocal := appendEndpoint(nil, local)
	rec, okRemote := appendEndpoint(rec, remote)
	return rec, okLocal && okRemote
}

// appendEndpoint encodes a: a kind byte, a length byte and the address.
func appendEndpoint(b []byte, a net.Addr) ([]byte, bool) {
	switch a := a.(type) {
	case *net.TCPAddr:
		if a != nil && len(a.IP.To16()) == net.IPv6len && a.Port >= 0 && a.Port <= 0xffff {
			b = append(b, endpointIP, net.IPv6len+2)
			b = append(b, a.IP.To16()...)
			return binary.LittleEndian.AppendUint16(b, uint16(a.Port)), true
		}
	case *net.UnixAddr:
		if a == nil {
			break
		}
		name := a.Name
		if name == "@" {
			name = "" // unnamed: Go writes it so
		} else if len(name) > 0 && name[0] == '@' {
			name = "\x00" + name[1:] // abstract: a zero byte in sun_path
		}
		if len(name) <= maxUnixName {
			b = append(b, endpointUnix, byte(len(name)))
			return append(b, name...), true
		}
	}
	return append(b, endpointUnknown, 0), false
}
