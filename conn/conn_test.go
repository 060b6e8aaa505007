package conn

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/net/nettest"
)

func TestNettestConn(t *testing.T) {
	for _, network := range []string{"unix", "tcp"} {
		for _, policy := range []WaitPolicy{WaitAdaptive, WaitSpin} {
			t.Run(network+"/"+policy.String(), func(t *testing.T) {
				// Small rings so the write-timeout tests fill them fast.
				lc := ListenConfig{RingSize: MinRingSize, Wait: policy}
				d := Dialer{RingSize: MinRingSize, Wait: policy}
				nettest.TestConn(t, pipeMaker(t, network, lc, d))
			})
		}
	}
}

func TestEchoAndEOF(t *testing.T) {
	c1, c2 := newPair(t, "unix", ListenConfig{}, Dialer{})
	require.Equal(t, DefaultRingSize, c1.ringSize())
	msg := bytes.Repeat([]byte("hello shared memory "), 1000)
	go func() {
		c1.Write(msg)
		c1.CloseWrite()
	}()
	got, err := io.ReadAll(c2)
	require.NoError(t, err)
	require.Equal(t, msg, got)
	_, err = c1.Write([]byte("x"))
	require.ErrorIs(t, err, errBrokenPipe, "write after CloseWrite")

	// The other direction still works after the half-close.
	_, err = c2.Write([]byte("back"))
	require.NoError(t, err)
	buf := make([]byte, 10)
	n, err := c1.Read(buf)
	require.NoError(t, err)
	require.Equal(t, "back", string(buf[:n]))

	require.NoError(t, c2.Close())
	_, err = c1.Read(buf)
	require.Equal(t, io.EOF, err, "read after peer Close must be bare io.EOF")
	require.Eventually(t, func() bool {
		_, err := c1.Write([]byte("x"))
		return err != nil
	}, 5*time.Second, time.Millisecond, "write to a closed peer succeeds forever")

	_, err = c2.Read(buf)
	require.ErrorIs(t, err, net.ErrClosed)
	_, err = c2.Write(buf)
	require.ErrorIs(t, err, net.ErrClosed)
	require.ErrorIs(t, c2.Close(), net.ErrClosed)
	require.ErrorIs(t, c2.SetDeadline(time.Now()), net.ErrClosed)
	var oe *net.OpError
	require.True(t, errors.As(err, &oe))
}

func TestRingSizeNegotiation(t *testing.T) {
	for _, tc := range []struct{ listen, dial, want int }{
		{0, 0, DefaultRingSize},
		{MinRingSize, 0, MinRingSize},
		{0, 5000, 8192},
		{1 << 20, 1 << 16, 1 << 16},
		{1 << 16, 1 << 20, 1 << 16},
		{1, 1, MinRingSize},
	} {
		c1, c2 := newPair(t, "unix", ListenConfig{RingSize: tc.listen}, Dialer{RingSize: tc.dial})
		require.Equal(t, tc.want, c1.ringSize(), "%+v", tc)
		require.Equal(t, tc.want, c2.ringSize(), "%+v", tc)
	}
}

func TestConfigErrors(t *testing.T) {
	for _, lc := range []ListenConfig{
		{RingSize: -1}, {RingSize: MaxRingSize + 1}, {Wait: 7}, {HandshakeTimeout: -1}, {MaxPendingHandshakes: -1},
	} {
		_, err := lc.Listen(t.Context(), "unix", listenAddr(t, "unix"))
		require.ErrorIs(t, err, ErrConfig, "%+v", lc)
	}
	for _, d := range []Dialer{{RingSize: -5}, {Wait: -1}} {
		_, err := d.Dial("unix", "/nonexistent")
		require.ErrorIs(t, err, ErrConfig, "%+v", d)
	}
	_, err := ParseWaitPolicy("sometimes")
	require.ErrorIs(t, err, ErrConfig)
	p, err := ParseWaitPolicy("spin")
	require.NoError(t, err)
	require.Equal(t, WaitSpin, p)
}

func TestListenerCloseUnblocksAccept(t *testing.T) {
	ln, err := Listen("unix", listenAddr(t, "unix"))
	require.NoError(t, err)
	errc := make(chan error, 1)
	go func() {
		_, err := ln.Accept()
		errc <- err
	}()
	time.Sleep(10 * time.Millisecond)
	require.NoError(t, ln.Close())
	select {
	case err := <-errc:
		require.ErrorIs(t, err, net.ErrClosed)
	case <-time.After(5 * time.Second):
		t.Fatal("Accept still blocked after Close")
	}
	_, err = ln.Accept()
	require.ErrorIs(t, err, net.ErrClosed)
	require.ErrorIs(t, ln.Close(), net.ErrClosed)
}

func TestCloseUnblocks(t *testing.T) {
	for _, policy := range []WaitPolicy{WaitAdaptive, WaitSpin} {
		t.Run(policy.String(), func(t *testing.T) {
			c1, c2 := newPair(t, "unix", ListenConfig{Wait: policy, RingSize: MinRingSize}, Dialer{Wait: policy, RingSize: MinRingSize})
			var wg sync.WaitGroup
			errs := make(chan error, 2)
			wg.Add(2)
			go func() {
				defer wg.Done()
				_, err := c1.Read(make([]byte, 10))
				errs <- err
			}()
			go func() {
				defer wg.Done()
				_, err := c1.Write(make([]byte, 10*MinRingSize)) // fills the ring and blocks
				errs <- err
			}()
			time.Sleep(50 * time.Millisecond)
			require.NoError(t, c1.Close())
			wg.Wait()
			close(errs)
			for err := range errs {
				require.ErrorIs(t, err, net.ErrClosed)
			}
			_ = c2
		})
	}
}

func TestDeadlines(t *testing.T) {
	c1, _ := newPair(t, "unix", ListenConfig{}, Dialer{})
	require.NoError(t, c1.SetReadDeadline(time.Now().Add(20*time.Millisecond)))
	start := time.Now()
	_, err := c1.Read(make([]byte, 1))
	require.ErrorIs(t, err, os.ErrDeadlineExceeded)
	var ne net.Error
	require.True(t, errors.As(err, &ne) && ne.Timeout())
	require.Less(t, time.Since(start), 5*time.Second)

	// Moving the deadline into the past wakes a blocked Read.
	require.NoError(t, c1.SetReadDeadline(time.Time{}))
	errc := make(chan error, 1)
	go func() {
		_, err := c1.Read(make([]byte, 1))
		errc <- err
	}()
	time.Sleep(20 * time.Millisecond)
	require.NoError(t, c1.SetReadDeadline(time.Now().Add(-time.Second)))
	select {
	case err := <-errc:
		require.ErrorIs(t, err, os.ErrDeadlineExceeded)
	case <-time.After(5 * time.Second):
		t.Fatal("Read not woken by a past deadline")
	}
}

func TestAddrs(t *testing.T) {
	c1, c2 := newPair(t, "tcp", ListenConfig{}, Dialer{})
	require.Equal(t, c1.LocalAddr().String(), c2.RemoteAddr().String())
	require.Equal(t, c2.LocalAddr().String(), c1.RemoteAddr().String())
	require.Equal(t, "tcp", c1.LocalAddr().Network())
}

// TestCloseDuringWrite closes a conn while a big Write is still copying:
// the peer must read every byte the Write handed over, and only then
// io.EOF, never end-of-stream first.
func TestCloseDuringWrite(t *testing.T) {
	const size = 16 << 20
	c1, c2 := newPair(t, "unix", ListenConfig{RingSize: 32 << 20}, Dialer{RingSize: 32 << 20})
	type result struct {
		n   int
		err error
	}
	wrote := make(chan result, 1)
	go func() {
		n, err := c1.Write(make([]byte, size))
		wrote <- result{n, err}
	}()
	time.Sleep(time.Millisecond)
	c1.Close()
	w := <-wrote
	got, err := io.ReadAll(c2)
	require.NoError(t, err, "peer must see a clean end of stream")
	require.Equal(t, w.n, len(got), "peer got %d bytes, Write reported %d (%v)", len(got), w.n, w.err)
}
