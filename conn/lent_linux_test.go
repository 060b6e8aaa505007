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

// ReadFrom and WriteTo handed the caller's io.Reader or io.Writer ring
// memory itself. A peer that truncates the segment under them made that
// code fault with panic-on-fault off, which killed the process (SIGBUS)
// where Read returned ErrCorrupt (found by an adversarial review); with
// panic-on-fault on, a writer that passes the bytes to another goroutine
// (io.Pipe) still died, and one making system calls got EFAULT (found by
// a second review). Now a truncatable segment's bytes are bounced. These
// tests run the accepting end in a child process, so that a crash shows
// as its death, and make the hostile dialer by hand: over TCP the segment
// is a named file, which any process of our uid may open and truncate.

func init() {
	for _, how := range []string{"read", "writeto-buffer", "writeto-hash", "writeto-pipe", "writeto-ospipe", "readfrom"} {
		memoryRoles["lent-"+how] = func(string) error { return lentListener(how) }
	}
}

// lentListener accepts one conn over TCP and takes its bytes the way how
// says (or, for readfrom, copies a slow Go reader into it), then prints
// "result: " and the error that ended it.
func lentListener(how string) error {
	ln, err := Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer ln.Close()
	fmt.Println(ln.Addr().String())
	c, err := ln.Accept()
	if err != nil {
		return err
	}
	defer c.Close()
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

// hostileDial starts the listener child for role, dials it as a raw
// shmconn client that keeps its own descriptor of the segment file, and
// returns the child's output lines, the side socket, the mapped segment
// and that descriptor, all released at the end of the test.
func hostileDial(t *testing.T, role string) (cmd *exec.Cmd, stderr *bytes.Buffer, lines *bufio.Scanner, side net.Conn, seg *segment.Segment, fd int) {
	t.Helper()
	cmd = startPeerCmd(role, "")
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
	side, err = net.Dial("tcp", lines.Text())
	require.NoError(t, err)
	t.Cleanup(func() { side.Close() })
	_, err = side.Write(rawHello(MinRingSize))
	require.NoError(t, err)
	var fixed [32]byte
	_, err = io.ReadFull(side, fixed[:])
	require.NoError(t, err)
	require.Equal(t, byte(0), fixed[6], "status: shared memory granted")
	name := make([]byte, fixed[7])
	_, err = io.ReadFull(side, name)
	require.NoError(t, err)
	fd, err = unix.Open(filepath.Join(shmdir.Path(), string(name)), unix.O_RDWR|unix.O_CLOEXEC, 0)
	require.NoError(t, err)
	t.Cleanup(func() { unix.Close(fd) })
	var token segment.Token
	copy(token[:], fixed[16:32])
	seg, err = segment.Open(string(name), int(binary.LittleEndian.Uint32(fixed[8:])), token)
	require.NoError(t, err)
	t.Cleanup(func() { seg.Close() })
	rawAck(t, side, seg)
	return cmd, stderr, lines, side, seg, fd
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
			cmd, stderr, lines, side, seg, fd := hostileDial(t, "lent-"+how)
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

// TestTruncatedUnderReadFrom: io.Copy into the conn (ReadFrom, a Go reader
// filling ring memory) fails with ErrCorrupt once the ring is truncated
// under it; the process lives.
func TestTruncatedUnderReadFrom(t *testing.T) {
	cmd, stderr, lines, _, _, fd := hostileDial(t, "lent-readfrom")
	time.Sleep(250 * time.Millisecond) // ReadFrom has committed ring memory and waits in the reader
	require.NoError(t, unix.Ftruncate(fd, int64(segment.PageSize)))
	require.Contains(t, childResult(t, cmd, stderr, lines), ErrCorrupt.Error())
}
