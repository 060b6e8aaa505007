//go:build linux

package conn

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/shmconn/shmconn/internal/handshake"
	"github.com/shmconn/shmconn/internal/shmdir"
	"github.com/shmconn/shmconn/internal/testutil"
	"github.com/shmconn/shmconn/segment"
)

// nobody is the uid (and gid) the splicer runs as: not ours, so it can
// map none of our segments.
const nobody = 65534

// spliceHandshake is a process of another uid posing as a listener: it
// listens on loopback, prints its address, takes one dialer and connects
// to the real listener at addr. It relays the dialer's hello and ack and
// everything the listener sends, so a dialer that trusts the reply maps
// the listener's segment; after the ack it passes on only wake-up bytes,
// so no byte of a plain stream reaches the listener through it. It holds
// both sockets until killed.
func spliceHandshake(addr string) error {
	front, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	fmt.Println(front.Addr())
	d, err := front.Accept()
	if err != nil {
		return err
	}
	l, err := net.Dial("tcp", addr)
	if err != nil {
		return err
	}
	go io.Copy(d, l)
	if _, err := io.CopyN(l, d, handshake.HelloSize+handshake.AckSize); err != nil {
		return err
	}
	buf := make([]byte, 4096)
	for {
		n, err := d.Read(buf)
		for _, b := range buf[:n] {
			if b == handshake.WakeData || b == handshake.WakeSpace {
				l.Write([]byte{b})
			}
		}
		if err != nil {
			select {} // keep the listener's socket open
		}
	}
}

// startPeerAs starts the test binary as uid and gid id playing role. The
// binary is copied where that uid can run it (the go tool's build
// directory is ours alone).
func startPeerAs(t *testing.T, id int, role, addr string) *peer {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("running a peer as another uid needs root")
	}
	dir, err := os.MkdirTemp("", "shmconn-peer-")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	require.NoError(t, os.Chmod(dir, 0o755))
	bin, err := os.ReadFile(os.Args[0])
	require.NoError(t, err)
	path := filepath.Join(dir, "peer.test")
	require.NoError(t, os.WriteFile(path, bin, 0o755))
	return startPeerWith(t, role, addr, func(cmd *exec.Cmd) {
		cmd.Path, cmd.Args[0], cmd.Dir = path, path, dir
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
	})
}

// bindingOutcome is what each side of a dial made of.
type bindingOutcome struct {
	dialed      net.Conn
	dialErr     error
	dialReason  error // Dialer.OnFallback's
	accepted    net.Conn
	listenDrop  error // OnHandshakeError's
	listenReson error // ListenConfig.OnFallback's
}

// dialThrough dials addr, which leads to ln (a listener made with
// listenRecording), and collects what both sides report.
func dialThrough(t *testing.T, ln *Listener, events *listenEvents, addr string, d Dialer) bindingOutcome {
	t.Helper()
	var o bindingOutcome
	reasons := make(chan error, 1)
	d.OnFallback = func(err error) { reasons <- err }
	d.Timeout = 10 * time.Second
	accepted := acceptAsync(ln)
	o.dialed, o.dialErr = d.Dial("tcp", addr)
	if o.dialed != nil {
		t.Cleanup(func() { o.dialed.Close() })
	}
	if o.dialErr == nil {
		if _, shared := o.dialed.(*Conn); !shared {
			o.dialReason = receive(t, reasons, "the dialer's fallback reason")
		}
	}
	select {
	case r := <-accepted:
		require.NoError(t, r.err)
		o.accepted = r.c
		t.Cleanup(func() { r.c.Close() })
		if _, shared := r.c.(*Conn); !shared {
			o.listenReson = receive(t, events.fallbacks, "the listener's fallback reason")
		}
	case o.listenDrop = <-events.drops:
	case <-time.After(10 * time.Second):
		t.Fatal("the listener neither accepted nor dropped the client")
	}
	return o
}

type listenEvents struct{ drops, fallbacks chan error }

// listenRecording listens on loopback TCP with lc, recording the
// listener's drops and fallbacks.
func listenRecording(t *testing.T, lc ListenConfig) (*Listener, *listenEvents) {
	t.Helper()
	ev := &listenEvents{drops: make(chan error, 4), fallbacks: make(chan error, 4)}
	lc.OnHandshakeError = func(_ net.Addr, err error) { ev.drops <- err }
	lc.OnFallback = func(_ net.Addr, err error) { ev.fallbacks <- err }
	ln, err := lc.Listen(t.Context(), "tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { ln.Close() })
	return ln, ev
}

// requireMismatchOnBothSides checks that both sides of o found they do not
// share a segment over one side socket: each fell back for that reason,
// or (noFallback) failed with it.
func requireMismatchOnBothSides(t *testing.T, o bindingOutcome, noFallback bool) {
	t.Helper()
	if noFallback {
		require.Nil(t, o.dialed, "the dial must fail")
		require.ErrorIs(t, o.dialErr, ErrSegmentMismatch)
		require.ErrorIs(t, o.dialErr, ErrNoSharedMemory)
		require.Nil(t, o.accepted, "the listener must drop the client")
		require.ErrorIs(t, o.listenDrop, ErrSegmentMismatch)
		require.ErrorIs(t, o.listenDrop, ErrNoSharedMemory)
		return
	}
	require.NoError(t, o.dialErr)
	require.NoError(t, o.listenDrop)
	_, dialShared := o.dialed.(*Conn)
	require.False(t, dialShared, "the dialer shares memory with a segment it cannot trust")
	_, listenShared := o.accepted.(*Conn)
	require.False(t, listenShared, "the listener shares memory with a peer it cannot trust")
	require.ErrorIs(t, o.dialReason, ErrSegmentMismatch)
	require.ErrorIs(t, o.listenReson, ErrSegmentMismatch)
}

// TestProcessOtherUIDDialer: a dialer of another uid (nobody) that can
// reach our unix socket is refused by AuthorizePeer's default rule, and
// one that dials our TCP listener cannot open the segment file (mode
// 0600) and gets the plain fallback on both sides, carrying the stream.
func TestProcessOtherUIDDialer(t *testing.T) {
	t.Run("unix", func(t *testing.T) {
		dir, err := os.MkdirTemp("", "shmconn-uid-")
		require.NoError(t, err)
		t.Cleanup(func() { os.RemoveAll(dir) })
		require.NoError(t, os.Chmod(dir, 0o755))
		drops := make(chan error, 1)
		addr := filepath.Join(dir, "s.sock")
		ln, err := (&ListenConfig{OnHandshakeError: func(_ net.Addr, err error) { drops <- err }}).Listen(t.Context(), "unix", addr)
		require.NoError(t, err)
		t.Cleanup(func() { ln.Close() })
		// The socket's permissions let anyone in: the rule must not.
		require.NoError(t, os.Chmod(addr, 0o777))
		accepted := acceptAsync(ln)
		p := startPeerAs(t, nobody, "dial-fallback", addr)
		require.True(t, p.lines.Scan(), "the dialer's outcome")
		require.Contains(t, p.lines.Text(), "failed: ")
		require.ErrorIs(t, receive(t, drops, "the listener's refusal"), ErrPeerNotAllowed)
		p.wait(t)
		select {
		case r := <-accepted:
			t.Fatalf("accepted a dialer of another uid: %v, %v", r.c, r.err)
		default:
		}
	})
	t.Run("tcp", func(t *testing.T) {
		t.Setenv(envNet, "tcp")
		ln, events := listenRecording(t, ListenConfig{RingSize: MinRingSize})
		accepted := acceptAsync(ln)
		p := startPeerAs(t, nobody, "dial-fallback", ln.Addr().String())
		p.expect(t, "plain")
		r := receive(t, accepted, "the accepted conn")
		require.NoError(t, r.err)
		defer r.c.Close()
		_, shared := r.c.(*Conn)
		require.False(t, shared, "shared memory with another uid")
		reason := receive(t, events.fallbacks, "the listener's fallback reason")
		require.ErrorIs(t, reason, errDialerPlain)
		msg := []byte("over the side socket")
		_, err := r.c.Write(msg)
		require.NoError(t, err)
		require.NoError(t, r.c.(interface{ CloseWrite() error }).CloseWrite())
		got, err := io.ReadAll(r.c)
		require.NoError(t, err)
		require.Equal(t, msg, got, "the echo through the fallback")
		p.wait(t)
		require.Empty(t, testutil.SegmentFiles())
	})
}

// TestProcessSplicerGetsNoSegment puts a process of another uid between
// our dialer and our listener over TCP, relaying the handshake: the
// listener's reply names a segment the dialer can map. Both sides must
// see that the segment was not mapped through their own side socket and
// fall back (or fail, without the fallback), and none of the dialer's
// bytes may reach the listener.
func TestProcessSplicerGetsNoSegment(t *testing.T) {
	for _, noFallback := range []bool{false, true} {
		t.Run(fmt.Sprintf("NoFallback=%v", noFallback), func(t *testing.T) {
			ln, events := listenRecording(t, ListenConfig{RingSize: MinRingSize})
			splicer := startPeerAs(t, nobody, "splice-handshake", ln.Addr().String())
			require.True(t, splicer.lines.Scan(), "the splicer's address")
			o := dialThrough(t, ln, events, splicer.lines.Text(), Dialer{RingSize: MinRingSize, NoFallback: noFallback})
			requireMismatchOnBothSides(t, o, noFallback)
			if noFallback {
				return
			}
			secret := []byte("THE DIALER'S SECRET")
			_, err := o.dialed.Write(secret)
			require.NoError(t, err)
			o.accepted.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
			n, err := o.accepted.Read(make([]byte, 64))
			require.Zero(t, n, "the dialer's bytes reached the listener")
			require.ErrorIs(t, err, os.ErrDeadlineExceeded)
		})
	}
	require.Empty(t, testutil.SegmentFiles())
}

// TestSwappedSegmentFile swaps the listener's segment file for a
// byte-identical copy between the listener's reply and the dialer's open,
// as a process of our uid can: the two sides then map different files.
// Both must notice, and fall back (the stream still works, over the side
// socket) or, without the fallback, fail.
func TestSwappedSegmentFile(t *testing.T) {
	swapped := make(chan string, 1)
	testHookOpenSegment = func(name string) {
		path := filepath.Join(shmdir.Path(), name)
		b, err := os.ReadFile(path)
		if err == nil {
			err = os.WriteFile(path+".copy", b, 0o600)
		}
		if err == nil {
			err = os.Rename(path+".copy", path)
		}
		if err != nil {
			panic(err)
		}
		swapped <- name
	}
	t.Cleanup(func() { testHookOpenSegment = nil })
	for _, noFallback := range []bool{false, true} {
		t.Run(fmt.Sprintf("NoFallback=%v", noFallback), func(t *testing.T) {
			ln, events := listenRecording(t, ListenConfig{RingSize: MinRingSize})
			o := dialThrough(t, ln, events, ln.Addr().String(), Dialer{RingSize: MinRingSize, NoFallback: noFallback})
			receive(t, swapped, "the swap")
			requireMismatchOnBothSides(t, o, noFallback)
			if noFallback {
				return
			}
			// The fallback carries the stream.
			_, err := o.dialed.Write([]byte("ping"))
			require.NoError(t, err)
			got := make([]byte, 4)
			o.accepted.SetReadDeadline(time.Now().Add(5 * time.Second))
			_, err = io.ReadFull(o.accepted, got)
			require.NoError(t, err)
			require.Equal(t, "ping", string(got))
		})
	}
	require.Empty(t, testutil.SegmentFiles())
}

// TestBindingAcrossAddressForms: a dual-stack listener sees an IPv4
// dialer's addresses in their IPv4-mapped form; the binding still holds,
// and memory is shared, over IPv4 and IPv6 alike; once the dial returns,
// the segment's file is gone.
func TestBindingAcrossAddressForms(t *testing.T) {
	ln, err := Listen("tcp", "[::]:0")
	if err != nil {
		t.Skip("no IPv6:", err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	for _, host := range []string{"127.0.0.1", "::1"} {
		accepted := acceptAsync(ln)
		c, err := (&Dialer{NoFallback: true, Timeout: 10 * time.Second}).Dial("tcp", net.JoinHostPort(host, fmt.Sprint(port)))
		if err != nil && host == "::1" && !errors.Is(err, ErrHandshake) {
			t.Log("no IPv6 loopback:", err)
			continue
		}
		require.NoError(t, err, host)
		// The listener unlinked the segment file at the dialer's ack,
		// before its confirmation let the dial return.
		require.Empty(t, testutil.SegmentFiles(), "a segment file outlived the handshake")
		r := <-accepted
		require.NoError(t, r.err)
		_, shared := r.c.(*Conn)
		require.True(t, shared, "%s: accepted %T", host, r.c)
		c.Close()
		r.c.Close()
	}
}

// TestForgedConfirmation: a listener (or a relay) that answers the ack
// with a confirmation its segment does not bear fails the dial, even
// where the fallback is allowed: a confirmation is trusted only from
// shared memory.
func TestForgedConfirmation(t *testing.T) {
	seg, err := segment.Create(MinRingSize)
	require.NoError(t, err)
	defer seg.Close()
	reply, err := handshake.AppendReply(nil, handshake.Reply{Version: handshake.Version, Status: handshake.StatusShared,
		RingSize: MinRingSize, Flags: handshake.ReplyFallback, Token: seg.Token(), Name: seg.Name()})
	require.NoError(t, err)
	acks := make(chan byte, 1)
	addr := serveRaw(t, func(c net.Conn) {
		io.ReadFull(c, make([]byte, handshake.HelloSize))
		c.Write(reply)
		ack := make([]byte, 1)
		io.ReadFull(c, ack)
		acks <- ack[0]
		c.Write([]byte{handshake.ConfirmShared})
		io.Copy(io.Discard, c)
	})
	c, err := (&Dialer{RingSize: MinRingSize, Timeout: 5 * time.Second}).Dial("unix", addr)
	require.Nil(t, c)
	require.ErrorIs(t, err, ErrSegmentMismatch)
	require.Equal(t, handshake.AckShared, receive(t, acks, "the ack"), "the dialer mapped the segment")
}
