package fuzz

import (
	"bytes"
	"errors"
	"testing"

	"github.com/shmconn/shmconn/internal/handshake"
	"github.com/shmconn/shmconn/segment"
)

func FuzzParseHello(f *testing.F) {
	f.Add(handshake.AppendHello(nil, handshake.Hello{Version: handshake.Version, RingSize: 1 << 16}))
	f.Add(handshake.AppendHello(nil, handshake.Hello{Version: 9, Flags: 0xffff, RingSize: 0xffffffff}))
	f.Add([]byte("*1\r\n$4\r\nPING\r\n"))
	f.Add([]byte{0, 'S', 'H', 'M'})
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := handshake.ParseHello(b)
		if err != nil {
			if !errors.Is(err, handshake.ErrHandshake) {
				t.Fatalf("error %v is not ErrHandshake", err)
			}
			return
		}
		// A hello of our version encodes back to the same bytes. Other
		// versions may use the reserved word; only their version is read,
		// to refuse them.
		if h.Version != handshake.Version {
			return
		}
		if again := handshake.AppendHello(nil, h); !bytes.Equal(again, b) {
			t.Fatalf("round trip: %x -> %+v -> %x", b, h, again)
		}
	})
}

func FuzzParseReply(f *testing.F) {
	good, _ := handshake.AppendReply(nil, handshake.Reply{Version: handshake.Version, Status: handshake.StatusShared, RingSize: 1 << 16, Name: "shmconn-123-0123456789abcdef"})
	plain, _ := handshake.AppendReply(nil, handshake.Reply{Version: handshake.Version, Status: handshake.StatusPlain})
	f.Add(good)
	f.Add(plain)
	// A reply that claims a long name and stops: the 12-byte message that
	// crashes another library's server.
	f.Add(append(append([]byte{}, handshake.ReplyMagic[:]...), 2, 0, 0, 0xff, 0, 0, 0, 0))
	f.Add(bytes.Replace(good, []byte("shmconn-123"), []byte("../../etc/x"), 1))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := handshake.ParseReply(b)
		r2, err2 := handshake.ReadReply(bytes.NewReader(b))
		if err != nil {
			if !errors.Is(err, handshake.ErrHandshake) {
				t.Fatalf("error %v is not ErrHandshake", err)
			}
			return
		}
		if r.Status == handshake.StatusShared && !segment.ValidName(r.Name) {
			t.Fatalf("accepted name %q", r.Name)
		}
		// ReadReply reads exactly one reply from a stream.
		if err2 != nil || r2 != r {
			t.Fatalf("ReadReply = %+v, %v; ParseReply = %+v", r2, err2, r)
		}
		again, err := handshake.AppendReply(nil, r)
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("round trip: %x -> %+v -> %x (%v)", b, r, again, err)
		}
	})
}
