package handshake

import (
	"bytes"
	"errors"
	"io"
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
	for _, bad := range []string{"\xffSHM0002000100040000\n\n", "\xffSHM000200010004000G\r\n", "\xffSHM0002000100040A00\r\n", "\xffSHM0002800000040000\r\n"} {
		if _, err := ParseHello([]byte(bad)); !errors.Is(err, ErrProtocol) {
			t.Errorf("ParseHello(%q) = %v, want ErrProtocol", bad, err)
		}
	}
	v1 := append(append([]byte{}, magicV1[:]...), 1, 0, 1, 0, 0, 0, 4, 0, 0, 0, 0, 0)
	if h, err := ParseHello(v1); err != nil || h.Version != 1 {
		t.Errorf("version-1 hello: %+v, %v", h, err)
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
	if _, err := ReadReply(bytes.NewReader(AppendRefusal(nil, 3))); err != nil {
		t.Errorf("refusal of a version-3 hello: %v", err)
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
	// A version-1 hello is read to its end and no further.
	v1 := append(append([]byte{}, magicV1[:]...), make([]byte, 12)...)
	if n, err := ReadHello(bytes.NewReader(append(v1, 'x')), b[:], 0); err != nil || n != 16 {
		t.Errorf("version-1 hello: %d, %v", n, err)
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
