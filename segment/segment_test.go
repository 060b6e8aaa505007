//go:build linux

package segment

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// useDir points Dir at a private directory for tests that plant files.
func useDir(t *testing.T) string {
	t.Helper()
	old := Dir
	Dir = t.TempDir()
	t.Cleanup(func() { Dir = old })
	return Dir
}

func TestHeaderLayout(t *testing.T) {
	require.Equal(t, []int{0, 8, 12, 16, 24, 28, 32}, []int{offMagic, offVersion, offHeaderSize, offRegionSize, offRegions, offCreatorPID, offToken})
	require.LessOrEqual(t, offToken+TokenSize, HeaderSize)
}

func TestCreateOpenUnlink(t *testing.T) {
	const regionSize = 4096 + 256
	c, err := Create(regionSize)
	require.NoError(t, err)
	path := filepath.Join(Dir, c.Name())
	st, err := os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, fs.FileMode(0o600), st.Mode().Perm())
	require.EqualValues(t, TotalSize(regionSize), st.Size())

	o, err := Open(c.Name(), regionSize, c.Token())
	require.NoError(t, err)
	require.NoError(t, c.Unlink())
	_, err = os.Stat(path)
	require.ErrorIs(t, err, fs.ErrNotExist, "segment file survives Unlink")

	// The two mappings share memory, region by region, after the unlink.
	for i := range Regions {
		c.Region(i)[0] = byte(10 + i)
		c.Region(i)[regionSize-1] = byte(20 + i)
		require.Equal(t, byte(10+i), o.Region(i)[0])
		require.Equal(t, byte(20+i), o.Region(i)[regionSize-1])
	}
	require.Nil(t, c.Region(2))
	require.Nil(t, c.Region(-1))
	require.NoError(t, o.Close())
	require.NoError(t, c.Close())
	require.ErrorIs(t, c.Close(), ErrClosed)
	require.Nil(t, c.Region(0))
}

func TestCloseUnlinks(t *testing.T) {
	c, err := Create(1024)
	require.NoError(t, err)
	require.NoError(t, c.Close())
	_, err = os.Stat(filepath.Join(Dir, c.Name()))
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
		_, err := Open(bad, 1024, Token{})
		require.ErrorIs(t, err, ErrName, "%q", bad)
	}
}

func TestOpenRefuses(t *testing.T) {
	dir := useDir(t)
	c, err := Create(1024)
	require.NoError(t, err)
	defer c.Close()

	_, err = Open(c.Name(), 1024, Token{1})
	require.ErrorIs(t, err, ErrHeader, "wrong token")
	_, err = Open(c.Name(), 2048, c.Token())
	require.ErrorIs(t, err, ErrHeader, "wrong size")
	_, err = Open(c.Name(), 1000, c.Token())
	require.ErrorIs(t, err, ErrSize, "misaligned size")
	_, err = Open("shmconn-1-0123456789abcdef", 1024, c.Token())
	require.ErrorIs(t, err, fs.ErrNotExist)

	// A symlink with a valid name is not followed.
	link := "shmconn-2-0123456789abcdef"
	require.NoError(t, os.Symlink(filepath.Join(dir, c.Name()), filepath.Join(dir, link)))
	_, err = Open(link, 1024, c.Token())
	require.Error(t, err)

	// A file of the right size but a foreign header is refused, whatever
	// the field that differs.
	for _, tc := range []struct {
		name string
		off  int
	}{{"magic", offMagic}, {"version", offVersion}, {"headerSize", offHeaderSize}, {"regionSize", offRegionSize}, {"regions", offRegions}} {
		t.Run(tc.name, func(t *testing.T) {
			c2, err := Create(1024)
			require.NoError(t, err)
			defer c2.Close()
			c2.mem[tc.off]++
			_, err = Open(c2.Name(), 1024, c2.Token())
			require.ErrorIs(t, err, ErrHeader)
		})
	}
	for _, size := range []int{0, -64, MaxRegionSize + 64, 100} {
		_, err := Create(size)
		require.ErrorIs(t, err, ErrSize, "%d", size)
	}
}

func TestRemoveStale(t *testing.T) {
	dir := useDir(t)
	// A dead creator: pid 0x7ffffffe is above any real pid_max.
	dead := "shmconn-2147483646-0123456789abcdef"
	hdr := make([]byte, HeaderSize)
	writeHeader(hdr, 1024, 2147483646, Token{})
	require.NoError(t, os.WriteFile(filepath.Join(dir, dead), hdr, 0o600))
	// Same shape but not our magic: not ours, left alone.
	foreign := "shmconn-2147483646-fedcba9876543210"
	require.NoError(t, os.WriteFile(filepath.Join(dir, foreign), make([]byte, HeaderSize), 0o600))
	// A live creator (us, through our own Create) is left alone.
	live, err := Create(1024)
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
	old := Dir
	Dir = "/nonexistent-shmconn-dir"
	defer func() { Dir = old }()
	_, err := Create(1024)
	var pe *fs.PathError
	require.True(t, errors.As(err, &pe), "%v", err)
	require.True(t, strings.HasPrefix(pe.Path, Dir))
}

// TestOpenRefusesForeignFiles: a file others may write (or own) could be
// truncated under us, so it is refused.
func TestOpenRefusesForeignFiles(t *testing.T) {
	useDir(t)
	c, err := Create(1024)
	require.NoError(t, err)
	defer c.Close()
	path := filepath.Join(Dir, c.Name())
	require.NoError(t, os.Chmod(path, 0o644))
	_, err = Open(c.Name(), 1024, c.Token())
	require.ErrorIs(t, err, ErrHeader, "group/other-readable segment")
	require.NoError(t, os.Chmod(path, 0o600))
	if os.Geteuid() == 0 {
		require.NoError(t, os.Chown(path, 65534, 65534))
		_, err = Open(c.Name(), 1024, c.Token())
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
