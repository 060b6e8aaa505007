package conn

import (
	"crypto/sha256"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/shmconn/shmconn/internal/spin"
	"github.com/stretchr/testify/require"
)

var (
	_ io.ReaderFrom = (*Conn)(nil)
	_ io.WriterTo   = (*Conn)(nil)
)

// policies are the wait policies the tests of blocking calls run under.
var policies = []WaitPolicy{WaitAdaptive, WaitSpin}

// TestCloseRead: a Read blocked when CloseRead is called returns io.EOF,
// so do later Reads, the peer's Write blocked on a full ring fails with
// EPIPE instead of waiting forever, and writing goes on.
func TestCloseRead(t *testing.T) {
	for _, p := range policies {
		t.Run(p.String(), func(t *testing.T) {
			small := Dialer{RingSize: MinRingSize, Wait: p}
			c1, c2 := newPair(t, "unix", ListenConfig{Wait: p}, small)

			read := make(chan error, 1)
			go func() {
				_, err := c1.Read(make([]byte, 10))
				read <- err
			}()
			time.Sleep(20 * time.Millisecond) // let it park
			require.NoError(t, c1.CloseRead())
			require.NoError(t, c1.CloseRead(), "a second CloseRead")
			require.Equal(t, io.EOF, receive(t, read, "the blocked Read"))
			_, err := c1.Read(make([]byte, 10))
			require.Equal(t, io.EOF, err, "a later Read")
			_, err = c2.Write([]byte("x"))
			require.ErrorIs(t, err, syscall.EPIPE, "a later peer Write")

			// On another pair, the peer fills our ring and blocks for
			// space; the bytes in the ring are dropped.
			c3, c4 := newPair(t, "unix", ListenConfig{Wait: p}, small)
			wrote := make(chan error, 1)
			go func() {
				_, err := c4.Write(make([]byte, 4*MinRingSize))
				wrote <- err
			}()
			time.Sleep(20 * time.Millisecond)
			require.NoError(t, c3.CloseRead())
			require.ErrorIs(t, receive(t, wrote, "the peer's blocked Write"), syscall.EPIPE)
			_, err = c3.Read(make([]byte, 10))
			require.Equal(t, io.EOF, err, "a Read of the dropped bytes")

			// Our writing side still works.
			_, err = c1.Write([]byte("still"))
			require.NoError(t, err)
			b := make([]byte, 5)
			_, err = io.ReadFull(c2, b)
			require.NoError(t, err)
			require.Equal(t, "still", string(b))

			require.NoError(t, c1.Close())
			require.ErrorIs(t, c1.CloseRead(), net.ErrClosed)
		})
	}
}

// chunkReader hides any WriterTo of r and returns at most a random number
// of bytes per Read, so ReadFrom meets short reads at every place in the
// ring.
type chunkReader struct {
	r   io.Reader
	rnd *rand.Rand
}

func (c chunkReader) Read(b []byte) (int, error) {
	if n := 1 + c.rnd.IntN(20000); n < len(b) {
		b = b[:n]
	}
	return c.r.Read(b)
}

// onlyWriter hides any ReaderFrom of w.
type onlyWriter struct{ w io.Writer }

func (o onlyWriter) Write(b []byte) (int, error) { return o.w.Write(b) }

// TestCopy moves a few MiB each way with ReadFrom and WriteTo, io.Copy
// calling them, through rings small enough to wrap many times, and checks
// every byte arrived once and in order.
func TestCopy(t *testing.T) {
	size := 8 << 20
	if testing.Short() {
		size = 1 << 20
	}
	for _, p := range policies {
		t.Run(p.String(), func(t *testing.T) {
			c1, c2 := newPair(t, "unix", ListenConfig{Wait: p}, Dialer{RingSize: 64 << 10, Wait: p})
			copyOneWay(t, c1, c2, size, 1)
			copyOneWay(t, c2, c1, size, 2)
		})
	}
}

// copyOneWay sends size random bytes from src to dst with io.Copy (so
// src.ReadFrom and dst.WriteTo) and compares their digests; src ends its
// writing side, so the copy at dst returns with a nil error.
func copyOneWay(t *testing.T, src, dst *Conn, size int, seed uint64) {
	t.Helper()
	rnd := rand.New(rand.NewPCG(seed, seed))
	data := make([]byte, size)
	for i := range data {
		data[i] = byte(rnd.Uint32())
	}
	type result struct {
		n   int64
		err error
		sum [32]byte
	}
	got := make(chan result, 1)
	go func() {
		h := sha256.New()
		n, err := io.Copy(onlyWriter{h}, dst) // dst.WriteTo
		got <- result{n, err, [32]byte(h.Sum(nil))}
	}()
	n, err := io.Copy(src, chunkReader{strings.NewReader(string(data)), rnd}) // src.ReadFrom
	require.NoError(t, err)
	require.EqualValues(t, size, n)
	require.NoError(t, src.CloseWrite())
	r := receive(t, got, "the copy's end")
	require.NoError(t, r.err)
	require.EqualValues(t, size, r.n)
	require.Equal(t, sha256.Sum256(data), r.sum)
}

// endless is a reader that never runs dry: byte i of the stream is i%251.
type endless struct{ off int }

func (e *endless) Read(b []byte) (int, error) {
	for i := range b {
		b[i] = byte((e.off + i) % 251)
	}
	e.off += len(b)
	return len(b), nil
}

// TestCopyDeadline: ReadFrom into a ring nobody reads, and WriteTo from a
// ring nobody fills, stop at their deadlines, having moved exactly the
// bytes they report, in order; a Close stops them too.
func TestCopyDeadline(t *testing.T) {
	c1, c2 := newPair(t, "unix", ListenConfig{}, Dialer{RingSize: MinRingSize})
	require.NoError(t, c1.SetWriteDeadline(time.Now().Add(50*time.Millisecond)))
	n, err := c1.ReadFrom(&endless{})
	require.ErrorIs(t, err, os.ErrDeadlineExceeded)
	var ne net.Error
	require.True(t, errors.As(err, &ne) && ne.Timeout(), "%v", err)
	require.EqualValues(t, MinRingSize, n, "the ring holds what ReadFrom reports")

	require.NoError(t, c2.SetReadDeadline(time.Now().Add(50*time.Millisecond)))
	var sink strings.Builder
	m, err := c2.WriteTo(&sink)
	require.ErrorIs(t, err, os.ErrDeadlineExceeded)
	require.Equal(t, n, m)
	want := make([]byte, n)
	(&endless{}).Read(want)
	require.Equal(t, string(want), sink.String())

	require.NoError(t, c1.SetWriteDeadline(time.Time{}))
	require.NoError(t, c2.SetReadDeadline(time.Time{}))
	fill, drain := copyForever(c1)
	time.Sleep(20 * time.Millisecond)
	require.NoError(t, c1.Close())
	require.ErrorIs(t, receive(t, fill, "ReadFrom's end"), net.ErrClosed)
	require.ErrorIs(t, receive(t, drain, "WriteTo's end"), net.ErrClosed)
}

// copyForever starts c.ReadFrom of an endless reader and c.WriteTo of a
// sink, each in a goroutine; their errors arrive on fill and drain.
func copyForever(c *Conn) (fill, drain <-chan error) {
	f, d := make(chan error, 1), make(chan error, 1)
	go func() {
		_, err := c.ReadFrom(&endless{})
		f <- err
	}()
	go func() {
		_, err := c.WriteTo(io.Discard)
		d <- err
	}()
	return f, d
}

// TestCopyPeerCloses: a ReadFrom blocked on a full ring fails with EPIPE
// when the peer closes, and a WriteTo returns nil at the peer's end.
func TestCopyPeerCloses(t *testing.T) {
	c1, c2 := newPair(t, "unix", ListenConfig{}, Dialer{RingSize: MinRingSize})
	fill, drain := copyForever(c1)
	time.Sleep(20 * time.Millisecond)
	require.NoError(t, c2.Close())
	require.ErrorIs(t, receive(t, fill, "ReadFrom's end"), syscall.EPIPE)
	require.NoError(t, receive(t, drain, "WriteTo's end"))
}

// TestPeerCred: over a unix side socket each end knows the other's
// process (here, ours); over TCP neither does.
func TestPeerCred(t *testing.T) {
	c1, c2 := newPair(t, "unix", ListenConfig{}, Dialer{})
	for _, c := range []*Conn{c1, c2} {
		cred, ok := c.PeerCred()
		if runtime.GOOS != "linux" {
			require.False(t, ok)
			continue
		}
		require.True(t, ok)
		require.Equal(t, PeerCred{PID: os.Getpid(), UID: os.Getuid(), GID: os.Getgid()}, cred)
	}
	t1, t2 := newPair(t, "tcp", ListenConfig{}, Dialer{})
	for _, c := range []*Conn{t1, t2} {
		_, ok := c.PeerCred()
		require.False(t, ok)
	}
}

// TestWaitPolicyText: a WaitPolicy is a flag through flag.TextVar.
func TestWaitPolicyText(t *testing.T) {
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var p WaitPolicy
	fs.TextVar(&p, "wait", WaitAdaptive, "how to wait")
	require.NoError(t, fs.Parse([]string{"-wait=spin"}))
	require.Equal(t, WaitSpin, p)
	require.Equal(t, "spin", fs.Lookup("wait").Value.String())
	require.Error(t, fs.Parse([]string{"-wait=nap"}))
	require.Equal(t, WaitSpin, p, "a bad value changes nothing")

	for _, p := range policies {
		b, err := p.MarshalText()
		require.NoError(t, err)
		var q WaitPolicy
		require.NoError(t, q.UnmarshalText(b))
		require.Equal(t, p, q)
	}
	_, err := WaitPolicy(7).MarshalText()
	require.ErrorIs(t, err, ErrConfig)
	require.ErrorIs(t, new(WaitPolicy).UnmarshalText([]byte("nap")), ErrConfig)
}

// TestWaitPolicyJSON: a WaitPolicy field is written to JSON by name and
// read back from its name or from the number older configs hold; null
// changes nothing; anything else fails with ErrConfig.
func TestWaitPolicyJSON(t *testing.T) {
	type config struct{ Wait WaitPolicy }
	for _, p := range policies {
		b, err := json.Marshal(config{p})
		require.NoError(t, err)
		require.Equal(t, `{"Wait":"`+p.String()+`"}`, string(b))
		var got config
		require.NoError(t, json.Unmarshal(b, &got))
		require.Equal(t, p, got.Wait)
	}
	_, err := json.Marshal(config{7})
	require.ErrorIs(t, err, ErrConfig)

	for in, want := range map[string]WaitPolicy{
		`{"Wait":1}`:          WaitSpin,
		`{"Wait":"spin"}`:     WaitSpin,
		`{"Wait":0}`:          WaitAdaptive,
		`{"Wait":"adaptive"}`: WaitAdaptive,
		`{"Wait":null}`:       WaitSpin, // unchanged
		`{}`:                  WaitSpin,
	} {
		got := config{WaitSpin}
		if want == WaitAdaptive {
			got.Wait = 7 // shows that the field was set
		}
		require.NoError(t, json.Unmarshal([]byte(in), &got), in)
		require.Equal(t, want, got.Wait, in)
	}

	for _, in := range []string{`7`, `-1`, `"never"`, `1.5`, `1e0`, `true`, `[1]`, `{}`} {
		got := config{WaitSpin}
		err := json.Unmarshal([]byte(`{"Wait":`+in+`}`), &got)
		require.ErrorIs(t, err, ErrConfig, in)
		require.Equal(t, WaitSpin, got.Wait, "%s: a bad value changes nothing", in)
	}
}

// TestDialerValidate: each bad Dialer field fails the dial with ErrConfig,
// naming the field, before anything is dialed.
func TestDialerValidate(t *testing.T) {
	for _, tc := range []struct {
		field string
		d     Dialer
	}{
		{"Dialer.RingSize", Dialer{RingSize: -1}},
		{"Dialer.RingSize", Dialer{RingSize: MaxRingSize + 1}},
		{"Dialer.Wait", Dialer{Wait: 7}},
		{"Dialer.Timeout", Dialer{Timeout: -time.Second}},
	} {
		_, err := tc.d.Dial("unix", "/nonexistent/shmconn.sock")
		require.ErrorIs(t, err, ErrConfig, tc.field)
		require.ErrorContains(t, err, tc.field)
	}
	_, err := (&ListenConfig{Wait: 7}).Listen(t.Context(), "unix", listenAddr(t, "unix"))
	require.ErrorIs(t, err, ErrConfig)
	require.ErrorContains(t, err, "ListenConfig.Wait")
}

// TestNetDialerAndListenConfig: the side socket is made by the net.Dialer
// and net.ListenConfig given, Control functions and all.
func TestNetDialerAndListenConfig(t *testing.T) {
	for _, network := range []string{"unix", "tcp"} {
		t.Run(network, func(t *testing.T) {
			var dialed, listened atomic.Bool
			d := Dialer{NetDialer: &net.Dialer{Control: func(string, string, syscall.RawConn) error {
				dialed.Store(true)
				return nil
			}}}
			lc := ListenConfig{NetListenConfig: &net.ListenConfig{Control: func(string, string, syscall.RawConn) error {
				listened.Store(true)
				return nil
			}}}
			c1, c2 := newPair(t, network, lc, d)
			require.True(t, dialed.Load(), "the Dialer's net.Dialer was not used")
			require.True(t, listened.Load(), "the ListenConfig's net.ListenConfig was not used")
			_, err := c1.Write([]byte("x"))
			require.NoError(t, err)
			_, err = io.ReadFull(c2, make([]byte, 1))
			require.NoError(t, err)

			// A failing Control fails the dial, as net.Dialer's would.
			refuse := errors.New("refused by Control")
			d.NetDialer.Control = func(string, string, syscall.RawConn) error { return refuse }
			ln, err := lc.Listen(t.Context(), network, listenAddr(t, network))
			require.NoError(t, err)
			defer ln.Close()
			_, err = d.Dial(network, ln.Addr().String())
			require.ErrorIs(t, err, refuse)
		})
	}
}

// TestCloseBesideBlockedCopy: Close returns at once while ReadFrom waits
// in its reader's Read and WriteTo in its writer's Write (as a proxy's
// io.Copy does when one end goes quiet); the peer sees the end at once;
// the memory is released when the last of them returns, and they report
// net.ErrClosed.
func TestCloseBesideBlockedCopy(t *testing.T) {
	c1, c2 := newPair(t, "unix", ListenConfig{}, Dialer{})
	released := make(chan struct{})
	c1.res.onClose = func() { close(released) }

	_, err := c2.Write([]byte("to be written out"))
	require.NoError(t, err)
	rIn, wIn := io.Pipe()   // nobody writes wIn yet: ReadFrom blocks in its Read
	rOut, wOut := io.Pipe() // nobody reads rOut yet: WriteTo blocks in its Write
	fill, drain := make(chan error, 1), make(chan error, 1)
	go func() {
		_, err := c1.ReadFrom(rIn)
		fill <- err
	}()
	go func() {
		_, err := c1.WriteTo(wOut)
		drain <- err
	}()
	time.Sleep(50 * time.Millisecond) // both inside the pipes

	start := time.Now()
	require.NoError(t, c1.Close())
	require.Less(t, time.Since(start), time.Second, "Close waited for the user's Read or Write")
	b := make([]byte, 1)
	require.NoError(t, c2.SetReadDeadline(time.Now().Add(5*time.Second)))
	_, err = c2.Read(b)
	require.ErrorIs(t, err, io.EOF, "the peer sees the end while the copies still block")
	select {
	case <-released:
		t.Fatal("memory released while WriteTo still reads it")
	default:
	}

	_, err = wIn.Write([]byte("dropped"))
	require.NoError(t, err)
	require.ErrorIs(t, receive(t, fill, "ReadFrom's end"), net.ErrClosed)
	select {
	case <-released:
		t.Fatal("memory released while WriteTo still reads it")
	case <-time.After(20 * time.Millisecond):
	}
	got := make([]byte, 64)
	n, _ := rOut.Read(got)
	require.Equal(t, "to be written out", string(got[:n]))
	require.ErrorIs(t, receive(t, drain, "WriteTo's end"), net.ErrClosed)
	select {
	case <-released:
	case <-time.After(5 * time.Second):
		t.Fatal("memory not released after the last copy returned")
	}
	require.ErrorIs(t, c1.Close(), net.ErrClosed)
}

// TestWaitAdaptiveTimes: WaitAdaptive's documentation states its spin
// windows in microseconds; they must be the ones package spin uses.
func TestWaitAdaptiveTimes(t *testing.T) {
	require.Equal(t, 50*time.Microsecond, spin.BaseSpin, "the window")
	require.Equal(t, 250*time.Microsecond, spin.MaxSpin, "the stretched window")
	require.Equal(t, 5*time.Microsecond, spin.ContendedSpin, "contended")
	require.Equal(t, 50*time.Microsecond, spin.ContendedBurstSpin, "contended, back to back")
}
