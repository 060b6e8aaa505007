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
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/shmconn/shmconn/internal/testutil"
)

// serverBin is examples/shm-redis-server, built by TestMain; empty if it
// could not be built.
var serverBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "redis-cli-test")
	if err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
	if goTool, err := exec.LookPath("go"); err == nil {
		bin := filepath.Join(dir, "redis-server")
		out, err := exec.Command(goTool, "build", "-o", bin, "../shm-redis-server").CombinedOutput()
		if err != nil {
			fmt.Printf("building redis-server: %v\n%s", err, out)
			os.Exit(1)
		}
		serverBin = bin
	}
	code := testutil.RunVerified(m)
	os.RemoveAll(dir)
	os.Exit(code)
}

// server is examples/shm-redis-server running as another process.
type server struct {
	host, port string
	sock       string
}

// startServer starts the server on a free TCP port and a unix socket and
// stops it (with SIGTERM, checking for a clean exit) when the test ends.
func startServer(t *testing.T) *server {
	t.Helper()
	dir, err := os.MkdirTemp("", "redis-cli-test")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	s := &server{sock: filepath.Join(dir, "redis.sock")}
	c, lines := startServerProcess(t, "-addr", "127.0.0.1:0", "-unix", s.sock, "-wait", "adaptive")
	t.Cleanup(func() {
		if code := c.Stop(t, syscall.SIGTERM); code != 0 {
			t.Errorf("server exit status %d; output:\n%s", code, c.Output())
		}
	})
	for _, line := range lines {
		var addr string
		if _, err := fmt.Sscanf(line, "listening on tcp %s", &addr); err == nil {
			s.host, s.port, _ = net.SplitHostPort(addr)
		}
	}
	return s
}

// startServerProcess starts examples/shm-redis-server with args and waits
// until it is ready; see testutil.StartChild.
func startServerProcess(t *testing.T, args ...string) (*testutil.Child, []string) {
	t.Helper()
	if serverBin == "" {
		t.Skip("no go command to build examples/shm-redis-server with")
	}
	return testutil.StartChild(t, exec.Command(serverBin, args...), "Ready to accept connections")
}

func (s *server) tcp() []string  { return []string{"-h", s.host, "-p", s.port} }
func (s *server) unix() []string { return []string{"-s", s.sock} }

// cli runs this redis-cli in-process with args and returns its output,
// error output and exit code.
func cli(ctx context.Context, stdin string, tty bool, args ...string) (stdout, stderr string, code int) {
	var out, errOut bytes.Buffer
	code = run(ctx, args, stdio{in: strings.NewReader(stdin), out: &out, err: &errOut, inTTY: tty, outTTY: tty})
	return out.String(), errOut.String(), code
}

func mustCLI(t *testing.T, args ...string) string {
	t.Helper()
	out, errOut, code := cli(context.Background(), "", false, args...)
	require.Equal(t, 0, code, "redis-cli %s: %s", strings.Join(args, " "), errOut)
	return out
}

func join(parts ...[]string) []string {
	var all []string
	for _, p := range parts {
		all = append(all, p...)
	}
	return all
}

// TestCommands runs commands over every transport: shared memory through
// the TCP port and through the unix socket, and plain sockets; INFO shows
// which one the server saw.
func TestCommands(t *testing.T) {
	s := startServer(t)
	for _, tc := range []struct {
		name string
		via  []string
		shm  bool
	}{
		{"shm via tcp", join(s.tcp(), []string{"--shm"}), true},
		{"shm via unix", join(s.unix(), []string{"--shm", "--wait", "adaptive"}), true},
		{"tcp", s.tcp(), false},
		{"unix", s.unix(), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := strings.ReplaceAll(tc.name, " ", "-")
			require.Equal(t, "OK\n", mustCLI(t, join(tc.via, []string{"SET", k, "hello world"})...))
			require.Equal(t, "hello world\n", mustCLI(t, join(tc.via, []string{"GET", k})...))
			require.Equal(t, "\"hello world\"\n", mustCLI(t, join(tc.via, []string{"--no-raw", "GET", k})...))
			require.Equal(t, "(integer) 1\n", mustCLI(t, join(tc.via, []string{"--no-raw", "INCR", k + ":n"})...))
			require.Equal(t, "(integer) 2\n(integer) 3\n", mustCLI(t, join(tc.via, []string{"--no-raw", "-r", "2", "INCR", k + ":n"})...))
			require.Equal(t, "(error) ERR value is not an integer or out of range\n",
				mustCLI(t, join(tc.via, []string{"--no-raw", "INCR", k})...))
			require.Equal(t, "(nil)\n", mustCLI(t, join(tc.via, []string{"--no-raw", "-n", "5", "GET", k})...))
			// The previous clients' disconnects may still be on their way.
			want := fmt.Sprintf("connected_clients:1\r\nshm_clients:%d\r\n", map[bool]int{true: 1}[tc.shm])
			require.Eventually(t, func() bool {
				out, _, _ := cli(context.Background(), "", false, join(tc.via, []string{"INFO", "clients"})...)
				return strings.Contains(out, want)
			}, 5*time.Second, 10*time.Millisecond, "INFO clients never showed %q", want)
		})
	}
}

// TestMatchesRealRedisCLI prints the same replies as the real redis-cli,
// on a terminal and off.
func TestMatchesRealRedisCLI(t *testing.T) {
	real, err := exec.LookPath("redis-cli")
	if err != nil {
		t.Skip("redis-cli not installed; CI installs redis-tools (apt-get install redis-tools)")
	}
	s := startServer(t)
	for _, setup := range []string{
		"SET s v", "RPUSH l a b\tc \"q\" é", "HSET h f 1", "ZADD z 1.5 m", "SET n 12",
	} {
		args, err := SplitArgs(setup)
		require.NoError(t, err)
		mustCLI(t, join(s.tcp(), args)...)
	}
	for _, cmd := range []string{
		"GET s", "GET nope", "LRANGE l 0 -1", "LRANGE nope 0 -1", "HGETALL h", "ZRANGE z 0 -1 WITHSCORES",
		"INCR s", "NOSUCH a b", "COMMAND INFO get nope", "EXISTS s n nope", "TTL s", "PING", "ECHO x",
		"MGET s l nope n", "CONFIG GET save", "INFO keyspace", "INFO nosuchsection",
		"-3 HGETALL h", "-3 CONFIG GET save", "-3 SMEMBERS nope", "-3 GET nope", "-3 LRANGE l 0 -1",
	} {
		for _, mode := range []string{"--raw", "--no-raw"} {
			args := join(s.tcp(), []string{mode}, strings.Fields(cmd))
			want, err := exec.Command(real, args...).Output()
			require.NoError(t, err)
			got := mustCLI(t, join([]string{"--shm"}, args)...)
			require.Equal(t, string(want), got, "redis-cli %s %s", mode, cmd)
		}
	}
}

// latencyLine is the terminal's line; rawLatencyLine redis-cli's line
// without a terminal: min, max, avg, samples.
var (
	latencyLine    = regexp.MustCompile(`^min: \d+\.\d{3}, max: \d+\.\d{3}, avg: \d+\.\d{3}, p50: \d+\.\d{3}, p99: \d+\.\d{3} \((\d+) samples\)`)
	rawLatencyLine = regexp.MustCompile(`^\d+ \d+ \d+\.\d{2} (\d+)`)
)

func samples(t *testing.T, line string) int {
	t.Helper()
	m := latencyLine.FindStringSubmatch(line)
	if m == nil {
		m = rawLatencyLine.FindStringSubmatch(line)
	}
	require.NotNil(t, m, "latency line %q", line)
	n, _ := strconv.Atoi(m[1])
	return n
}

// TestLatency runs --latency without a terminal, where it measures for -i
// seconds and prints one line, over shared memory and the unix socket.
func TestLatency(t *testing.T) {
	s := startServer(t)
	for _, via := range [][]string{join(s.tcp(), []string{"--shm"}), s.unix()} {
		out := mustCLI(t, join(via, []string{"--latency", "-i", "0.2"})...)
		require.True(t, strings.HasSuffix(out, "\n") && strings.Count(out, "\n") == 1, "%q", out)
		n := samples(t, out)
		require.True(t, n >= 5 && n <= 25, "%d samples in 0.2s at one per 10ms", n)

		out = mustCLI(t, join(via, []string{"--latency", "-i", "0.1", "--latency-sample-rate", "0"})...)
		require.Greater(t, samples(t, out), 100, "back-to-back samples in 0.1s")
	}
}

// TestLatencyHistory checks the history lines and that cancelling (Ctrl-C)
// ends latency mode cleanly, on a terminal and off.
func TestLatencyHistory(t *testing.T) {
	s := startServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 700*time.Millisecond)
	defer cancel()
	out, errOut, code := cli(ctx, "", false, join(s.tcp(), []string{"--shm", "--latency-history", "-i", "0.2"})...)
	require.Equal(t, 0, code, errOut)
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	require.GreaterOrEqual(t, len(lines), 3, "%q", out)
	for _, l := range lines[:2] {
		samples(t, l)
		require.Regexp(t, ` -- 0\.\d\d seconds range$`, l)
	}

	ctx, cancel = context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	out, errOut, code = cli(ctx, "", true, join(s.tcp(), []string{"--shm", "--latency"})...)
	require.Equal(t, 0, code, errOut)
	updates := strings.Split(out, "\x1b[0G\x1b[2K")
	require.Greater(t, len(updates), 5, "in-place updates in %q", out)
	require.True(t, strings.HasSuffix(out, "\n"))
	samples(t, updates[len(updates)-1])
}

// TestPrompt feeds commands on standard input, as a terminal and not.
func TestPrompt(t *testing.T) {
	s := startServer(t)
	input := "SET p 1\nGET p\n\n\"bad\nselect 1\nGET p\nquit\nGET never\n"
	out, errOut, code := cli(context.Background(), input, false, join(s.tcp(), []string{"--shm"})...)
	require.Equal(t, 0, code, errOut)
	require.Equal(t, "OK\n1\nInvalid argument(s)\nOK\n\n", out)

	out, errOut, code = cli(context.Background(), input, true, join(s.unix(), []string{"--shm"})...)
	require.Equal(t, 0, code, errOut)
	p := "redis " + s.sock + "> "
	p1 := "redis " + s.sock + "[1]> "
	want := p + "OK\n" + p + "\"1\"\n" + p + p + "Invalid argument(s)\n" + p + "OK\n" + p1 + "(nil)\n" + p1
	require.Equal(t, want, out)
}

// TestErrors checks what the user sees when things go wrong.
func TestErrors(t *testing.T) {
	// Nobody listening.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	ln.Close()
	_, errOut, code := cli(context.Background(), "", false, "-p", port, "PING")
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "Could not connect to Redis at 127.0.0.1:"+port+": ")
	require.Contains(t, errOut, "refused")

	// --shm against a server that does not speak shmconn, such as a real
	// Redis: it answers the handshake with an error reply.
	ln, err = net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		c.Read(make([]byte, 64))
		c.Write([]byte("-ERR unknown command\r\n"))
	}()
	_, port, _ = net.SplitHostPort(ln.Addr().String())
	_, errOut, code = cli(context.Background(), "", false, "-p", port, "--shm", "PING")
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "handshake")
	<-done

	// Usage errors.
	for _, args := range [][]string{{"--nosuch"}, {"--wait", "never"}, {"--latency-sample-rate", "-1"}, {"-r", "0"}} {
		_, errOut, code := cli(context.Background(), "", false, args...)
		require.Equal(t, 2, code, "%v", args)
		require.NotEmpty(t, errOut)
	}
}

// TestInterrupt checks that Ctrl-C ends a prompt waiting for input and a
// command waiting for its reply.
func TestInterrupt(t *testing.T) {
	// A server that accepts and never answers.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	accepted := make(chan net.Conn, 4)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				close(accepted)
				return
			}
			accepted <- c
		}
	}()
	defer func() {
		ln.Close()
		for c := range accepted {
			c.Close()
		}
	}()
	_, port, _ := net.SplitHostPort(ln.Addr().String())

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, _, code := cli(ctx, "", false, "-p", port, "GET", "k")
	require.Equal(t, 130, code)
	require.Less(t, time.Since(start), 5*time.Second)

	pr, pw := io.Pipe() // input that never comes
	defer pw.Close()
	ctx, cancel = context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	var out bytes.Buffer
	code = run(ctx, []string{"-p", port}, stdio{in: pr, out: &out, err: &out, inTTY: true, outTTY: true})
	require.Equal(t, 0, code, out.String())
	require.Equal(t, "127.0.0.1:"+port+"> \n", out.String())
}

// TestLatencyLineLikeRealCLI checks that without a terminal --latency
// prints the same kind of line as the real redis-cli: four fields, min and
// max in whole milliseconds, avg with two decimals, the sample count.
func TestLatencyLineLikeRealCLI(t *testing.T) {
	real, err := exec.LookPath("redis-cli")
	if err != nil {
		t.Skip("redis-cli not installed; CI installs redis-tools (apt-get install redis-tools)")
	}
	s := startServer(t)
	want, err := exec.Command(real, join(s.tcp(), []string{"--latency", "-i", "0.2"})...).Output()
	require.NoError(t, err)
	got := mustCLI(t, join(s.tcp(), []string{"--shm", "--latency", "-i", "0.2"})...)
	shape := regexp.MustCompile(`^\d+ \d+ \d+\.\d\d \d+\n$`)
	require.Regexp(t, shape, string(want), "the real redis-cli's line")
	require.Regexp(t, shape, got)
}

// TestFlagsLikeRealCLI checks --help, --version, -x and --pipe.
func TestFlagsLikeRealCLI(t *testing.T) {
	out, _, code := cli(context.Background(), "", false, "--help")
	require.Equal(t, 0, code)
	require.Contains(t, out, "Usage: redis-cli")

	out, _, code = cli(context.Background(), "", false, "--version")
	require.Equal(t, 0, code)
	require.Regexp(t, `^redis-cli \d+\.\d+\.\d+ `, out)

	s := startServer(t)
	out, errOut, code := cli(context.Background(), "line one\nline two\n", false, join(s.unix(), []string{"--shm", "-x", "SET", "fromstdin"})...)
	require.Equal(t, 0, code, errOut)
	require.Equal(t, "OK\n", out)
	require.Equal(t, "\"line one\\nline two\\n\"\n", mustCLI(t, join(s.unix(), []string{"--no-raw", "GET", "fromstdin"})...))

	input := "SET p 1\r\n" + string(AppendCommand(nil, "INCR", "p")) + string(AppendCommand(nil, "INCR", "p", "extra"))
	out, errOut, code = cli(context.Background(), input, false, join(s.unix(), []string{"--shm", "--pipe"})...)
	require.Equal(t, 1, code, "an error reply makes --pipe fail")
	require.Equal(t, "All data transferred. Waiting for the last reply...\nLast reply received from server.\nerrors: 1, replies: 3\n", out)
	require.Contains(t, errOut, "wrong number of arguments")
	require.Equal(t, "2\n", mustCLI(t, join(s.unix(), []string{"GET", "p"})...))
}

// TestPromptReconnects stops the server under a prompt: the failed command
// is reported, the prompt says "not connected>", and once a server is
// back the next command reconnects.
func TestPromptReconnects(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "r.sock")
	start := func() *testutil.Child {
		c, _ := startServerProcess(t, "-addr", "", "-unix", sock, "-wait", "adaptive")
		return c
	}
	stop := func(c *testutil.Child) { c.Stop(t, syscall.SIGTERM) }
	srv := start()
	defer func() { stop(srv) }()

	pr, pw := io.Pipe()
	var out, errOut testutil.SyncBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(context.Background(), []string{"-s", sock, "--shm", "--wait", "adaptive"}, stdio{in: pr, out: &out, err: &errOut, inTTY: true, outTTY: true})
	}()
	p := "redis " + sock + "> "
	waitFor := func(s *testutil.SyncBuffer, want string) {
		t.Helper()
		require.Eventually(t, func() bool { return strings.HasSuffix(s.String(), want) }, 20*time.Second, 5*time.Millisecond,
			"output %q, want it to end in %q", s.String(), want)
	}
	io.WriteString(pw, "SET k 1\n")
	waitFor(&out, "OK\n"+p)
	stop(srv)
	io.WriteString(pw, "GET k\n")
	waitFor(&out, "not connected> ")
	require.Contains(t, errOut.String(), "Could not connect to Redis at "+sock)
	srv = start()
	io.WriteString(pw, "PING\n")
	waitFor(&out, "PONG\n"+p)
	pw.Close()
	require.Equal(t, 0, <-done)
}
