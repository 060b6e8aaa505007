//go:build linux

package segment

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/shmconn/shmconn/internal/shmdir"
	"github.com/shmconn/shmconn/internal/testutil"
)

// useDir points the segment directory at a private one for tests that
// plant files.
func useDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	t.Cleanup(shmdir.Set(dir))
	return dir
}

func TestHeaderLayout(t *testing.T) {
	require.Equal(t, []int{0, 8, 12, 16, 24, 28, 32, 48, 256, 512}, []int{offMagic, offVersion, offHeaderSize, offDataSize, offRegions, offCreatorPID, offToken, offConfirmed, offBinding, offControl})
	require.LessOrEqual(t, offToken+TokenSize, offConfirmed)
	require.LessOrEqual(t, offConfirmed+4, offBinding)
	require.LessOrEqual(t, offBinding+bindingSize, offControl)
	require.Equal(t, 256, bindingSize, "SPEC.md: the binding record's room")
	require.LessOrEqual(t, offControl+regions*ControlSize, headerSize, "control blocks share the first page")
}

func TestCreateOpenUnlink(t *testing.T) {
	const dataSize = 2 * PageSize
	c, err := Create(dataSize)
	require.NoError(t, err)
	path := filepath.Join(shmdir.Path(), c.Name())
	st, err := os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, fs.FileMode(0o600), st.Mode().Perm())
	require.EqualValues(t, totalSize(dataSize), st.Size())
	require.Equal(t, -1, c.FD())
	require.False(t, c.sealed(), "a named file can be truncated")

	o, err := Open(c.Name(), dataSize, c.Token())
	require.NoError(t, err)
	require.NoError(t, c.Unlink())
	_, err = os.Stat(path)
	require.ErrorIs(t, err, fs.ErrNotExist, "segment file survives Unlink")
	checkShared(t, c, o)
	require.NoError(t, o.Close())
	require.NoError(t, c.Close())
	require.ErrorIs(t, c.Close(), ErrClosed)
	require.Nil(t, c.Data(0))
	require.Nil(t, c.Control(0))
}

// checkShared checks the two mappings share memory, area by area.
func checkShared(t *testing.T, c, o *Segment) {
	t.Helper()
	size := c.dataSize
	for i := range regions {
		require.NoError(t, c.Commit(i, 0, size))
		c.Data(i)[0] = byte(10 + i)
		c.Data(i)[size-1] = byte(20 + i)
		c.Control(i)[0] = byte(30 + i)
		c.Control(i)[ControlSize-1] = byte(40 + i)
		require.Equal(t, byte(10+i), o.Data(i)[0])
		require.Equal(t, byte(20+i), o.Data(i)[size-1])
		require.Equal(t, byte(30+i), o.Control(i)[0])
		require.Equal(t, byte(40+i), o.Control(i)[ControlSize-1])
	}
	require.Nil(t, c.Data(2))
	require.Nil(t, c.Data(-1))
	require.Nil(t, c.Control(2))
	require.ErrorIs(t, c.Commit(0, size, 1), ErrSize)
	require.ErrorIs(t, c.Commit(0, -1, 1), ErrSize)
	require.ErrorIs(t, c.Commit(2, 0, 1), ErrSize)
}

// TestAnonymous passes a memfd segment the way conns do (as a descriptor)
// and checks Map shares it, takes the descriptor over, and that no name
// appears anywhere.
func TestAnonymous(t *testing.T) {
	const dataSize = 4 * PageSize
	before := countFDs(t)
	c, err := CreateAnonymous(dataSize)
	require.NoError(t, err)
	require.Empty(t, c.Name())
	require.True(t, c.sealed())
	fd, err := unix.Dup(c.FD()) // what the peer receives over SCM_RIGHTS
	require.NoError(t, err)
	o, err := Map(fd, dataSize, c.Token())
	require.NoError(t, err)
	require.NoError(t, c.Unlink())
	require.Equal(t, -1, c.FD())
	checkShared(t, c, o)
	require.NoError(t, o.Close())
	require.NoError(t, c.Close())
	require.Equal(t, before, countFDs(t), "descriptors leaked")
}

// TestMapRefuses: Map takes only a sealed memory file of the agreed size
// and header, and closes what it is given in every case.
func TestMapRefuses(t *testing.T) {
	const dataSize = PageSize
	before := countFDs(t)
	c, err := CreateAnonymous(dataSize)
	require.NoError(t, err)
	defer c.Close()
	dup := func() int {
		fd, err := unix.Dup(c.FD())
		require.NoError(t, err)
		return fd
	}
	_, err = Map(dup(), dataSize, Token{1})
	require.ErrorIs(t, err, ErrHeader, "wrong token")
	_, err = Map(dup(), 2*dataSize, c.Token())
	require.ErrorIs(t, err, ErrHeader, "wrong size")
	_, err = Map(dup(), 100, c.Token())
	require.ErrorIs(t, err, ErrSize)
	// The seals cannot be lifted, nor can F_SEAL_WRITE be added while the
	// segment is mapped.
	_, err = unix.FcntlInt(uintptr(c.FD()), unix.F_ADD_SEALS, unix.F_SEAL_WRITE)
	require.Error(t, err)
	require.Error(t, unix.Ftruncate(c.FD(), 0), "a sealed segment shrank")

	// An unsealed memory file of the right size and header: it could be
	// truncated under us.
	_, err = Map(memfdWithSeals(t, dataSize, c.Token(), 0), dataSize, c.Token())
	require.ErrorIs(t, err, ErrHeader, "unsealed memfd")
	// A directory, a pipe.
	dir, err := unix.Open(t.TempDir(), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	require.NoError(t, err)
	_, err = Map(dir, dataSize, c.Token())
	require.ErrorIs(t, err, ErrHeader, "directory")
	var p [2]int
	require.NoError(t, unix.Pipe2(p[:], unix.O_CLOEXEC))
	unix.Close(p[1])
	_, err = Map(p[0], dataSize, c.Token())
	require.ErrorIs(t, err, ErrHeader, "pipe")
	require.NoError(t, c.Close())
	require.Equal(t, before, countFDs(t), "descriptors leaked")
}

func countFDs(t *testing.T) int {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	require.NoError(t, err)
	return len(entries)
}

// TestLazyCommit checks a new segment costs its first page only, and a
// committed data page one more.
func TestLazyCommit(t *testing.T) {
	const dataSize = 64 * PageSize
	c, err := CreateAnonymous(dataSize)
	require.NoError(t, err)
	defer c.Close()
	require.Equal(t, 1, residentPages(t, c), "pages resident after create")
	require.NoError(t, c.Commit(1, 5*PageSize+10, 1))
	require.Equal(t, 2, residentPages(t, c))
	require.NoError(t, c.Commit(0, PageSize-1, 2)) // straddles two pages
	require.Equal(t, 4, residentPages(t, c))
}

// TestDecommit gives back whole pages only, and a decommitted page can be
// committed again.
func TestDecommit(t *testing.T) {
	const dataSize = 64 * PageSize
	c, err := CreateAnonymous(dataSize)
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, c.Commit(0, 0, 8*PageSize))
	require.Equal(t, 9, residentPages(t, c))
	require.NoError(t, c.Decommit(0, 2*PageSize+1, 3*PageSize)) // pages 3 and 4 whole
	require.Equal(t, 7, residentPages(t, c))
	require.NoError(t, c.Decommit(0, 7*PageSize, dataSize-7*PageSize)) // to the end
	require.Equal(t, 6, residentPages(t, c))
	require.NoError(t, c.Commit(0, 0, 8*PageSize))
	require.Equal(t, 9, residentPages(t, c))
	require.ErrorIs(t, c.Decommit(0, dataSize, 1), ErrSize)
	require.ErrorIs(t, c.Decommit(0, -1, 1), ErrSize)
}

func residentPages(t *testing.T, s *Segment) int {
	t.Helper()
	n, err := testutil.Resident(s.mem)
	require.NoError(t, err)
	return n / PageSize
}

// TestCommitFullTmpfs runs out of room in a tiny tmpfs: Create succeeds
// (nothing is allocated), and committing more than fits is an error
// wrapping ErrNoMemory, never a SIGBUS. The tmpfs is mounted in a mount
// namespace of this test's own thread, so nothing shows outside.
func TestCommitFullTmpfs(t *testing.T) {
	dir := t.TempDir()
	done := make(chan struct{})
	var skip string
	go func() {
		defer close(done)
		// Never unlocked: the thread, with its namespace, ends with us.
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
			skip = "unshare: " + err.Error()
			return
		}
		if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
			skip = "make mounts private: " + err.Error()
			return
		}
		if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=64k"); err != nil {
			skip = "mount tmpfs: " + err.Error()
			return
		}
		defer shmdir.Set(dir)()
		// Each segment fits alone (4 + 2*28 = 60 KiB), not together.
		const size = 7 * PageSize
		a, err := Create(size)
		if !assert.NoError(t, err) {
			return
		}
		defer a.Close()
		b, err := Create(size)
		if !assert.NoError(t, err, "admitted: 60 KiB are free") {
			return
		}
		defer b.Close()
		assert.NoError(t, a.Commit(0, 0, size), "what fits")
		assert.NoError(t, a.Commit(1, 0, size), "what fits")
		err = b.Commit(0, 0, 1)
		assert.ErrorIs(t, err, ErrNoMemory)
		t.Logf("committing a page of a full 64 KiB tmpfs: %v", err)
		_, err = Create(size)
		assert.ErrorIs(t, err, ErrNoMemory, "a segment that cannot fit is not made")
		t.Logf("creating a segment there: %v", err)
	}()
	<-done
	if skip != "" {
		t.Skip("needs root and mount namespaces: " + skip)
	}
}
func TestCloseUnlinks(t *testing.T) {
	c, err := Create(PageSize)
	require.NoError(t, err)
	require.NoError(t, c.Close())
	_, err = os.Stat(filepath.Join(shmdir.Path(), c.Name()))
	require.ErrorIs(t, err, fs.ErrNotExist)
}

func TestValidName(t *testing.T) {
	good, err := newName(os.Getpid())
	require.NoError(t, err)
	require.True(t, ValidName(good), good)
	require.LessOrEqual(t, len("shmconn-4294967295-0123456789abcdef"), MaxNameLen)
	for _, bad := range []string{
		"", "shmconn-", "shmconn-1-", "shmconn--0123456789abcdef",
		"shmconn-1-0123456789ABCDEF", "shmconn-1-0123456789abcdef0",
		"shmconn-1-0123456789abcde", "shmconn-12345678901-0123456789abcdef",
		"../shmconn-1-0123456789abcdef", "shmconn-1-0123456789abcdef/../../etc/passwd",
		"shmconn-1/0123456789abcdef", "xshmconn-1-0123456789abcdef", "shmconn-x-0123456789abcdef",
		"/etc/passwd", "shmconn-1-01234567\x0089abcdef",
	} {
		require.False(t, ValidName(bad), "%q accepted", bad)
		_, err := Open(bad, PageSize, Token{})
		require.ErrorIs(t, err, ErrName, "%q", bad)
	}
}

func TestOpenRefuses(t *testing.T) {
	dir := useDir(t)
	c, err := Create(PageSize)
	require.NoError(t, err)
	defer c.Close()

	_, err = Open(c.Name(), PageSize, Token{1})
	require.ErrorIs(t, err, ErrHeader, "wrong token")
	_, err = Open(c.Name(), 2*PageSize, c.Token())
	require.ErrorIs(t, err, ErrHeader, "wrong size")
	_, err = Open(c.Name(), 1000, c.Token())
	require.ErrorIs(t, err, ErrSize, "misaligned size")
	_, err = Open("shmconn-1-0123456789abcdef", PageSize, c.Token())
	require.ErrorIs(t, err, fs.ErrNotExist)

	// A symlink with a valid name is not followed.
	link := "shmconn-2-0123456789abcdef"
	require.NoError(t, os.Symlink(filepath.Join(dir, c.Name()), filepath.Join(dir, link)))
	_, err = Open(link, PageSize, c.Token())
	require.Error(t, err)

	// A file of the right size but a foreign header is refused, whatever
	// the field that differs.
	for _, tc := range []struct {
		name string
		off  int
	}{{"magic", offMagic}, {"version", offVersion}, {"headerSize", offHeaderSize}, {"dataSize", offDataSize}, {"regions", offRegions}} {
		t.Run(tc.name, func(t *testing.T) {
			c2, err := Create(PageSize)
			require.NoError(t, err)
			defer c2.Close()
			c2.mem[tc.off]++
			_, err = Open(c2.Name(), PageSize, c2.Token())
			require.ErrorIs(t, err, ErrHeader)
		})
	}
	for _, size := range []int{0, -PageSize, maxDataSize + PageSize, 100, 1024} {
		_, err := Create(size)
		require.ErrorIs(t, err, ErrSize, "%d", size)
	}
}

func TestRemoveStale(t *testing.T) {
	dir := useDir(t)
	// A dead creator: pid 0x7ffffffe is above any real pid_max.
	dead := "shmconn-2147483646-0123456789abcdef"
	hdr := make([]byte, headerSize)
	writeHeader(hdr, PageSize, 2147483646, Token{})
	require.NoError(t, os.WriteFile(filepath.Join(dir, dead), hdr, 0o600))
	// Same shape but not our magic: not ours, left alone.
	foreign := "shmconn-2147483646-fedcba9876543210"
	require.NoError(t, os.WriteFile(filepath.Join(dir, foreign), make([]byte, headerSize), 0o600))
	// A live creator (us, through our own Create) is left alone.
	live, err := Create(PageSize)
	require.NoError(t, err)
	defer live.Close()
	// A file that merely looks similar is left alone.
	other := "shmconn-x"
	require.NoError(t, os.WriteFile(filepath.Join(dir, other), hdr, 0o600))

	// Young files are left alone: their creator may live in another pid
	// namespace, mid-handshake.
	n, err := RemoveStale(time.Hour)
	require.NoError(t, err)
	require.Equal(t, 0, n)
	n, err = RemoveStale(0)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	var left []string
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		left = append(left, e.Name())
	}
	require.ElementsMatch(t, []string{foreign, live.Name(), other}, left)
}

func TestCreateFullDir(t *testing.T) {
	const missing = "/nonexistent-shmconn-dir"
	defer shmdir.Set(missing)()
	_, err := Create(PageSize)
	var pe *fs.PathError
	require.True(t, errors.As(err, &pe), "%v", err)
	require.True(t, strings.HasPrefix(pe.Path, missing))
}

// TestOpenRefusesForeignFiles: a file others may write (or own) could be
// truncated under us, so it is refused.
func TestOpenRefusesForeignFiles(t *testing.T) {
	useDir(t)
	c, err := Create(PageSize)
	require.NoError(t, err)
	defer c.Close()
	path := filepath.Join(shmdir.Path(), c.Name())
	require.NoError(t, os.Chmod(path, 0o644))
	_, err = Open(c.Name(), PageSize, c.Token())
	require.ErrorIs(t, err, ErrHeader, "group/other-readable segment")
	require.NoError(t, os.Chmod(path, 0o600))
	if os.Geteuid() == 0 {
		require.NoError(t, os.Chown(path, 65534, 65534))
		_, err = Open(c.Name(), PageSize, c.Token())
		require.ErrorIs(t, err, ErrHeader, "segment of another uid")
	}
}

// TestRemoveStaleSkipsFIFO: a FIFO under a stale-looking name must neither
// block RemoveStale nor be removed.
func TestRemoveStaleSkipsFIFO(t *testing.T) {
	dir := useDir(t)
	fifo := filepath.Join(dir, "shmconn-2147483646-0123456789abcdef")
	require.NoError(t, syscall.Mkfifo(fifo, 0o600))
	done := make(chan struct{})
	go func() {
		RemoveStale(0)
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("RemoveStale blocked on a FIFO")
	}
	_, err := os.Stat(fifo)
	require.NoError(t, err, "FIFO removed")
}

// TestHeaderOfTruncatedFile: touching the header of a file truncated under
// the mapping is ErrHeader, not a crash, whether writing it (the creator)
// or checking it (the opener).
func TestHeaderOfTruncatedFile(t *testing.T) {
	m := testutil.TruncatedMapping(t)
	require.GreaterOrEqual(t, len(m), headerSize)
	require.ErrorIs(t, writeMappedHeader(m, PageSize, os.Getpid(), Token{}), ErrHeader)
	require.ErrorIs(t, checkMapped(m, PageSize, Token{}), ErrHeader)
}

// TestContains: exactly the mapping's addresses, from its first byte to
// its last, and none once the segment is closed.
func TestContains(t *testing.T) {
	const dataSize = 4 * PageSize
	c, err := CreateAnonymous(dataSize)
	require.NoError(t, err)
	first := uintptr(unsafe.Pointer(&c.Control(0)[0])) - offControl // the header's first byte
	last := uintptr(unsafe.Pointer(&c.Data(1)[dataSize-1]))
	assert.True(t, c.contains(first))
	assert.True(t, c.contains(uintptr(unsafe.Pointer(&c.Data(0)[dataSize/2]))))
	assert.True(t, c.contains(last))
	assert.False(t, c.contains(first-1))
	assert.False(t, c.contains(last+1))
	assert.False(t, c.contains(0))
	require.NoError(t, c.Close())
	assert.False(t, c.contains(first), "a closed segment claims its old address")
}

// TestSealedAgainstPunching: once both sides have mapped an anonymous
// segment (Map seals it, and so does the creator's Unlink), nobody can
// punch holes in it, through a mapping (MADV_REMOVE) or the descriptor
// (fallocate): the pages a side committed stay committed, whatever the
// peer does, and both mappings go on writing. A memory file whose seals
// were sealed without that seal is refused.
func TestSealedAgainstPunching(t *testing.T) {
	const dataSize = 4 * PageSize
	c, err := CreateAnonymous(dataSize)
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, c.Commit(0, 0, dataSize))
	peer, err := unix.Dup(c.FD()) // a peer that keeps the descriptor
	require.NoError(t, err)
	defer unix.Close(peer)
	fd, err := unix.Dup(c.FD())
	require.NoError(t, err)
	o, err := Map(fd, dataSize, c.Token())
	require.NoError(t, err)
	defer o.Close()
	require.ErrorIs(t, unix.Madvise(o.Data(0), unix.MADV_REMOVE), unix.EPERM)
	require.ErrorIs(t, unix.Fallocate(peer, unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, 0, int64(totalSize(dataSize))), unix.EPERM)
	_, err = unix.Mmap(peer, 0, totalSize(dataSize), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	require.Error(t, err, "a writable mapping made after the seal")
	require.Equal(t, 1+dataSize/PageSize, residentPages(t, c))
	require.NoError(t, c.Unlink())
	seals, err := unix.FcntlInt(uintptr(peer), unix.F_GET_SEALS, 0)
	require.NoError(t, err)
	require.Equal(t, unix.F_SEAL_SHRINK|unix.F_SEAL_GROW|unix.F_SEAL_FUTURE_WRITE|unix.F_SEAL_SEAL, seals)
	checkShared(t, c, o)

	// A creator that sealed the seals first: the file could be punched.
	raw := memfdWithSeals(t, dataSize, c.Token(), unix.F_SEAL_SHRINK|unix.F_SEAL_GROW|unix.F_SEAL_SEAL)
	_, err = Map(raw, dataSize, c.Token())
	require.ErrorIs(t, err, ErrHeader, "a memory file that cannot be sealed against punching")
}

// TestCommitAbsent: a reader's commit counts, against the memory cgroup's
// headroom, only the pages that are not in memory, and commits them.
func TestCommitAbsent(t *testing.T) {
	const dataSize = 64 * PageSize
	c, err := CreateAnonymous(dataSize)
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, c.Commit(0, 0, 40*PageSize)) // what the writer wrote
	require.Equal(t, 41, residentPages(t, c))

	// A cgroup with room for two pages past its reserve.
	root := t.TempDir()
	proc := filepath.Join(root, "cgroup")
	require.NoError(t, os.WriteFile(proc, []byte("0::/\n"), 0o644))
	const limit = 64 << 20
	require.NoError(t, os.WriteFile(filepath.Join(root, "memory.max"), []byte("67108864\n"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(root, "memory.current"), fmt.Appendf(nil, "%d\n", limit-memReserve(limit)-2*PageSize), 0o644))
	memOnce.Do(func() {})
	saved := mem
	mem = findCgroupMemory(proc, root)
	defer func() { mem = saved }()

	require.NoError(t, c.CommitAbsent(0, 0, 40*PageSize), "all in memory: nothing to count")
	require.Equal(t, 41, residentPages(t, c))
	require.NoError(t, c.CommitAbsent(0, 39*PageSize+5, PageSize), "one page absent")
	require.Equal(t, 42, residentPages(t, c))
	require.ErrorIs(t, c.CommitAbsent(0, 30*PageSize, 14*PageSize), ErrNoMemory, "three pages absent, room for two")
	require.Equal(t, 42, residentPages(t, c))
	require.NoError(t, c.CommitAbsent(0, 30*PageSize, 13*PageSize))
	require.Equal(t, 44, residentPages(t, c))
	require.ErrorIs(t, c.CommitAbsent(0, dataSize, 1), ErrSize)
	require.ErrorIs(t, c.CommitAbsent(2, 0, 1), ErrSize)
}

// memfdWithSeals makes a memory file of the right size and header for a
// segment with token, as a lying creator might, with the given seals (0:
// none, and it cannot be sealed).
func memfdWithSeals(t *testing.T, dataSize int, token Token, seals int) int {
	t.Helper()
	flags := unix.MFD_CLOEXEC
	if seals != 0 {
		flags |= unix.MFD_ALLOW_SEALING
	}
	fd, err := unix.MemfdCreate("shmconn-test", flags)
	require.NoError(t, err)
	require.NoError(t, unix.Ftruncate(fd, int64(totalSize(dataSize))))
	hdr := make([]byte, headerSize)
	writeHeader(hdr, dataSize, 0, token)
	_, err = unix.Pwrite(fd, hdr, 0)
	require.NoError(t, err)
	if seals != 0 {
		_, err = unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, seals)
		require.NoError(t, err)
	}
	return fd
}

// TestBinding: the creator confirms exactly the record the opener wrote,
// zero padding included, and only the opener of the same file sees the
// confirmation.
func TestBinding(t *testing.T) {
	c, err := Create(PageSize)
	require.NoError(t, err)
	defer c.Close()
	o, err := Open(c.Name(), PageSize, c.Token())
	require.NoError(t, err)
	defer o.Close()

	require.ErrorIs(t, o.Bind(make([]byte, bindingSize+1)), ErrSize)
	ok, err := c.ConfirmBinding([]byte("ours"))
	require.NoError(t, err)
	require.False(t, ok, "confirmed a binding nobody wrote")

	require.NoError(t, o.Bind([]byte("ours, longer")))
	require.NoError(t, o.Bind([]byte("ours"))) // a shorter record clears the rest
	for _, rec := range []string{"our", "ours, longer", "theirs"} {
		ok, err := c.ConfirmBinding([]byte(rec))
		require.NoError(t, err)
		require.False(t, ok, "confirmed %q", rec)
	}
	ok, err = o.BindingConfirmed()
	require.NoError(t, err)
	require.False(t, ok)

	ok, err = c.ConfirmBinding([]byte("ours"))
	require.NoError(t, err)
	require.True(t, ok)
	ok, err = o.BindingConfirmed()
	require.NoError(t, err)
	require.True(t, ok)
}
