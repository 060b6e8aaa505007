package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/shmconn/shmconn/atomicx"
	"github.com/shmconn/shmconn/ring"
)

// The floor: two processes and shared memory, no library. The client
// process creates the memory, the server child gets it as its fd 3 and
// maps it too, then busy-spins on it with the pause hint, never sleeping.
//
// Layout. Each field sits FalseSharingRange bytes from the next, so the
// only lines that travel between the cores are the ones the exchange
// itself writes.
const (
	floorRequestOff  = 0                             // uint64, client: sequence number of the latest request
	floorResponseOff = atomicx.FalseSharingRange     // uint64, server: sequence number of the latest request answered
	floorCountOff    = 2 * atomicx.FalseSharingRange // uint64, stream: bytes the server read, final once floorDoneOff is set
	floorDoneOff     = floorCountOff + 8             // uint64, stream: 1 once the writer closed and the ring is drained
	floorRingOff     = 4096                          // stream: a ring of ringCapacity bytes, page-aligned like a segment's
)

const (
	floorNetwork = "floor"               // the transport name of the floor rows
	floorFD      = 3                     // the server child's fd of the memory (its first cmd.ExtraFiles)
	envFloorMode = "SHMBENCH_FLOOR_MODE" // floor server: modeEcho or modeDiscard
	// floorNamePattern names the file for the moment it has a name; not
	// shmconn-*, whose files the library's stale-file cleanup owns.
	floorNamePattern = "shmbench-floor-*"
	floorStall       = 10 * time.Second // a peer silent this long while we spin is dead or wedged
	floorCheckEvery  = 1 << 16          // spins between looks at the clock and the context
)

// floorMem is the floor's shared memory, mapped in one process.
type floorMem struct {
	mem         []byte
	req, resp   *atomic.Uint64
	count, done *atomic.Uint64
	ring        []byte
}

// floorSize is the bytes of the floor's memory.
func floorSize() (int, error) {
	n, err := ring.Size(ringCapacity)
	return floorRingOff + n, err
}

// createFloorFile makes the floor's memory as a file that has no name by
// the time it is returned: nothing is left to remove, whatever happens.
func createFloorFile() (*os.File, error) {
	size, err := floorSize()
	if err != nil {
		return nil, err
	}
	dir := "/dev/shm" // memory-backed where it exists
	if _, err := os.Stat(dir); err != nil {
		dir = "" // the default temporary directory
	}
	f, err := os.CreateTemp(dir, floorNamePattern)
	if err != nil {
		return nil, err
	}
	if err := errors.Join(os.Remove(f.Name()), f.Truncate(int64(size))); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// mapFloor maps the floor's memory from f, which stays open only as long
// as the caller wants.
func mapFloor(f *os.File) (*floorMem, error) {
	size, err := floorSize()
	if err != nil {
		return nil, err
	}
	mem, err := syscall.Mmap(int(f.Fd()), 0, size, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED)
	if err != nil {
		return nil, os.NewSyscallError("mmap", err)
	}
	m := &floorMem{mem: mem, ring: mem[floorRingOff:]}
	var errs [4]error
	m.req, errs[0] = atomicx.Uint64At(mem, floorRequestOff)
	m.resp, errs[1] = atomicx.Uint64At(mem, floorResponseOff)
	m.count, errs[2] = atomicx.Uint64At(mem, floorCountOff)
	m.done, errs[3] = atomicx.Uint64At(mem, floorDoneOff)
	if err := errors.Join(errs[:]...); err != nil {
		m.unmap()
		return nil, err
	}
	return m, nil
}

func (m *floorMem) unmap() { syscall.Munmap(m.mem) }

// spinUntil busy-waits with the pause hint, never sleeping, until done
// reports true. It looks at ctx and the clock only every floorCheckEvery
// spins, so they cost the wait nothing, and gives up after floorStall: a
// dead peer never answers.
func spinUntil(ctx context.Context, done func() bool) error {
	var start time.Time
	for i := 1; !done(); i++ {
		atomicx.Pause(1)
		if i%floorCheckEvery != 0 {
			continue
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if start.IsZero() {
			start = time.Now()
		} else if time.Since(start) > floorStall {
			return fmt.Errorf("peer silent for %v", floorStall)
		}
	}
	return nil
}

// withFloor runs f against a fresh floor server child in mode (modeEcho
// or modeDiscard), then stops the child and unmaps the memory.
func (b *bench) withFloor(mode byte, f func(*floorMem) error) error {
	file, err := createFloorFile()
	if err != nil {
		return err
	}
	defer file.Close() // the child has its own copy; the mapping needs none
	m, err := mapFloor(file)
	if err != nil {
		return err
	}
	defer m.unmap()
	if mode == modeDiscard {
		if err := ring.Init(m.ring); err != nil {
			return err
		}
	}
	srv, err := b.startChild("server floor", []string{envRole + "=floor", envFloorMode + "=" + string(mode)}, file)
	if err != nil {
		return err
	}
	return b.thenStop(srv, func() error { return f(m) })
}

// floorRoundTripper times the floor exchange: a sequence number out on
// one line, back on the other.
type floorRoundTripper struct {
	ctx context.Context
	m   *floorMem
	seq uint64
}

func (f *floorRoundTripper) roundTrip() error {
	f.seq++
	seq := f.seq
	// A release store, the cheapest publication (an ordinary MOV on x86), as
	// the rings use: nothing here needs a full barrier, and the floor is
	// the least the exchange can cost.
	atomicx.StoreRelease(f.m.req, seq)
	return spinUntil(f.ctx, func() bool { return f.m.resp.Load() == seq })
}

// floorSink is the client's end of the stream floor: it spins while the
// ring is full.
type floorSink struct {
	ctx context.Context
	m   *floorMem
	p   *ring.Producer
}

func newFloorSink(ctx context.Context, m *floorMem) (*floorSink, error) {
	p, err := ring.NewProducer(m.ring)
	if err != nil {
		return nil, err
	}
	return &floorSink{ctx: ctx, m: m, p: p}, nil
}

func (s *floorSink) Write(b []byte) (int, error) {
	n := 0
	for n < len(b) {
		k, err := s.p.Write(b[n:])
		n += k
		if err != nil {
			return n, err
		}
		if k == 0 {
			if err := spinUntil(s.ctx, func() bool { return s.p.HasSpace(1) }); err != nil {
				return n, err
			}
		}
	}
	return n, nil
}

// finish closes the ring and waits for the server's count of bytes read.
func (s *floorSink) finish() (int64, error) {
	s.p.Close()
	if err := spinUntil(s.ctx, func() bool { return s.m.done.Load() != 0 }); err != nil {
		return 0, fmt.Errorf("waiting for the server's count: %w", err)
	}
	return int64(s.m.count.Load()), nil
}

// childFloor is the floor's server process: it maps the memory its parent
// passed and spins on it until the parent closes its stdin.
func childFloor() error {
	m, err := mapFloor(os.NewFile(floorFD, "floor"))
	if err != nil {
		return err
	}
	switch mode := os.Getenv(envFloorMode); mode {
	case string(modeEcho):
		go m.echo()
	case string(modeDiscard):
		c, err := ring.NewConsumer(m.ring)
		if err != nil {
			return err
		}
		go m.discard(c)
	default:
		return fmt.Errorf("unknown floor mode %q", mode)
	}
	return control(floorNetwork)
}

// echo answers every request the moment it sees it; it never returns.
func (m *floorMem) echo() {
	var last uint64
	for {
		if seq := m.req.Load(); seq != last {
			atomicx.StoreRelease(m.resp, seq) // as the request's store
			last = seq
			continue
		}
		atomicx.Pause(1)
	}
}

// discard reads the ring until the writer has closed it and it is empty,
// then publishes the count. A ring error ends the process: the parent's
// spin then times out and says so.
func (m *floorMem) discard(c *ring.Consumer) {
	buf := make([]byte, 64<<10) // as the socket servers' reads
	var n uint64
	for {
		// Closed is read before the ring: a writer closes after its last
		// bytes, so a Read after seeing closed sees them all.
		closed := c.WriterClosed()
		k, err := c.Read(buf)
		if err != nil {
			fmt.Fprintln(os.Stderr, "shmbench floor:", err)
			os.Exit(1)
		}
		n += uint64(k)
		switch {
		case k > 0:
		case closed:
			m.count.Store(n)
			m.done.Store(1) // after count: the client reads count once it sees done
			return
		default:
			atomicx.Pause(1)
		}
	}
}
