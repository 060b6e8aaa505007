package handshake

import (
	"bytes"
	"errors"
	"io"
	"net"
	"testing"

	"github.com/shmconn/shmconn/segment"
)

func TestHelloRoundTrip(t *testing.T) {
	h := Hello{Version: Version, Flags: FlagFallback, RingSize: 1 << 20}
	b := AppendHello(nil, h)
	if len(b) != HelloSize {
		t.Fatalf("hello is %d bytes, want %d", len(b), HelloSize)
	}
	got, err := ParseHello(b)
	if err != nil || got != h {
		t.Fatalf("ParseHello = %+v, %v; want %+v", got, err, h)
	}
	for _, bad := range [][]byte{nil, b[:15], append(b, 0), append(b[:20:20], 0, 0)} {
		if _, err := ParseHello(bad); !errors.Is(err, ErrProtocol) {
			t.Errorf("ParseHello(%x) = %v, want ErrProtocol", bad, err)
		}
	}
	if _, err := ParseHello(append([]byte{1}, b[1:]...)); !errors.Is(err, ErrNotShmconn) {
		t.Errorf("ParseHello with a bad magic = %v, want ErrNotShmconn", err)
	}
}

func TestReplyRoundTrip(t *testing.T) {
	r := Reply{Version: Version, Status: StatusShared, RingSize: 4096, Token: segment.Token{1, 2, 3}, Name: "shmconn-42-0123456789abcdef"}
	b, err := AppendReply(nil, r)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := ParseReply(b); err != nil || got != r {
		t.Fatalf("ParseReply = %+v, %v", got, err)
	}
	// ReadReply reads exactly one reply and leaves what follows.
	rd := bytes.NewReader(append(b, AckShared))
	if got, err := ReadReply(rd); err != nil || got != r {
		t.Fatalf("ReadReply = %+v, %v", got, err)
	}
	if rest, _ := io.ReadAll(rd); !bytes.Equal(rest, []byte{AckShared}) {
		t.Fatalf("ReadReply consumed too much: %x left", rest)
	}
	// A truncated reply is an error, not a hang or a panic.
	if _, err := ReadReply(bytes.NewReader(b[:len(b)-1])); err == nil {
		t.Fatal("truncated reply accepted")
	}
	long := r
	long.Name = string(make([]byte, segment.MaxNameLen+1))
	if _, err := AppendReply(nil, long); !errors.Is(err, ErrProtocol) {
		t.Fatalf("over-long name: %v", err)
	}
	plainWithName := Reply{Version: Version, Status: StatusPlain, Name: r.Name}
	b, _ = AppendReply(nil, plainWithName)
	if _, err := ParseReply(b); !errors.Is(err, ErrProtocol) {
		t.Fatalf("name with plain status accepted: %v", err)
	}
	// A segment passed as a descriptor has no name, and only a shared
	// reply passes one.
	fd := Reply{Version: Version, Status: StatusShared, RingSize: 4096, Flags: ReplyDescriptor, Token: segment.Token{4}}
	b, _ = AppendReply(nil, fd)
	if got, err := ParseReply(b); err != nil || got != fd {
		t.Fatalf("descriptor reply: %+v, %v", got, err)
	}
	for _, bad := range []Reply{
		{Version: Version, Status: StatusShared, Flags: ReplyDescriptor, Name: r.Name},
		{Version: Version, Status: StatusPlain, Flags: ReplyDescriptor},
	} {
		b, _ = AppendReply(nil, bad)
		if _, err := ParseReply(b); !errors.Is(err, ErrProtocol) {
			t.Fatalf("%+v accepted: %v", bad, err)
		}
	}
}

// TestHelloIsALine: a line-based server must see one complete line, and
// a C server scanning for it with strchr must not stop early: the only
// line end of a hello is its last two bytes, and it holds no zero byte.
func TestHelloIsALine(t *testing.T) {
	for _, h := range []Hello{{Version: Version}, {Version: Version, Flags: FlagFallback, RingSize: 1 << 26}, {Version: 0xffff, Flags: 0xffff, RingSize: 0xffffffff}} {
		b := AppendHello(nil, h)
		if i := bytes.IndexAny(b, "\r\n\x00"); i != HelloSize-2 || len(b) != HelloSize || !bytes.HasSuffix(b, []byte("\r\n")) {
			t.Errorf("hello %+v: %q", h, b)
		}
		if got, err := ParseHello(b); err != nil && h.Version == Version || err == nil && got != h {
			t.Errorf("hello %+v parsed as %+v, %v", h, got, err)
		}
	}
	for _, bad := range []string{"\xffSHM0004000100040000\n\n", "\xffSHM000400010004000G\r\n", "\xffSHM0004000100040A00\r\n", "\xffSHM0004800000040000\r\n"} {
		if _, err := ParseHello([]byte(bad)); !errors.Is(err, ErrProtocol) {
			t.Errorf("ParseHello(%q) = %v, want ErrProtocol", bad, err)
		}
	}
	// A magic whose first byte is not 0xff opens no hello.
	zero := append([]byte{0, 'S', 'H', 'M'}, AppendHello(nil, Hello{Version: Version})[4:]...)
	if _, err := ParseHello(zero); !errors.Is(err, ErrNotShmconn) {
		t.Errorf("ParseHello(%q) = %v, want ErrNotShmconn", zero, err)
	}
}

// TestReplyMagicDiffers: a server that echoes the hello, once or twice, is
// recognised as not a listener, by the bytes of the magic alone.
func TestReplyMagicDiffers(t *testing.T) {
	hello := AppendHello(nil, Hello{Version: Version, Flags: FlagFallback})
	for _, echoed := range [][]byte{hello, append(hello, hello...)} {
		if _, err := ReadReply(bytes.NewReader(echoed)); !errors.Is(err, ErrNotShmconn) || !errors.Is(err, ErrHandshake) {
			t.Errorf("echoed hello read as a reply: %v", err)
		}
	}
	// The first differing byte is enough: the reader returns without
	// waiting for the rest of the fixed part.
	for _, first := range []string{"-ERR unknown command\r\n", "HTTP/1.1 400 Bad Request\r\n", "\x00x", "x"} {
		r := &oneByteReader{b: []byte(first)}
		if _, err := ReadReply(r); !errors.Is(err, ErrNotShmconn) {
			t.Errorf("ReadReply(%q) = %v, want ErrNotShmconn", first, err)
		}
		if r.reads > 2 {
			t.Errorf("ReadReply(%q) read %d bytes before refusing", first, r.reads)
		}
	}
	if _, err := ReadReply(bytes.NewReader(AppendRefusal(nil))); err != nil {
		t.Errorf("refusal of another version's hello: %v", err)
	}
}

// TestReadHello: a client is told apart from a dialer by the first byte
// of the magic that differs, and a complete magic makes it a dialer.
func TestReadHello(t *testing.T) {
	var b [HelloSize]byte
	sslRequest := []byte{0, 0, 0, 8, 4, 0xd2, 0x16, 0x2f}
	if n, err := ReadHello(bytes.NewReader(sslRequest), b[:], 0); !errors.Is(err, ErrNotShmconn) || n > 4 {
		t.Errorf("SSLRequest: %d, %v", n, err)
	}
	hello := AppendHello(nil, Hello{Version: Version})
	if n, err := ReadHello(bytes.NewReader(hello[:9]), b[:], 0); !errors.Is(err, io.ErrUnexpectedEOF) || n != 9 {
		t.Errorf("truncated hello: %d, %v", n, err)
	}
	if n, err := ReadHello(bytes.NewReader(hello), b[:], 0); err != nil || n != HelloSize {
		t.Errorf("hello: %d, %v", n, err)
	}
	// In two steps, as a listener serving plain clients reads it.
	r := bytes.NewReader(append(hello, 'x'))
	if n, err := ReadHello(r, b[:4], 0); err != nil || n != 4 {
		t.Errorf("magic: %d, %v", n, err)
	}
	if n, err := ReadHello(r, b[:], 4); err != nil || n != HelloSize || r.Len() != 1 {
		t.Errorf("rest of the hello: %d, %v, %d left", n, err, r.Len())
	}
}

// oneByteReader returns its bytes one per Read, counting the reads.
type oneByteReader struct {
	b     []byte
	reads int
}

func (r *oneByteReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	r.reads++
	p[0], r.b = r.b[0], r.b[1:]
	return 1, nil
}

// TestReplyOfAnotherVersion: a reply of another version is read only up
// to its version and reported as ErrVersion, whatever follows; a reply
// with another magic is no listener's.
func TestReplyOfAnotherVersion(t *testing.T) {
	future := append(ReplyMagic[:], Version+1, 0, 9, 255, 0xff, 0xff, 0xff, 0xff)
	old := append(append([]byte{}, ReplyMagic[:]...), 1, 0, StatusRefused, 0)
	otherMagic := []byte{0, 'S', 'H', 'M', Version, 0, StatusRefused, 0}
	for _, tc := range []struct {
		b       []byte
		want    error
		version uint16
	}{
		{future, ErrVersion, Version + 1},
		{old, ErrVersion, 1},
		{old[:6], ErrVersion, 1}, // it may say no more than that
		{otherMagic, ErrNotShmconn, 0},
	} {
		rep, err := ReadReply(bytes.NewReader(tc.b))
		if !errors.Is(err, tc.want) || rep.Version != tc.version {
			t.Errorf("ReadReply(%x) = %+v, %v; want version %d, %v", tc.b, rep, err, tc.version, tc.want)
		}
		if _, err := ParseReply(tc.b); !errors.Is(err, tc.want) {
			t.Errorf("ParseReply(%x) = %v, want %v", tc.b, err, tc.want)
		}
	}
}

// TestBinding pins the binding record's encoding (SPEC.md section 3).
func TestBinding(t *testing.T) {
	local := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 0x1234}
	remote := &net.TCPAddr{IP: net.ParseIP("::1"), Port: 80}
	rec, ok := Binding(local, remote)
	want := append([]byte{1, 18}, net.IPv4(127, 0, 0, 1).To16()...)
	want = append(want, 0x34, 0x12, 1, 18)
	want = append(want, net.ParseIP("::1")...)
	want = append(want, 80, 0)
	if !ok || !bytes.Equal(rec, want) {
		t.Fatalf("Binding(tcp) = %x, %v; want %x", rec, ok, want)
	}
	// A 4-byte IPv4 address and its IPv4-mapped form are one address.
	mapped, _ := Binding(&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1).To4(), Port: 0x1234}, remote)
	if !bytes.Equal(mapped, rec) {
		t.Fatalf("IPv4 forms differ: %x, %x", mapped, rec)
	}
	rec, ok = Binding(&net.UnixAddr{Name: "@", Net: "unix"}, &net.UnixAddr{Name: "@abs", Net: "unix"})
	if want := []byte{2, 0, 2, 4, 0, 'a', 'b', 's'}; !ok || !bytes.Equal(rec, want) {
		t.Fatalf("Binding(unix) = %x, %v; want %x", rec, ok, want)
	}
	for _, bad := range [][2]net.Addr{
		{nil, remote},
		{local, &net.UDPAddr{}},
		{local, &net.UnixAddr{Name: string(make([]byte, 109))}},
		{(*net.TCPAddr)(nil), remote},
	} {
		if rec, ok := Binding(bad[0], bad[1]); ok || len(rec) > bindingRoom {
			t.Errorf("Binding(%v, %v) = %x, %v", bad[0], bad[1], rec, ok)
		}
	}
	longest, ok := Binding(&net.UnixAddr{Name: string(make([]byte, 108))}, &net.UnixAddr{Name: string(make([]byte, 108))})
	if !ok || len(longest) > bindingRoom {
		t.Fatalf("the longest record takes %d bytes, %v", len(longest), ok)
	}
}

// bindingRoom is the segment header's room for a binding record (SPEC.md
// section 3; segment's layout test pins it).
const bindingRoom = 256
