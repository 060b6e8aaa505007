package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// comparison is one command sent by the real redis-cli to both servers.
type comparison struct {
	args string
	// unordered: Redis leaves the order of the reply's lines unspecified,
	// so they are compared sorted.
	unordered bool
}

// comparisons are the commands TestMatchesRealServer sends, in order.
var comparisons = []comparison{
	{args: "FLUSHALL"},
	// redis-benchmark's default tests, as it sends them.
	{args: "PING"},
	{args: "SET key:000000000001 xxx"},
	{args: "GET key:000000000001"},
	{args: "INCR counter:000000000001"},
	{args: "LPUSH mylist xxx"},
	{args: "RPUSH mylist yyy"},
	{args: "LPOP mylist"},
	{args: "RPOP mylist"},
	{args: "SADD myset element:000000000001"},
	{args: "HSET myhash element:000000000001 xxx"},
	{args: "SPOP myset"},
	{args: "ZADD myzset 0 element:000000000001"},
	{args: "ZPOPMIN myzset"},
	{args: "LPUSH mylist a b c d e"},
	{args: "LRANGE mylist 0 99"},
	{args: "MSET key:1 a key:2 b key:3 c key:4 d key:5 e key:6 f key:7 g key:8 h key:9 i key:10 j"},
	// Strings.
	{args: "SETNX fresh 1"},
	{args: "SETNX fresh 2"},
	{args: "APPEND fresh 23"},
	{args: "APPEND newkey abc"},
	{args: "STRLEN fresh"},
	{args: "STRLEN nokey"},
	{args: "GETSET fresh 9"},
	{args: "GETSET nokey2 v"},
	{args: "GETDEL fresh"},
	{args: "GETDEL fresh"},
	{args: "STRLEN mylist"},
	{args: "APPEND mylist x"},
	{args: "GETDEL mylist"},
	{args: "SETNX onlyone"},
	// Keys.
	{args: "KEYS *", unordered: true},
	{args: "KEYS key:?", unordered: true},
	{args: "KEYS key:1*", unordered: true},
	{args: "KEYS my[lz]*", unordered: true},
	{args: "KEYS nothing*"},
	{args: "DBSIZE"},
	{args: "SCAN 0 COUNT 1000", unordered: true},
	{args: "SCAN 0 MATCH key:* COUNT 1000", unordered: true},
	{args: "SCAN 0 TYPE list COUNT 1000", unordered: true},
	{args: "SCAN 0 TYPE hash MATCH my* COUNT 1000", unordered: true},
	{args: "SCAN x"},
	{args: "SCAN 0 COUNT 0"},
	{args: "SCAN 0 BOGUS 1"},
	{args: "TYPE myhash"},
	// Pub/Sub without subscribers.
	{args: "PUBLISH news hello"},
	{args: "PUBSUB NUMSUB news"},
	{args: "PUBSUB NUMPAT"},
	{args: "PUBSUB CHANNELS"},
	// Configuration.
	{args: "CONFIG SET timeout 7"},
	{args: "CONFIG GET timeout"},
	{args: "CONFIG SET nosuchsetting 1"},
	{args: "CONFIG GET appendonly"},
	// Connection.
	{args: "CLIENT SETNAME tester"},
	{args: "CLIENT GETNAME"},
	{args: "ECHO hi"},
	{args: "SELECT 99"},
	{args: "NOSUCHCOMMAND a"},
	{args: "GET"},
	// RESP3 after HELLO 3 (redis-cli -3): a map and a double.
	{args: "-3 HGETALL myhash"},
	{args: "-3 ZADD myzset 1.5 member"},
	{args: "-3 ZSCORE myzset member"},
	{args: "-3 ZSCORE myzset nomember"},
	{args: "-3 GET nokey"},
	// GETEX, LPOS, OBJECT ENCODING, WAIT.
	{args: "SET n 123"},
	{args: "GETEX n"},
	{args: "GETEX n EX 100"},
	{args: "TTL n"},
	{args: "GETEX n PERSIST"},
	{args: "TTL n"},
	{args: "GETEX n PX 100000"},
	{args: "GETEX n EX 0"},
	{args: "GETEX n PX x"},
	{args: "GETEX n EX 10 PX 10"},
	{args: "GETEX n PERSIST EX 1"},
	{args: "GETEX n BOGUS"},
	{args: "GETEX nokey EX 1"},
	{args: "GETEX myhash"},
	{args: "GETEX n EXAT 1"},
	{args: "EXISTS n"},
	{args: "RPUSH plist a b c a b a"},
	{args: "LPOS plist a"},
	{args: "LPOS plist a RANK 2"},
	{args: "LPOS plist a RANK -1"},
	{args: "LPOS plist a RANK -2 COUNT 0"},
	{args: "LPOS plist a COUNT 0"},
	{args: "LPOS plist a COUNT 2"},
	{args: "LPOS plist a COUNT 0 MAXLEN 4"},
	{args: "LPOS plist a RANK 2 MAXLEN 3"},
	{args: "LPOS plist z"},
	{args: "LPOS plist z COUNT 1"},
	{args: "LPOS nokey a"},
	{args: "LPOS nokey a COUNT 2"},
	{args: "LPOS plist a RANK 0"},
	{args: "LPOS plist a COUNT -1"},
	{args: "LPOS plist a MAXLEN -1"},
	{args: "LPOS plist a RANK x"},
	{args: "LPOS plist a BOGUS 1"},
	{args: "LPOS plist a RANK"},
	{args: "LPOS myhash a"},
	{args: "SET i 12345"},
	{args: "SET s abc"},
	{args: "SET s44 01234567890123456789012345678901234567890123"},
	{args: "SET s45 012345678901234567890123456789012345678901234"},
	{args: "SET neg -0"},
	{args: "SADD iset 1 2 -3"},
	{args: "SADD sset 1 a"},
	{args: "ZADD zs 1 m"},
	{args: "OBJECT ENCODING i"},
	{args: "OBJECT ENCODING s"},
	{args: "OBJECT ENCODING s44"},
	{args: "OBJECT ENCODING s45"},
	{args: "OBJECT ENCODING neg"},
	{args: "OBJECT ENCODING plist"},
	{args: "OBJECT ENCODING iset"},
	{args: "OBJECT ENCODING sset"},
	{args: "OBJECT ENCODING myhash"},
	{args: "OBJECT ENCODING zs"},
	{args: "OBJECT ENCODING nokey"},
	{args: "OBJECT ENCODING i extra"},
	{args: "OBJECT ENCODINGS i"},
	{args: "OBJECT"},
	{args: "WAIT 0 0"},
	{args: "WAIT 1 50"},
	{args: "WAIT x 0"},
	{args: "WAIT 0 -1"},
	{args: "WAIT 0 x"},
	{args: "WAIT 1"},
}

// TestMatchesRealServer sends the same commands through the real
// redis-cli to a real redis-server and to the example server, each on a
// unix socket, and requires the same output: the commands redis-benchmark
// runs by default, the everyday key, string and Pub/Sub commands, and
// the errors for wrong input. Both formats redis-cli has (--no-raw, as on
// a terminal, and --raw) are compared.
func TestMatchesRealServer(t *testing.T) {
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		t.Skip("redis-cli not installed; CI installs redis-tools (apt-get install redis-tools)")
	}
	real, sock := compareServers(t)

	// run runs redis-cli -s sock with flags (space-separated) and then
	// args; no test command needs quoting.
	run := func(sock, flags, args string) string {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		argv := append(append([]string{"-s", sock}, strings.Fields(flags)...), strings.Fields(args)...)
		out, err := exec.CommandContext(ctx, cli, argv...).CombinedOutput()
		require.NoError(t, err, "redis-cli %s: %s", args, out)
		return string(out)
	}
	for _, c := range comparisons {
		for _, mode := range []string{"--no-raw", "--raw"} {
			want, got := run(real.sock, mode, c.args), run(sock, mode, c.args)
			if c.unordered {
				want, got = sortedLines(want), sortedLines(got)
			}
			require.Equal(t, want, got, "redis-cli %s %s: real redis-server vs example", mode, c.args)
		}
	}
	// Replies that differ by nature keep the real one's shape: INFO ends
	// in CRLF, CLIENT INFO is one line of name=value fields, HELLO 3 is a
	// map, COMMAND DOCS describes a command.
	for _, sock := range []string{real.sock, sock} {
		info := run(sock, "--raw", "INFO server")
		require.True(t, strings.HasPrefix(info, "# Server\r\nredis_version:") && strings.HasSuffix(info, "0\r\n"), "%q", info)
		require.Regexp(t, `^id=\d+ addr=\S* laddr=\S* .*name=\S* age=\d+ idle=\d+ flags=U db=0 sub=0 psub=0 .*cmd=client\|info `, run(sock, "--raw", "CLIENT INFO"))
		require.Contains(t, run(sock, "--no-raw -3", "HELLO 3"), `2# "version" => "`)
		require.Contains(t, run(sock, "--no-raw", "COMMAND DOCS get"), `"summary"`)
	}
}

// compareServers starts a real redis-server (or skips the test) and the
// example server, each on a unix socket of its own.
func compareServers(t *testing.T) (real *realServer, sock string) {
	real = startRealServer(t)
	sock = socketPath(t)
	startChild(t, "-addr", "", "-unix", sock, "-wait", "adaptive")
	return real, sock
}

// sortedLines sorts an unordered reply's lines without the element
// numbers redis-cli puts before them on a terminal.
func sortedLines(s string) string {
	lines := strings.Split(strings.TrimSuffix(s, "\n"), "\n")
	for i, l := range lines {
		lines[i] = elementNumber.ReplaceAllString(l, "")
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}

var elementNumber = regexp.MustCompile(`^(\s*\d+\) )+`)

// TestPubSubMatchesRealServer runs one RESP2 client's Pub/Sub session on
// both servers, raw on the wire, and requires the same replies: the
// subscription counts, the subscribed mode's refusal of other commands
// and its PING, unsubscribing from everything, and a message published by
// a second client.
func TestPubSubMatchesRealServer(t *testing.T) {
	real, sock := compareServers(t)

	session := func(sock string) []string {
		var s rawSession
		sub, pub := s.dial(t, sock), s.dial(t, sock)
		sub.send(2, "SUBSCRIBE", "news", "sport")
		sub.send(2, "PSUBSCRIBE", "n*", "x?")
		sub.send(1, "SUBSCRIBE", "news") // again: counts stay
		sub.send(1, "GET", "k")
		sub.send(1, "PING")
		sub.send(1, "PING", "hi")
		pub.send(1, "PUBLISH", "news", "hello") // a channel and a pattern match
		sub.send(2)                             // the two messages; order between them is unspecified
		pub.send(1, "PUBLISH", "nobody", "x")   // the pattern only
		sub.send(1)
		pub.send(1, "PUBSUB", "NUMSUB", "news", "sport", "none")
		pub.send(1, "PUBSUB", "NUMPAT")
		sub.send(1, "UNSUBSCRIBE", "news")
		sub.send(1, "UNSUBSCRIBE", "never")
		sub.send(2, "PUNSUBSCRIBE")
		sub.send(1, "UNSUBSCRIBE")
		sub.send(1, "UNSUBSCRIBE") // nothing left
		sub.send(1, "PING")        // out of subscribed mode
		sub.send(1, "GET", "k")
		return s.got
	}
	want, got := session(real.sock), session(sock)
	// Redis leaves unspecified the order of the two deliveries of one
	// PUBLISH and of PUNSUBSCRIBE's replies without arguments (its dict
	// order, seeded per process). The counts in those replies go down in
	// reply order whichever pattern comes first, so the patterns are
	// compared as a set and the counts in order.
	slices.Sort(want[8:10])
	slices.Sort(got[8:10])
	unorderedNames(want[17:19])
	unorderedNames(got[17:19])
	require.Equal(t, want, got)
}

// unorderedNames rewrites replies of the form `... "name" :count]` so that
// the names appear sorted while each count stays in its reply's place.
func unorderedNames(replies []string) {
	names := make([]string, len(replies))
	for i, r := range replies {
		open := strings.LastIndex(r, " \"")
		end := strings.LastIndex(r, "\" :")
		if open < 0 || end <= open {
			return // not of that form: compare as is
		}
		names[i] = r[open+2 : end]
	}
	sorted := slices.Clone(names)
	slices.Sort(sorted)
	for i, r := range replies {
		replies[i] = strings.Replace(r, `"`+names[i]+`" :`, `"`+sorted[i]+`" :`, 1)
	}
}

// rawSession is clients of one server talking RESP2 raw on the wire; got
// records each reply, rendered, after the command that caused it.
type rawSession struct{ got []string }

// rawConn is one client of a rawSession.
type rawConn struct {
	t *testing.T
	s *rawSession
	c net.Conn
	r *bufio.Reader
}

func (s *rawSession) dial(t *testing.T, sock string) *rawConn {
	c, err := net.Dial("unix", sock)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return &rawConn{t: t, s: s, c: c, r: bufio.NewReader(c)}
}

// send writes a command (none: only reads what is due) and reads n
// replies.
func (c *rawConn) send(n int, args ...string) {
	if len(args) > 0 {
		var b []byte
		b = fmt.Appendf(b, "*%d\r\n", len(args))
		for _, a := range args {
			b = fmt.Appendf(b, "$%d\r\n%s\r\n", len(a), a)
		}
		_, err := c.c.Write(b)
		require.NoError(c.t, err)
	}
	require.NoError(c.t, c.c.SetReadDeadline(time.Now().Add(5*time.Second)))
	for range n {
		rep, err := render(c.r)
		require.NoError(c.t, err, "%v", args)
		c.s.got = append(c.s.got, strings.Join(args, " ")+" -> "+rep)
	}
}

// TestTransactionsMatchRealServer runs MULTI, EXEC, DISCARD, WATCH and
// UNWATCH sessions on both servers and requires the same replies: queued
// commands and their errors, EXECABORT, and WATCH aborting EXEC when
// another client, the client itself, an expiry or a flush changed a
// watched key, but not for a change to another key.
func TestTransactionsMatchRealServer(t *testing.T) {
	real, sock := compareServers(t)
	session := func(sock string) []string {
		var s rawSession
		a, b, sub := s.dial(t, sock), s.dial(t, sock), s.dial(t, sock)
		for _, cmd := range []string{"MULTI", "SET a 1", "INCR a", "GET a", "LPUSH a x", "EXEC", "EXEC", "DISCARD",
			"MULTI", "MULTI", "WATCH a", "GETX", "SET a", "EXEC", "MULTI", "SET never 1", "DISCARD", "GET never",
			"MULTI", "WATCH x", "SET y 1", "EXEC"} {
			a.send(1, strings.Fields(cmd)...)
		}
		tx := func(c *rawConn) {
			c.send(1, "MULTI")
			c.send(1, "GET", "a")
			c.send(1, "EXEC")
		}
		a.send(1, "WATCH", "a")
		b.send(1, "SET", "a", "2")
		tx(a) // aborted: another client changed a
		a.send(1, "WATCH", "a", "nokey")
		b.send(1, "SET", "other", "1")
		tx(a) // runs: another key changed
		a.send(1, "WATCH", "a")
		a.send(1, "SET", "a", "3")
		tx(a) // aborted: the client itself changed a
		a.send(1, "WATCH", "a")
		a.send(1, "UNWATCH")
		b.send(1, "SET", "a", "4")
		tx(a) // runs: nothing watched
		a.send(1, "WATCH", "nokey")
		b.send(1, "SET", "nokey", "1")
		tx(a) // aborted: a key created
		b.send(1, "SET", "e", "v", "PX", "30")
		a.send(1, "WATCH", "e")
		time.Sleep(60 * time.Millisecond)
		tx(a) // aborted: e expired
		a.send(1, "WATCH", "a")
		b.send(1, "FLUSHALL")
		tx(a) // aborted: a flushed
		sub.send(1, "SUBSCRIBE", "ch")
		for _, cmd := range []string{"MULTI", "PUBLISH ch m", "WAIT 0 0", "SET q 1", "SELECT 2", "SET q 12", "OBJECT ENCODING q", "EXEC", "GET q"} {
			a.send(1, strings.Fields(cmd)...)
		}
		sub.send(1) // the message published by EXEC
		return s.got
	}
	require.Equal(t, session(real.sock), session(sock))
}
