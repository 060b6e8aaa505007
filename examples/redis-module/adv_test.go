package main

import (
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/shmconn/shmconn/conn"
)

// Adversarial inputs over shm, each answered as the socket answers it.

// helloID is the conn id in HELLO's reply, which differs between conns.
var helloID = regexp.MustCompile(`id\r\n:[0-9]+`)

// sameOnBoth sends raw request bytes to a plain and an shm conn of s and
// checks that the replies (n of them) are the same.
func sameOnBoth(t *testing.T, s *server, req string, n int) {
	t.Helper()
	p, m := s.plainConn(), s.shmConn()
	p.send([]byte(req))
	m.send([]byte(req))
	for i := range n {
		want, got := helloID.ReplaceAllString(p.read(), "id:N"), helloID.ReplaceAllString(m.read(), "id:N")
		if got != want {
			t.Errorf("%q reply %d: shm %q, socket %q", req, i, got, want)
		}
	}
}

// sameForEach is sameOnBoth for each inline request of reqs, one reply
// per line.
func sameForEach(t *testing.T, s *server, reqs ...string) {
	t.Helper()
	for _, req := range reqs {
		sameOnBoth(t, s, req, strings.Count(req, "\r\n"))
	}
}

func TestAdvUnknownCommandLikeSocket(t *testing.T) {
	s := startServer(t, serverSpec{})
	sameOnBoth(t, s, "*2\r\n$3\r\nFOO\r\n$1\r\na\r\n", 1)
	sameOnBoth(t, s, "*1\r\n$0\r\n\r\n", 1)
	sameOnBoth(t, s, "*1\r\n$0\r\n\r\nPING\r\n", 2)
}

// With COMMAND renamed away the module cannot learn what a command needs
// (NOAUTH, DEBUG's protection, READONLY), so it refuses to load rather
// than run commands it cannot check.
func TestAdvRenamedCommandRefusesLoad(t *testing.T) {
	refusesLoad(t, "COMMAND", "", "COMMAND renamed")
}

// The module learns of ACL changes by the commands' names: under another
// name, an ACL DELUSER would free a user a conn still uses, and crash
// redis-server at the conn's next command. So it refuses to load.
func TestAdvRenamedACLRefusesLoad(t *testing.T) {
	refusesLoad(t, "ACL", "myacl", "ACL is renamed")
	refusesLoad(t, "EXEC", "myexec", "EXEC is renamed")
}

// The module learns of CLIENT PAUSE by the command's name: under another
// name, shm clients would write through a pause. So it refuses to load.
func TestAdvRenamedClientRefusesLoad(t *testing.T) {
	refusesLoad(t, "CLIENT", "myclient", "CLIENT is renamed")
}

// TestAdvRemovedACLLoads: with ACL, EXEC or CLIENT removed (renamed to
// "", a common hardening) no one can change or free ACL users or pause
// clients through them, so the module loads; AUTH works as the users and
// requirepass configure it, a new conn starts authenticated exactly when
// a socket one does (CONFIG SET requirepass included), and NOPERM and
// unknown-command errors are worded as on the socket.
func TestAdvRemovedACLLoads(t *testing.T) {
	for _, removed := range []string{"ACL", "EXEC", "CLIENT"} {
		s := startServer(t, serverSpec{args: []string{"--rename-command", removed, "",
			"--user", "app", "on", ">pw", "~app:*", "+get", "+set", "+multi", "+exec", "+discard"}})
		sameForEach(t, s,
			"SET k v\r\nGET k\r\n",
			"ACL WHOAMI\r\nCLIENT ID x\r\nEXEC\r\n",
			"AUTH app wrong\r\nAUTH app pw\r\nGET app:1\r\nGET other\r\nDEL app:1\r\n",
			"AUTH app pw\r\nMULTI\r\nGET other\r\nDEL app:1\r\nSET app:1 v\r\nDISCARD\r\n",
		)
		if r := s.query("CONFIG", "SET", "requirepass", "secret"); r != "+OK\r\n" {
			t.Fatalf("%s removed: CONFIG SET requirepass: %q", removed, r)
		}
		sameForEach(t, s,
			"SET k v\r\nAUTH wrong\r\nAUTH secret\r\nGET k\r\n",
			"AUTH app pw\r\nGET app:1\r\nRESET\r\nGET app:1\r\n",
		)
		s.kill()
	}
}

// refusesLoad starts redis-server with name renamed to as and checks that
// the module refuses to load, saying why (a log line holding why).
func refusesLoad(t *testing.T, name, as, why string) {
	so := moduleSO(t)
	dir := t.TempDir()
	shm := filepath.Join(dir, "shm.sock")
	cmd := exec.Command("redis-server", "--port", "0", "--unixsocket", filepath.Join(dir, "plain.sock"),
		"--dir", dir, "--save", "", "--requirepass", "secret", "--rename-command", name, as,
		"--loadmodule", so, "unixsocket", shm)
	done := make(chan error, 1)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		// It loaded: an unauthenticated shm client must not get to write.
		defer func() { cmd.Process.Kill(); <-done }()
		nc, err := conn.Dial("unix", shm)
		if err != nil {
			t.Fatalf("redis-server runs, but: %v", err)
		}
		defer nc.Close()
		c := newRaw(t, nc)
		t.Fatalf("redis-server loaded the module with %s renamed; SET before AUTH: %q", name, c.do("SET", "k", "v"))
	}
	if !strings.Contains(out.String(), why) {
		t.Errorf("redis-server's output does not say why: %s", out.String())
	}
}

func TestAdvUnknownCommandBeforeAuth(t *testing.T) {
	s := startServer(t, serverSpec{args: []string{"--requirepass", "secret"}})
	sameOnBoth(t, s, "FOO bar\r\n*1\r\n$0\r\n\r\nGET k\r\n", 3)
}

// AUTH and HELLO are queued in MULTI, as on the socket, and at EXEC change
// the conn (its user, protocol, name), not RM_Call's client: a conn
// that AUTHs to a lesser user in a transaction runs as that user after.
func TestAdvAuthAndHelloInMulti(t *testing.T) {
	s := startServer(t, serverSpec{})
	s.query("ACL", "SETUSER", "app", "on", ">pw", "~*", "+get", "+acl|whoami", "+multi", "+exec", "+hello", "+client|getname")
	sameOnBoth(t, s, "MULTI\r\nAUTH app pw\r\nEXEC\r\nACL WHOAMI\r\nSET k v\r\n", 5)
	sameOnBoth(t, s, "MULTI\r\nAUTH app wrong\r\nEXEC\r\nACL WHOAMI\r\n", 4)
	sameOnBoth(t, s, "MULTI\r\nHELLO 3 SETNAME me\r\nGET nokey\r\nEXEC\r\nGET nokey\r\nCLIENT GETNAME\r\n", 6)
	sameOnBoth(t, s, "MULTI\r\nHELLO 4\r\nHELLO\r\nEXEC\r\n", 4)
}

// A blocking command that times out answers with a null array, BLMOVE and
// BRPOPLPUSH included, in RESP2 and RESP3.
func TestAdvBlockingTimeoutReply(t *testing.T) {
	s := startServer(t, serverSpec{})
	req := "BLMOVE a b LEFT RIGHT 0.01\r\nBRPOPLPUSH a b 0.01\r\nBLPOP a 0.01\r\nBZPOPMIN z 0.01\r\nBLMPOP 0.01 1 a LEFT\r\nXREAD BLOCK 10 STREAMS s 0\r\n"
	sameOnBoth(t, s, req, 6)
	sameOnBoth(t, s, "HELLO 3\r\n"+req, 7)
}

// SYNC and PSYNC through RM_Call crash redis-server (its client cannot
// become a replica): they are refused, and the server serves on.
func TestAdvReplicationCommandsRefused(t *testing.T) {
	s := startServer(t, serverSpec{})
	c := s.shmConn()
	for _, args := range [][]string{{"SYNC"}, {"PSYNC", "?", "-1"}, {"psync", "x", "0"}} {
		want := "-ERR " + strings.ToUpper(args[0]) + " is not supported over shmconn; use a socket connection\r\n"
		if r := c.do(args...); r != want {
			t.Errorf("%q: %q, want %q", args, r, want)
		}
	}
	if r := c.do("MULTI"); r != "+OK\r\n" {
		t.Fatal(r)
	}
	if r := c.do("SYNC"); r != "-ERR Command not allowed inside a transaction\r\n" {
		t.Errorf("SYNC in MULTI: %q", r)
	}
	if r := c.do("DISCARD"); r != "+OK\r\n" {
		t.Fatal(r)
	}
	if r := s.query("PING"); r != "+PONG\r\n" {
		t.Fatalf("PING over the socket: %q", r)
	}
}

// A command the ACL user may not run is refused when MULTI queues it, as
// on the socket, so EXEC discards the whole transaction and none of it
// runs; a refused EXEC discards it too.
func TestAdvACLInMulti(t *testing.T) {
	s := startServer(t, serverSpec{})
	s.query("ACL", "SETUSER", "app", "on", ">pw", "~app:*", "&ch", "+get", "+set", "+multi", "+exec", "+discard", "+publish", "+client|id")
	s.query("ACL", "SETUSER", "m", "on", ">pw", "~*", "+multi", "+set", "+get")
	sameForEach(t, s,
		"AUTH app pw\r\nMULTI\r\nSET other v\r\nSET app:1 v\r\nEXEC\r\nGET app:1\r\n",
		"AUTH app pw\r\nMULTI\r\nPUBLISH other m\r\nPUBLISH ch m\r\nDEL app:1\r\nCLIENT ID\r\nCLIENT SETNAME x\r\nEXEC\r\n",
		"AUTH m pw\r\nMULTI\r\nSET k v\r\nEXEC\r\nSET k2 v\r\nGET k2\r\n",
		"AUTH m pw\r\nEXEC\r\nMULTI\r\nMULTI\r\nDISCARD\r\nSET k3 v\r\nEXEC\r\n",
	)
}

// TestEncodingLikeSocket: a value written over shm is stored as the
// socket stores it (OBJECT ENCODING: an integer as int, a short string as
// embstr), for commands of up to 16 arguments after the name.
func TestEncodingLikeSocket(t *testing.T) {
	s := startServer(t, serverSpec{})
	p, m := s.plainConn(), s.shmConn()
	for _, set := range [][]string{
		{"SET", "k", "12345"},
		{"SET", "k", "short"},
		{"SET", "k", strings.Repeat("x", 100)},
		{"MSET", "k", "12345", "j", "1", "i", "2"},
		{"APPEND", "k", "6"},
	} {
		p.do(set...)
		want := p.do("OBJECT", "ENCODING", "k")
		m.do(set...)
		if got := m.do("OBJECT", "ENCODING", "k"); got != want {
			t.Errorf("%q: encoding over shm %q, over the socket %q", set, got, want)
		}
	}
}
