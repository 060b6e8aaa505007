package conn

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/shmconn/shmconn/internal/handshake"
	"github.com/shmconn/shmconn/internal/shmdir"
	"github.com/shmconn/shmconn/internal/testutil"
	"github.com/shmconn/shmconn/ring"
	"github.com/shmconn/shmconn/segment"
)

// TestHostileClients throws bad clients at a listener, all at once, and
// checks good clients are still served promptly, Accept never fails,
// every bad client is reported to the hook, and nothing is left behind.
func TestHostileClients(t *testing.T) {
	fdsBefore := openFDs(t)
	addr := listenAddr(t, "unix")
	var dropped atomic.Int64
	lc := ListenConfig{
		HandshakeTimeout: 300 * time.Millisecond,
		OnHandshakeError: func(net.Addr, error) { dropped.Add(1) },
	}
	ln, err := lc.Listen(context.Background(), "unix", addr)
	require.NoError(t, err)
	defer ln.Close()

	hello := func(version uint16, flags uint16, size uint32) []byte {
		return handshake.AppendHello(nil, handshake.Hello{Version: version, Flags: flags, RingSize: size})
	}
	type bad struct {
		name string
		send []byte
		// then: what the client does after sending
		readReply, ackWith, hold bool
		ack                      byte
	}
	bads := []bad{
		{name: "silent", hold: true},
		{name: "garbage", send: []byte("GET / HTTP/1.1\r\n\r\n")},
		{name: "truncated hello", send: hello(handshake.Version, 0, 0)[:7]},
		{name: "truncated then silent", send: hello(handshake.Version, 0, 0)[:7], hold: true},
		{name: "oversized", send: append(hello(handshake.Version, 0, 0), bytes.Repeat([]byte{0xff}, 1<<20)...)},
		{name: "wrong version", send: hello(99, 0, 0), readReply: true},
		{name: "unknown flags", send: hello(handshake.Version, 0x8000, 0)},
		{name: "not hex", send: append(hello(handshake.Version, 0, 0)[:12], "0000000g\r\n"...)},
		{name: "no line end", send: append(hello(handshake.Version, 0, 0)[:20], 0, 0)},
		{name: "not a dialer", send: []byte{0, 0, 0, 8, 4, 0xd2, 0x16, 0x2f}},
		{name: "huge ring", send: hello(handshake.Version, 0, 0xffffffff), readReply: true},
		{name: "vanish before ack", send: hello(handshake.Version, 0, 0), readReply: true},
		{name: "bad ack", send: hello(handshake.Version, 0, 0), readReply: true, ackWith: true, ack: 'X'},
		{name: "silent after reply", send: hello(handshake.Version, 0, 0), readReply: true, hold: true},
	}
	var wg sync.WaitGroup
	for _, b := range bads {
		for range 3 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c, err := net.Dial("unix", addr)
				if err != nil {
					t.Errorf("%s: %v", b.name, err)
					return
				}
				defer c.Close()
				c.Write(b.send)
				if b.readReply {
					c.SetReadDeadline(time.Now().Add(5 * time.Second))
					handshake.ReadReply(c)
				}
				if b.ackWith {
					c.Write([]byte{b.ack})
				}
				if b.hold {
					// Hold the socket open past the handshake timeout.
					c.SetReadDeadline(time.Now().Add(5 * time.Second))
					io.Copy(io.Discard, c)
				}
			}()
		}
	}
	// Meanwhile good clients are served promptly.
	accepted := serveConns(ln, echo)
	for i := range 20 {
		start := time.Now()
		c, err := (&Dialer{NoFallback: true, Timeout: 5 * time.Second}).Dial("unix", addr)
		require.NoError(t, err, "good client %d", i)
		_, err = c.Write([]byte("ping"))
		require.NoError(t, err)
		buf := make([]byte, 4)
		_, err = io.ReadFull(c, buf)
		require.NoError(t, err)
		require.Equal(t, "ping", string(buf))
		require.NoError(t, c.Close())
		require.Less(t, time.Since(start), 2*time.Second, "good client %d waited behind bad ones", i)
	}
	wg.Wait()
	// Every bad client was dropped and reported, none reached Accept.
	require.Eventually(t, func() bool { return dropped.Load() == int64(3*len(bads)) }, 10*time.Second, 10*time.Millisecond,
		"dropped %d of %d bad clients", dropped.Load(), 3*len(bads))
	select {
	case err := <-accepted:
		t.Fatalf("Accept failed: %v", err)
	default:
	}
	require.Empty(t, testutil.SegmentFiles())
	require.NoError(t, ln.Close())
	require.Eventually(t, func() bool { return openFDs(t) <= fdsBefore }, 5*time.Second, 10*time.Millisecond,
		"fds: %d before, %d after", fdsBefore, openFDs(t))
}

// fakeListener answers every dialer with reply bytes of the test's choice.
func fakeListener(t *testing.T, reply []byte) string {
	return serveRaw(t, func(c net.Conn) {
		io.ReadFull(c, make([]byte, handshake.HelloSize))
		c.Write(reply)
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		io.Copy(io.Discard, c)
	})
}

// TestHostileListener has a dialer face listeners that lie: path-like
// names, names that claim more bytes than they send, a file that is not a
// segment, sizes it did not ask for.
func TestHostileListener(t *testing.T) {
	dir := t.TempDir()
	victim := filepath.Join(dir, "victim")
	require.NoError(t, os.WriteFile(victim, []byte("do not map me"), 0o600))
	reply := func(r handshake.Reply) []byte {
		b := append([]byte(nil), handshake.ReplyMagic[:]...)
		b = binary.LittleEndian.AppendUint16(b, r.Version)
		b = append(b, r.Status, byte(len(r.Name)))
		b = binary.LittleEndian.AppendUint32(b, r.RingSize)
		b = binary.LittleEndian.AppendUint32(b, 0)
		b = append(b, r.Token[:]...)
		return append(b, r.Name...)
	}
	ok := handshake.Reply{Version: handshake.Version, Status: handshake.StatusShared, RingSize: MinRingSize}
	with := func(f func(*handshake.Reply)) handshake.Reply { r := ok; f(&r); return r }
	for _, tc := range []struct {
		name  string
		reply []byte
	}{
		{"path name", reply(with(func(r *handshake.Reply) { r.Name = "../../" + victim }))},
		{"absolute name", reply(with(func(r *handshake.Reply) { r.Name = victim }))},
		{"missing segment", reply(with(func(r *handshake.Reply) { r.Name = "shmconn-1-0123456789abcdef" }))},
		{"name longer than sent", reply(with(func(r *handshake.Reply) { r.Name = "shmconn-1-0123456789abcdef" }))[:40]},
		{"name length 255", append(reply(ok)[:7], 255)},
		{"ring not power of two", reply(with(func(r *handshake.Reply) { r.RingSize = 5000; r.Name = "shmconn-1-0123456789abcdef" }))},
		{"ring larger than asked", reply(with(func(r *handshake.Reply) { r.RingSize = 1 << 26; r.Name = "shmconn-1-0123456789abcdef" }))},
		{"bad status", reply(with(func(r *handshake.Reply) { r.Status = 7 }))},
		{"refused", reply(with(func(r *handshake.Reply) { r.Status = handshake.StatusRefused }))},
		{"other version", reply(with(func(r *handshake.Reply) { r.Version = handshake.Version + 1 }))},
		{"garbage", bytes.Repeat([]byte("x"), 100)},
		{"nothing", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := fakeListener(t, tc.reply)
			d := Dialer{NoFallback: true, RingSize: MinRingSize, Timeout: 500 * time.Millisecond}
			c, err := d.Dial("unix", addr)
			require.Error(t, err)
			require.Nil(t, c)
			var oe *net.OpError
			require.True(t, errors.As(err, &oe), "%T %v", err, err)
		})
	}
	b, err := os.ReadFile(victim)
	require.NoError(t, err)
	require.Equal(t, "do not map me", string(b))
}

// TestCorruptPeer scribbles over the shared counters after connecting, as
// a hostile peer can, and checks our calls fail with ErrCorrupt.
func TestCorruptPeer(t *testing.T) {
	for _, tc := range []struct {
		name string
		off  int // in the region we consume (tail) or produce into (head)
		read bool
	}{
		{"tail jumps ahead", 0, true},
		{"head runs past tail", 128, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c1, c2 := newPair(t, "unix", ListenConfig{RingSize: MinRingSize}, Dialer{RingSize: MinRingSize})
			_ = c2
			// c1 is the dialer: it consumes region 1 and produces into 0.
			region := c1.seg.Control(0)
			if tc.read {
				region = c1.seg.Control(1)
			}
			binary.LittleEndian.PutUint64(region[tc.off:], 1<<40)
			var err error
			if tc.read {
				_, err = c1.Read(make([]byte, 10))
			} else {
				_, err = c1.Write(make([]byte, 2*MinRingSize))
			}
			require.ErrorIs(t, err, ErrCorrupt)
			require.ErrorIs(t, err, ring.ErrCorrupt)
		})
	}
}

// TestPeerCannotMoveOurCounters: our counters live in private memory and
// are only stored into the segment, so a peer that scribbles over them
// changes nothing we do: our next Write publishes right after our last,
// and our next Read starts where our last ended.
func TestPeerCannotMoveOurCounters(t *testing.T) {
	c, p := acceptRaw(t, ListenConfig{RingSize: MinRingSize})
	// c produces into the ring p consumes (p.in) and consumes p.out.
	_, err := c.Write([]byte("abc"))
	require.NoError(t, err)
	u64(t, p.in(), specTail).Store(0) // take our bytes back
	_, err = c.Write([]byte("def"))
	require.NoError(t, err)
	require.EqualValues(t, 6, u64(t, p.in(), specTail).Load(), "our tail")
	require.Equal(t, "abcdef", string(p.seg.Data(1)[:6]))

	p.publish(t, []byte("xyz"))
	got := make([]byte, 3)
	_, err = io.ReadFull(c, got)
	require.NoError(t, err)
	require.Equal(t, "xyz", string(got))
	u64(t, p.out(), specHead).Store(0) // make us read them again
	p.publish(t, []byte("123"))
	require.NoError(t, c.SetReadDeadline(time.Now().Add(5*time.Second)))
	buf := make([]byte, 10)
	n, err := c.Read(buf)
	require.NoError(t, err)
	require.Equal(t, "123", string(buf[:n]), "our Read starts where our last ended")
}

// TestTruncatedSegment truncates the shared file under a live conn, which
// makes every touch of the mapping raise SIGBUS, and checks the calls fail
// with ErrCorrupt instead of killing the process.
func TestTruncatedSegment(t *testing.T) {
	size := MinRingSize
	created, err := segment.Create(size)
	require.NoError(t, err)
	require.NoError(t, initRings(created))
	opened, err := segment.Open(created.Name(), size, created.Token())
	require.NoError(t, err)
	require.NoError(t, os.Truncate(filepath.Join(shmdir.Path(), created.Name()), 0))
	require.NoError(t, created.Unlink())
	defer created.Close()

	a, b := net.Pipe()
	defer b.Close()
	_, err = newConn(a, opened, 0, WaitAdaptive)
	require.ErrorIs(t, err, ErrCorrupt, "attaching to a truncated segment")

	// A conn whose segment is truncated after it attached.
	created2, err := segment.Create(size)
	require.NoError(t, err)
	defer created2.Close()
	require.NoError(t, initRings(created2))
	opened2, err := segment.Open(created2.Name(), size, created2.Token())
	require.NoError(t, err)
	c, err := newConn(a, opened2, 0, WaitAdaptive)
	require.NoError(t, err)
	require.NoError(t, os.Truncate(filepath.Join(shmdir.Path(), created2.Name()), 0))
	require.NoError(t, created2.Unlink())
	opened.Close()
	_, err = c.Write([]byte("x"))
	require.ErrorIs(t, err, ErrCorrupt)
	_, err = c.Read(make([]byte, 1))
	require.ErrorIs(t, err, ErrCorrupt)
	require.ErrorIs(t, c.CloseWrite(), ErrCorrupt)
	c.Close()
}
