package main

import (
	"strconv"
	"strings"
	"testing"
	"time"
)

// Each right a socket client has, checked over shm against a real server.

func TestNoAuth(t *testing.T) {
	s := startServer(t, serverSpec{args: []string{"--requirepass", "secret"}})
	c := s.shmConn()
	if r := c.do("SET", "k", "v"); !strings.HasPrefix(r, "-NOAUTH") {
		t.Fatalf("SET before AUTH: %q", r)
	}
	if r := c.do("AUTH", "wrong"); !strings.HasPrefix(r, "-WRONGPASS") {
		t.Fatalf("AUTH wrong: %q", r)
	}
	if r := c.do("AUTH", "secret"); r != "+OK\r\n" {
		t.Fatalf("AUTH: %q", r)
	}
	if r := c.do("SET", "k", "v"); r != "+OK\r\n" {
		t.Fatalf("SET after AUTH: %q", r)
	}
	h := s.shmConn()
	if r := h.do("HELLO", "3", "AUTH", "default", "secret", "SETNAME", "me"); !strings.HasPrefix(r, "%7\r\n") {
		t.Fatalf("HELLO 3 AUTH: %q", r)
	}
	if r := h.do("CLIENT", "GETNAME"); r != "$2\r\nme\r\n" {
		t.Fatalf("CLIENT GETNAME: %q", r)
	}
}

// TestNoPermInPipeline: NOPERM errors mixed with other replies in one
// pipeline (which the module runs in one go, rewording RM_Call's ACL
// errors) come back in order and as the socket words them.
func TestNoPermInPipeline(t *testing.T) {
	s := startServer(t, serverSpec{})
	admin := s.plainConn()
	if r := admin.do("ACL", "SETUSER", "app", "on", ">pw", "~app:*", "+get", "+set", "+incr"); r != "+OK\r\n" {
		t.Fatal(r)
	}
	var req []byte
	for i := range 40 {
		k := "app:" + strconv.Itoa(i%3)
		switch i % 5 {
		case 0:
			req = encode(req, "SET", k, strings.Repeat("v", i))
		case 1:
			req = encode(req, "GET", "other")
		case 2:
			req = encode(req, "GET", k)
		case 3:
			req = encode(req, "DEL", k)
		default:
			req = encode(req, "INCR", "app:n")
		}
	}
	p, m := s.plainConn(), s.shmConn()
	for _, c := range []*rawConn{p, m} {
		if r := c.do("AUTH", "app", "pw"); r != "+OK\r\n" {
			t.Fatalf("AUTH app: %q", r)
		}
	}
	p.send(req)
	want := make([]string, 40)
	for i := range want {
		want[i] = p.read()
	}
	admin.do("DEL", "app:0", "app:1", "app:2", "app:n")
	m.send(req)
	for i := range want {
		got := m.read()
		t.Logf("%d %q %q", i, got, want[i])
		if got != want[i] {
			t.Fatalf("reply %d: shm %q, socket %q", i, got, want[i])
		}
	}
}

func TestNoPerm(t *testing.T) {
	s := startServer(t, serverSpec{})
	admin := s.plainConn()
	if r := admin.do("ACL", "SETUSER", "app", "on", ">pw", "~app:*", "+get", "+set"); r != "+OK\r\n" {
		t.Fatal(r)
	}
	c := s.shmConn()
	if r := c.do("AUTH", "app", "pw"); r != "+OK\r\n" {
		t.Fatalf("AUTH app: %q", r)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"SET", "app:1", "v"}, "+OK\r\n"},
		{[]string{"SET", "other", "v"}, "-NOPERM this user has no permissions to access one of the keys used as arguments\r\n"},
		{[]string{"DEL", "app:1"}, "-NOPERM this user has no permissions to run the 'del' command\r\n"},
		{[]string{"CLIENT", "ID"}, "-NOPERM this user has no permissions to run the 'client|id' command\r\n"},
	} {
		if r := c.do(tc.args...); r != tc.want {
			t.Errorf("%q: %q, want %q", tc.args, r, tc.want)
		}
	}
}

func TestReadonlyReplica(t *testing.T) {
	master := startServer(t, serverSpec{tcp: true, noModule: true})
	s := startServer(t, serverSpec{args: []string{"--replicaof", "127.0.0.1", itoa(master.port)}})
	c := s.shmConn()
	if r := c.do("SET", "k", "v"); r != "-READONLY You can't write against a read only replica.\r\n" {
		t.Fatalf("SET on a replica: %q", r)
	}
	if r := c.do("GET", "k"); r != "$-1\r\n" {
		t.Fatalf("GET on a replica: %q", r)
	}
}

func TestClientPauseHoldsWrites(t *testing.T) {
	s := startServer(t, serverSpec{})
	c := s.shmConn()
	if r := s.plainConn().do("CLIENT", "PAUSE", "500", "WRITE"); r != "+OK\r\n" {
		t.Fatal(r)
	}
	if r := c.do("GET", "k"); r != "$-1\r\n" {
		t.Fatalf("GET while writes are paused: %q", r)
	}
	start := time.Now()
	if r := c.do("SET", "k", "v"); r != "+OK\r\n" {
		t.Fatalf("SET: %q", r)
	}
	if d := time.Since(start); d < 300*time.Millisecond {
		t.Fatalf("SET during CLIENT PAUSE WRITE answered after %v", d)
	}
}

func TestOOM(t *testing.T) {
	s := startServer(t, serverSpec{args: []string{"--maxmemory", "1", "--maxmemory-policy", "noeviction"}})
	c := s.shmConn()
	r := c.do("SET", "k", "v")
	if r != "-OOM command not allowed when used memory > 'maxmemory'.\r\n" {
		t.Fatalf("SET over maxmemory: %q", r)
	}
}

// TestDebugAndModuleRefused: DEBUG and MODULE's protected subcommands are
// refused over shm where enable-debug-command and enable-module-command
// refuse them to a socket client, with the same error; and only those:
// MODULE LIST, which they do not guard, is not refused for their sake.
func TestDebugAndModuleRefused(t *testing.T) {
	s := startServer(t, serverSpec{args: []string{"--enable-debug-command", "no", "--enable-module-command", "no"}})
	for _, args := range [][]string{{"DEBUG", "DIGEST"}, {"MODULE", "LOAD", "/nonexistent.so"}, {"MODULE", "UNLOAD", "shmconn"}} {
		want := s.plainConn().do(args...)
		if !strings.HasPrefix(want, "-ERR "+args[0]+" command not allowed") {
			t.Fatalf("%q over the socket: %q", args, want)
		}
		if r := s.shmConn().do(args...); r != want {
			t.Errorf("%q over shm: %q, the socket says %q", args, r, want)
		}
	}
	if r := s.shmConn().do("MODULE", "LIST"); strings.Contains(r, "command not allowed") {
		t.Errorf("MODULE LIST over shm: %q", r)
	}
}

func TestProtocolErrors(t *testing.T) {
	s := startServer(t, serverSpec{})
	other := s.shmConn()
	for _, tc := range []struct{ req, want string }{
		{"*9223372036854775807\r\n", "-ERR Protocol error: invalid multibulk length\r\n"},
		{"*1\r\n$9223372036854775807\r\n", "-ERR Protocol error: invalid bulk length\r\n"},
		{"*1\r\n+x\r\n", "-ERR Protocol error: expected '$', got '+'\r\n"},
		{"GET \"k\r\n", "-ERR Protocol error: unbalanced quotes in request\r\n"},
		// Longer than 64 KiB and no end of line yet: refused at once.
		{strings.Repeat("a", 70<<10), "-ERR Protocol error: too big inline request\r\n"},
		{"*" + strings.Repeat("1", 70<<10), "-ERR Protocol error: too big mbulk count string\r\n"},
		{"*1\r\n$" + strings.Repeat("1", 70<<10), "-ERR Protocol error: too big bulk count string\r\n"},
	} {
		c := s.shmConn()
		want := s.plainConn()
		want.send([]byte(tc.req))
		if w := want.read(); w != tc.want {
			t.Fatalf("%q over the socket: %q, want %q", tc.req, w, tc.want)
		}
		c.send([]byte(tc.req))
		if r := c.read(); r != tc.want {
			t.Errorf("%q over shm: %q, want %q", tc.req, r, tc.want)
		}
		if r := other.do("PING"); r != "+PONG\r\n" {
			t.Fatalf("another client after %q: %q", tc.req, r)
		}
	}
}

// TestRequestBoundsBeforeAuth: where AUTH is required, a client that has
// not authenticated gets Redis's tighter bounds (10 elements, 16 KiB an
// argument) over shm as over the socket, and proto-max-bulk-len is the
// server's; the server goes on serving other clients.
func TestRequestBoundsBeforeAuth(t *testing.T) {
	s := startServer(t, serverSpec{args: []string{"--requirepass", "secret", "--proto-max-bulk-len", "1mb"}})
	other := s.shmConn()
	if r := other.do("AUTH", "secret"); r != "+OK\r\n" {
		t.Fatalf("AUTH: %q", r)
	}
	for _, tc := range []struct{ req, want string }{
		{"*11\r\n", "-ERR Protocol error: unauthenticated multibulk length\r\n"},
		{"*1\r\n$16385\r\n", "-ERR Protocol error: unauthenticated bulk length\r\n"},
	} {
		want := s.plainConn()
		want.send([]byte(tc.req))
		if w := want.read(); w != tc.want {
			t.Fatalf("%q over the socket: %q, want %q", tc.req, w, tc.want)
		}
		c := s.shmConn()
		c.send([]byte(tc.req))
		if r := c.read(); r != tc.want {
			t.Errorf("%q over shm: %q, want %q", tc.req, r, tc.want)
		}
		if r := other.do("PING"); r != "+PONG\r\n" {
			t.Fatalf("another client after %q: %q", tc.req, r)
		}
	}
	// Past proto-max-bulk-len, authenticated.
	const req, wantReply = "*1\r\n$1048577\r\n", "-ERR Protocol error: invalid bulk length\r\n"
	for name, c := range map[string]*rawConn{"socket": s.plainConn(), "shm": s.shmConn()} {
		if r := c.do("AUTH", "secret"); r != "+OK\r\n" {
			t.Fatalf("AUTH over the %s: %q", name, r)
		}
		c.send([]byte(req))
		if r := c.read(); r != wantReply {
			t.Errorf("a bulk past proto-max-bulk-len over the %s: %q, want %q", name, r, wantReply)
		}
	}
	if r := other.do("PING"); r != "+PONG\r\n" {
		t.Fatalf("another client after a bulk past proto-max-bulk-len: %q", r)
	}
}

// TestUnsupportedCommandsRefused: the commands the module does not carry
// (WATCH, the SUBSCRIBE family, MONITOR, WAIT) get an error saying so,
// and the conn goes on.
func TestUnsupportedCommandsRefused(t *testing.T) {
	s := startServer(t, serverSpec{})
	c := s.shmConn()
	for _, args := range [][]string{
		{"WATCH", "k"}, {"SUBSCRIBE", "ch"}, {"PSUBSCRIBE", "ch*"}, {"SSUBSCRIBE", "ch"}, {"MONITOR"}, {"WAIT", "0", "0"},
	} {
		if r := c.do(args...); !strings.HasPrefix(r, "-ERR ") || !strings.Contains(r, "not supported over shmconn") {
			t.Errorf("%q: %q", args, r)
		}
		if r := c.do("PING"); r != "+PONG\r\n" {
			t.Fatalf("PING after %q: %q", args, r)
		}
	}
}

func TestBlockingWaits(t *testing.T) {
	s := startServer(t, serverSpec{})
	c := s.shmConn()
	start := time.Now()
	if r := c.do("BLPOP", "q", "0.3"); r != "*-1\r\n" {
		t.Fatalf("BLPOP timeout: %q", r)
	}
	if d := time.Since(start); d < 250*time.Millisecond {
		t.Fatalf("BLPOP with timeout 0.3 returned after %v", d)
	}
	go func() {
		time.Sleep(100 * time.Millisecond)
		s.plainConn().do("RPUSH", "q", "x")
	}()
	if r := c.do("BLPOP", "q", "5"); r != "*2\r\n$1\r\nq\r\n$1\r\nx\r\n" {
		t.Fatalf("BLPOP: %q", r)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// TestACLChangesApplyAtOnce: ACL changes reach an shm client that already
// authenticated, at its next command, in a pipeline too: a revoked command
// and key pattern are refused, a granted one runs, and a deleted user ends
// the conn, as Redis ends a socket client of a deleted user.
func TestACLChangesApplyAtOnce(t *testing.T) {
	s := startServer(t, serverSpec{})
	admin := s.plainConn()
	if r := admin.do("ACL", "SETUSER", "app", "on", ">pw", "~app:*", "+get", "+set"); r != "+OK\r\n" {
		t.Fatal(r)
	}
	c := s.shmConn()
	if r := c.do("AUTH", "app", "pw"); r != "+OK\r\n" {
		t.Fatalf("AUTH app: %q", r)
	}
	if r := c.do("SET", "app:1", "v"); r != "+OK\r\n" {
		t.Fatalf("SET before the change: %q", r)
	}
	if r := admin.do("ACL", "SETUSER", "app", "-set", "+del"); r != "+OK\r\n" {
		t.Fatal(r)
	}
	if r := c.do("SET", "app:1", "w"); r != "-NOPERM this user has no permissions to run the 'set' command\r\n" {
		t.Fatalf("SET after ACL SETUSER -set: %q", r)
	}
	if r := c.do("DEL", "app:2"); r != ":0\r\n" {
		t.Fatalf("DEL after ACL SETUSER +del: %q", r)
	}
	if r := admin.do("ACL", "SETUSER", "app", "resetkeys", "~other:*"); r != "+OK\r\n" {
		t.Fatal(r)
	}
	c.send(encode(encode(nil, "GET", "app:1"), "GET", "other:1"))
	if r := c.read(); r != "-NOPERM this user has no permissions to access one of the keys used as arguments\r\n" {
		t.Fatalf("GET app:1 after resetkeys: %q", r)
	}
	if r := c.read(); r != "$-1\r\n" {
		t.Fatalf("GET other:1 after ~other:*: %q", r)
	}
	c2 := s.shmConn()
	if r := c2.do("AUTH", "app", "pw"); r != "+OK\r\n" {
		t.Fatalf("AUTH app: %q", r)
	}
	if r := admin.do("ACL", "DELUSER", "app"); r != ":1\r\n" {
		t.Fatal(r)
	}
	deletedNext(t, c, "after ACL DELUSER")
	// Recreated with no rights: a conn must not run as the old user.
	if r := admin.do("ACL", "SETUSER", "app", "on", ">pw"); r != "+OK\r\n" {
		t.Fatal(r)
	}
	refusedNext(t, c2, "after the user was deleted and recreated without rights")

	// The same inside a transaction, which ACL commands reach only at EXEC.
	if r := admin.do("ACL", "SETUSER", "tx", "on", ">pw", "~*", "+get"); r != "+OK\r\n" {
		t.Fatal(r)
	}
	c = s.shmConn()
	if r := c.do("AUTH", "tx", "pw"); r != "+OK\r\n" {
		t.Fatalf("AUTH tx: %q", r)
	}
	if r := c.do("GET", "k"); r != "$-1\r\n" {
		t.Fatalf("GET as tx: %q", r)
	}
	admin.do("MULTI")
	admin.do("ACL", "DELUSER", "tx")
	if r := c.do("GET", "k"); r != "$-1\r\n" { // queued, not run yet
		t.Fatalf("GET as tx before EXEC: %q", r)
	}
	if r := admin.do("EXEC"); r != "*1\r\n:1\r\n" {
		t.Fatalf("EXEC: %q", r)
	}
	deletedNext(t, c, "after a transaction deleted the user")
}

// deletedNext sends GET to c, whose user was deleted, and fails unless it
// is refused as such and the conn ends. (A user pointer kept past its
// deletion would read freed memory here, and answer otherwise.)
func deletedNext(t *testing.T, c *rawConn, when string) {
	t.Helper()
	if r := c.do("GET", "k"); r != errUserDeleted {
		t.Fatalf("GET %s: %q", when, r)
	}
	if _, err := c.r.ReadByte(); err == nil {
		t.Fatalf("the conn stays open %s", when)
	}
}

// refusedNext sends GET to c and fails unless it is refused (an error
// reply, or the conn closed).
func refusedNext(t *testing.T, c *rawConn, when string) {
	t.Helper()
	c.send(encode(nil, "GET", "other:1"))
	c.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	line, err := c.r.ReadString('\n')
	if err == nil && !strings.HasPrefix(line, "-") {
		t.Fatalf("GET %s: %q", when, line)
	}
}

// TestSubcommandsLikeSocket: a container command's subcommands run with
// their own flags, as on the socket: MODULE LIST or CONFIG GET may run
// where MODULE LOAD or CONFIG SET may not (script mode refused them when
// the module took the container's flags).
func TestSubcommandsLikeSocket(t *testing.T) {
	s := startServer(t, serverSpec{})
	plain, shm := s.plainConn(), s.shmConn()
	for _, args := range [][]string{
		{"SET", "k", "v"},
		{"MODULE", "LIST"},
		{"CONFIG", "GET", "maxmemory-policy"},
		{"CONFIG", "SET", "maxmemory-policy", "allkeys-lru"},
		{"COMMAND", "COUNT"},
		{"OBJECT", "ENCODING", "k"},
		{"ACL", "WHOAMI"},
		{"SCRIPT", "EXISTS", "0000000000000000000000000000000000000000"},
		{"FUNCTION", "LIST"},
		{"SLOWLOG", "LEN"},
		{"LATENCY", "LATEST"},
		{"MEMORY", "USAGE", "nokey"},
	} {
		want, got := plain.do(args...), shm.do(args...)
		if got != want {
			t.Errorf("%v over shm: %q, over the socket: %q", args, got, want)
		}
	}
}

// TestRightsBeforeUnsupported: the commands the module refuses as not
// supported over shm first get the checks a socket client meets, with the
// socket's words: arity, NOAUTH, then NOPERM for the command or its
// channels.
func TestRightsBeforeUnsupported(t *testing.T) {
	s := startServer(t, serverSpec{args: []string{"--requirepass", "secret"}})
	admin := s.plainConn()
	admin.do("AUTH", "secret")
	if r := admin.do("ACL", "SETUSER", "app", "on", ">pw", "~app:*", "&ch", "+get", "+subscribe", "+psubscribe", "+multi", "+exec"); r != "+OK\r\n" {
		t.Fatal(r)
	}
	const auth = "AUTH app pw\r\n"
	sameForEach(t, s,
		"WATCH k\r\n", "SUBSCRIBE ch\r\n", "MONITOR\r\n", "WAIT 0 0\r\n", "SYNC\r\n", "UNSUBSCRIBE\r\n",
		"AUTH secret\r\nWATCH\r\nSUBSCRIBE\r\nPSUBSCRIBE\r\nSSUBSCRIBE\r\nWAIT 0\r\n",
		auth+"WATCH k\r\n",
		auth+"SUBSCRIBE other\r\n",
		auth+"PSUBSCRIBE other*\r\n",
		auth+"SSUBSCRIBE ch\r\n",
		auth+"MONITOR\r\n",
		auth+"WAIT 0 0\r\n",
		auth+"SYNC\r\n",
		auth+"PSYNC ? -1\r\n",
		auth+"UNSUBSCRIBE\r\n",
		auth+"PUNSUBSCRIBE\r\n",
		auth+"MULTI\r\nWATCH k\r\nGET app:1\r\nEXEC\r\n",
	)
}

// TestUnknownSubcommandLikeSocket: an unknown subcommand gets Redis's
// error, before NOAUTH, and when MULTI queues it (EXEC then aborts).
func TestUnknownSubcommandLikeSocket(t *testing.T) {
	s := startServer(t, serverSpec{args: []string{"--requirepass", "secret"}})
	sameForEach(t, s,
		"CLIENT FOO\r\nCONFIG FOO\r\nclient Foo x\r\n",
		"AUTH secret\r\nCLIENT FOO\r\nCONFIG FOO bar\r\nclient Foo\r\nMULTI\r\nCONFIG FOO\r\nEXEC\r\n",
	)
}

// TestClientSubcommandArity: the CLIENT subcommands the module answers or
// refuses itself, and other commands and subcommands, give the socket's
// arity error, before NOAUTH, and in MULTI too (EXEC then aborts).
func TestClientSubcommandArity(t *testing.T) {
	s := startServer(t, serverSpec{args: []string{"--requirepass", "secret"}})
	const subs = "CLIENT REPLY\r\nCLIENT TRACKING\r\nCLIENT CACHING\r\nCLIENT GETREDIR x\r\nCLIENT NO-EVICT\r\n" +
		"CLIENT ID x\r\nCLIENT INFO x\r\nCLIENT GETNAME x\r\nCLIENT SETNAME\r\nCLIENT SETNAME a b\r\n" +
		"CLIENT PAUSE\r\nCLIENT KILL\r\nCONFIG GET\r\nGET\r\n"
	sameForEach(t, s,
		subs,
		"AUTH secret\r\n"+subs,
		"AUTH secret\r\nMULTI\r\nCLIENT REPLY\r\nCLIENT ID\r\nEXEC\r\n",
		"AUTH secret\r\nMULTI\r\nCLIENT NO-EVICT on off\r\nEXEC\r\n",
		"AUTH secret\r\nMULTI\r\nCONFIG GET\r\nEXEC\r\n",
	)
}
