package segment

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/shmconn/shmconn/internal/fault"
	"github.com/shmconn/shmconn/internal/shmdir"
)

type platform struct {
	mu       sync.Mutex
	fd       int // a memfd until Unlink or Close hands it back; else -1
	unlinked bool
	closed   bool
	created  bool
}

// Seals on an anonymous segment: its size can never change, so no mapping
// of it can fault for lack of a backing page (SIGBUS past the end). They
// are also the seals Map insists on.
const memfdSeals = unix.F_SEAL_SHRINK | unix.F_SEAL_GROW

// punchSeal, added once both sides have mapped an anonymous segment (see
// sealPunching), forbids punching holes in it: fallocate(PUNCH_HOLE), and
// madvise(MADV_REMOVE) through a mapping, fail with EPERM. Otherwise the
// peer could free the pages we committed (our memory cgroup's usage
// drops), and our next write there would commit them again with no
// headroom check: the OOM killer, in a cgroup at its limit. It also
// forbids writable mappings made after it and write(2), which no side
// needs: the mappings made before keep writing.
const punchSeal = unix.F_SEAL_FUTURE_WRITE

// sealPunching adds punchSeal (and extra seals) to the anonymous segment
// fd, which both sides must have mapped by now. A file the peer sealed
// already is fine; one whose seals are sealed without punchSeal is an
// error. A kernel without punchSeal (before Linux 5.1) rejects it as
// EINVAL: the segment stays open to punching there, and extra is added
// alone.
func sealPunching(fd, extra int) error {
	_, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, punchSeal|extra)
	if errors.Is(err, unix.EINVAL) && extra != 0 {
		_, err = unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, extra)
	}
	if err == nil || errors.Is(err, unix.EINVAL) {
		return nil
	}
	if seals, gerr := unix.FcntlInt(uintptr(fd), unix.F_GET_SEALS, 0); gerr == nil && seals&punchSeal != 0 {
		return nil
	}
	return os.NewSyscallError("fcntl F_ADD_SEALS", err)
}

// Create makes a new named segment with two data areas of dataSize bytes
// each: a random name, O_EXCL (never an existing file), mode 0600 (only
// our uid), the header written. Nothing else is allocated: see Commit.
func Create(dataSize int) (*Segment, error) {
	token, err := newSegmentToken(dataSize)
	if err != nil {
		return nil, err
	}
	pid := os.Getpid()
	var (
		name string
		fd   int
	)
	dir := shmdir.Path()
	for range 4 { // a clash of 64 random bits means something is wrong; retry a little
		if name, err = newName(pid); err != nil {
			return nil, err
		}
		fd, err = unix.Open(filepath.Join(dir, name), unix.O_RDWR|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
		if !errors.Is(err, unix.EEXIST) {
			break
		}
	}
	path := filepath.Join(dir, name)
	if err != nil {
		return nil, pathError("create", path, err)
	}
	defer unix.Close(fd) // the mapping outlives the descriptor
	s, err := createOn(fd, dataSize, pid, token)
	if err != nil {
		unix.Unlink(path)
		return nil, &fs.PathError{Op: "create", Path: path, Err: err}
	}
	s.name = name
	return s, nil
}

// CreateAnonymous makes a new anonymous segment (a memfd) with two data
// areas of dataSize bytes each, sealed so its size never changes. It has
// no name: hand FD to the peer (over a unix socket, SCM_RIGHTS), and call
// Unlink once the peer has mapped it, which seals it against hole punching
// and closes our descriptor.
func CreateAnonymous(dataSize int) (*Segment, error) {
	token, err := newSegmentToken(dataSize)
	if err != nil {
		return nil, err
	}
	fd, err := unix.MemfdCreate("shmconn", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return nil, noMemory(os.NewSyscallError("memfd_create", err))
	}
	s, err := createOn(fd, dataSize, 0, token)
	if err == nil {
		_, err = unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, memfdSeals)
		if err != nil {
			s.unmap()
			err = os.NewSyscallError("fcntl F_ADD_SEALS", err)
		}
	}
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	s.plat.fd = fd
	return s, nil
}

// newSegmentToken checks the size of a segment about to be made and draws
// its token.
func newSegmentToken(dataSize int) (Token, error) {
	var token Token
	if err := checkDataSize(dataSize); err != nil {
		return token, err
	}
	_, err := rand.Read(token[:])
	return token, err
}

// createOn sizes the new file fd (sparse: no page is allocated), maps it
// and writes the header. Writing the header commits the first page, so a
// full /dev/shm or memory cgroup shows here, as an error.
func createOn(fd, dataSize, pid int, token Token) (*Segment, error) {
	size := totalSize(dataSize)
	if err := checkRoom(fd, size); err != nil {
		return nil, err
	}
	if err := unix.Ftruncate(fd, int64(size)); err != nil {
		return nil, noMemory(os.NewSyscallError("ftruncate", err))
	}
	m, err := mapFile(fd, size)
	if err != nil {
		return nil, err
	}
	s := &Segment{token: token, dataSize: dataSize, mem: m, plat: platform{fd: -1, created: true}}
	if err := s.commit(m[:headerSize]); err != nil {
		s.unmap()
		return nil, err
	}
	if err := writeMappedHeader(m, dataSize, pid, token); err != nil {
		s.unmap()
		return nil, err
	}
	return s, nil
}

// checkRoom admits a new segment only if its whole size would fit now, in
// the file system that holds it and in our memory cgroup. Pages are
// committed lazily, so this is no reservation; but it keeps us from
// handing out conns that would fail their first big Write, and makes a
// dial fall back (or fail with a clear error) while the conns already
// made still have room to grow.
func checkRoom(fd, size int) error {
	var st unix.Statfs_t
	if err := unix.Fstatfs(fd, &st); err == nil && st.Blocks > 0 {
		// A memfd's internal tmpfs reports no blocks: it has no size
		// limit of its own.
		if free := st.Bavail * uint64(st.Bsize); free < uint64(size) {
			return fmt.Errorf("%w: %d bytes free in the file system, the segment needs %d", ErrNoMemory, free, size)
		}
	}
	return checkHeadroom(size)
}

func mapFile(fd, size int) ([]byte, error) {
	m, err := unix.Mmap(fd, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, noMemory(os.NewSyscallError("mmap", err))
	}
	// A huge page would commit 2 MiB where a ring wrote 64 bytes.
	unix.Madvise(m, unix.MADV_NOHUGEPAGE)
	return m, nil
}

// noMemory marks errors that mean the system is out of shared memory.
func noMemory(err error) error {
	if errors.Is(err, unix.ENOSPC) || errors.Is(err, unix.ENOMEM) || errors.Is(err, unix.EFBIG) {
		return fmt.Errorf("%w: %w", ErrNoMemory, err)
	}
	return err
}

func pathError(op, path string, err error) error {
	return noMemory(&fs.PathError{Op: op, Path: path, Err: err})
}

// Open maps the named segment called name, which another process created.
// It refuses names that do not match ValidName, anything but a regular
// file of our uid, mode 0600 and exactly the expected size, and a header
// that does not match dataSize and token.
func Open(name string, dataSize int, token Token) (*Segment, error) {
	if !ValidName(name) {
		return nil, fmt.Errorf("%w: %q", ErrName, name)
	}
	if err := checkDataSize(dataSize); err != nil {
		return nil, err
	}
	path := filepath.Join(shmdir.Path(), name)
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, &fs.PathError{Op: "fstat", Path: path, Err: err}
	}
	size := totalSize(dataSize)
	if st.Mode&unix.S_IFMT != unix.S_IFREG || st.Size != int64(size) {
		return nil, fmt.Errorf("%w: %s is not a regular file of %d bytes", ErrHeader, path, size)
	}
	// Only a file of our own uid that nobody else may open: anyone else who
	// could write it could also truncate it under us.
	if int(st.Uid) != os.Geteuid() || st.Mode&0o077 != 0 {
		return nil, fmt.Errorf("%w: %s is owned by uid %d with mode %#o, want uid %d and mode 0600", ErrHeader, path, st.Uid, st.Mode&0o777, os.Geteuid())
	}
	s, err := mapChecked(fd, dataSize, token)
	if err != nil {
		return nil, err
	}
	s.name = name
	s.plat.unlinked = true
	return s, nil
}

// Map maps the anonymous segment whose descriptor fd the peer sent us,
// and takes fd over (it is closed whatever the outcome). It refuses
// anything but a regular file of exactly the expected size sealed against
// shrinking and growing (so it can never be truncated under us), and a
// header that does not match dataSize and token.
func Map(fd int, dataSize int, token Token) (*Segment, error) {
	defer unix.Close(fd)
	if err := checkDataSize(dataSize); err != nil {
		return nil, err
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, os.NewSyscallError("fstat", err)
	}
	size := totalSize(dataSize)
	if st.Mode&unix.S_IFMT != unix.S_IFREG || st.Size != int64(size) {
		return nil, fmt.Errorf("%w: descriptor is not a regular file of %d bytes", ErrHeader, size)
	}
	seals, err := unix.FcntlInt(uintptr(fd), unix.F_GET_SEALS, 0)
	if err != nil || seals&memfdSeals != memfdSeals {
		return nil, fmt.Errorf("%w: descriptor not sealed against resizing (seals %#x, %v)", ErrHeader, seals, err)
	}
	s, err := mapChecked(fd, dataSize, token)
	if err != nil {
		return nil, err
	}
	// Mapped (after the seal no writable mapping could be made): now
	// nobody may punch holes in it, the listener included.
	if err := sealPunching(fd, 0); err != nil {
		s.unmap()
		return nil, fmt.Errorf("%w: descriptor cannot be sealed against hole punching: %w", ErrHeader, err)
	}
	s.plat.unlinked = true
	return s, nil
}

// mapChecked maps fd and checks its header.
func mapChecked(fd, dataSize int, token Token) (*Segment, error) {
	m, err := mapFile(fd, totalSize(dataSize))
	if err != nil {
		return nil, err
	}
	s := &Segment{token: token, dataSize: dataSize, mem: m, plat: platform{fd: -1}}
	if err := checkMapped(m, dataSize, token); err != nil {
		s.unmap()
		return nil, err
	}
	return s, nil
}

// checkMapped checks the header of a fresh mapping. A named file can be
// truncated under us until we check it (by its creator).
func checkMapped(m []byte, dataSize int, token Token) (err error) {
	defer fault.Catch(&err, fault.Guard(), headerFault)
	return checkHeader(m, dataSize, token)
}

// writeMappedHeader writes the header of a fresh mapping. Anyone of our
// uid can truncate a named file from the moment it exists (a watcher of
// /dev/shm wins that race reliably).
func writeMappedHeader(m []byte, dataSize, pid int, token Token) (err error) {
	defer fault.Catch(&err, fault.Guard(), headerFault)
	writeHeader(m, dataSize, pid, token)
	return nil
}

// Bind writes the opener's binding record rec (at most bindingSize
// bytes): how the opener sees the connection over which the segment was
// offered. The creator checks it with ConfirmBinding, so that the two
// know they share this very file over that very connection: a file
// swapped under its name, or a segment relayed by a third party, leaves
// the creator's copy without the record. A named file can still be
// truncated here: the fault becomes an error.
func (s *Segment) Bind(rec []byte) (err error) {
	if s.mem == nil {
		return ErrClosed
	}
	defer fault.Catch(&err, fault.Guard(), headerFault)
	return putBinding(s.mem, rec)
}

// ConfirmBinding is the creator's check of the opener's binding: it
// reports whether the header holds exactly rec, the record the creator
// expects, and if so marks the binding confirmed for the opener to see
// (BindingConfirmed).
func (s *Segment) ConfirmBinding(rec []byte) (ok bool, err error) {
	if s.mem == nil {
		return false, ErrClosed
	}
	defer fault.Catch(&err, fault.Guard(), headerFault)
	if !holdsBinding(s.mem, rec) {
		return false, nil
	}
	binary.LittleEndian.PutUint32(s.mem[offConfirmed:], confirmedMark)
	return true, nil
}

// BindingConfirmed reports whether the creator confirmed the opener's
// binding in this file (ConfirmBinding).
func (s *Segment) BindingConfirmed() (ok bool, err error) {
	if s.mem == nil {
		return false, ErrClosed
	}
	defer fault.Catch(&err, fault.Guard(), headerFault)
	return binary.LittleEndian.Uint32(s.mem[offConfirmed:]) == confirmedMark, nil
}

// headerFault reports a fault touching the header: its file was truncated.
func headerFault(addr uintptr) error {
	return fmt.Errorf("%w: memory fault at %#x touching the header (file truncated?)", ErrHeader, addr)
}

// FD returns the descriptor of an anonymous segment made by
// CreateAnonymous, to send to the peer, or -1 if there is none (a named
// segment, or after Unlink or Close). It stays ours: do not close it.
func (s *Segment) FD() int {
	s.plat.mu.Lock()
	defer s.plat.mu.Unlock()
	return s.plat.fd
}

// populateUnsupported is set when the kernel lacks MADV_POPULATE_WRITE
// (before Linux 5.14); Commit then leaves pages to be committed by the
// write itself, whose fault a caller must be ready to catch.
var populateUnsupported atomic.Bool

// Commit makes sure bytes [off, off+n) of direction i's data area are
// backed by memory, so writing them cannot fault. Pages already committed
// cost a walk of the page table; a page that cannot be committed (a full
// tmpfs, a memory cgroup at its limit) is an error wrapping ErrNoMemory.
func (s *Segment) Commit(i, off, n int) error {
	b, err := s.pages(i, off, n)
	if err != nil || len(b) == 0 {
		return err
	}
	return s.commit(b)
}

// pages returns the whole pages of direction i's data area that hold bytes
// [off, off+n), for a commit of them.
func (s *Segment) pages(i, off, n int) ([]byte, error) {
	d := s.Data(i)
	if d == nil || off < 0 || n < 0 || off > len(d)-n {
		return nil, fmt.Errorf("%w: commit [%d, %d+%d) of direction %d", ErrSize, off, off, n, i)
	}
	if n == 0 {
		return nil, nil
	}
	lo := off &^ (PageSize - 1)
	hi := min(len(d), (off+n+PageSize-1)&^(PageSize-1))
	return d[lo:hi], nil
}

// Decommit gives back the memory behind the whole pages within bytes
// [off, off+n) of direction i's data area, which must hold nothing yet:
// the pages a Commit populated past what its writer needs before it
// failed (a full tmpfs), which would otherwise stay taken from every other
// user of the file system. The pages read as zeros after, and a later
// Commit populates them again. An anonymous segment, whose memory file has
// no size limit, refuses it (EPERM) once sealed against hole punching.
func (s *Segment) Decommit(i, off, n int) error {
	d := s.Data(i)
	if d == nil || off < 0 || n < 0 || off > len(d)-n {
		return fmt.Errorf("%w: decommit [%d, %d+%d) of direction %d", ErrSize, off, off, n, i)
	}
	lo := (off + PageSize - 1) &^ (PageSize - 1)
	hi := (off + n) &^ (PageSize - 1)
	if n == len(d)-off {
		hi = len(d) // the area's end, whole page or not
	}
	if lo >= hi {
		return nil
	}
	return os.NewSyscallError("madvise", unix.Madvise(d[lo:hi], unix.MADV_REMOVE))
}

func (s *Segment) commit(b []byte) error {
	if err := checkHeadroom(len(b)); err != nil {
		return err
	}
	return s.populate(b, unix.MADV_POPULATE_WRITE)
}

// CommitAbsent is Commit for a reader about to read bytes [off, off+n) of
// direction i's data area, which the peer published: it commits those of
// their pages that are not in memory, counting only them against the
// memory cgroup's headroom. Reading a page that is not in memory (one its
// writer never wrote) commits it, charged to the reader's memory cgroup,
// and a cgroup at its limit answers that fault with the OOM killer, not
// an error. A page swapped out counts as absent too, which can only make
// the check stricter (it comes back charged to its owner).
func (s *Segment) CommitAbsent(i, off, n int) error {
	all, err := s.pages(i, off, n)
	if err != nil {
		return err
	}
	var vec [64]byte // mincore's answer for 64 pages at a time
	for len(all) > 0 {
		b := all[:min(len(all), len(vec)*PageSize)]
		all = all[len(b):]
		pages := (len(b) + PageSize - 1) / PageSize
		_, _, errno := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)), uintptr(unsafe.Pointer(&vec[0])))
		if errno != 0 {
			// ENOMEM: the mapping has a hole, which it never has.
			return fmt.Errorf("%w: %w", ErrNoMemory, os.NewSyscallError("mincore", errno))
		}
		absent := 0
		for _, v := range vec[:pages] {
			absent += int(^v & 1)
		}
		if absent == 0 {
			continue
		}
		if err := checkHeadroom(absent * PageSize); err != nil {
			return err
		}
		if err := s.populate(b, unix.MADV_POPULATE_READ); err != nil {
			return err
		}
	}
	return nil
}

// populate backs b with memory as a write (MADV_POPULATE_WRITE) or a read
// (MADV_POPULATE_READ) of every page would, turning the fault that would
// raise SIGBUS into an error.
func (s *Segment) populate(b []byte, advice int) error {
	if populateUnsupported.Load() {
		return nil
	}
	err := unix.Madvise(b, advice)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, unix.EINVAL):
		populateUnsupported.Store(true)
		return nil
	case errors.Is(err, unix.EINTR):
		return s.populate(b, advice) // a signal arrived; the pages done stay done
	case errors.Is(err, unix.EFAULT):
		// Touching the page would have raised SIGBUS: the file system
		// refused a page (ENOSPC), or a named file was truncated.
		if s.truncated(len(b)) {
			return errTruncated
		}
		return fmt.Errorf("%w: a page cannot be committed (tmpfs full?)", ErrNoMemory)
	}
	return fmt.Errorf("%w: %w", ErrNoMemory, os.NewSyscallError("madvise", err))
}

// truncated tells, after a commit of n bytes failed as a SIGBUS would, a
// file that shrank from a full file system. Only a named file can shrink
// (an anonymous one is sealed). It did if its first page, committed when
// it was made, is gone too; or if its file system has room for the n bytes
// after all (the first page can still look present for a moment while a
// truncation is under way).
func (s *Segment) truncated(n int) bool {
	if s.name == "" {
		return false
	}
	if err := unix.Madvise(s.mem[:PageSize], unix.MADV_POPULATE_READ); err != nil && !errors.Is(err, unix.EINVAL) {
		return true
	}
	var st unix.Statfs_t
	return unix.Statfs(shmdir.Path(), &st) == nil && st.Bavail*uint64(st.Bsize) >= uint64(n)
}

// Unlink gives up the way another process could still reach the segment:
// the creator removes a named file, or seals an anonymous one against hole
// punching (the peer must have mapped it: no writable mapping can be made
// after that) and closes its descriptor. The mapping stays. An opener's Unlink does nothing; only
// the first call acts.
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
	if s.plat.fd >= 0 {
		// The peer mapped it (or gave up): whatever it did, nobody may
		// punch holes in it from now on, nor change its seals.
		err := sealPunching(s.plat.fd, unix.F_SEAL_SEAL)
		if cerr := unix.Close(s.plat.fd); err == nil {
			err = os.NewSyscallError("close", cerr)
		}
		s.plat.fd = -1
		return err
	}
	path := filepath.Join(shmdir.Path(), s.name)
	if err := unix.Unlink(path); err != nil && !errors.Is(err, unix.ENOENT) {
		return &fs.PathError{Op: "unlink", Path: path, Err: err}
	}
	return nil
}

// Close unlinks the segment if that has not happened yet and unmaps it.
// Areas handed out before must not be used afterwards.
func (s *Segment) Close() error {
	s.plat.mu.Lock()
	defer s.plat.mu.Unlock()
	if s.plat.closed {
		return ErrClosed
	}
	s.plat.closed = true
	err := s.unlinkLocked()
	if uerr := s.unmap(); uerr != nil && err == nil {
		err = uerr
	}
	return err
}

func (s *Segment) unmap() error {
	m := s.mem
	s.mem = nil
	if m == nil {
		return nil
	}
	return os.NewSyscallError("munmap", unix.Munmap(m))
}

// RemoveStale removes segment files left by processes that died between
// Create and Unlink. It touches only files whose name matches ValidName,
// whose creator pid no longer exists, whose header starts with our magic
// (files this package made), and that were last written more than
// olderThan ago.
// The age matters where processes share /dev/shm but not a pid namespace
// (containers of one pod): there a live creator's pid looks dead, but its
// file lives only as long as one handshake. It returns how many it removed.
func RemoveStale(olderThan time.Duration) (int, error) {
	dir := shmdir.Path()
	entries, err := os.ReadDir(dir)
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
		path := filepath.Join(dir, e.Name())
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
	var m [len(magic)]byte
	_, err = f.ReadAt(m[:], 0)
	return err == nil && string(m[:]) == magic
}
