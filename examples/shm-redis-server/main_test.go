package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/shmconn/shmconn/conn"
	"github.com/shmconn/shmconn/internal/testutil"
)

// childEnv, set in the environment, makes the test binary run the server's
// main instead of the tests, so the tests can start the server as another
// process.
const childEnv = "SHMCONN_REDIS_SERVER_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "1" {
		main()
		return
	}
	os.Exit(testutil.RunVerified(m))
}

// child is a server running as another process.
type child struct {
	*testutil.Child
	tcp  string // host:port, if listening on TCP
	unix string // socket path, if listening on one
}

// startChild starts the server with args (plus -addr 127.0.0.1:0 unless
// args set -addr) and waits until it is ready. It is stopped when the
// test ends, if the test did not stop it.
func startChild(t *testing.T, args ...string) *child {
	t.Helper()
	if !strings.Contains(strings.Join(args, " "), "-addr") {
		args = append([]string{"-addr", "127.0.0.1:0"}, args...)
	}
	tc, lines := testutil.StartChild(t, testutil.SelfCommand(t, childEnv, args...), "Ready to accept connections")
	c := &child{Child: tc}
	for _, line := range lines {
		var network, addr string
		if _, err := fmt.Sscanf(line, "listening on %s %s", &network, &addr); err == nil {
			if network == "tcp" {
				c.tcp = addr
			} else {
				c.unix = addr
			}
		}
	}
	return c
}

// tool returns the path of a Redis tool, or skips the test.
func tool(t *testing.T, name string) string {
	path, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("%s not installed; CI installs redis-tools (apt-get install redis-tools)", name)
	}
	return path
}

// runTool runs a tool to completion within a minute and returns its
// combined output.
func runTool(t *testing.T, path string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, path, args...).CombinedOutput()
	require.NoError(t, err, "%s %s:\n%s", filepath.Base(path), strings.Join(args, " "), out)
	return string(out)
}

// TestRealRedisCLI talks to the server with the real redis-cli, over TCP
// and over the unix socket: plain RESP clients on the shared address.
func TestRealRedisCLI(t *testing.T) {
	cli := tool(t, "redis-cli")
	sock := socketPath(t)
	c := startChild(t, "-unix", sock)
	host, port, err := net.SplitHostPort(c.tcp)
	require.NoError(t, err)
	tcp := []string{"-h", host, "-p", port}
	unix := []string{"-s", sock}
	for _, tc := range []struct {
		via  []string
		args string
		want string
	}{
		{tcp, "PING", "PONG"},
		{tcp, "SET greeting hello", "OK"},
		{tcp, "GET greeting", "hello"},
		{unix, "GET greeting", "hello"},
		{tcp, "INCR visits", "1"},
		{unix, "INCR visits", "2"},
		{tcp, "INCRBY visits 40", "42"},
		{tcp, "--no-raw GET nothing", "(nil)"},
		{tcp, "--no-raw INCR greeting", "(error) ERR value is not an integer or out of range"},
		{tcp, "--no-raw RPUSH list a b", "(integer) 2"},
		{tcp, "--no-raw LRANGE list 0 -1", "1) \"a\"\n2) \"b\""},
		{tcp, "-n 3 SET k in-db-3", "OK"},
		{tcp, "-n 3 GET k", "in-db-3"},
		{tcp, "--no-raw GET k", "(nil)"},
	} {
		args := append(append([]string{}, tc.via...), strings.Fields(tc.args)...)
		got := strings.TrimSpace(runTool(t, cli, args...))
		require.Equal(t, tc.want, got, "redis-cli %s", strings.Join(args, " "))
	}
	// The interactive mode asks COMMAND DOCS first; lines come from stdin.
	cmd := exec.Command(cli, tcp...)
	cmd.Stdin = strings.NewReader("SET a 1\nGET a\n")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	require.Equal(t, "OK\n1\n", string(out))
}

// TestRedisBenchmark runs redis-benchmark's default tests over TCP: every
// test must complete without an error reply.
func TestRedisBenchmark(t *testing.T) {
	bench := tool(t, "redis-benchmark")
	c := startChild(t)
	host, port, err := net.SplitHostPort(c.tcp)
	require.NoError(t, err)
	n := "2000"
	if testing.Short() {
		n = "200"
	}
	out := runTool(t, bench, "-h", host, "-p", port, "-q", "-n", n, "-c", "10")
	// -q prints progress with carriage returns; keep the final lines.
	var results []string
	for _, line := range strings.Split(strings.ReplaceAll(out, "\r", "\n"), "\n") {
		if strings.Contains(line, "requests per second") {
			results = append(results, strings.TrimSpace(line))
		}
	}
	for _, bad := range []string{"ERR", "WRONGTYPE", "rror", "WARNING"} {
		require.NotContains(t, out, bad)
	}
	for _, test := range []string{
		"PING_INLINE", "PING_MBULK", "SET", "GET", "INCR", "LPUSH", "RPUSH", "LPOP", "RPOP",
		"SADD", "HSET", "SPOP", "ZADD", "ZPOPMIN", "LPUSH (needed to benchmark LRANGE)",
		"LRANGE_100 (first 100 elements)", "LRANGE_300 (first 300 elements)",
		"LRANGE_500 (first 500 elements)", "LRANGE_600 (first 600 elements)", "MSET (10 keys)",
	} {
		found := false
		for _, r := range results {
			found = found || strings.HasPrefix(r, test+": ")
		}
		require.True(t, found, "no result for %s in:\n%s", test, strings.Join(results, "\n"))
	}
	t.Logf("redis-benchmark -n %s -c 10 (server built with the tests' flags):\n%s", n, strings.Join(results, "\n"))
}

// TestGoRedisAcrossProcesses uses go-redis over shared memory to the
// server running as another process, on TCP and on the unix socket.
func TestGoRedisAcrossProcesses(t *testing.T) {
	sock := socketPath(t)
	c := startChild(t, "-unix", sock, "-wait", "adaptive")
	ctx := context.Background()
	for _, via := range []struct{ network, addr string }{{"tcp", c.tcp}, {"unix", sock}} {
		rdb := newClient(t, via.network, via.addr, true, 3)
		require.NoError(t, rdb.Set(ctx, "k:"+via.network, via.network, 0).Err())
		require.Equal(t, via.network, rdb.Get(ctx, "k:"+via.network).Val())
		info := rdb.Info(ctx, "server", "clients").Val()
		require.Contains(t, info, "shm_clients:1\r\n")
		require.Contains(t, info, "shmconn_wait:adaptive\r\n")
		require.NoError(t, rdb.Close())
	}
}

// TestShutdown checks that SIGINT and SIGTERM stop the server cleanly
// while clients of both kinds are connected: exit status 0, the clients
// disconnected, the socket file removed, no segment file left.
func TestShutdown(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			sock := socketPath(t)
			c := startChild(t, "-unix", sock)
			shm, err := (&conn.Dialer{NoFallback: true}).Dial("unix", sock)
			require.NoError(t, err)
			defer shm.Close()
			plain, err := net.Dial("tcp", c.tcp)
			require.NoError(t, err)
			defer plain.Close()
			for _, cl := range []net.Conn{shm, plain} {
				require.Equal(t, "+PONG\r\n", roundTrip(t, cl, "PING\r\n"))
			}

			require.Equal(t, 0, c.Stop(t, sig), "exit status; output:\n%s", c.Output())
			require.Contains(t, c.Output(), "shutting down")
			for _, cl := range []net.Conn{shm, plain} {
				require.NoError(t, cl.SetReadDeadline(time.Now().Add(5*time.Second)))
				_, err := cl.Read(make([]byte, 1))
				require.ErrorIs(t, err, io.EOF, "read after the server exited")
			}
			_, err = os.Stat(sock)
			require.ErrorIs(t, err, os.ErrNotExist, "socket file after exit")
			require.Empty(t, testutil.SegmentFilesOf(c.Cmd.Process.Pid))
		})
	}
}

// TestStaleSocketFile checks that a socket file left by a dead server is
// replaced, and a live server's is not.
func TestStaleSocketFile(t *testing.T) {
	sock := socketPath(t)
	ln, err := net.Listen("unix", sock)
	require.NoError(t, err)
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close() // the file stays, with nobody listening

	c := startChild(t, "-addr", "", "-unix", sock)
	rdb := newClient(t, "unix", sock, true, 2)
	require.NoError(t, rdb.Ping(context.Background()).Err())

	// A second server on the same path must refuse to start.
	second := testutil.SelfCommand(t, childEnv, "-addr", "", "-unix", sock)
	out, err := second.CombinedOutput()
	require.Error(t, err)
	require.Contains(t, string(out), "another server is listening there")
	require.NoError(t, rdb.Ping(context.Background()).Err())
	require.Equal(t, 0, c.Stop(t, syscall.SIGTERM))
}

// TestFlags checks the usage errors.
func TestFlags(t *testing.T) {
	for _, args := range [][]string{
		{"-wait", "sometimes"},
		{"-addr", ""},
		{"extra"},
		{"-nosuchflag"},
		{"-proto-max-bulk-len", "1000"},
		{"-proto-max-bulk-len", "2147483648"},
	} {
		var stderr bytes.Buffer
		require.Equal(t, 2, run(args, nil, &bytes.Buffer{}, &stderr), "%v", args)
		require.NotEmpty(t, stderr.String())
	}
	var stderr bytes.Buffer
	require.Equal(t, 1, run([]string{"-addr", "256.0.0.1:1"}, nil, &bytes.Buffer{}, &stderr))
	for _, help := range []string{"-h", "--help"} {
		var usage bytes.Buffer
		require.Equal(t, 0, run([]string{help}, nil, &bytes.Buffer{}, &usage), help)
		require.Contains(t, usage.String(), "-unix")
	}
}

// TestFailedStartKeepsFiles checks that a server which cannot listen on
// its -unix path leaves whatever is there alone: a regular file, an empty
// directory, and a running server's socket.
func TestFailedStartKeepsFiles(t *testing.T) {
	start := func(path string) string {
		out, err := testutil.SelfCommand(t, childEnv, "-addr", "", "-unix", path).CombinedOutput()
		require.Error(t, err, "server started on %s:\n%s", path, out)
		return string(out)
	}
	dir := t.TempDir()

	file := filepath.Join(dir, "precious")
	require.NoError(t, os.WriteFile(file, []byte("precious\n"), 0o600))
	require.Contains(t, start(file), "exists and is not a socket")
	b, err := os.ReadFile(file)
	require.NoError(t, err, "the regular file is gone")
	require.Equal(t, "precious\n", string(b))

	empty := filepath.Join(dir, "empty")
	require.NoError(t, os.Mkdir(empty, 0o700))
	start(empty)
	fi, err := os.Stat(empty)
	require.NoError(t, err, "the empty directory is gone")
	require.True(t, fi.IsDir())

	sock := socketPath(t)
	first := startChild(t, "-addr", "", "-unix", sock)
	require.Contains(t, start(sock), "another server is listening there")
	rdb := newClient(t, "unix", sock, false, 2)
	require.NoError(t, rdb.Ping(context.Background()).Err(), "the first server's socket after the second failed")
	require.Equal(t, 0, first.Stop(t, syscall.SIGTERM))
	_, err = os.Stat(sock)
	require.ErrorIs(t, err, os.ErrNotExist, "the first server removes its own socket at exit")
}

// TestInfoShmconn checks INFO shmconn, read with the real redis-cli over
// TCP as an operator would: shared-memory clients and plain ones counted
// apart, and the shared-memory traffic.
func TestInfoShmconn(t *testing.T) {
	cli := tool(t, "redis-cli")
	sock := socketPath(t)
	c := startChild(t, "-unix", sock, "-wait", "adaptive")
	ctx := context.Background()
	for range 3 {
		rdb := newClient(t, "unix", sock, true, 3)
		require.NoError(t, rdb.Set(ctx, "k", "v", 0).Err())
		require.NoError(t, rdb.Close())
	}
	host, port, err := net.SplitHostPort(c.tcp)
	require.NoError(t, err)
	info := runTool(t, cli, "-h", host, "-p", port, "INFO", "shmconn")
	require.True(t, strings.HasPrefix(info, "# Shmconn\r\n"), "%q", info)
	for _, want := range []string{
		"shm_conns_accepted:3\r\n", "fallback_no_segment:0\r\n", "fallback_open_failed:0\r\n",
		"plain_clients_accepted:1\r\n", // this redis-cli
		"handshake_errors_protocol:0\r\n",
	} {
		require.Contains(t, info, want)
	}
	require.Regexp(t, `shm_bytes_read:[1-9]\d*\r\n`, info)
	require.Regexp(t, `shm_bytes_written:[1-9]\d*\r\n`, info)
	t.Logf("redis-cli -p %s INFO shmconn:\n%s", port, info)
}

// TestTCPOnlyWhenAsked checks that -unix alone listens on the socket only,
// and that -addr beside it adds TCP.
func TestTCPOnlyWhenAsked(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want []string // networks listened on
	}{
		{[]string{"-unix", socketPath(t)}, []string{"unix"}},
		{[]string{"-unix", socketPath(t), "-addr", "127.0.0.1:0"}, []string{"tcp", "unix"}},
	} {
		sigs := make(chan os.Signal, 1)
		stdout := &syncWriter{ready: make(chan struct{})}
		done := make(chan int, 1)
		go func() { done <- run(tc.args, sigs, stdout, io.Discard) }()
		select {
		case <-stdout.ready:
		case code := <-done:
			t.Fatalf("%v: exit %d", tc.args, code)
		}
		sigs <- syscall.SIGTERM
		require.Equal(t, 0, <-done)
		var got []string
		for _, l := range strings.Split(stdout.String(), "\n") {
			var network, addr string
			if _, err := fmt.Sscanf(l, "listening on %s %s", &network, &addr); err == nil {
				got = append(got, network)
			}
		}
		require.Equal(t, tc.want, got, "%v: %s", tc.args, stdout.String())
	}
}

// syncWriter collects output written by another goroutine and closes
// ready at the server's ready line.
type syncWriter struct {
	mu    sync.Mutex
	b     bytes.Buffer
	ready chan struct{}
}

func (w *syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.b.Write(p)
	if strings.Contains(w.b.String(), "Ready to accept connections\n") && !isClosed(w.ready) {
		close(w.ready)
	}
	return len(p), nil
}

func (w *syncWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}
