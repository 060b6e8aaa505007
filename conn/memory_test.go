//go:build linux

package conn

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/shmconn/shmconn/internal/handshake"
	"github.com/shmconn/shmconn/internal/testutil"
	"github.com/shmconn/shmconn/segment"
)

// Memory tests: what conns cost in shared memory, and what happens when
// there is none left. Shmem in /proc/meminfo is the whole machine's (other
// processes move it too), so assertions rest on figures that are ours
// alone: the pages resident in our segments (mincore) or our RssShmem;
// the Shmem delta is logged beside them.

const kib, mib = 1 << 10, 1 << 20

// meminfo returns a field of /proc/meminfo in bytes.
func meminfo(t testing.TB, field string) int64 {
	t.Helper()
	return procField(t, "/proc/meminfo", field)
}

// procField reads "field: N kB" from a /proc file, in bytes.
func procField(t testing.TB, path, field string) int64 {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			v, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			require.NoError(t, err)
			return v * kib
		}
	}
	t.Fatalf("%s: no %s", path, field)
	return 0
}

// connCount is how many conns the memory tests open: 1000 (100 with
// -short), or SHMCONN_TEST_CONNS (10000 for a heavy run, without -race,
// whose detector allows 8128 goroutines).
func connCount(t *testing.T) int {
	if s := os.Getenv("SHMCONN_TEST_CONNS"); s != "" {
		n, err := strconv.Atoi(s)
		require.NoError(t, err)
		return n
	}
	if testing.Short() {
		return 100
	}
	return 1000
}

var memoryRoles = map[string]func(addr string) error{
	"dial-many":   dialMany,
	"tiny-devshm": tinyDevShm,
	"serve-many":  serveMany,
	"failed-step": failedCommitStep,
	"copy-nomem":  copyOutOfMemory,
}

// dialMany opens SHMCONN_TEST_N conns over shared memory (plain sockets
// with SHMCONN_TEST_PLAIN), does one 64-byte echo on each (and streams
// SHMCONN_TEST_STREAM bytes through each, if set), prints "ready", and
// holds them until its stdin closes. It prints its resident memory before
// and after, for TestMemoryReport.
func dialMany(addr string) error {
	n, err := strconv.Atoi(os.Getenv("SHMCONN_TEST_N"))
	if err != nil {
		return err
	}
	fmt.Println("rss", selfRSS())
	dial := (&Dialer{NoFallback: true}).Dial
	if os.Getenv("SHMCONN_TEST_PLAIN") != "" {
		dial = net.Dial
	}
	conns, err := dialEchoingWith(dial, testNetwork(), addr, n)
	defer closeAll(conns)
	if err != nil {
		return err
	}
	if s := os.Getenv("SHMCONN_TEST_STREAM"); s != "" {
		size, err := strconv.Atoi(s)
		if err != nil {
			return err
		}
		for _, c := range conns {
			if err := echoN(c, size); err != nil {
				return err
			}
		}
	}
	debug.FreeOSMemory() // RSS then shows only what is live
	fmt.Println("rss", selfRSS())
	fmt.Println("ready")
	io.Copy(io.Discard, os.Stdin)
	return nil
}

// selfRSS is "VmRSS RssShmem" of this process, in kB.
func selfRSS() string {
	b, _ := os.ReadFile("/proc/self/status")
	var rss, shm string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) < 2:
		case f[0] == "VmRSS:":
			rss = f[1]
		case f[0] == "RssShmem:":
			shm = f[1]
		}
	}
	return rss + " " + shm
}

// echoN writes size bytes through c while reading the echo.
func echoN(c net.Conn, size int) error {
	errc := make(chan error, 1)
	go func() {
		_, err := c.Write(make([]byte, size))
		errc <- err
	}()
	if _, err := io.ReadFull(c, make([]byte, size)); err != nil {
		return err
	}
	return <-errc
}

// dialEchoing opens n conns to addr that must share memory, and does one
// 64-byte echo on each.
func dialEchoing(network, addr string, n int) ([]net.Conn, error) {
	return dialEchoingWith((&Dialer{NoFallback: true}).Dial, network, addr, n)
}

func dialEchoingWith(dial func(network, addr string) (net.Conn, error), network, addr string, n int) ([]net.Conn, error) {
	var conns []net.Conn
	for i := range n {
		c, err := dial(network, addr)
		if err != nil {
			return conns, fmt.Errorf("conn %d: %w", i, err)
		}
		conns = append(conns, c)
		if err := echo64(c, i); err != nil {
			return conns, fmt.Errorf("conn %d: %w", i, err)
		}
	}
	return conns, nil
}

// echo64 sends 64 bytes and checks they come back.
func echo64(c net.Conn, i int) error {
	msg := fmt.Appendf(nil, "%064d", i)
	if _, err := c.Write(msg); err != nil {
		return err
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil {
		return err
	}
	if !bytes.Equal(got, msg) {
		return fmt.Errorf("echo %q, sent %q", got, msg)
	}
	return nil
}

func closeAll(conns []net.Conn) {
	for _, c := range conns {
		c.Close()
	}
}

// echoServer accepts conns from ln and echoes each with a small buffer (a
// server of thousands of conns keeps its buffers small), until ln closes;
// a sink (serveSink) reads and drops instead. wait waits for every conn's
// goroutine to end.
type echoServer struct {
	mu       sync.Mutex
	conns    []net.Conn
	wg       sync.WaitGroup
	writeErr chan error // Write errors seen by the echoes, if anyone listens
	readErr  chan error // Read errors but io.EOF and closing, likewise
}

func serveEcho(ln net.Listener) *echoServer { return serveConnsOf(ln, true) }

// serveSink accepts conns from ln and reads each until it ends.
func serveSink(ln net.Listener) *echoServer { return serveConnsOf(ln, false) }

func serveConnsOf(ln net.Listener, echo bool) *echoServer {
	s := &echoServer{writeErr: make(chan error, 10000), readErr: make(chan error, 10000)}
	report := func(ch chan error, err error) {
		select {
		case ch <- err:
		default:
		}
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.conns = append(s.conns, c)
			s.mu.Unlock()
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer c.Close()
				buf := make([]byte, 512)
				for {
					n, err := c.Read(buf)
					if n > 0 && echo {
						if _, werr := c.Write(buf[:n]); werr != nil {
							report(s.writeErr, werr)
							return
						}
					}
					if err != nil {
						if err != io.EOF && !errors.Is(err, net.ErrClosed) {
							report(s.readErr, err)
						}
						return
					}
				}
			}()
		}
	}()
	return s
}

// shared counts the accepted conns that share memory.
func (s *echoServer) shared() (shared, all int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.conns {
		if _, ok := c.(*Conn); ok {
			shared++
		}
	}
	return shared, len(s.conns)
}

// resident sums the committed shared memory of the accepted conns.
func (s *echoServer) resident(t testing.TB) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	total := 0
	for _, c := range s.conns {
		if sc, ok := c.(*Conn); ok {
			n, err := sc.seg.Resident()
			require.NoError(t, err)
			total += n
		}
	}
	return total
}

// TestIdleConnsMemory opens many conns from another process, each after
// one 64-byte echo, and checks they all share memory and cost a few pages
// each: at most 16 MiB for 1000.
func TestIdleConnsMemory(t *testing.T) {
	n := connCount(t)
	before := meminfo(t, "Shmem")
	addr := listenAddr(t, "unix")
	ln, err := Listen("unix", addr)
	require.NoError(t, err)
	srv := serveEcho(ln)
	defer srv.wg.Wait()
	defer ln.Close()
	var stdin io.WriteCloser
	p := startPeerWith(t, "dial-many", addr, func(cmd *exec.Cmd) {
		cmd.Env = append(cmd.Env, "SHMCONN_TEST_N="+strconv.Itoa(n))
		stdin, err = cmd.StdinPipe()
		require.NoError(t, err)
	})
	p.lines.Scan() // rss
	p.lines.Scan() // rss
	p.expect(t, "ready")
	after := meminfo(t, "Shmem")
	shared, all := srv.shared()
	resident := srv.resident(t)
	t.Logf("%d idle conns after one 64-byte echo: %d share memory; committed shared memory %.1f MiB (%.1f KiB per conn); Shmem in /proc/meminfo %+.1f MiB",
		n, shared, float64(resident)/mib, float64(resident)/kib/float64(n), float64(after-before)/mib)
	require.Equal(t, n, all)
	require.Equal(t, n, shared, "every conn on shared memory")
	require.LessOrEqual(t, resident, 16*mib*n/1000)
	stdin.Close()
	p.wait(t)
}

// TestHelloOnlyClientsMemory has clients send a valid hello, read the
// reply and stop there, and checks what the listener has committed for
// them meanwhile: a page each, at most 8 MiB for 200. Over TCP the
// segments are named files (their blocks are counted); over a unix socket
// memory files whose descriptors came with the replies.
func TestHelloOnlyClientsMemory(t *testing.T) {
	const clients = 200
	for _, network := range []string{"tcp", "unix"} {
		t.Run(network, func(t *testing.T) {
			before := meminfo(t, "Shmem")
			dropped := make(chan error, clients)
			lc := ListenConfig{OnHandshakeError: func(_ net.Addr, err error) { dropped <- err }}
			ln, err := lc.Listen(context.Background(), network, listenAddr(t, network))
			require.NoError(t, err)
			defer ln.Close()
			var (
				socks   []net.Conn
				fds     []int
				readers []*replyReader
			)
			defer func() {
				for _, fd := range fds {
					unix.Close(fd)
				}
			}()
			for range clients {
				c, err := net.Dial(network, ln.Addr().String())
				require.NoError(t, err)
				socks = append(socks, c)
				h := handshake.Hello{Version: handshake.Version, Flags: handshake.FlagFallback}
				if network == "unix" {
					h.Flags |= handshake.FlagDescriptor
				}
				_, err = c.Write(handshake.AppendHello(nil, h))
				require.NoError(t, err)
				r := newReplyReader(c)
				rep, err := handshake.ReadReply(r)
				require.NoError(t, err)
				require.Equal(t, handshake.StatusShared, rep.Status)
				fd, err := r.descriptor(rep)
				require.NoError(t, err)
				if fd >= 0 {
					fds = append(fds, fd)
				}
				readers = append(readers, r)
			}
			// The listener's pending segments, seen from outside.
			var committed int64
			if network == "tcp" {
				for _, f := range testutil.SegmentFiles() {
					var st unix.Stat_t
					require.NoError(t, unix.Stat(f, &st))
					committed += st.Blocks * 512
				}
			} else {
				for _, fd := range fds {
					var st unix.Stat_t
					require.NoError(t, unix.Fstat(fd, &st))
					committed += st.Blocks * 512
				}
			}
			after := meminfo(t, "Shmem")
			t.Logf("%s: %d clients stopped after the hello: %.0f KiB committed for them (%.1f KiB each); Shmem in /proc/meminfo %+.0f KiB",
				network, clients, float64(committed)/kib, float64(committed)/kib/clients, float64(after-before)/kib)
			require.NotZero(t, committed)
			require.LessOrEqual(t, committed, int64(8*mib))
			for _, c := range socks {
				c.Close()
			}
			for range clients {
				select {
				case <-dropped:
				case <-time.After(10 * time.Second):
					t.Fatal("listener kept a silent client")
				}
			}
			require.Empty(t, testutil.SegmentFiles())
		})
	}
}

// TestDroppedConnsGiveBackMemory streams through 50 conns until every
// page of their rings is committed, closes the listener's ends, drops the
// dialer's ends without Close, and checks a garbage collection gives the
// shared memory back (at most 4 MiB left), as os.File gives back a
// descriptor.
func TestDroppedConnsGiveBackMemory(t *testing.T) {
	const conns = 50
	rss := func() int64 { return procField(t, "/proc/self/status", "RssShmem") }
	baseRSS, baseShmem := rss(), meminfo(t, "Shmem")
	ln, err := Listen("unix", listenAddr(t, "unix"))
	require.NoError(t, err)
	defer ln.Close()
	var ours []*Conn
	dialed := make([]*Conn, 0, conns)
	for range conns {
		c, err := (&Dialer{NoFallback: true}).Dial("unix", ln.Addr().String())
		require.NoError(t, err)
		dialed = append(dialed, c.(*Conn))
		a, err := ln.Accept()
		require.NoError(t, err)
		ours = append(ours, a.(*Conn))
	}
	// Fill each ring once, both ways, so all of it is committed.
	buf := make([]byte, DefaultRingSize)
	for i := range conns {
		for _, dir := range [][2]*Conn{{dialed[i], ours[i]}, {ours[i], dialed[i]}} {
			_, err := dir[0].Write(buf)
			require.NoError(t, err)
			_, err = io.ReadFull(dir[1], buf)
			require.NoError(t, err)
		}
	}
	peak := rss() - baseRSS
	peakShmem := meminfo(t, "Shmem") - baseShmem
	for _, c := range ours {
		c.Close()
	}
	dialed = nil
	var left int64
	for deadline := time.Now().Add(10 * time.Second); ; {
		runtime.GC()
		left = rss() - baseRSS
		if left <= 4*mib || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	leftShmem := meminfo(t, "Shmem") - baseShmem
	t.Logf("%d conns that streamed: %.1f MiB of shared memory mapped (Shmem %+.1f MiB); after dropping them and a GC: %.2f MiB left (Shmem %+.1f MiB)",
		conns, float64(peak)/mib, float64(peakShmem)/mib, float64(left)/mib, float64(leftShmem)/mib)
	require.Greater(t, peak, int64(conns*DefaultRingSize), "the rings were not committed")
	require.LessOrEqual(t, left, int64(4*mib))
}

// TestSharedMemoryRunsOut runs, in a process with a 1 MiB /dev/shm of its
// own (a private mount namespace), 100 conns over a unix socket (which
// need no /dev/shm: all share memory), 100 over TCP (named segments: those
// that do not fit fall back cleanly), and a Write that cannot commit a
// page (an error; the process lives, and the conn works again once memory
// is freed).
func TestSharedMemoryRunsOut(t *testing.T) {
	out := runInMountNamespace(t, "tiny-devshm")
	require.Contains(t, out, "unix: 100 conns, 100 shared, all echoed")
	require.Regexp(t, `tcp: 100 conns, \d+ shared, all echoed`, out)
	require.Contains(t, out, "write that cannot commit: ")
	require.Contains(t, out, "recovered")
	require.Contains(t, out, "commit to the last page: ")
}

// runInMountNamespace runs a peer in the given role in a mount namespace
// of its own (where it mounts a /dev/shm of its own) and returns what it
// printed. A peer that prints "skip: why" skips the test.
func runInMountNamespace(t *testing.T, role string) string {
	p := startPeerWith(t, role, listenAddr(t, "unix"), func(cmd *exec.Cmd) {
		cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS}
	})
	var lines []string
	for p.lines.Scan() {
		line := p.lines.Text()
		if rest, ok := strings.CutPrefix(line, "skip: "); ok {
			p.cmd.Wait()
			t.Skip("needs root and mount namespaces: " + rest)
		}
		lines = append(lines, line)
		t.Log(line)
	}
	p.wait(t)
	return strings.Join(lines, "\n")
}

func tinyDevShm(addr string) error {
	// We run in a mount namespace of our own (no mount here shows
	// outside it, and it ends with us).
	if err := unix.Mount("tmpfs", "/dev/shm", "tmpfs", 0, "size=1m"); err != nil {
		fmt.Println("skip: cannot mount a private /dev/shm:", err)
		return nil
	}
	for _, network := range []string{"unix", "tcp"} {
		if err := manyOver(network); err != nil {
			return err
		}
	}
	// A fresh, smaller /dev/shm: two conns that each fit, not together.
	if err := unix.Mount("tmpfs", "/dev/shm", "tmpfs", 0, "size=140k"); err != nil {
		return err
	}
	if err := writeCannotCommit(); err != nil {
		return err
	}
	// And one that fills up after the conn was set up, leaving room for
	// part of a ring, in a number of pages the doubling commit steps do
	// not reach.
	if err := unix.Mount("tmpfs", "/dev/shm", "tmpfs", 0, "size=200k"); err != nil {
		return err
	}
	return commitToTheLastPage()
}

// commitToTheLastPage writes 64-byte messages into a conn whose ring is
// larger than what /dev/shm has left, the peer reading each, until a
// Write fails: every free page must have been used, although the commit
// steps that double what is committed stop fitting before that.
func commitToTheLastPage() error {
	const ring = 64 << 10
	// Another user of /dev/shm takes all but ten and a half pages.
	a, b, done, err := pairInFullDevShm(ring, 21*segment.PageSize/2)
	if err != nil {
		return err
	}
	defer done()
	f, err := devShmFree()
	if err != nil {
		return err
	}
	if f <= 8*segment.PageSize || f >= ring {
		return fmt.Errorf("/dev/shm has %d bytes free beside the conn: the test needs more than 8 pages and less than its ring", f)
	}
	msg, got := make([]byte, 64), make([]byte, 64)
	written := 0
	for written < ring {
		if _, err := a.Write(msg); err != nil {
			if !errors.Is(err, ErrNoMemory) {
				return fmt.Errorf("write %d: %w", written/64, err)
			}
			break
		}
		written += len(msg)
		if _, err := io.ReadFull(b, got); err != nil {
			return err
		}
	}
	if written < f-len(msg) {
		return fmt.Errorf("writes failed after %d bytes with %d bytes free", written, f)
	}
	fmt.Printf("commit to the last page: %d bytes written with %d free\n", written, f)
	return nil
}

// listenChild listens on network for a child process: over unix in a
// fresh directory, which removeDir removes.
func listenChild(network string) (ln *Listener, removeDir func(), err error) {
	addr, removeDir := "127.0.0.1:0", func() {}
	if network == "unix" {
		dir, err := os.MkdirTemp("", "shmconn-child")
		if err != nil {
			return nil, nil, err
		}
		removeDir = func() { os.RemoveAll(dir) }
		addr = filepath.Join(dir, "s.sock")
	}
	ln, err = Listen(network, addr)
	if err != nil {
		removeDir()
		return nil, nil, err
	}
	return ln, removeDir, nil
}

// manyOver opens 100 conns over network, each doing a 64-byte echo, and
// reports how many shared memory.
func manyOver(network string) error {
	ln, removeDir, err := listenChild(network)
	if err != nil {
		return err
	}
	defer removeDir()
	srv := serveEcho(ln)
	var conns []net.Conn
	defer func() {
		closeAll(conns)
		ln.Close()
		srv.wg.Wait()
	}()
	shared := 0
	for i := range 100 {
		c, err := Dial(network, ln.Addr().String())
		if err != nil {
			return fmt.Errorf("%s conn %d: %w", network, i, err)
		}
		conns = append(conns, c)
		if _, ok := c.(*Conn); ok {
			shared++
		}
		if err := echo64(c, i); err != nil {
			return fmt.Errorf("%s conn %d: %w", network, i, err)
		}
	}
	fmt.Printf("%s: 100 conns, %d shared, all echoed\n", network, shared)
	if network == "unix" && shared != 100 {
		return fmt.Errorf("only %d of 100 unix conns share memory", shared)
	}
	return nil
}

// tcpPair returns both ends of a shared-memory conn with rings of the
// given size, set up over loopback TCP (a named segment in /dev/shm).
func tcpPair(ring int) (*Conn, *Conn, error) {
	lc := ListenConfig{RingSize: ring}
	ln, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		return nil, nil, err
	}
	defer ln.Close()
	d := Dialer{RingSize: ring, NoFallback: true}
	c, err := d.Dial("tcp", ln.Addr().String())
	if err != nil {
		return nil, nil, err
	}
	a, err := ln.Accept()
	if err != nil {
		c.Close()
		return nil, nil, err
	}
	return c.(*Conn), a.(*Conn), nil
}

// writeCannotCommit fills a 140 KiB /dev/shm with one conn's rings and
// has a second conn write past the page it has.
func writeCannotCommit() error {
	const ring = 64 << 10
	a1, a2, err := tcpPair(ring)
	if err != nil {
		return err
	}
	b1, b2, err := tcpPair(ring)
	if err != nil {
		return err
	}
	defer b1.Close()
	defer b2.Close()
	// Nobody reads: a's rings stay full, every page committed.
	if _, err := a1.Write(make([]byte, ring)); err != nil {
		return fmt.Errorf("filling a: %w", err)
	}
	if _, err := a2.Write(make([]byte, ring)); err != nil {
		return fmt.Errorf("filling a: %w", err)
	}
	n, err := b1.Write(make([]byte, ring))
	if !errors.Is(err, ErrNoMemory) || n != 0 {
		return fmt.Errorf("write into a full /dev/shm: %d, %v", n, err)
	}
	fmt.Println("write that cannot commit:", err)
	a1.Close()
	a2.Close()
	msg := bytes.Repeat([]byte("after "), ring/6)
	go b1.Write(msg)
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(b2, got); err != nil || !bytes.Equal(got, msg) {
		return fmt.Errorf("after freeing memory: %v", err)
	}
	fmt.Println("recovered: the same conn carried", len(msg), "bytes once memory was freed")
	return nil
}

// serveMany listens on addr, echoes every conn (or, with
// SHMCONN_TEST_SINK set, reads and drops what it gets), prints "listening"
// and serves until its stdin closes; used inside a memory cgroup.
// SHMCONN_TEST_RING sets the listener's RingSize. It ends with a line
// that says how many conns it served and how many of their Writes and
// Reads failed, and with which errors (see serverSummary).
func serveMany(addr string) error {
	// Wait to be moved into the cgroup before touching shared memory.
	in := bufio.NewReader(os.Stdin)
	if _, err := in.ReadString('\n'); err != nil {
		return err
	}
	var lc ListenConfig
	if s := os.Getenv("SHMCONN_TEST_RING"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			return err
		}
		lc.RingSize = n
	}
	ln, err := lc.Listen(context.Background(), "unix", addr)
	if err != nil {
		return err
	}
	serve := serveEcho
	if os.Getenv("SHMCONN_TEST_SINK") != "" {
		serve = serveSink
	}
	srv := serve(ln)
	fmt.Println("listening")
	io.Copy(io.Discard, in)
	// What failed before we close: the calls Close ends fail too.
	shared, all := srv.shared()
	summary := fmt.Sprintf("served %d conns, %d shared; writes failed: %s; reads failed: %s", all, shared, errorCounts(srv.writeErr), errorCounts(srv.readErr))
	ln.Close()
	srv.mu.Lock()
	for _, c := range srv.conns {
		c.Close()
	}
	srv.mu.Unlock()
	srv.wg.Wait()
	fmt.Println(summary)
	return nil
}

// errorCounts drains ch and says how many errors it held, how many of
// them were ErrNoMemory and ErrCorrupt, and the first: "N (M no memory, K
// corrupt; first: ...)". serverSummary parses it.
func errorCounts(ch chan error) string {
	var all, noMem, corrupt int
	var first error
	for len(ch) > 0 {
		err := <-ch
		if first == nil {
			first = err
		}
		all++
		switch {
		case errors.Is(err, ErrNoMemory):
			noMem++
		case errors.Is(err, ErrCorrupt):
			corrupt++
		}
	}
	return fmt.Sprintf("%d (%d no memory, %d corrupt; first: %v)", all, noMem, corrupt, first)
}

// TestDroppedConnTellsPeer drops an accepted conn (which the listener's
// counters follow) without Close while its peer lives: once collected it
// must end as Close would, the peer reading io.EOF, and the listener must
// forget it.
func TestDroppedConnTellsPeer(t *testing.T) {
	ln, err := Listen("unix", listenAddr(t, "unix"))
	require.NoError(t, err)
	defer ln.Close()
	c, err := (&Dialer{NoFallback: true}).Dial("unix", ln.Addr().String())
	require.NoError(t, err)
	defer c.Close()
	a, err := ln.Accept()
	require.NoError(t, err)
	_, err = a.Write([]byte("last words"))
	require.NoError(t, err)
	a = nil
	got := make(chan error, 1)
	go func() {
		b, err := io.ReadAll(c)
		if err == nil && string(b) != "last words" {
			err = fmt.Errorf("read %q", b)
		}
		got <- err
	}()
	for deadline := time.Now().Add(10 * time.Second); ; {
		runtime.GC()
		select {
		case err := <-got:
			require.NoError(t, err, "the peer of a dropped conn reads what it wrote, then io.EOF")
			ln.counters.mu.Lock()
			live := len(ln.counters.live)
			ln.counters.mu.Unlock()
			require.Zero(t, live, "the listener still follows the dropped conn")
			return
		case <-time.After(10 * time.Millisecond):
		}
		require.True(t, time.Now().Before(deadline), "a dropped conn was never collected")
	}
}

// TestCommitSteps writes a ring's worth of 64-byte messages, each read by
// the peer, and checks how the writer commits its ring: never less than
// it has written, never more than twice that (or one page), and in a few
// steps that each double what is committed up to maxCommitStep, then grow
// by that, not one step per page.
func TestCommitSteps(t *testing.T) {
	for _, how := range []string{"write", "readfrom"} {
		t.Run(how, func(t *testing.T) { testCommitSteps(t, how == "readfrom") })
	}
}

// testCommitSteps writes 64-byte messages with Write, or with ReadFrom
// from a reader of one message (which must not commit 64 KiB for a few
// bytes).
func testCommitSteps(t *testing.T, readFrom bool) {
	const ring = 4 * maxCommitStep
	a, b := newPair(t, "unix", ListenConfig{RingSize: ring}, Dialer{RingSize: ring})
	msg, got := make([]byte, 64), make([]byte, 64)
	var steps []int
	for written := 0; written < ring; {
		var err error
		if readFrom {
			var n int64
			n, err = a.ReadFrom(struct{ io.Reader }{bytes.NewReader(msg)})
			require.Equal(t, int64(len(msg)), n)
		} else {
			_, err = a.Write(msg)
		}
		require.NoError(t, err)
		written += len(msg)
		_, err = io.ReadFull(b, got)
		require.NoError(t, err)
		c := a.committed // the writer's own field; only Write changes it
		require.GreaterOrEqual(t, c, written)
		require.LessOrEqual(t, c, max(2*written, segment.PageSize), "after %d bytes", written)
		if len(steps) == 0 || steps[len(steps)-1] != c {
			steps = append(steps, c)
		}
	}
	var want []int
	for s := segment.PageSize; s <= ring; s += min(s, maxCommitStep) {
		want = append(want, s)
	}
	require.Equal(t, want, steps)
}

// TestEmptyCopyCommits: a ReadFrom whose reader gives nothing commits at
// most the step a one-byte Write would (it must commit before it reads,
// see TestCopyOutOfMemory), and none while committed memory is left. A
// copy must not commit 64 KiB for a few bytes.
func TestEmptyCopyCommits(t *testing.T) {
	a, b := newPair(t, "unix", ListenConfig{}, Dialer{})
	empty := func() {
		t.Helper()
		n, err := a.ReadFrom(struct{ io.Reader }{bytes.NewReader(nil)})
		require.NoError(t, err)
		require.Zero(t, n)
	}
	empty()
	require.Equal(t, segment.PageSize, a.committed, "a fresh conn's empty copy: a page")
	msg := make([]byte, 100)
	_, err := a.Write(msg)
	require.NoError(t, err)
	_, err = io.ReadFull(b, msg)
	require.NoError(t, err)
	empty()
	require.Equal(t, segment.PageSize, a.committed, "committed memory left: no step")
	msg = make([]byte, segment.PageSize-100) // the page, all written
	_, err = a.Write(msg)
	require.NoError(t, err)
	_, err = io.ReadFull(b, msg)
	require.NoError(t, err)
	empty()
	require.Equal(t, 2*segment.PageSize, a.committed, "the page all written: one step, twice what was written")
}

// TestCopyOutOfMemory: a ReadFrom that runs out of shared memory (a full
// /dev/shm) stops with ErrNoMemory having lost none of the bytes it took
// from its reader: they reached the peer, in order, and the conn goes on
// once memory is freed: no byte is read before its memory is committed
// (that lost 32 KiB from the middle of the stream).
//
// copyOutOfMemory is its peer, run in a /dev/shm of its own.
func TestCopyOutOfMemory(t *testing.T) {
	require.Contains(t, runInMountNamespace(t, "copy-nomem"), "the stream arrived whole")
}

// patternReader hands out data and counts what it handed out.
type patternReader struct {
	data []byte
	off  int
}

func (r *patternReader) Read(p []byte) (int, error) {
	if r.off == len(r.data) {
		return 0, io.EOF
	}
	n := copy(p, r.data[r.off:])
	r.off += n
	return n, nil
}

func copyOutOfMemory(string) error {
	if err := unix.Mount("tmpfs", "/dev/shm", "tmpfs", 0, "size=2m"); err != nil {
		fmt.Println("skip: cannot mount a private /dev/shm:", err)
		return nil
	}
	const ring = 256 << 10
	a, b, done, err := pairInFullDevShm(ring, 10*segment.PageSize)
	if err != nil {
		return err
	}
	defer done()
	msg := make([]byte, ring)
	for i := range msg {
		msg[i] = byte(i * 7 / 3)
	}
	r := &patternReader{data: msg}
	n, err := a.ReadFrom(struct{ io.Reader }{r})
	if !errors.Is(err, ErrNoMemory) {
		return fmt.Errorf("ReadFrom in a full /dev/shm: %d bytes, %v; want ErrNoMemory", n, err)
	}
	if n != int64(r.off) {
		return fmt.Errorf("ReadFrom took %d bytes from its reader and handed %d to the peer", r.off, n)
	}
	if err := os.Remove(devShmFiller); err != nil {
		return err
	}
	go func() {
		a.Write(msg[r.off:])
		a.CloseWrite()
	}()
	got, err := io.ReadAll(b)
	if err != nil || !bytes.Equal(got, msg) {
		return fmt.Errorf("the peer got %d of %d bytes (%v), equal %v", len(got), len(msg), err, bytes.Equal(got, msg))
	}
	fmt.Printf("the stream arrived whole: %d bytes, %d of them copied before memory ran out\n", len(got), n)
	return nil
}

// TestFailedStepKeepsNoPages checks that a commit step that /dev/shm
// cannot hold, which fails part way, gives back the pages it populated
// past what the Write needs: they would stay in the writer's file, taken
// from every other user of /dev/shm. The writer needs one more page, the
// step asks for eight, and it must take one page of the two left.
//
// failedCommitStep is its peer, run in a /dev/shm of its own.
func TestFailedStepKeepsNoPages(t *testing.T) {
	require.Contains(t, runInMountNamespace(t, "failed-step"), "a failed step kept no page")
}

func failedCommitStep(string) error {
	if err := unix.Mount("tmpfs", "/dev/shm", "tmpfs", 0, "size=200k"); err != nil {
		fmt.Println("skip: cannot mount a private /dev/shm:", err)
		return nil
	}
	const ring = 64 << 10
	// Another user of /dev/shm leaves ten pages: the ring's steps to 2,
	// 4 and 8 pages take seven.
	a, b, done, err := pairInFullDevShm(ring, 10*segment.PageSize)
	if err != nil {
		return err
	}
	defer done()
	free := func() int {
		f, err := devShmFree()
		if err != nil {
			panic(err)
		}
		return f
	}
	msg, got := make([]byte, 64), make([]byte, 64)
	for written := 0; written < 8*segment.PageSize; written += len(msg) {
		if _, err := a.Write(msg); err != nil {
			return err
		}
		if _, err := io.ReadFull(b, got); err != nil {
			return err
		}
	}
	before := free()
	// The next byte needs a ninth page; the step asks for sixteen.
	if _, err := a.Write(msg); err != nil {
		if errors.Is(err, ErrNoMemory) {
			return fmt.Errorf("a write needing one page failed with %d bytes free: %w", before, err)
		}
		return err
	}
	after := free()
	fmt.Printf("committed %d pages; /dev/shm free before the write %d, after %d\n", a.committed/segment.PageSize, before, after)
	if after != before-segment.PageSize {
		return fmt.Errorf("the write needed one page and took %d bytes of /dev/shm", before-after)
	}
	fmt.Println("a failed step kept no page")
	return nil
}

// devShmFiller is the file another user of a test's private /dev/shm
// fills it with.
const devShmFiller = "/dev/shm/filler"

// pairInFullDevShm sets up a shared-memory pair with rings of the given
// size, then fills /dev/shm (fillDevShm) so that about leave bytes stay
// free for the rings' pages. done closes both ends and removes the filler.
func pairInFullDevShm(ring, leave int) (a, b *Conn, done func(), err error) {
	a, b, err = tcpPair(ring)
	if err != nil {
		return nil, nil, nil, err
	}
	done = func() {
		a.Close()
		b.Close()
		os.Remove(devShmFiller)
	}
	if err := fillDevShm(leave); err != nil {
		done()
		return nil, nil, nil, err
	}
	return a, b, done, nil
}

// fillDevShm writes devShmFiller so that /dev/shm has about leave bytes
// free.
func fillDevShm(leave int) error {
	f, err := devShmFree()
	if err != nil {
		return err
	}
	return os.WriteFile(devShmFiller, make([]byte, f-leave), 0o600)
}

// devShmFree returns the bytes free in /dev/shm.
func devShmFree() (int, error) {
	var st unix.Statfs_t
	err := unix.Statfs("/dev/shm", &st)
	return int(st.Bavail) * int(st.Bsize), err
}
