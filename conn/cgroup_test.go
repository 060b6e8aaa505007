//go:build linux

package conn

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// memCgroup is a memory cgroup made for a test, v1 or v2 (whichever the
// machine has), removed when the test ends.
type memCgroup struct {
	dir string
	v2  bool
}

// newMemCgroup makes a child of our own memory cgroup limited to limit
// bytes (and no swap), or says why it cannot.
func newMemCgroup(t *testing.T, limit int64) (*memCgroup, error) {
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return nil, err
	}
	var cg *memCgroup
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		switch {
		case strings.Contains(","+parts[1]+",", ",memory,"):
			cg = &memCgroup{dir: filepath.Join("/sys/fs/cgroup/memory", parts[2])}
		case parts[0] == "0" && parts[1] == "" && cg == nil:
			if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil {
				cg = &memCgroup{dir: filepath.Join("/sys/fs/cgroup", parts[2]), v2: true}
			}
		}
	}
	if cg == nil {
		return nil, errors.New("no memory cgroup hierarchy")
	}
	if cg.v2 {
		// Best effort: the parent may already delegate memory.
		os.WriteFile(filepath.Join(cg.dir, "cgroup.subtree_control"), []byte("+memory"), 0)
	}
	cg.dir = filepath.Join(cg.dir, fmt.Sprintf("shmconn-test-%d", os.Getpid()))
	if err := os.Mkdir(cg.dir, 0o755); err != nil {
		return nil, err
	}
	t.Cleanup(func() {
		// The test's processes are gone by now; the kernel may take a
		// moment to let go of the group.
		for i := 0; ; i++ {
			err := os.Remove(cg.dir)
			if err == nil || errors.Is(err, os.ErrNotExist) {
				return
			}
			if i == 100 {
				t.Errorf("removing cgroup %s: %v", cg.dir, err)
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
	limits := map[string]string{"memory.limit_in_bytes": strconv.FormatInt(limit, 10)}
	if cg.v2 {
		limits = map[string]string{"memory.max": strconv.FormatInt(limit, 10), "memory.swap.max": "0"}
	}
	for f, v := range limits {
		if err := cg.write(f, v); err != nil {
			return nil, err
		}
	}
	return cg, nil
}

func (cg *memCgroup) write(file, value string) error {
	return os.WriteFile(filepath.Join(cg.dir, file), []byte(value), 0)
}

// add moves process pid into the group.
func (cg *memCgroup) add(pid int) error { return cg.write("cgroup.procs", strconv.Itoa(pid)) }

// stats describes the group's memory: usage, peak, and OOM kills.
func (cg *memCgroup) stats() string {
	read := func(f string) string {
		b, err := os.ReadFile(filepath.Join(cg.dir, f))
		if err != nil {
			return "?"
		}
		return strings.TrimSpace(string(b))
	}
	mb := func(s string) string {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return s
		}
		return fmt.Sprintf("%.1f MiB", float64(n)/mib)
	}
	if cg.v2 {
		return fmt.Sprintf("usage %s, peak %s, events: %s", mb(read("memory.current")), mb(read("memory.peak")), strings.ReplaceAll(read("memory.events"), "\n", ", "))
	}
	return fmt.Sprintf("usage %s, peak %s, failcnt %s, oom_control: %s", mb(read("memory.usage_in_bytes")), mb(read("memory.max_usage_in_bytes")), read("memory.failcnt"), strings.ReplaceAll(read("memory.oom_control"), "\n", ", "))
}

// oomKills reports how many processes of the group the OOM killer took.
func (cg *memCgroup) oomKills() int {
	f := "memory.oom_control"
	if cg.v2 {
		f = "memory.events"
	}
	b, _ := os.ReadFile(filepath.Join(cg.dir, f))
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "oom_kill "); ok {
			n, _ := strconv.Atoi(rest)
			return n
		}
	}
	return 0
}

// TestListenerInMemoryCgroup runs a listener in a memory cgroup of 64 MiB
// and has it serve 1000 conns doing 64-byte echoes over shared memory;
// then every conn sends 128 KiB more than the listener's group can hold
// in echoes, and the listener must live on: its echo Writes fail with
// ErrNoMemory instead of waking the OOM killer. Under the race detector,
// whose shadow memory costs the listener several times its own, the group
// gets 512 MiB and the flood is left out.
func TestListenerInMemoryCgroup(t *testing.T) {
	limit := 64 * mib
	if raceEnabled {
		limit = 512 * mib
	}
	n := connCount(t)
	l := startCgroupListener(t, int64(limit))
	cg, addr := l.cg, l.addr
	conns, err := dialEchoing("unix", addr, n)
	defer closeAll(conns)
	require.NoError(t, err)
	for _, c := range conns {
		require.IsType(t, &Conn{}, c)
	}
	t.Logf("listener in a %d MiB cgroup serves %d conns over shared memory after a 64-byte echo each: %s", limit/mib, n, cg.stats())

	const more = 128 << 10
	if n*more > limit {
		echoed, failed := flood(t, conns, more)
		t.Logf("after %d KiB more per conn: %d echoed, %d conns ended by the listener; %s", more/kib, echoed, failed, cg.stats())
		require.NotZero(t, failed, "the limit was never reached")
	}
	l.summary(t)
	require.Zero(t, cg.oomKills(), "OOM kills in the listener's group")
}

// cgroupListener is a listener process (serveMany) in a memory cgroup of
// its own.
type cgroupListener struct {
	cg    *memCgroup
	peer  *peer
	stdin io.WriteCloser // closing it ends the listener
	addr  string
}

// startCgroupListener starts serveMany, with env added to its environment,
// in a new memory cgroup limited to limit bytes, and waits until it
// listens. It skips the test where no memory cgroup can be made.
func startCgroupListener(t *testing.T, limit int64, env ...string) *cgroupListener {
	t.Helper()
	cg, err := newMemCgroup(t, limit)
	if err != nil {
		t.Skipf("cannot make a memory cgroup (needs root and a cgroup hierarchy we may write): %v", err)
	}
	l := &cgroupListener{cg: cg, addr: listenAddr(t, "unix")}
	l.peer = startPeerWith(t, "serve-many", l.addr, func(cmd *exec.Cmd) {
		cmd.Env = append(cmd.Env, env...)
		l.stdin, err = cmd.StdinPipe()
		require.NoError(t, err)
	})
	require.NoError(t, cg.add(l.peer.cmd.Process.Pid))
	_, err = io.WriteString(l.stdin, "go\n")
	require.NoError(t, err)
	l.peer.expect(t, "listening")
	return l
}

// summary ends the listener and returns its last line (see serveMany),
// failing the test if it died before printing it.
func (l *cgroupListener) summary(t *testing.T) string {
	t.Helper()
	l.stdin.Close()
	require.True(t, l.peer.lines.Scan(), "listener died: %s", l.cg.stats())
	line := l.peer.lines.Text()
	t.Log("listener: " + line)
	l.peer.wait(t)
	return line
}

// failures parses the counts errorCounts wrote for what ("writes" or
// "reads") in a summary line: all failures, and those that were
// ErrNoMemory or ErrCorrupt.
func failures(t *testing.T, summary, what string) (all, noMemOrCorrupt int) {
	t.Helper()
	m := regexp.MustCompile(what + ` failed: (\d+) \((\d+) no memory, (\d+) corrupt`).FindStringSubmatch(summary)
	require.NotNil(t, m, "no %s in %q", what, summary)
	n := make([]int, 3)
	for i := range n {
		n[i], _ = strconv.Atoi(m[i+1])
	}
	return n[0], n[1] + n[2]
}

// flood writes size bytes on every conn and reads the echo back, counting
// the conns that echoed all of it and those the listener ended.
func flood(t *testing.T, conns []net.Conn, size int) (echoed, failed int) {
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64)
	msg := make([]byte, size)
	for _, c := range conns {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			c.SetDeadline(time.Now().Add(time.Minute))
			werr := make(chan error, 1)
			go func() { _, err := c.Write(msg); werr <- err }()
			_, err := io.ReadFull(c, make([]byte, size))
			if err != nil {
				c.Close() // unblocks our Write if the listener stopped reading
			}
			<-werr
			mu.Lock()
			defer mu.Unlock()
			if err == nil {
				echoed++
			} else {
				failed++
			}
		}()
	}
	wg.Wait()
	return echoed, failed
}

// hostileMemLimits are the memory cgroup's limit and the rings' size for
// the tests of a peer that makes the listener commit memory: 48 MiB and 1
// MiB (under the race detector, whose shadow memory costs the listener
// several times its own, 160 MiB).
func hostileMemLimits() (limit, ring int) {
	if raceEnabled {
		return 160 * mib, mib
	}
	return 48 * mib, mib
}

// TestProcessUnwrittenPages runs a listener in a memory cgroup whose
// conns cost it a few pages each, while their peer publishes a whole ring
// on every conn without writing a byte of it: a third more than the
// group's limit in pages nobody wrote. Reading such a page commits it,
// charged to the reader, and a memory cgroup at its limit answers a page
// fault with the OOM killer. The listener must live on (no OOM kill in
// its group), its Reads that would commit past the reserve failing with
// ErrNoMemory (or ErrCorrupt) instead.
func TestProcessUnwrittenPages(t *testing.T) {
	limit, ring := hostileMemLimits()
	n := limit * 4 / 3 / ring
	l := startCgroupListener(t, int64(limit), "SHMCONN_TEST_RING="+strconv.Itoa(ring), "SHMCONN_TEST_SINK=1")
	d := Dialer{NoFallback: true, RingSize: ring}
	var peers []hostilePeer
	for i := range n {
		c, err := d.Dial("unix", l.addr)
		require.NoError(t, err, "conn %d", i)
		defer c.Close()
		require.Equal(t, ring, c.(*Conn).ringSize())
		peers = append(peers, hostilePeer{c.(*Conn)})
	}
	t.Logf("%d conns with %d MiB rings to a listener in a %d MiB cgroup: %s", n, ring/mib, limit/mib, l.cg.stats())
	for _, h := range peers {
		require.NoError(t, h.publishUnwritten())
	}
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		done := 0
		for _, h := range peers {
			if h.consumed(t) {
				done++
			}
		}
		if done == n || l.cg.oomKills() > 0 {
			break
		}
		require.True(t, time.Now().Before(deadline), "%d of %d conns read or ended: %s", done, n, l.cg.stats())
	}
	t.Logf("after the listener read %d MiB that nobody wrote: %s", n*ring/mib, l.cg.stats())
	summary := l.summary(t)
	require.Zero(t, l.cg.oomKills(), "OOM kills in the listener's group")
	all, expected := failures(t, summary, "reads")
	require.NotZero(t, all, "the limit was never reached")
	require.Equal(t, all, expected, "reads failed with other errors than ErrNoMemory or ErrCorrupt")
}

// TestProcessPunchedPages runs an echoing listener in a memory cgroup and
// has conns echo a whole ring each until the listener's Writes run out of
// headroom: its rings of those conns are then all committed. The peer
// punches those rings out of the memory file (the listener's usage
// drops), new conns try to commit what looks free, and then the punched
// rings are echoed through again, which would commit their pages once
// more, past the limit. The listener must live on (no OOM kill in its
// group): the memory file refuses the punch (EPERM), the punched rings
// keep their pages, and the echoes go through; were a punch to succeed,
// the Writes that would commit past the reserve must fail with
// ErrNoMemory (or ErrCorrupt).
func TestProcessPunchedPages(t *testing.T) {
	limit, ring := hostileMemLimits()
	l := startCgroupListener(t, int64(limit), "SHMCONN_TEST_RING="+strconv.Itoa(ring))
	d := Dialer{NoFallback: true, RingSize: ring}
	most := limit/ring + 8
	// fill dials conns that each echo a ring's worth, until the listener
	// refuses a conn or ends one (either found no headroom) or most of
	// them did.
	fill := func() (full []hostilePeer) {
		for range most {
			c, err := d.Dial("unix", l.addr)
			if errors.Is(err, ErrNoSharedMemory) {
				return full
			}
			require.NoError(t, err)
			t.Cleanup(func() { c.Close() })
			c.SetDeadline(time.Now().Add(20 * time.Second))
			if err := echoN(c, ring); err != nil {
				return full
			}
			full = append(full, hostilePeer{c.(*Conn)})
		}
		return full
	}
	full := fill()
	require.Less(t, len(full), most, "the limit was never reached")
	t.Logf("%d conns committed the listener's whole ring: %s", len(full), l.cg.stats())
	var punched, refused int
	var refusal error
	for _, h := range full {
		if err := h.punch(h.theirs()); err != nil {
			refused++
			refusal = err
		} else {
			punched++
		}
	}
	t.Logf("punched %d of those rings (%d refused: %v): %s", punched, refused, refusal, l.cg.stats())
	more := fill()
	t.Logf("then %d new conns committed the listener's whole ring: %s", len(more), l.cg.stats())
	echoed := 0
	for _, h := range full {
		if err := echoN(h.c, ring); err == nil {
			echoed++
		}
		if l.cg.oomKills() > 0 {
			break
		}
	}
	t.Logf("then %d of the %d punched rings echoed a ring's worth again: %s", echoed, len(full), l.cg.stats())
	summary := l.summary(t)
	require.Zero(t, l.cg.oomKills(), "OOM kills in the listener's group")
	all, expected := failures(t, summary, "writes")
	require.Equal(t, all, expected, "writes failed with other errors than ErrNoMemory or ErrCorrupt")
	if punched == 0 {
		// The memory file is sealed against punching: the rings keep
		// their pages, and carry their echoes without committing any.
		require.ErrorIs(t, refusal, unix.EPERM)
		require.Equal(t, len(full), echoed)
	} else {
		require.NotZero(t, all, "the listener's Writes never ran out of headroom")
	}
	all, expected = failures(t, summary, "reads")
	require.Equal(t, all, expected, "reads failed with other errors than ErrNoMemory or ErrCorrupt")
}
