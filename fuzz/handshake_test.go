package fuzz

import (
	"bytes"
	"encoding/binary"
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
	f.Add([]byte{0, 'S', 'H', 'M', 1, 0, 1, 0, 0, 0, 4, 0, 0, 0, 0, 0}) // a magic opened by a zero byte
	f.Add([]byte{0, 0, 0, 8, 4, 0xd2, 0x16, 0x2f})                      // PostgreSQL's SSLRequest
	f.Add([]byte("\xffSHM0002000100040000\r\n"))                        // version 2
	f.Add([]byte("\xffSHM0003000300040000\r\n"))                        // version 3
	f.Add([]byte("\xffSHM0004000300040000\r\n"))
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
	byFD, _ := handshake.AppendReply(nil, handshake.Reply{Version: handshake.Version, Status: handshake.StatusShared, RingSize: 1 << 16, Flags: handshake.ReplyDescriptor})
	f.Add(good)
	f.Add(plain)
	f.Add(byFD)
	// A reply that claims a long name and stops: the 12-byte message that
	// crashes another library's server.
	f.Add(append(append([]byte{}, handshake.ReplyMagic[:]...), 2, 0, 0, 0xff, 0, 0, 0, 0))
	f.Add(bytes.Replace(good, []byte("shmconn-123"), []byte("../../etc/x"), 1))
	f.Add(append(append([]byte{}, handshake.ReplyMagic[:]...), handshake.Version+1, 0, 9, 200, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff))
	f.Add([]byte{0, 'S', 'H', 'M', 1, 0, handshake.StatusRefused, 0}) // another magic
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := handshake.ParseReply(b)
		r2, err2 := handshake.ReadReply(bytes.NewReader(b))
		// A reply whose version is not ours is refused as such, by both,
		// whatever follows the version.
		if len(b) >= 6 && string(b[:4]) == string(handshake.ReplyMagic[:]) && binary.LittleEndian.Uint16(b[4:]) != handshake.Version {
			if !errors.Is(err, handshake.ErrVersion) || !errors.Is(err2, handshake.ErrVersion) {
				t.Fatalf("version %d: ParseReply %v, ReadReply %v; want ErrVersion", binary.LittleEndian.Uint16(b[4:]), err, err2)
			}
		}
		if err != nil {
			if !errors.Is(err, handshake.ErrHandshake) {
				t.Fatalf("error %v is not ErrHandshake", err)
			}
			return
		}
		if r.Status == handshake.StatusShared && r.Flags&handshake.ReplyDescriptor == 0 && !segment.ValidName(r.Name) {
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
