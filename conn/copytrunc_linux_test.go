//go:build linux

package conn

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/shmconn/shmconn/internal/shmdir"
	"github.com/shmconn/shmconn/segment"
)

// ReadFrom and WriteTo copy between the ring and buffers of their own, so
// a peer that truncates a named segment under them fails the call with
// ErrCorrupt, as it fails Read, and the caller's reader or writer never
// touches the mapping, whatever it does with the bytes: keeps them, hashes
// them, hands them to another goroutine (io.Pipe) or to the kernel
// (os.Pipe). These tests run the accepting end in a child process, so
// that a crash shows as its death, and make the hostile dialer by hand:
// over TCP the segment is a named file, which any process of our uid may
// open and truncate.

func init() {
	for _, how := range []string{"read", "writeto-buffer", "writeto-hash", "writeto-pipe", "writeto-ospipe", "readfrom"} {
		memoryRoles["trunc-"+how] = func(string) error { return truncListener(how) }
	}
}

// truncListener accepts one conn over TCP and takes its bytes the way how
// says (or, for readfrom, copies a slow Go reader into it), then prints
// "result: " and the error that ended it.
func truncListener(how string) error {
	c, stop, err := acceptAnnounced("tcp")
	if err != nil {
		return err
	}
	defer stop()
	switch how {
	case "read":
		buf := make([]byte, 1<<16)
		for err == nil {
			_, err = c.Read(buf)
		}
	case "writeto-buffer":
		_, err = io.Copy(&bytes.Buffer{}, c) // bytes.Buffer.Write copies out of the ring
	case "writeto-hash":
		_, err = io.Copy(sha256.New(), c)
	case "writeto-pipe":
		// io.PipeWriter.Write hands the bytes to the goroutine reading
		// the pipe, where panic-on-fault cannot reach.
		pr, pw := io.Pipe()
		go io.Copy(io.Discard, pr)
		_, err = io.Copy(pw, c)
	case "writeto-ospipe":
		// The kernel reads the bytes in write(2) (as exec.Cmd's Stdin
		// does): EFAULT, not a fault.
		pr, pw, perr := os.Pipe()
		if perr != nil {
			return perr
		}
		defer pr.Close()
		defer pw.Close()
		go io.Copy(io.Discard, pr)
		_, err = io.Copy(pw, c)
	case "readfrom":
		_, err = io.Copy(c, &slowReader{})
	}
	fmt.Println("result:", err)
	return nil
}

// acceptAnnounced listens on network in a child process, prints the
// address for the parent and accepts one conn; stop closes it and the
// listener.
func acceptAnnounced(network string) (c net.Conn, stop func(), err error) {
	ln, removeDir, err := listenChild(network)
	if err != nil {
		return nil, nil, err
	}
	fmt.Println(ln.Addr().String())
	c, err = ln.Accept()
	ln.Close()
	if err != nil {
		removeDir()
		return nil, nil, err
	}
	return c, func() {
		c.Close()
		removeDir()
	}, nil
}

// slowReader is a reader in Go (it copies into the buffer it is given)
// that returns a few bytes every 100 ms, 20 times.
type slowReader struct{ n int }

func (r *slowReader) Read(b []byte) (int, error) {
	time.Sleep(100 * time.Millisecond)
	if r.n++; r.n > 20 {
		return 0, io.EOF
	}
	return copy(b, "hello"), nil
}

// hostileDial starts the listener child for role, which listens on
// network, dials it as a raw shmconn client and returns the child's output
// lines, the side socket and the mapped segment, all released at the end
// of the test, and, over TCP, a descriptor of the segment file of its own
// (-1 over unix, where the segment comes as a sealed descriptor). setup,
// if given, runs on the command before it starts.
func hostileDial(t *testing.T, network, role string, setup ...func(*exec.Cmd)) (cmd *exec.Cmd, stderr *bytes.Buffer, lines *bufio.Scanner, side net.Conn, seg *segment.Segment, fd int) {
	t.Helper()
	cmd = startPeerCmd(role, "")
	for _, f := range setup {
		f(cmd)
	}
	stderr = &bytes.Buffer{}
	cmd.Stderr = stderr
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	lines = bufio.NewScanner(out)
	require.True(t, lines.Scan(), "the child's address")
	side, err = net.Dial(network, lines.Text())
	require.NoError(t, err)
	t.Cleanup(func() { side.Close() })
	hello := rawHello(MinRingSize)
	if network == "unix" {
		copy(hello[8:12], "0002") // flag bit 1: the segment may come as a descriptor
	}
	_, err = side.Write(hello)
	require.NoError(t, err)
	fixed, name, passed := readRawReply(t, side)
	require.Equal(t, byte(0), fixed[6], "status: shared memory granted")
	var token segment.Token
	copy(token[:], fixed[16:32])
	size := int(binary.LittleEndian.Uint32(fixed[8:]))
	if network == "unix" {
		require.Len(t, passed, 1, "the segment's descriptor")
		seg, err = segment.Map(passed[0], size, token)
		fd = -1
	} else {
		fd, err = unix.Open(filepath.Join(shmdir.Path(), name), unix.O_RDWR|unix.O_CLOEXEC, 0)
		require.NoError(t, err)
		t.Cleanup(func() { unix.Close(fd) })
		seg, err = segment.Open(name, size, token)
	}
	require.NoError(t, err)
	t.Cleanup(func() { seg.Close() })
	rawAck(t, side, seg)
	return cmd, stderr, lines, side, seg, fd
}

// readRawReply reads a listener's reply: its fixed part, the segment's
// name and, over a unix socket, the descriptors that came with it.
func readRawReply(t *testing.T, side net.Conn) (fixed [32]byte, name string, fds []int) {
	t.Helper()
	got := 0
	if uc, ok := side.(*net.UnixConn); ok {
		oob := make([]byte, unix.CmsgSpace(4*4))
		n, oobn, _, _, err := uc.ReadMsgUnix(fixed[:], oob)
		require.NoError(t, err)
		got = n
		msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
		require.NoError(t, err)
		for i := range msgs {
			rights, err := unix.ParseUnixRights(&msgs[i])
			require.NoError(t, err)
			fds = append(fds, rights...)
		}
	}
	_, err := io.ReadFull(side, fixed[got:])
	require.NoError(t, err)
	b := make([]byte, fixed[7])
	_, err = io.ReadFull(side, b)
	require.NoError(t, err)
	return fixed, string(b), fds
}

// childResult waits for the child's result line and its exit, failing the
// test if it died (its stderr up to the first goroutine's trace is shown).
func childResult(t *testing.T, cmd *exec.Cmd, stderr *bytes.Buffer, lines *bufio.Scanner) string {
	t.Helper()
	var result string
	if lines.Scan() {
		result = lines.Text()
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		se := stderr.String()
		if i := strings.Index(se, "\ngoroutine "); i > 0 {
			se = se[:i]
		}
		require.NoError(t, err, "the listener process died: %s", se)
	case <-time.After(10 * time.Second):
		t.Fatal("the listener did not finish")
	}
	return result
}

// TestTruncatedUnderWriteTo: bytes published past a truncation fail Read,
// and io.Copy out of the conn (WriteTo) into writers of every kind, with
// ErrCorrupt; the process lives.
func TestTruncatedUnderWriteTo(t *testing.T) {
	for _, how := range []string{"read", "writeto-buffer", "writeto-hash", "writeto-pipe", "writeto-ospipe"} {
		t.Run(how, func(t *testing.T) {
			cmd, stderr, lines, side, seg, fd := hostileDial(t, "tcp", "trunc-"+how)
			msg := bytes.Repeat([]byte("x"), 1000)
			copy(seg.Data(0), msg)
			time.Sleep(100 * time.Millisecond) // the listener waits for bytes
			require.NoError(t, unix.Ftruncate(fd, int64(segment.PageSize)))
			binary.LittleEndian.PutUint64(seg.Control(0)[specTail:], uint64(len(msg)))
			_, err := side.Write([]byte{'d'}) // wake it, if it parked
			require.NoError(t, err)
			require.Contains(t, childResult(t, cmd, stderr, lines), ErrCorrupt.Error())
		})
	}
}

// TestTruncatedUnderReadFrom: io.Copy into the conn (ReadFrom, copying
// what a Go reader returns into the ring) fails with ErrCorrupt once the
// ring is truncated under it; the process lives.
func TestTruncatedUnderReadFrom(t *testing.T) {
	cmd, stderr, lines, _, _, fd := hostileDial(t, "tcp", "trunc-readfrom")
	time.Sleep(250 * time.Millisecond) // ReadFrom has committed ring memory and waits in the reader
	require.NoError(t, unix.Ftruncate(fd, int64(segment.PageSize)))
	require.Contains(t, childResult(t, cmd, stderr, lines), ErrCorrupt.Error())
}
