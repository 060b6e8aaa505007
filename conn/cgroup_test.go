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
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
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
	cg, err := newMemCgroup(t, int64(limit))
	if err != nil {
		t.Skipf("cannot make a memory cgroup (needs root and a cgroup hierarchy we may write): %v", err)
	}
	n := connCount(t)
	addr := listenAddr(t, "unix")
	var stdin io.WriteCloser
	p := startPeerWith(t, "serve-many", addr, func(cmd *exec.Cmd) {
		stdin, err = cmd.StdinPipe()
		require.NoError(t, err)
	})
	require.NoError(t, cg.add(p.cmd.Process.Pid))
	_, err = io.WriteString(stdin, "go\n")
	require.NoError(t, err)
	p.expect(t, "listening")

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
	stdin.Close()
	require.True(t, p.lines.Scan(), "listener died: %s", cg.stats())
	t.Log("listener: " + p.lines.Text())
	p.wait(t)
	require.Zero(t, cg.oomKills(), "OOM kills in the listener's group")
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
