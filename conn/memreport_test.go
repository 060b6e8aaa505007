//go:build linux

package conn

import (
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestMemoryReport prints the memory table of BENCHMARKS.md: what 1000
// conns (connCount's) between two processes cost in shared memory and in
// each process's resident memory, idle after one 64-byte echo and after
// streaming 256 KiB each way through each, over shared memory and over a
// unix socket. It runs only when asked:
//
//	SHMCONN_MEMORY_REPORT=1 go test -run TestMemoryReport -v ./conn
func TestMemoryReport(t *testing.T) {
	if os.Getenv("SHMCONN_MEMORY_REPORT") == "" {
		t.Skip("set SHMCONN_MEMORY_REPORT=1 to print the memory table")
	}
	n := connCount(t)
	fmt.Printf("%d conns, listener and dialer in two processes; per conn:\n\n", n)
	fmt.Println("| transport | state | Shmem (/proc/meminfo) | listener RSS | dialer RSS | of which shared (both) |")
	fmt.Println("|---|---|---|---|---|---|")
	for _, plain := range []bool{false, true} {
		for _, stream := range []int{0, 256 << 10} {
			memoryRow(t, n, plain, stream)
		}
	}
}

func memoryRow(t *testing.T, n int, plain bool, stream int) {
	// Give freed heap back to the system so RSS shows only what is live.
	debug.FreeOSMemory()
	shmem0 := meminfo(t, "Shmem")
	rss0, shm0 := rssOf(t, selfRSS())
	addr := listenAddr(t, "unix")
	var ln net.Listener
	var err error
	if plain {
		ln, err = net.Listen("unix", addr)
	} else {
		ln, err = Listen("unix", addr)
	}
	require.NoError(t, err)
	srv := serveEcho(ln)
	var stdin io.WriteCloser
	p := startPeerWith(t, "dial-many", addr, func(cmd *exec.Cmd) {
		cmd.Env = append(cmd.Env, "SHMCONN_TEST_N="+strconv.Itoa(n), "SHMCONN_TEST_STREAM="+strconv.Itoa(stream))
		if plain {
			cmd.Env = append(cmd.Env, "SHMCONN_TEST_PLAIN=1")
		}
		stdin, err = cmd.StdinPipe()
		require.NoError(t, err)
	})
	require.True(t, p.lines.Scan())
	d0, dshm0 := rssOf(t, strings.TrimPrefix(p.lines.Text(), "rss "))
	require.True(t, p.lines.Scan())
	d1, dshm1 := rssOf(t, strings.TrimPrefix(p.lines.Text(), "rss "))
	p.expect(t, "ready")
	debug.FreeOSMemory()
	shmem1 := meminfo(t, "Shmem")
	rss1, shm1 := rssOf(t, selfRSS())
	stdin.Close()
	p.wait(t)
	ln.Close()
	srv.mu.Lock()
	closeAll(srv.conns)
	srv.mu.Unlock()
	srv.wg.Wait()

	transport, state := "shared memory", "idle after a 64-byte echo"
	if plain {
		transport = "unix socket"
	}
	if stream > 0 {
		state = fmt.Sprintf("idle after streaming %d KiB each way", stream>>10)
	}
	per := func(b int64) string { return fmt.Sprintf("%.1f KiB", float64(b)/kib/float64(n)) }
	fmt.Printf("| %s | %s | %s | %s | %s | %s |\n", transport, state,
		per(shmem1-shmem0), per(rss1-rss0), per(d1-d0), per(shm1-shm0+dshm1-dshm0))
}

// rssOf parses selfRSS's "VmRSS RssShmem" (kB) into bytes.
func rssOf(t *testing.T, s string) (rss, shm int64) {
	f := strings.Fields(s)
	require.Len(t, f, 2, "%q", s)
	a, err := strconv.ParseInt(f[0], 10, 64)
	require.NoError(t, err)
	b, err := strconv.ParseInt(f[1], 10, 64)
	require.NoError(t, err)
	return a * kib, b * kib
}
