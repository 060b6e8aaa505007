package segment

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime/debug"
	"sync"
	"syscall"
	"time"

	"github.com/edsrzf/mmap-go"
	"golang.org/x/sys/unix"
)

// Dir is where segment files live: the tmpfs every Linux system mounts for
// POSIX shared memory.
var Dir = "/dev/shm"

type platform struct {
	mu       sync.Mutex
	m        mmap.MMap
	unlinked bool
	closed   bool
	created  bool
}

// Create makes a new segment with two regions of regionSize bytes each: a
// random name, O_EXCL (never an existing file), mode 0600 (only our uid),
// space allocated up front (so a full /dev/shm is an error now, not a
// SIGBUS later), the header written and the regions zeroed.
func Create(regionSize int) (*Segment, error) {
	if err := checkRegionSize(regionSize); err != nil {
		return nil, err
	}
	var token Token
	if _, err := rand.Read(token[:]); err != nil {
		return nil, err
	}
	pid := os.Getpid()
	var (
		name string
		fd   int
		err  error
	)
	for range 4 { // a clash of 64 random bits means something is wrong; retry a little
		if name, err = newName(pid); err != nil {
			return nil, err
		}
		fd, err = unix.Open(filepath.Join(Dir, name), unix.O_RDWR|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
		if !errors.Is(err, unix.EEXIST) {
			break
		}
	}
	path := filepath.Join(Dir, name)
	if err != nil {
		return nil, &fs.PathError{Op: "create", Path: path, Err: err}
	}
	f := os.NewFile(uintptr(fd), path)
	defer f.Close() // the mapping outlives the descriptor
	fail := func(op string, err error) (*Segment, error) {
		unix.Unlink(path)
		return nil, &fs.PathError{Op: op, Path: path, Err: err}
	}
	size := TotalSize(regionSize)
	if err := unix.Fallocate(fd, 0, 0, int64(size)); err != nil {
		return fail("fallocate", err)
	}
	m, err := mmap.MapRegion(f, size, mmap.RDWR, 0, 0)
	if err != nil {
		return fail("mmap", err)
	}
	// Anyone of our uid can truncate the file from the moment it exists
	// (a watcher of /dev/shm wins that race reliably), and writing past
	// the new end would raise SIGBUS.
	if err := guardFault(func() error { writeHeader(m, regionSize, pid, token); return nil }); err != nil {
		m.Unmap()
		return fail("write header", err)
	}
	return &Segment{name: name, token: token, regionSize: regionSize, mem: m, plat: platform{m: m, created: true}}, nil
}

// Open maps the segment called name, which another process created. It
// refuses names that do not match ValidName, anything but a regular file
// of exactly the expected size, and a header that does not match
// regionSize and token.
func Open(name string, regionSize int, token Token) (*Segment, error) {
	if !ValidName(name) {
		return nil, fmt.Errorf("%w: %q", ErrName, name)
	}
	if err := checkRegionSize(regionSize); err != nil {
		return nil, err
	}
	path := filepath.Join(Dir, name)
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	f := os.NewFile(uintptr(fd), path)
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, &fs.PathError{Op: "fstat", Path: path, Err: err}
	}
	size := TotalSize(regionSize)
	if st.Mode&unix.S_IFMT != unix.S_IFREG || st.Size != int64(size) {
		return nil, fmt.Errorf("%w: %s is not a regular file of %d bytes", ErrHeader, path, size)
	}
	// Only a file of our own uid that nobody else may open: anyone else who
	// could write it could also truncate it under us.
	if int(st.Uid) != os.Geteuid() || st.Mode&0o077 != 0 {
		return nil, fmt.Errorf("%w: %s is owned by uid %d with mode %#o, want uid %d and mode 0600", ErrHeader, path, st.Uid, st.Mode&0o777, os.Geteuid())
	}
	m, err := mmap.MapRegion(f, size, mmap.RDWR, 0, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "mmap", Path: path, Err: err}
	}
	if err := checkMapped(m, regionSize, token); err != nil {
		m.Unmap()
		return nil, err
	}
	return &Segment{name: name, token: token, regionSize: regionSize, mem: m, plat: platform{m: m, unlinked: true}}, nil
}

// checkMapped checks the header of a fresh mapping. The file can be
// truncated under us until we check it (by its creator).
func checkMapped(m []byte, regionSize int, token Token) error {
	return guardFault(func() error { return checkHeader(m, regionSize, token) })
}

// guardFault runs f, which touches a mapping of a file that may have been
// truncated: touching a page past its end raises SIGBUS, and the runtime's
// panic-on-fault mode turns that into an error instead of a crash.
func guardFault(f func() error) (err error) {
	defer func(old bool) {
		debug.SetPanicOnFault(old)
		if r := recover(); r != nil {
			if _, fault := r.(interface{ Addr() uintptr }); !fault {
				panic(r)
			}
			err = fmt.Errorf("%w: memory fault touching the header (file truncated?)", ErrHeader)
		}
	}(debug.SetPanicOnFault(true))
	return f()
}

// Unlink removes the file; the mapping stays. Only the creator unlinks
// (an opener's Unlink does nothing), and only once.
func (s *Segment) Unlink() error {
	s.plat.mu.Lock()
	defer s.plat.mu.Unlock()
	return s.unlinkLocked()
}

func (s *Segment) unlinkLocked() error {
	if s.plat.unlinked || !s.plat.created {
		return nil
	}
	s.plat.unlinked = true
	path := filepath.Join(Dir, s.name)
	if err := unix.Unlink(path); err != nil && !errors.Is(err, unix.ENOENT) {
		return &fs.PathError{Op: "unlink", Path: path, Err: err}
	}
	return nil
}

// Close unlinks the file if that has not happened yet and unmaps the
// segment. Regions handed out before must not be used afterwards.
func (s *Segment) Close() error {
	s.plat.mu.Lock()
	defer s.plat.mu.Unlock()
	if s.plat.closed {
		return ErrClosed
	}
	s.plat.closed = true
	err := s.unlinkLocked()
	s.mem = nil
	if uerr := s.plat.m.Unmap(); uerr != nil && err == nil {
		err = os.NewSyscallError("munmap", uerr)
	}
	return err
}

// RemoveStale removes segment files left by processes that died between
// Create and Unlink. It touches only files whose name matches ValidName,
// whose creator pid no longer exists, whose header starts with Magic (files
// this package made), and that were last written more than olderThan ago.
// The age matters where processes share /dev/shm but not a pid namespace
// (containers of one pod): there a live creator's pid looks dead, but its
// file lives only as long as one handshake. It returns how many it removed.
func RemoveStale(olderThan time.Duration) (int, error) {
	entries, err := os.ReadDir(Dir)
	if err != nil {
		return 0, err
	}
	removed := 0
	for _, e := range entries {
		pid, ok := namePID(e.Name())
		if !ok || pid == os.Getpid() || !e.Type().IsRegular() {
			continue
		}
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			continue // alive, or not ours to ask about (EPERM): leave it
		}
		if info, err := e.Info(); err != nil || time.Since(info.ModTime()) < olderThan {
			continue
		}
		path := filepath.Join(Dir, e.Name())
		if !hasMagic(path) {
			continue
		}
		if err := unix.Unlink(path); err == nil {
			removed++
		}
	}
	return removed, nil
}

func hasMagic(path string) bool {
	// O_NONBLOCK: the name may have been swapped for a FIFO since we
	// listed it, and opening a FIFO would block forever.
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return false
	}
	f := os.NewFile(uintptr(fd), path)
	defer f.Close()
	var st unix.Stat_t
	if unix.Fstat(fd, &st) != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
		return false
	}
	var m [8]byte
	_, err = f.ReadAt(m[:], 0)
	return err == nil && m == Magic
}
