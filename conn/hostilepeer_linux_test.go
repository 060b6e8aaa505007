//go:build linux

package conn

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/shmconn/shmconn/atomicx"
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
func (h hostilePeer) publishUnwritten() error {
	ctrl := h.c.seg.Control(h.c.prodArea)
	head, err := atomicx.Uint64At(ctrl, specHead)
	if err != nil {
		return err
	}
	tail, err := atomicx.Uint64At(ctrl, specTail)
	if err != nil {
		return err
	}
	tail.Store(head.Load() + uint64(h.c.prod.Cap()))
	h.c.carrier.send(handshake.WakeData)
	return nil
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

func init() {
	memoryRoles["nomem-write"] = noMemoryOnWrite
	memoryRoles["nomem-read"] = noMemoryOnRead
}

// noMemoryOnWrite mounts a 140 KiB /dev/shm of its own, where a Write that
// reaches a page /dev/shm cannot hold fails with ErrNoMemory and the conn
// carries bytes again once memory is freed (see writeCannotCommit). It
// runs in a mount namespace of its own.
func noMemoryOnWrite(string) error {
	if err := unix.Mount("tmpfs", "/dev/shm", "tmpfs", 0, "size=140k"); err != nil {
		fmt.Println("skip: cannot mount a private /dev/shm:", err)
		return nil
	}
	return writeCannotCommit()
}

// noMemoryOnRead mounts a /dev/shm of its own, sets up a conn over TCP (a
// named segment there), fills /dev/shm, and publishes a whole ring the
// reader's peer never wrote: reading those pages would commit them, and
// nothing is left to commit. The reader's Read and WriteTo must fail with
// ErrNoMemory, consuming nothing, and once memory is freed the Read must
// take the ring (zeros: nobody wrote it). It runs in a mount namespace of
// its own.
func noMemoryOnRead(string) error {
	if err := unix.Mount("tmpfs", "/dev/shm", "tmpfs", 0, "size=1m"); err != nil {
		fmt.Println("skip: cannot mount a private /dev/shm:", err)
		return nil
	}
	const ring = 64 << 10
	w, r, done, err := pairInFullDevShm(ring, 0)
	if err != nil {
		return err
	}
	defer done()
	if err := (hostilePeer{w}).publishUnwritten(); err != nil {
		return err
	}
	ctrl := w.seg.Control(w.prodArea)
	head := binary.LittleEndian.Uint64(ctrl[specHead:])
	consumedNothing := func(call string, n int64, err error) error {
		if !errors.Is(err, ErrNoMemory) || n != 0 || binary.LittleEndian.Uint64(ctrl[specHead:]) != head {
			return fmt.Errorf("%s of unwritten pages in a full /dev/shm: %d bytes, %v; want ErrNoMemory, consuming nothing", call, n, err)
		}
		fmt.Printf("%s of unwritten pages: %v\n", call, err)
		return nil
	}
	r.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, err := r.Read(make([]byte, ring))
	if err := consumedNothing("read", int64(n), err); err != nil {
		return err
	}
	n64, err := r.WriteTo(io.Discard)
	if err := consumedNothing("writeto", n64, err); err != nil {
		return err
	}
	if err := os.Remove(devShmFiller); err != nil {
		return err
	}
	got := make([]byte, ring)
	if _, err := io.ReadFull(r, got); err != nil || !bytes.Equal(got, make([]byte, ring)) || binary.LittleEndian.Uint64(ctrl[specHead:]) != head+ring {
		return fmt.Errorf("read after freeing memory: %v", err)
	}
	fmt.Println("recovered: the ring was read once memory was freed")
	return nil
}

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
	before, err := segResident(b.seg)
	require.NoError(t, err)
	require.NoError(t, h.publishUnwritten())
	got = make([]byte, ring)
	_, err = io.ReadFull(b, got)
	require.NoError(t, err)
	after, err := segResident(b.seg)
	require.NoError(t, err)
	require.Equal(t, 2*segment.PageSize, after-before, "the reader committed the two pages nobody wrote")
	require.Zero(t, b.checked.left, "every page checked")
	// From where the first read stopped round the ring: zeros where
	// nobody wrote, then the first message's bytes, still in their pages.
	require.Equal(t, make([]byte, ring-len(msg)), got[:ring-len(msg)], "bytes nobody wrote read as zeros")
	require.Equal(t, msg, got[ring-len(msg):])
}

// TestSideSocketFlood: a peer that floods the side socket with bytes of
// every value, wake-ups among them, costs us reads of the socket and no
// wrong decision: Reads with nothing published find nothing at their
// deadlines, the bytes published after the flood arrive once and in
// order, and our Writes reach the peer.
func TestSideSocketFlood(t *testing.T) {
	c, p := acceptRaw(t, ListenConfig{RingSize: MinRingSize})
	flood := make([]byte, 256<<10)
	for i := range flood {
		flood[i] = byte(i)
	}
	flooded := make(chan error, 1)
	go func() {
		_, err := p.side.Write(flood)
		flooded <- err
	}()
	// Only a waiting call reads the side socket: wait until it took the
	// whole flood.
	reads := 0
	for deadline := time.Now().Add(10 * time.Second); ; reads++ {
		require.True(t, time.Now().Before(deadline), "the flood was never read")
		require.NoError(t, c.SetReadDeadline(time.Now().Add(20*time.Millisecond)))
		n, err := c.Read(make([]byte, 10))
		require.Zero(t, n, "a Read found bytes nobody published")
		require.ErrorIs(t, err, os.ErrDeadlineExceeded)
		select {
		case err := <-flooded:
			require.NoError(t, err)
		default:
			continue
		}
		break
	}
	t.Logf("the flood took %d Reads that found nothing", reads+1)
	msg := []byte("published after the flood")
	p.publish(t, msg)
	require.NoError(t, c.SetReadDeadline(time.Now().Add(5*time.Second)))
	got := make([]byte, len(msg))
	_, err := io.ReadFull(c, got)
	require.NoError(t, err)
	require.Equal(t, msg, got)
	_, err = c.Write([]byte("ours"))
	require.NoError(t, err)
	require.EqualValues(t, 4, u64(t, p.in(), specTail).Load())
	require.Equal(t, "ours", string(p.seg.Data(1)[:4]))
}
