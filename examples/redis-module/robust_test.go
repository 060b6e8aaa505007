package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Robustness against a real redis-server: many clients, clients that die,
// forks, shutdown, the limits a socket client meets.

// query runs one command on a plain connection of its own.
func (s *server) query(args ...string) string {
	c := s.plainConn()
	defer c.nc.Close()
	return c.do(args...)
}

// infoField reads one INFO shmconn field (without its "shmconn_" prefix)
// over the server's plain socket; -1 when it is missing.
func (s *server) infoField(name string) int {
	s.t.Helper()
	info := s.query("INFO", "shmconn")
	v := infoValue(info, "shmconn_"+name)
	if v == "" {
		return -1
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		s.t.Fatalf("INFO shmconn %s: %q", name, v)
	}
	return n
}

// waitClients waits until INFO shmconn counts n clients.
func (s *server) waitClients(t *testing.T, n int) {
	t.Helper()
	waitFor(t, fmt.Sprintf("INFO shmconn clients = %d", n), func() bool { return s.infoField("clients") == n })
}

// raiseFDLimit lifts the soft limit on open files to the hard one.
func raiseFDLimit(t *testing.T, need uint64) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	lim.Cur = lim.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	if lim.Cur < need {
		t.Skipf("the hard limit on open files is %d; this test needs %d", lim.Cur, need)
	}
}

// TestThousandClients: 1000 shm clients connected at once are each served,
// counted, and forgotten when they close.
func TestThousandClients(t *testing.T) {
	const n = 1000
	raiseFDLimit(t, 4*n)
	s := startServer(t, serverSpec{args: []string{"--maxclients", strconv.Itoa(2 * n)}})
	conns := make([]*rawConn, n)
	var wg sync.WaitGroup
	for w := range 20 {
		wg.Go(func() {
			for i := w; i < n; i += 20 {
				conns[i] = s.shmConn()
				conns[i].send(encode(nil, "SET", "c"+itoa(i), itoa(i)))
			}
		})
	}
	wg.Wait()
	s.waitClients(t, n)
	for w := range 20 {
		wg.Go(func() {
			for i := w; i < n; i += 20 {
				if r := conns[i].read(); r != "+OK\r\n" {
					t.Errorf("client %d: SET: %q", i, r)
				}
				if r := conns[i].do("GET", "c"+itoa(i)); r != fmt.Sprintf("$%d\r\n%d\r\n", len(itoa(i)), i) {
					t.Errorf("client %d: GET: %q", i, r)
				}
				conns[i].nc.Close()
			}
		})
	}
	wg.Wait()
	s.waitClients(t, 0)
	if r := s.query("DBSIZE"); r != ":1000\r\n" {
		t.Fatalf("DBSIZE: %q", r)
	}
}

// TestKilledClients: a client SIGKILLed with half a request sent, or while
// a reply larger than its ring is being written to it, is dropped; the
// server serves the others throughout and the half request never runs.
func TestKilledClients(t *testing.T) {
	s := startServer(t, serverSpec{})
	other := s.shmConn()
	if r := other.do("SET", "big", strings.Repeat("b", 8<<20)); r != "+OK\r\n" {
		t.Fatal(r)
	}
	for _, role := range []string{"half-request", "mid-reply"} {
		p := startPeer(t, s, role)
		if list := s.query("SHMCONN.CLIENTS"); !strings.Contains(list, "id="+p.id+" ") {
			t.Fatalf("%s: SHMCONN.CLIENTS lacks id=%s:\n%s", role, p.id, list)
		}
		if r := other.do("PING"); r != "+PONG\r\n" {
			t.Fatalf("%s: another client while it is stuck: %q", role, r)
		}
		p.kill()
		s.waitClients(t, 1)
		if list := s.query("SHMCONN.CLIENTS"); strings.Contains(list, "id="+p.id+" ") {
			t.Fatalf("%s: the killed client is still listed:\n%s", role, list)
		}
		if r := other.do("EXISTS", "half"); r != ":0\r\n" {
			t.Fatalf("%s: the half-sent SET ran: EXISTS %q", role, r)
		}
	}
}

// TestInfoAndClientList: INFO shmconn's fields and SHMCONN.CLIENTS's lines
// follow the shm clients.
func TestInfoAndClientList(t *testing.T) {
	s := startServer(t, serverSpec{})
	a, b := s.shmConn(), s.shmConn()
	a.do("CLIENT", "SETNAME", "alpha")
	a.do("SELECT", "3")
	id := strings.TrimSpace(strings.TrimPrefix(b.do("CLIENT", "ID"), ":"))
	info := s.query("INFO", "shmconn")
	for _, f := range []string{"clients:2", "clients_accepted:2", "clients_refused_maxclients:0", "shared_conns:2",
		"fallbacks_no_segment:0", "fallbacks_open_failed:0", "handshake_errors:0", "bytes_read:", "bytes_written:",
		"wakeups_sent:", "wakeups_received:", "parks:"} {
		if !strings.Contains(info, "\r\nshmconn_"+f) {
			t.Errorf("INFO shmconn lacks %q:\n%s", f, info)
		}
	}
	if s.infoField("bytes_read") <= 0 || s.infoField("bytes_written") <= 0 {
		t.Errorf("no bytes counted:\n%s", info)
	}
	list := s.query("SHMCONN.CLIENTS")
	if n := strings.Count(list, "transport=shmconn\n"); n != 2 {
		t.Fatalf("SHMCONN.CLIENTS lists %d clients:\n%s", n, list)
	}
	for _, want := range []string{" name=alpha ", " db=3 ", "id=" + id + " ", " cmd=client "} {
		if !strings.Contains(list, want) {
			t.Errorf("SHMCONN.CLIENTS lacks %q:\n%s", want, list)
		}
	}
	if r := s.query("SHMCONN.CLIENTS", "x"); !strings.HasPrefix(r, "-ERR wrong number of arguments") {
		t.Errorf("SHMCONN.CLIENTS x: %q", r)
	}
	a.nc.Close()
	s.waitClients(t, 1)
}

// TestForksDuringTraffic: BGSAVE and BGREWRITEAOF fork redis-server while
// shm clients write; both succeed, no write is lost, and the rewritten AOF
// gives the same data after a restart.
func TestForksDuringTraffic(t *testing.T) {
	s := startServer(t, serverSpec{args: []string{"--appendonly", "yes"}})
	stop := make(chan struct{})
	counts := make([]int, 4)
	var wg sync.WaitGroup
	for i := range counts {
		c := s.shmConn()
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if r := c.do("INCR", "n"+itoa(i)); r != ":"+itoa(counts[i]+1)+"\r\n" {
					t.Errorf("INCR n%d: %q after %d", i, r, counts[i])
					return
				}
				counts[i]++
			}
		})
	}
	s.fork(t, "BGSAVE", "rdb_bgsave_in_progress:0", "rdb_last_bgsave_status:ok")
	s.fork(t, "BGREWRITEAOF", "aof_rewrite_in_progress:0", "aof_last_bgrewrite_status:ok")
	close(stop)
	wg.Wait()
	for i, n := range counts {
		if n == 0 {
			t.Errorf("client %d wrote nothing while the server forked", i)
		}
		if r := s.query("GET", "n"+itoa(i)); r != fmt.Sprintf("$%d\r\n%d\r\n", len(itoa(n)), n) {
			t.Errorf("n%d = %q, want %d", i, r, n)
		}
	}
	digest := s.query("DEBUG", "DIGEST")
	s.stop()
	restarted := startServer(t, serverSpec{dir: s.dir, args: []string{"--appendonly", "yes"}})
	if d := restarted.query("DEBUG", "DIGEST"); d != digest {
		t.Fatalf("digest after the restart %q, want %q", d, digest)
	}
}

// fork runs BGSAVE or BGREWRITEAOF and waits until INFO persistence says
// it finished (done) and how it ended (status).
func (s *server) fork(t *testing.T, cmd, done, status string) {
	t.Helper()
	time.Sleep(50 * time.Millisecond) // let traffic flow first
	if r := s.query(cmd); !strings.HasPrefix(r, "+Background") {
		t.Fatalf("%s: %q", cmd, r)
	}
	waitFor(t, cmd+" done", func() bool { return strings.Contains(s.query("INFO", "persistence"), done) })
	if info := s.query("INFO", "persistence"); !strings.Contains(info, status) {
		t.Fatalf("%s failed:\n%s", cmd, info)
	}
}

// TestShutdownWithClients: SHUTDOWN with shm clients connected (one idle,
// one blocked in BLPOP, one mid-transaction) exits cleanly; each client
// reads EOF, and the module's socket is gone.
func TestShutdownWithClients(t *testing.T) {
	s := startServer(t, serverSpec{})
	idle, blocked, tx := s.shmConn(), s.shmConn(), s.shmConn()
	blocked.send(encode(nil, "BLPOP", "never", "0"))
	tx.do("MULTI")
	tx.do("SET", "k", "v")
	waitFor(t, "BLPOP blocked", func() bool { return strings.Contains(s.query("SHMCONN.CLIENTS"), "cmd=blpop") })
	s.stop()
	if !s.cmd.ProcessState.Success() {
		t.Fatalf("redis-server exited with %v:\n%s", s.cmd.ProcessState, s.log())
	}
	for i, c := range []*rawConn{idle, blocked, tx} {
		c.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
		if b, err := c.r.ReadByte(); err == nil || isTimeout(err) {
			t.Errorf("client %d after SHUTDOWN: %q, %v", i, b, err)
		}
	}
	if _, err := os.Lstat(s.shm); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the module's socket outlived the server: %v", err)
	}
}

// TestMaxClients: the shm client past maxclients (the module's argument,
// or else redis-server's) is refused with Redis's error; once a client
// leaves, a new one is served.
func TestMaxClients(t *testing.T) {
	for _, spec := range []serverSpec{{moduleArgs: []string{"maxclients", "2"}}, {args: []string{"--maxclients", "2"}}} {
		s := startServer(t, spec)
		a, _ := s.shmConn(), s.shmConn()
		s.waitClients(t, 2)
		if r := s.shmConn().read(); r != "-ERR max number of clients reached\r\n" {
			t.Fatalf("%v: the third client: %q", spec, r)
		}
		if n := s.infoField("clients_refused_maxclients"); n != 1 {
			t.Fatalf("%v: clients_refused_maxclients = %d", spec, n)
		}
		a.nc.Close()
		s.waitClients(t, 1)
		if r := s.shmConn().do("PING"); r != "+PONG\r\n" {
			t.Fatalf("%v: a client after one left: %q", spec, r)
		}
	}
}

// TestIdleTimeout: with timeout 1, an idle shm client is closed within a
// few seconds while one that keeps sending stays.
func TestIdleTimeout(t *testing.T) {
	s := startServer(t, serverSpec{args: []string{"--timeout", "1"}})
	idle, busy := s.shmConn(), s.shmConn()
	start := time.Now()
	for time.Since(start) < 2500*time.Millisecond {
		if r := busy.do("PING"); r != "+PONG\r\n" {
			t.Fatalf("a busy client after %v: %q", time.Since(start), r)
		}
		time.Sleep(200 * time.Millisecond)
	}
	idle.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	if b, err := idle.r.ReadByte(); err == nil || isTimeout(err) {
		t.Fatalf("an idle client after %v: %q, %v", time.Since(start), b, err)
	}
}

// TestOutputLimits: client-output-buffer-limit's normal class applies to
// shm clients as to socket ones: a reply over the hard limit closes the
// client at once; a reader that leaves more than the soft limit unread for
// the soft time is closed; a prompt reader of the same reply is served.
func TestOutputLimits(t *testing.T) {
	s := startServer(t, serverSpec{args: []string{"--client-output-buffer-limit", "normal 4mb 1mb 1"}})
	other := s.shmConn()
	other.do("SET", "huge", strings.Repeat("h", 5<<20))
	other.do("SET", "big", strings.Repeat("b", 3<<20))
	for name, c := range map[string]*rawConn{"socket": s.plainConn(), "shm": s.shmConn()} {
		c.send(encode(nil, "GET", "huge"))
		c.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
		if b, err := c.r.ReadByte(); err == nil || isTimeout(err) {
			t.Errorf("%s: GET of a reply over the hard limit: %q, %v", name, b, err)
		}
	}
	slow := s.shmConn()
	slow.send(encode(nil, "GET", "big"))
	if r := other.do("GET", "big"); len(r) != 3<<20+len("$3145728\r\n\r\n") {
		t.Fatalf("a prompt reader got %d bytes", len(r))
	}
	time.Sleep(2500 * time.Millisecond)
	slow.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := io.Copy(io.Discard, slow.r); isTimeout(err) || n >= 3<<20 {
		t.Errorf("a reader that stalled past the soft time read %d bytes, then %v", n, err)
	}
	if r := other.do("PING"); r != "+PONG\r\n" {
		t.Fatalf("PING: %q", r)
	}
}

// TestOutputLimitEndsPipeline: once a client's replies pass the hard
// limit, the commands it sent after them in the same pipeline do not run,
// as Redis stops reading a client it is closing.
func TestOutputLimitEndsPipeline(t *testing.T) {
	s := startServer(t, serverSpec{args: []string{"--client-output-buffer-limit", "normal 16kb 0 0"}})
	other := s.shmConn()
	other.do("SET", "v", strings.Repeat("v", 4000))
	other.do("INCR", "warm") // the module knows INCR: it may run in one go with the GETs
	for name, c := range map[string]*rawConn{"socket": s.plainConn(), "shm": s.shmConn()} {
		var b []byte
		for range 12 {
			b = encode(b, "GET", "v")
		}
		c.send(encode(b, "INCR", "after-"+name))
		c.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
		if n, err := io.Copy(io.Discard, c.r); isTimeout(err) || n >= 12*4000 {
			t.Errorf("%s: replies past the hard limit: read %d bytes, then %v", name, n, err)
		}
		if r := other.do("GET", "after-"+name); r != "$-1\r\n" {
			t.Errorf("%s: a command after the replies that passed the hard limit ran: %q", name, r)
		}
	}
}

// TestPipelineLetsOthersIn: the commands of a pipeline run each under a
// lock of their own, so that another shm client and a socket client are
// served between two of them rather than after the pipeline.
func TestPipelineLetsOthersIn(t *testing.T) {
	s := startServer(t, serverSpec{args: []string{"--enable-debug-command", "yes"}})
	busy := s.shmConn()
	busy.do("DEBUG", "SLEEP", "0") // the module knows DEBUG: the pipeline runs in one go
	const n, each = 60, 10 * time.Millisecond
	var b []byte
	for range n {
		b = encode(b, "DEBUG", "SLEEP", "0.01")
	}
	busy.send(b)
	time.Sleep(5 * each)
	for name, c := range map[string]*rawConn{"shm": s.shmConn(), "socket": s.plainConn()} {
		start := time.Now()
		if r := c.do("PING"); r != "+PONG\r\n" {
			t.Fatalf("%s: PING: %q", name, r)
		}
		if d := time.Since(start); d > n*each/3 {
			t.Errorf("%s: PING waited %v behind a pipeline of %d commands of %v", name, d, n, each)
		}
	}
	for range n {
		if r := busy.read(); r != "+OK\r\n" {
			t.Fatalf("DEBUG SLEEP: %q", r)
		}
	}
}

// TestModuleUnloadWhileServing: MODULE UNLOAD is refused while a client
// runs commands, and that client is served on without a gap.
func TestModuleUnloadWhileServing(t *testing.T) {
	s := startServer(t, serverSpec{args: []string{"--enable-module-command", "yes"}})
	c := s.shmConn()
	stop, done := make(chan struct{}), make(chan int)
	go func() {
		n := 0
		for ; ; n++ {
			select {
			case <-stop:
				done <- n
				return
			default:
			}
			if r := c.do("INCR", "n"); r != ":"+itoa(n+1)+"\r\n" {
				t.Errorf("INCR %d: %q", n+1, r)
				done <- n
				return
			}
		}
	}()
	time.Sleep(50 * time.Millisecond)
	if r := s.query("MODULE", "UNLOAD", "shmconn"); !strings.HasPrefix(r, "-ERR Error unloading module") {
		t.Errorf("MODULE UNLOAD: %q", r)
	}
	time.Sleep(50 * time.Millisecond)
	close(stop)
	n := <-done
	if r := s.shmConn().do("PING"); r != "+PONG\r\n" {
		t.Fatalf("a new client after MODULE UNLOAD: %q", r)
	}
	if r := s.query("GET", "n"); r != fmt.Sprintf("$%d\r\n%d\r\n", len(itoa(n)), n) {
		t.Fatalf("n = %q after %d INCRs", r, n)
	}
}
