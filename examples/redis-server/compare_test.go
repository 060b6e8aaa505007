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
	real := startRealServer(t)
	sock := socketPath(t)
	startChild(t, "-addr", "", "-unix", sock, "-wait", "adaptive")

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
	for _, c := range []comparison{
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
	} {
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
	real := startRealServer(t)
	sock := socketPath(t)
	startChild(t, "-addr", "", "-unix", sock, "-wait", "adaptive")

	session := func(sock string) []string {
		sub, err := net.Dial("unix", sock)
		require.NoError(t, err)
		defer sub.Close()
		pub, err := net.Dial("unix", sock)
		require.NoError(t, err)
		defer pub.Close()
		subR, pubR := bufio.NewReader(sub), bufio.NewReader(pub)
		var got []string
		// send writes a command and reads n replies.
		send := func(c net.Conn, r *bufio.Reader, n int, args ...string) {
			if len(args) > 0 { // none: only read what is due
				var b []byte
				b = fmt.Appendf(b, "*%d\r\n", len(args))
				for _, a := range args {
					b = fmt.Appendf(b, "$%d\r\n%s\r\n", len(a), a)
				}
				_, err := c.Write(b)
				require.NoError(t, err)
			}
			require.NoError(t, c.SetReadDeadline(time.Now().Add(5*time.Second)))
			for range n {
				rep, err := render(r)
				require.NoError(t, err, "%v", args)
				got = append(got, strings.Join(args, " ")+" -> "+rep)
			}
		}
		send(sub, subR, 2, "SUBSCRIBE", "news", "sport")
		send(sub, subR, 2, "PSUBSCRIBE", "n*", "x?")
		send(sub, subR, 1, "SUBSCRIBE", "news") // again: counts stay
		send(sub, subR, 1, "GET", "k")
		send(sub, subR, 1, "PING")
		send(sub, subR, 1, "PING", "hi")
		send(pub, pubR, 1, "PUBLISH", "news", "hello") // a channel and a pattern match
		send(sub, subR, 2)                             // the two messages; order between them is unspecified
		send(pub, pubR, 1, "PUBLISH", "nobody", "x")   // the pattern only
		send(sub, subR, 1)
		send(pub, pubR, 1, "PUBSUB", "NUMSUB", "news", "sport", "none")
		send(pub, pubR, 1, "PUBSUB", "NUMPAT")
		send(sub, subR, 1, "UNSUBSCRIBE", "news")
		send(sub, subR, 1, "UNSUBSCRIBE", "never")
		send(sub, subR, 2, "PUNSUBSCRIBE")
		send(sub, subR, 1, "UNSUBSCRIBE")
		send(sub, subR, 1, "UNSUBSCRIBE") // nothing left
		send(sub, subR, 1, "PING")        // out of subscribed mode
		send(sub, subR, 1, "GET", "k")
		return got
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
