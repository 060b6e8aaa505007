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
	for _, bad := range [][]byte{nil, b[:15], append(b, 0), append([]byte{1}, b[1:]...)} {
		if _, err := ParseHello(bad); !errors.Is(err, ErrProtocol) {
			t.Errorf("ParseHello(%x) = %v, want ErrProtocol", bad, err)
		}
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
