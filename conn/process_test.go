package conn

import (
	"bufio"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/shmconn/shmconn/internal/shmdir"
	"github.com/shmconn/shmconn/internal/testutil"
)

// The cross-process tests re-execute the test binary as the peer. The peer
// reads its role from the environment and never runs the tests.
const (
	envRole = "SHMCONN_TEST_PEER"
	envAddr = "SHMCONN_TEST_ADDR"
	envShm  = "SHMCONN_TEST_SHM"
	envNet  = "SHMCONN_TEST_NET" // the side socket's network; unix if unset
)

// testNetwork is the side socket's network a peer dials.
func testNetwork() string {
	if n := os.Getenv(envNet); n != "" {
		return n
	}
	return "unix"
}

// runAsPeer plays the peer role named in the environment, if any, and
// reports whether it did (then the process must exit without testing).
func runAsPeer() bool {
	role := os.Getenv(envRole)
	if role == "" {
		return false
	}
	if err := playPeer(role, os.Getenv(envAddr)); err != nil {
		fmt.Fprintln(os.Stderr, "peer:", err)
		os.Exit(2)
	}
	return true
}

func playPeer(role, addr string) error {
	if played, err := playReliabilityPeer(role, addr); played {
		return err
	}
	switch role {
	case "dial-fallback":
		switch os.Getenv(envShm) {
		case "other-dir":
			shmdir.Set(os.TempDir()) // for the rest of this process
		case "private-devshm":
			// We run in a mount namespace of our own: cover /dev/shm with
			// an empty tmpfs, as a container would have.
			if err := mountPrivateDevShm(); err != nil {
				fmt.Println("skip: cannot mount a private /dev/shm:", err)
				return nil
			}
		}
		c, err := Dial(testNetwork(), addr)
		if errors.Is(err, ErrNoSharedMemory) {
			fmt.Println("no shared memory")
			return nil
		}
		if err != nil {
			fmt.Println("failed:", err)
			return nil
		}
		defer c.Close()
		if _, ok := c.(*Conn); ok {
			fmt.Println("shared")
			return nil
		}
		fmt.Println("plain")
		if _, err := io.Copy(c, c); err != nil {
			return err
		}
		return c.(interface{ CloseWrite() error }).CloseWrite()
	case "dial-stream":
		c, err := (&Dialer{NoFallback: true}).Dial("unix", addr)
		if err != nil {
			return err
		}
		buf := make([]byte, 1000)
		for {
			if _, err := c.Write(buf); err != nil {
				return err
			}
		}
	case "dial-echo", "dial-idle":
		d := Dialer{NoFallback: true}
		c, err := d.Dial("unix", addr)
		if err != nil {
			return err
		}
		defer c.Close()
		if role == "dial-idle" {
			fmt.Println("connected")
			select {} // hold the conn, read nothing, until killed
		}
		_, err = io.Copy(c, c)
		return err
	case "listen-echo":
		ln, err := Listen("unix", addr)
		if err != nil {
			return err
		}
		defer ln.Close()
		fmt.Println("listening")
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		defer c.Close()
		if _, ok := c.(*Conn); !ok {
			return fmt.Errorf("accepted %T, not shared memory", c)
		}
		if _, err := io.Copy(c, c); err != nil {
			return err
		}
		return c.(*Conn).CloseWrite()
	}
	if play, ok := memoryRoles[role]; ok {
		return play(addr)
	}
	return fmt.Errorf("unknown role %q", role)
}

// peer is a child process playing a role.
type peer struct {
	cmd   *exec.Cmd
	lines *bufio.Scanner
}

func startPeer(t *testing.T, role, addr string) *peer {
	t.Helper()
	return startPeerWith(t, role, addr, nil)
}

// startPeerCmd prepares the test binary to play role.
func startPeerCmd(role, addr string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envRole+"="+role, envAddr+"="+addr)
	cmd.Stderr = os.Stderr
	return cmd
}

func startPeerWith(t *testing.T, role, addr string, setup func(*exec.Cmd)) *peer {
	t.Helper()
	cmd := startPeerCmd(role, addr)
	if setup != nil {
		setup(cmd)
	}
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	p := &peer{cmd: cmd, lines: bufio.NewScanner(out)}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	return p
}

// expect waits for the peer to print line.
func (p *peer) expect(t *testing.T, line string) {
	t.Helper()
	require.True(t, p.lines.Scan(), "peer exited before printing %q", line)
	require.Equal(t, line, p.lines.Text())
}

func (p *peer) wait(t *testing.T) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	select {
	case err := <-done:
		require.NoError(t, err, "peer failed")
	case <-time.After(30 * time.Second):
		t.Fatal("peer did not exit")
	}
}

func acceptOne(t *testing.T, ln *Listener) *Conn {
	t.Helper()
	c, err := ln.Accept()
	require.NoError(t, err)
	sc, ok := c.(*Conn)
	require.True(t, ok, "accepted %T, not shared memory", c)
	t.Cleanup(func() { sc.Close() })
	return sc
}

// echoStream writes size random bytes in random chunks while reading the
// echo concurrently, and checks the echo is the same stream.
func echoStream(t *testing.T, c *Conn, size int, seed uint64) {
	t.Helper()
	sent := sha256.New()
	errc := make(chan error, 1)
	go func() {
		r := rand.New(rand.NewPCG(seed, seed))
		buf := make([]byte, 256<<10)
		for left := size; left > 0; {
			n := min(left, 1+r.IntN(len(buf)))
			for i := range buf[:n] {
				buf[i] = byte(r.Uint32())
			}
			sent.Write(buf[:n])
			if _, err := c.Write(buf[:n]); err != nil {
				errc <- err
				return
			}
			left -= n
		}
		errc <- c.CloseWrite()
	}()
	got := sha256.New()
	n, err := io.Copy(got, c)
	require.NoError(t, err)
	require.NoError(t, <-errc)
	require.EqualValues(t, size, n)
	require.Equal(t, sent.Sum(nil), got.Sum(nil), "echoed stream differs")
}

func streamSize() int {
	if testing.Short() {
		return 4 << 20
	}
	return 64 << 20
}

func TestProcessEchoDialer(t *testing.T) {
	addr := listenAddr(t, "unix")
	ln, err := (&ListenConfig{RingSize: 64 << 10}).Listen(context.Background(), "unix", addr)
	require.NoError(t, err)
	defer ln.Close()
	p := startPeer(t, "dial-echo", addr)
	c := acceptOne(t, ln)
	echoStream(t, c, streamSize(), 1)
	p.wait(t)
	require.Empty(t, testutil.SegmentFiles())
}

func TestProcessEchoListener(t *testing.T) {
	addr := listenAddr(t, "unix")
	p := startPeer(t, "listen-echo", addr)
	p.expect(t, "listening")
	d := Dialer{NoFallback: true}
	nc, err := d.Dial("unix", addr)
	require.NoError(t, err)
	c := nc.(*Conn)
	defer c.Close()
	echoStream(t, c, streamSize(), 2)
	p.wait(t)
	require.Empty(t, testutil.SegmentFiles())
}

// TestProcessKillUnblocks kills the peer with SIGKILL while we are blocked
// in Read and in Write, and checks both fail promptly with a reset; then
// with a Read alone (a WaitSpin leader must see the death itself, where a
// follower parked on the side socket would tell it), and a Read alone on a
// conn whose side socket hides its descriptor (from a listener that wraps
// its conns), which a WaitSpin leader cannot watch: such a conn must not
// spin on after the peer's death.
func TestProcessKillUnblocks(t *testing.T) {
	for _, policy := range []WaitPolicy{WaitAdaptive, WaitSpin} {
		for _, v := range []struct {
			name           string
			wrapped, alone bool
		}{{"", false, false}, {"/read", false, true}, {"/read-wrapped", true, true}} {
			t.Run(policy.String()+v.name, func(t *testing.T) { testKillUnblocks(t, policy, v.wrapped, v.alone) })
		}
	}
}

// wrapListener hands out its conns wrapped in a type that hides
// syscall.Conn, as golang.org/x/net/netutil.LimitListener and many
// connection-tracking wrappers do.
type wrapListener struct{ net.Listener }

func (l wrapListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return struct{ net.Conn }{c}, nil
}

func testKillUnblocks(t *testing.T, policy WaitPolicy, wrapped, readAlone bool) {
	addr := listenAddr(t, "unix")
	lc := &ListenConfig{RingSize: MinRingSize, Wait: policy}
	var ln *Listener
	var err error
	if wrapped {
		var raw net.Listener
		raw, err = net.Listen("unix", addr)
		require.NoError(t, err)
		ln, err = lc.NewListener(wrapListener{raw})
	} else {
		ln, err = lc.Listen(context.Background(), "unix", addr)
	}
	require.NoError(t, err)
	defer ln.Close()
	p := startPeer(t, "dial-idle", addr)
	c := acceptOne(t, ln)
	defer c.Close() // ends a call the kill left blocked, if the test fails
	p.expect(t, "connected")
	require.Empty(t, testutil.SegmentFiles(), "segment file exists while connected")

	readErr := make(chan error, 1)
	writeErr := make(chan error, 1)
	go func() {
		_, err := c.Read(make([]byte, 1))
		readErr <- err
	}()
	calls := []chan error{readErr}
	if !readAlone {
		calls = append(calls, writeErr)
		go func() {
			_, err := c.Write(make([]byte, 4*MinRingSize)) // the peer never reads: blocks
			writeErr <- err
		}()
	}
	time.Sleep(100 * time.Millisecond) // both calls are parked by now
	select {
	case err := <-readErr:
		t.Fatalf("Read returned before the kill: %v", err)
	case err := <-writeErr:
		t.Fatalf("Write returned before the kill: %v", err)
	default:
	}
	killed := time.Now()
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGKILL))
	for _, ch := range calls {
		select {
		case err := <-ch:
			require.Error(t, err)
			require.True(t, errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE), "%v", err)
		case <-time.After(5 * time.Second):
			t.Fatal("call still blocked 5s after the peer was killed")
		}
	}
	t.Logf("the calls failed %v after SIGKILL", time.Since(killed))
	require.Less(t, time.Since(killed), time.Second)
	require.Empty(t, testutil.SegmentFiles())
}

// TestProcessRoleUnknown checks a typo in a role fails the peer loudly.
func TestProcessRoleUnknown(t *testing.T) {
	err := playPeer("nonsense", "")
	require.Error(t, err)
	require.True(t, strings.Contains(err.Error(), "unknown role"))
}

// TestProcessFallback runs a dialer that cannot see our /dev/shm: first in
// a process looking in another directory, then in a process with a /dev/shm
// of its own (a private mount namespace, where the machine allows it). Over
// TCP, where segments are named files, both sides must fall back to the
// side socket and carry the stream intact; over a unix socket the segment
// is passed as a descriptor and memory is shared all the same.
func TestProcessFallback(t *testing.T) {
	for _, tc := range []struct{ network, mode string }{
		{"tcp", "other-dir"}, {"tcp", "private-devshm"},
		{"unix", "other-dir"}, {"unix", "private-devshm"},
	} {
		mode := tc.mode
		t.Run(tc.network+"/"+mode, func(t *testing.T) {
			fellBack := make(chan error, 1)
			lc := ListenConfig{OnFallback: func(_ net.Addr, reason error) { fellBack <- reason }}
			ln, err := lc.Listen(context.Background(), tc.network, listenAddr(t, tc.network))
			require.NoError(t, err)
			defer ln.Close()
			addr := ln.Addr().String()
			p := startPeerWith(t, "dial-fallback", addr, func(cmd *exec.Cmd) {
				cmd.Env = append(cmd.Env, envShm+"="+mode, envNet+"="+tc.network)
				if mode == "private-devshm" {
					inMountNamespace(cmd)
				}
			})
			accepted := make(chan net.Conn, 1)
			go func() {
				c, err := ln.Accept()
				if err == nil {
					accepted <- c
				}
			}()
			if !p.lines.Scan() {
				p.cmd.Wait()
				t.Skipf("peer could not start with %s (needs root and mount namespaces): exited", mode)
			}
			line := p.lines.Text()
			switch {
			case strings.HasPrefix(line, "skip"):
				t.Skipf("%s: %s", mode, line)
			case tc.network == "unix":
				require.Equal(t, "shared", line, "an anonymous segment needs no /dev/shm")
			default:
				require.Equal(t, "plain", line, "the peer got shared memory it should not see")
			}
			c := receive(t, accepted, "the conn")
			defer c.Close()
			if tc.network == "unix" {
				require.IsType(t, &Conn{}, c)
				p.wait(t)
				return
			}
			require.ErrorIs(t, receive(t, fellBack, "the fallback report"), errDialerPlain)
			require.NotEqual(t, "*conn.Conn", fmt.Sprintf("%T", c))
			msg := []byte(strings.Repeat("fallback stream ", 10000))
			go func() {
				c.Write(msg)
				c.(interface{ CloseWrite() error }).CloseWrite()
			}()
			got, err := io.ReadAll(c)
			require.NoError(t, err)
			require.Equal(t, msg, got)
			p.wait(t)
			require.Empty(t, testutil.SegmentFiles())
		})
	}
}

// TestProcessNoFallbackListener: a dialer that cannot map the segment must
// not take a listener that refuses the fallback for a plain conn; its dial
// fails with ErrNoSharedMemory. (Over TCP: over a unix socket the segment
// is passed as a descriptor, which any dialer can map.)
func TestProcessNoFallbackListener(t *testing.T) {
	ln, err := (&ListenConfig{NoFallback: true}).Listen(context.Background(), "tcp", listenAddr(t, "tcp"))
	require.NoError(t, err)
	defer ln.Close()
	p := startPeerWith(t, "dial-fallback", ln.Addr().String(), func(cmd *exec.Cmd) {
		cmd.Env = append(cmd.Env, envShm+"=other-dir", envNet+"=tcp")
	})
	p.expect(t, "no shared memory")
	p.wait(t)
	require.Empty(t, testutil.SegmentFiles())
}
