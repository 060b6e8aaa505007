package main

import (
	"strings"
	"testing"
	"time"
)

// CLIENT KILL and CLIENT LIST sent over shm see the shm clients as well
// as Redis's own.

// idOf is c's CLIENT ID.
func idOf(t *testing.T, c *rawConn) string {
	t.Helper()
	r := c.do("CLIENT", "ID")
	if !strings.HasPrefix(r, ":") {
		t.Fatalf("CLIENT ID: %q", r)
	}
	return strings.TrimSpace(r[1:])
}

// closedNext fails unless c's conn ends (after any replies still due).
func closedNext(t *testing.T, c *rawConn, what string) {
	t.Helper()
	c.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	if b, err := c.r.ReadByte(); err == nil || isTimeout(err) {
		t.Fatalf("%s: the conn stays open (%q, %v)", what, b, err)
	}
}

// TestClientKillOverShm: an shm client's CLIENT KILL ends the shm clients
// its filters match (ID, USER, ADDR, the old form; SKIPME), besides the
// socket clients Redis ends, and answers as a socket client's CLIENT KILL
// of as many socket clients does; Redis's errors, NOPERM included, come
// back unchanged and end no one.
func TestClientKillOverShm(t *testing.T) {
	s := startServer(t, serverSpec{})
	if r := s.query("ACL", "SETUSER", "app", "on", ">pw", "~*", "+@all"); r != "+OK\r\n" {
		t.Fatal(r)
	}
	killer := s.shmConn()

	for _, args := range [][]string{{"USER", "nobody"}, {"ID", "0"}, {"TYPE", "foo"}, {"SKIPME", "maybe"}, {"x", "y", "z"}, {"nosuch:1"}} {
		kill := append([]string{"CLIENT", "KILL"}, args...)
		if got, want := killer.do(kill...), s.query(kill...); got != want {
			t.Errorf("%q over shm: %q, over the socket: %q", kill, got, want)
		}
	}

	victim := s.shmConn()
	if r := s.query("ACL", "SETUSER", "weak", "on", ">pw", "~*", "+@all", "-client|kill"); r != "+OK\r\n" {
		t.Fatal(r)
	}
	weak := s.shmConn()
	if r := weak.do("AUTH", "weak", "pw"); r != "+OK\r\n" {
		t.Fatal(r)
	}
	for _, kill := range [][]string{{"CLIENT", "KILL", "ID", idOf(t, victim)}, {"CLIENT", "KILL", s.shm + ":0"}} {
		if r := weak.do(kill...); r != "-NOPERM this user has no permissions to run the 'client|kill' command\r\n" {
			t.Errorf("%q without the right: %q", kill, r)
		}
	}
	if r := victim.do("PING"); r != "+PONG\r\n" {
		t.Fatalf("PING after a refused CLIENT KILL: %q", r)
	}
	if r := killer.do("CLIENT", "KILL", "ID", idOf(t, victim)); r != ":1\r\n" {
		t.Fatalf("CLIENT KILL ID of an shm client: %q", r)
	}
	closedNext(t, victim, "after CLIENT KILL ID")

	shmApp, plainApp, other := s.shmConn(), s.plainConn(), s.shmConn()
	for _, c := range []*rawConn{shmApp, plainApp} {
		if r := c.do("AUTH", "app", "pw"); r != "+OK\r\n" {
			t.Fatal(r)
		}
	}
	if r := killer.do("CLIENT", "KILL", "USER", "app"); r != ":2\r\n" {
		t.Fatalf("CLIENT KILL USER app: %q", r)
	}
	closedNext(t, shmApp, "shm client of app after CLIENT KILL USER app")
	closedNext(t, plainApp, "socket client of app after CLIENT KILL USER app")
	if r := other.do("PING"); r != "+PONG\r\n" {
		t.Fatalf("a client of another user after CLIENT KILL USER app: %q", r)
	}

	// SKIPME yes (the default) spares the caller, SKIPME no does not: it
	// gets its reply, then its conn ends.
	if r := killer.do("CLIENT", "KILL", "ADDR", s.shm+":0", "TYPE", "normal"); r != ":2\r\n" {
		t.Fatalf("CLIENT KILL ADDR <shm>:0: %q", r)
	}
	closedNext(t, other, "after CLIENT KILL ADDR")
	closedNext(t, weak, "after CLIENT KILL ADDR")
	if r := killer.do("CLIENT", "KILL", "ID", idOf(t, killer), "SKIPME", "no"); r != ":1\r\n" {
		t.Fatalf("CLIENT KILL ID <own> SKIPME no: %q", r)
	}
	closedNext(t, killer, "after killing itself")

	// The old form kills the caller too.
	a, b := s.shmConn(), s.shmConn()
	if r := b.do("PING"); r != "+PONG\r\n" { // served: the module knows it
		t.Fatal(r)
	}
	if r := a.do("CLIENT", "KILL", s.shm+":0"); r != "+OK\r\n" {
		t.Fatalf("CLIENT KILL <shm>:0: %q", r)
	}
	closedNext(t, a, "the caller of CLIENT KILL <shm>:0")
	closedNext(t, b, "another shm client after CLIENT KILL <shm>:0")
	s.waitClients(t, 0)
}

// TestClientKillStopsPipeline: no command of a killed shm client runs after
// the CLIENT KILL that ended it, however many it had sent, as Redis drops
// a killed client's unread commands.
func TestClientKillStopsPipeline(t *testing.T) {
	s := startServer(t, serverSpec{})
	victim, killer := s.shmConn(), s.shmConn()
	id := idOf(t, victim)
	victim.do("DEBUG", "SLEEP", "0") // the module knows DEBUG: the pipeline runs in one go
	var b []byte
	for range 60 {
		b = encode(encode(b, "DEBUG", "SLEEP", "0.01"), "INCR", "n")
	}
	victim.send(b)
	time.Sleep(100 * time.Millisecond)
	if r := killer.do("CLIENT", "KILL", "ID", id); r != ":1\r\n" {
		t.Fatalf("CLIENT KILL ID: %q", r)
	}
	n := killer.do("GET", "n")
	time.Sleep(300 * time.Millisecond)
	if after := killer.do("GET", "n"); after != n || n == "$2\r\n60\r\n" {
		t.Fatalf("INCR n at the kill: %q, 300 ms later: %q", n, after)
	}
}

// TestClientListOverShm: an shm client's CLIENT LIST lists the shm clients
// (itself included) besides the socket clients, in RESP2 and RESP3, and
// its filters pick among them as among socket clients.
func TestClientListOverShm(t *testing.T) {
	s := startServer(t, serverSpec{})
	c, other, plain := s.shmConn(), s.shmConn(), s.plainConn()
	own, otherID, plainID := idOf(t, c), idOf(t, other), idOf(t, plain)
	for _, proto := range []string{"2", "3"} {
		if r := c.do("HELLO", proto); !strings.HasPrefix(r, "*14") && !strings.HasPrefix(r, "%7") {
			t.Fatalf("HELLO %s: %q", proto, r)
		}
		for _, tc := range []struct {
			args       []string
			want, nots []string
		}{
			{nil, []string{own, otherID, plainID}, nil},
			{[]string{"TYPE", "normal"}, []string{own, otherID, plainID}, nil},
			{[]string{"TYPE", "pubsub"}, nil, []string{own, otherID, plainID}},
			{[]string{"ID", otherID, plainID}, []string{otherID, plainID}, []string{own}},
		} {
			r := c.do(append([]string{"CLIENT", "LIST"}, tc.args...)...)
			head, body, _ := strings.Cut(r, "\r\n")
			if proto == "3" {
				body = strings.TrimPrefix(body, "txt:")
			}
			if want := len(r) - len(head) - 4; head[1:] != itoa(want) {
				t.Errorf("RESP%s CLIENT LIST %q: length %s, body %d bytes: %q", proto, tc.args, head[1:], want, r)
			}
			for _, id := range tc.want {
				if !strings.Contains(body, "id="+id+" ") {
					t.Errorf("RESP%s CLIENT LIST %q lacks id=%s: %q", proto, tc.args, id, body)
				}
			}
			for _, id := range tc.nots {
				if strings.Contains(body, "id="+id+" ") {
					t.Errorf("RESP%s CLIENT LIST %q lists id=%s: %q", proto, tc.args, id, body)
				}
			}
		}
	}
	for _, args := range [][]string{{"ID", "abc"}, {"TYPE", "foo"}, {"FOO"}} {
		list := append([]string{"CLIENT", "LIST"}, args...)
		if got, want := c.do(list...), plain.do(list...); got != want {
			t.Errorf("%q over shm: %q, over the socket: %q", list, got, want)
		}
	}
}
