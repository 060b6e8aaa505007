package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shmconn/shmconn/conn"
	"github.com/shmconn/shmconn/internal/testutil"
)

// The harness: build the module once per test binary, start real
// redis-servers that load it, talk to them over shm or their plain unix
// socket in raw RESP. Other tests (benchmarks, the demo) can reuse it.

var built struct {
	once sync.Once
	dir  string // removed by TestMain
	so   string
	err  error
	skip string
}

func TestMain(m *testing.M) {
	runAsPeer()
	code := m.Run()
	if built.dir != "" {
		os.RemoveAll(built.dir)
	}
	if files := testutil.SegmentFiles(); code == 0 && len(files) > 0 {
		println("FAIL: segment files left behind:", strings.Join(files, " "))
		code = 1
	}
	os.Exit(code)
}

// moduleSO builds the module with -buildmode=c-shared, or skips the test
// when redis-server or a C compiler is missing.
func moduleSO(t testing.TB) string {
	t.Helper()
	built.once.Do(func() {
		if _, err := exec.LookPath("redis-server"); err != nil {
			built.skip = "redis-server not installed; CI installs it (apt-get install redis-server)"
			return
		}
		cc := os.Getenv("CC")
		if cc == "" {
			cc = "cc"
		}
		if _, err := exec.LookPath(cc); err != nil {
			built.skip = "no C compiler (" + cc + ") for cgo; CI installs one (apt-get install gcc)"
			return
		}
		built.dir, built.err = os.MkdirTemp("", "shmconn-module")
		if built.err != nil {
			return
		}
		built.so = filepath.Join(built.dir, "shmconn-redis.so")
		goTool := filepath.Join(runtime.GOROOT(), "bin", "go")
		out, err := exec.Command(goTool, "build", "-buildmode=c-shared", "-o", built.so, ".").CombinedOutput()
		if err != nil {
			built.err = fmt.Errorf("go build -buildmode=c-shared: %v\n%s", err, out)
			return
		}
		built.err = os.Chmod(built.so, 0o755) // redis-server refuses a module without x
	})
	if built.skip != "" {
		t.Skip(built.skip)
	}
	if built.err != nil {
		t.Fatal(built.err)
	}
	return built.so
}

// server is a redis-server a test started in a temp directory, with the
// module loaded (unless started without it).
type server struct {
	t     testing.TB
	dir   string
	plain string // its unix socket
	shm   string // the module's socket
	port  int    // its TCP port, 0: none
	cmd   *exec.Cmd
	done  chan struct{}
}

// serverConfig says how to start a server.
type serverSpec struct {
	dir        string   // reuse this directory (a restart); "" makes one
	moduleArgs []string // after "unixsocket <path>"; nil with noModule
	noModule   bool
	tcp        bool     // listen on a free TCP port too (a replication master)
	args       []string // more redis-server arguments
}

func startServer(t testing.TB, spec serverSpec) *server {
	t.Helper()
	so := moduleSO(t)
	s := &server{t: t, dir: spec.dir, done: make(chan struct{})}
	if s.dir == "" {
		s.dir = t.TempDir()
	}
	s.plain, s.shm = filepath.Join(s.dir, "plain.sock"), filepath.Join(s.dir, "shm.sock")
	args := []string{"--port", "0", "--unixsocket", s.plain, "--dir", s.dir, "--save", "",
		"--enable-debug-command", "yes", "--logfile", filepath.Join(s.dir, "redis.log")}
	if spec.tcp {
		s.port = freePort(t)
		args[1] = strconv.Itoa(s.port)
		args = append(args, "--bind", "127.0.0.1")
	}
	if !spec.noModule {
		args = append(args, "--loadmodule", so, "unixsocket", s.shm)
		args = append(args, spec.moduleArgs...)
	}
	args = append(args, spec.args...)
	s.cmd = exec.Command("redis-server", args...)
	s.cmd.Dir = s.dir
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { s.cmd.Wait(); close(s.done) }()
	t.Cleanup(s.kill)
	s.waitReady()
	return s
}

func freePort(t testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// waitReady waits until the plain socket answers PING: redis-server binds
// it before it loads modules, but answers only once its event loop runs,
// after every module loaded.
func (s *server) waitReady() {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-s.done:
			s.t.Fatalf("redis-server exited: %s", s.log())
		default:
		}
		if pingOK(s.plain) {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	s.t.Fatalf("redis-server never listened on %s: %s", s.plain, s.log())
}

func pingOK(path string) bool {
	c, err := net.Dial("unix", path)
	if err != nil {
		return false
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(100 * time.Millisecond))
	fmt.Fprintf(c, "PING\r\n")
	line, err := bufio.NewReader(c).ReadString('\n')
	return err == nil && (line == "+PONG\r\n" || strings.HasPrefix(line, "-NOAUTH"))
}

func (s *server) log() string {
	b, _ := os.ReadFile(filepath.Join(s.dir, "redis.log"))
	return string(b)
}

func (s *server) kill() {
	s.cmd.Process.Kill()
	<-s.done
}

// stop shuts the server down cleanly (SHUTDOWN over its socket) and waits
// for it to exit.
func (s *server) stop() {
	c, err := net.Dial("unix", s.plain)
	if err == nil {
		fmt.Fprintf(c, "SHUTDOWN\r\n")
		defer c.Close()
	}
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		s.t.Fatal("redis-server did not shut down")
	}
}

// rawConn speaks raw RESP and reads each reply as its bytes.
type rawConn struct {
	t  testing.TB
	nc net.Conn
	r  *bufio.Reader
}

// shmConn dials the module's socket through shmconn.
func (s *server) shmConn() *rawConn {
	s.t.Helper()
	nc, err := conn.Dial("unix", s.shm)
	if err != nil {
		s.t.Fatal(err)
	}
	if _, ok := nc.(*conn.Conn); !ok {
		s.t.Fatalf("dial %s: got a %T, not shared memory", s.shm, nc)
	}
	return newRaw(s.t, nc)
}

// plainConn dials the server's own unix socket.
func (s *server) plainConn() *rawConn {
	s.t.Helper()
	nc, err := net.Dial("unix", s.plain)
	if err != nil {
		s.t.Fatal(err)
	}
	return newRaw(s.t, nc)
}

func newRaw(t testing.TB, nc net.Conn) *rawConn {
	c := &rawConn{t: t, nc: nc, r: bufio.NewReader(nc)}
	t.Cleanup(func() { nc.Close() })
	return c
}

// encode appends a multibulk request.
func encode(b []byte, args ...string) []byte {
	b = fmt.Appendf(b, "*%d\r\n", len(args))
	for _, a := range args {
		b = fmt.Appendf(b, "$%d\r\n%s\r\n", len(a), a)
	}
	return b
}

func (c *rawConn) send(b []byte) {
	c.t.Helper()
	if _, err := c.nc.Write(b); err != nil {
		c.t.Fatal(err)
	}
}

// do sends one command and returns its reply's bytes.
func (c *rawConn) do(args ...string) string {
	c.t.Helper()
	c.send(encode(nil, args...))
	return c.read()
}

func (c *rawConn) read() string {
	c.t.Helper()
	c.nc.SetReadDeadline(time.Now().Add(30 * time.Second))
	var sb strings.Builder
	if err := readReply(c.r, &sb); err != nil {
		c.t.Fatalf("reading a reply: %v (so far %q)", err, sb.String())
	}
	return sb.String()
}

// readReply copies one RESP2 or RESP3 reply from r to sb.
func readReply(r *bufio.Reader, sb *strings.Builder) error {
	line, err := r.ReadString('\n')
	sb.WriteString(line)
	if err != nil {
		return err
	}
	if len(line) < 3 {
		return fmt.Errorf("short line %q", line)
	}
	n, _ := strconv.Atoi(strings.TrimSpace(line[1:]))
	switch line[0] {
	case '$', '=', '!':
		if n < 0 {
			return nil
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			return err
		}
		sb.Write(buf)
	case '*', '~', '>', '%', '|':
		if line[0] == '%' || line[0] == '|' {
			n *= 2
		}
		for range max(n, 0) {
			if err := readReply(r, sb); err != nil {
				return err
			}
		}
	}
	return nil
}
