//go:build linux

package conn

import (
	"bytes"
	"io"
	"os"
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/shmconn/shmconn/internal/handshake"
	"github.com/shmconn/shmconn/segment"
)

// hostilePeer breaks the rules of shared memory from our end of a real
// conn, as a peer written to harm the other side could: it publishes bytes
// it never wrote, frees pages under the other side, scribbles over the
// control blocks. Its conn is of no further use to the test but for
// closing. (rawPeer, over TCP, breaks the handshake's rules instead;
// TestTruncatedSegment truncates a named segment.)
type hostilePeer struct{ c *Conn }

// publishUnwritten publishes the whole free space of the ring we produce
// into without writing a byte there: it moves the ring's tail to head +
// capacity and wakes the reader, which then reads pages nobody ever wrote.
func (h hostilePeer) publishUnwritten(t *testing.T) {
	t.Helper()
	ctrl := h.c.seg.Control(h.c.prodArea)
	head := u64(t, ctrl, specHead).Load()
	u64(t, ctrl, specTail).Store(head + uint64(h.c.prod.Cap()))
	h.c.sendWake(handshake.WakeData)
}

// consumed reports whether the reader took everything published into the
// ring we produce into (its head reached our tail), or closed its end.
func (h hostilePeer) consumed(t *testing.T) bool {
	ctrl := h.c.seg.Control(h.c.prodArea)
	return u64(t, ctrl, specHead).Load() == u64(t, ctrl, specTail).Load() || u32(t, ctrl, specReaderClosed).Load() != 0
}

// punch frees every page of direction dir's data area, whoever wrote it,
// as fallocate(FALLOC_FL_PUNCH_HOLE|FALLOC_FL_KEEP_SIZE) on the segment's
// file does (madvise MADV_REMOVE is that call, made through a mapping):
// the pages read as zeros after, and whoever touches one next commits it
// again. It returns the system call's error.
func (h hostilePeer) punch(dir int) error {
	return os.NewSyscallError("madvise MADV_REMOVE", unix.Madvise(h.c.seg.Data(dir), unix.MADV_REMOVE))
}

// theirs is the direction the other side produces into.
func (h hostilePeer) theirs() int { return 1 - h.c.prodArea }

// TestReadChecksEachPageOnce: a reader commits the pages of the peer's
// ring that are not in memory before it reads them, each page once, and
// checks nothing more once every page has been checked; pages the peer
// published without writing read as zeros (its own data to garble), and
// the stream goes on.
func TestReadChecksEachPageOnce(t *testing.T) {
	const ring = 4 * segment.PageSize
	a, b := newPair(t, "unix", ListenConfig{RingSize: ring}, Dialer{RingSize: ring})
	// a is the dialer: it produces into the ring b reads.
	msg := bytes.Repeat([]byte("x"), segment.PageSize+10)
	_, err := a.Write(msg)
	require.NoError(t, err)
	got := make([]byte, len(msg))
	_, err = io.ReadFull(b, got)
	require.NoError(t, err)
	require.Equal(t, msg, got)
	require.Equal(t, 2, ring/segment.PageSize-b.checked.left, "pages checked after reading two")

	// A whole ring published unwritten: two pages nobody wrote.
	h := hostilePeer{a}
	before, err := b.seg.Resident()
	require.NoError(t, err)
	h.publishUnwritten(t)
	got = make([]byte, ring)
	_, err = io.ReadFull(b, got)
	require.NoError(t, err)
	after, err := b.seg.Resident()
	require.NoError(t, err)
	require.Equal(t, 2*segment.PageSize, after-before, "the reader committed the two pages nobody wrote")
	require.Zero(t, b.checked.left, "every page checked")
	// From where the first read stopped round the ring: zeros where
	// nobody wrote, then the first message's bytes, still in their pages.
	require.Equal(t, make([]byte, ring-len(msg)), got[:ring-len(msg)], "bytes nobody wrote read as zeros")
	require.Equal(t, msg, got[ring-len(msg):])
}
