package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tidwall/redcon"
)

// harness runs commands directly against a Server on a fake clock, for
// exact replies without a network in between.
type harness struct {
	t     *testing.T
	srv   *Server
	sess  *session
	clock time.Time
}

func newHarness(t *testing.T) *harness {
	h := &harness{t: t, srv: &Server{store: NewStore(), started: time.Now(), config: defaultConfig(), maxBulkLen: defaultMaxBulkLen}, sess: &session{id: 1}}
	h.clock = time.UnixMilli(1_700_000_000_000)
	h.srv.store.now = func() time.Time { return h.clock }
	return h
}

// do runs cmd (arguments split on spaces) and renders its reply with
// render.
func (h *harness) do(cmd string) string {
	h.t.Helper()
	var args [][]byte
	for _, f := range strings.Fields(cmd) {
		args = append(args, []byte(f))
	}
	var buf bytes.Buffer
	w := redcon.NewWriter(&buf)
	h.srv.exec(h.sess, nil, args, w)
	if err := w.Flush(); err != nil {
		h.t.Fatal(err)
	}
	out, err := render(bufio.NewReader(&buf))
	if err != nil {
		h.t.Fatalf("%s: bad reply %q: %v", cmd, buf.String(), err)
	}
	if buf.Len() != 0 {
		h.t.Fatalf("%s: %d bytes after the reply: %q", cmd, buf.Len(), buf.String())
	}
	return out
}

// render turns one RESP2 reply into compact text: +OK, :1, "bulk", nil,
// -ERR message, [elements ...], and *nil for the null array.
func render(r *bufio.Reader) (string, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return "", err
	}
	if !strings.HasSuffix(line, "\r\n") || len(line) < 3 {
		return "", fmt.Errorf("line %q", line)
	}
	body := line[1 : len(line)-2]
	switch line[0] {
	case '+', '-', ':':
		return line[:1] + body, nil
	case '$':
		n, err := strconv.Atoi(body)
		if err != nil || n < -1 {
			return "", fmt.Errorf("bulk length %q", body)
		}
		if n == -1 {
			return "nil", nil
		}
		b := make([]byte, n+2)
		if _, err := io.ReadFull(r, b); err != nil {
			return "", err
		}
		return strconv.Quote(string(b[:n])), nil
	case '*':
		n, err := strconv.Atoi(body)
		if err != nil || n < -1 {
			return "", fmt.Errorf("array length %q", body)
		}
		if n == -1 {
			return "*nil", nil
		}
		elems := make([]string, n)
		for i := range elems {
			if elems[i], err = render(r); err != nil {
				return "", err
			}
		}
		return "[" + strings.Join(elems, " ") + "]", nil
	}
	return "", fmt.Errorf("type %q", line[0])
}

// step is one command and its rendered reply. The pseudo-command
// "sleep N" advances the fake clock by N milliseconds.
type step struct{ cmd, want string }

func runSteps(t *testing.T, steps []step) {
	h := newHarness(t)
	for _, s := range steps {
		if ms, ok := strings.CutPrefix(s.cmd, "sleep "); ok {
			n, _ := strconv.Atoi(ms)
			h.clock = h.clock.Add(time.Duration(n) * time.Millisecond)
			continue
		}
		if got := h.do(s.cmd); got != s.want {
			t.Errorf("%s: got %s, want %s", s.cmd, got, s.want)
		}
	}
}

const (
	wrongType = "-WRONGTYPE Operation against a key holding the wrong kind of value"
	notInt    = "-ERR value is not an integer or out of range"
)

func arity(name string) string {
	return "-ERR wrong number of arguments for '" + name + "' command"
}

func TestCommands(t *testing.T) {
	tests := []struct {
		name  string
		steps []step
	}{
		{"ping", []step{
			{"PING", "+PONG"},
			{"ping hello", `"hello"`},
			{"PING a b", arity("ping")},
			{"ECHO hi", `"hi"`},
			{"ECHO", arity("echo")},
		}},
		{"unknown", []step{
			{"NOSUCH a b", "-ERR unknown command 'NOSUCH', with args beginning with: 'a' 'b' "},
			{"averyveryverylongcommandname", "-ERR unknown command 'averyveryverylongcommandname', with args beginning with: "},
			{"X " + strings.Repeat("a", 120) + " " + strings.Repeat("b", 20) + " c",
				"-ERR unknown command 'X', with args beginning with: '" + strings.Repeat("a", 120) + "' '" + strings.Repeat("b", 5) + "' "},
		}},
		{"set get", []step{
			{"GET k", "nil"},
			{"SET k v", "+OK"},
			{"get k", `"v"`},
			{"SET k w", "+OK"},
			{"GET k", `"w"`},
			{"GET", arity("get")},
			{"GET a b", arity("get")},
			{"SET k", arity("set")},
			{"SET k v bogus", "-ERR syntax error"},
		}},
		{"set nx xx get", []step{
			{"SET k v XX", "nil"},
			{"EXISTS k", ":0"},
			{"SET k v NX", "+OK"},
			{"SET k w NX", "nil"},
			{"GET k", `"v"`},
			{"SET k w XX", "+OK"},
			{"SET k x GET", `"w"`},
			{"SET new x GET", "nil"},
			{"SET k v NX XX", "-ERR syntax error"},
			{"LPUSH l a", ":1"},
			{"SET l x GET", wrongType},
			{"SET l x", "+OK"},
			{"GET l", `"x"`},
		}},
		{"set expiry", []step{
			{"SET k v EX 10", "+OK"},
			{"TTL k", ":10"},
			{"PTTL k", ":10000"},
			{"sleep 9999", ""},
			{"GET k", `"v"`},
			{"sleep 1", ""},
			{"GET k", "nil"},
			{"TTL k", ":-2"},
			{"SET k v PX 1500", "+OK"},
			{"TTL k", ":2"},
			{"SET k v KEEPTTL", "+OK"},
			{"PTTL k", ":1500"},
			{"SET k v", "+OK"},
			{"TTL k", ":-1"},
			{"SET k v EX 0", "-ERR invalid expire time in 'set' command"},
			{"SET k v EX -5", "-ERR invalid expire time in 'set' command"},
			{"SET k v EX ten", notInt},
			{"SET k v EX", "-ERR syntax error"},
			{"SET k v EX 1 PX 1", "-ERR syntax error"},
			{"SET k v KEEPTTL EX 1", "-ERR syntax error"},
			{"SET k v EXAT 1700000011", "+OK"},
			{"PTTL k", ":1000"},
			{"SET k v PXAT 1700000010500", "+OK"},
			{"PTTL k", ":500"},
		}},
		{"incr", []step{
			{"INCR n", ":1"},
			{"INCR n", ":2"},
			{"INCRBY n 10", ":12"},
			{"DECR n", ":11"},
			{"DECRBY n 20", ":-9"},
			{"GET n", `"-9"`},
			{"INCRBY n x", notInt},
			{"INCRBY n 1.5", notInt},
			{"SET s abc", "+OK"},
			{"INCR s", notInt},
			{"SET s 010", "+OK"},
			{"INCR s", notInt},
			{"SET s +1", "+OK"},
			{"INCR s", notInt},
			{"SET big 9223372036854775807", "+OK"},
			{"INCR big", "-ERR increment or decrement would overflow"},
			{"SET small -9223372036854775808", "+OK"},
			{"DECR small", "-ERR increment or decrement would overflow"},
			{"DECRBY n -9223372036854775808", "-ERR decrement would overflow"},
			{"INCRBY n 9223372036854775808", notInt},
			{"LPUSH l a", ":1"},
			{"INCR l", wrongType},
			{"INCR", arity("incr")},
		}},
		{"incr keeps ttl", []step{
			{"SET n 1 EX 100", "+OK"},
			{"INCR n", ":2"},
			{"TTL n", ":100"},
		}},
		{"mget mset", []step{
			{"MSET a 1 b 2", "+OK"},
			{"MSET a 1 b", arity("mset")},
			{"LPUSH l x", ":1"},
			{"MGET a b nope l", `["1" "2" nil nil]`},
			{"SET a 1 EX 5", "+OK"},
			{"MSET a 3", "+OK"},
			{"TTL a", ":-1"},
		}},
		{"del exists type", []step{
			{"MSET a 1 b 2", "+OK"},
			{"EXISTS a b c a", ":3"},
			{"DEL a c", ":1"},
			{"EXISTS a", ":0"},
			{"TYPE b", "+string"},
			{"TYPE a", "+none"},
			{"RPUSH l x", ":1"},
			{"SADD s x", ":1"},
			{"HSET h f v", ":1"},
			{"ZADD z 1 x", ":1"},
			{"TYPE l", "+list"},
			{"TYPE s", "+set"},
			{"TYPE h", "+hash"},
			{"TYPE z", "+zset"},
			{"DBSIZE", ":5"},
			{"DEL", arity("del")},
		}},
		{"expire ttl", []step{
			{"EXPIRE k 10", ":0"},
			{"SET k v", "+OK"},
			{"TTL k", ":-1"},
			{"PTTL k", ":-1"},
			{"EXPIRE k 10", ":1"},
			{"TTL k", ":10"},
			{"sleep 400", ""},
			{"TTL k", ":10"}, // 9.6s rounds to 10, as Redis does
			{"sleep 200", ""},
			{"TTL k", ":9"},
			{"PEXPIRE k 50", ":1"},
			{"PTTL k", ":50"},
			{"sleep 50", ""},
			{"EXISTS k", ":0"},
			{"SET k v", "+OK"},
			{"EXPIRE k 0", ":1"},
			{"EXISTS k", ":0"},
			{"SET k v", "+OK"},
			{"EXPIRE k -1", ":1"},
			{"EXISTS k", ":0"},
			{"EXPIRE k x", notInt},
			{"EXPIRE k", arity("expire")},
			{"SET k v", "+OK"},
			{"PERSIST k", ":0"},
			{"EXPIRE k 5", ":1"},
			{"PERSIST k", ":1"},
			{"TTL k", ":-1"},
			{"EXPIRE k 9223372036854775807", "-ERR invalid expire time in 'expire' command"},
		}},
		{"expire options", []step{
			{"SET k v", "+OK"},
			{"EXPIRE k 10 XX", ":0"},
			{"EXPIRE k 10 GT", ":0"},
			{"EXPIRE k 10 NX", ":1"},
			{"EXPIRE k 20 NX", ":0"},
			{"EXPIRE k 5 GT", ":0"},
			{"EXPIRE k 20 GT", ":1"},
			{"EXPIRE k 30 LT", ":0"},
			{"EXPIRE k 5 LT", ":1"},
			{"EXPIRE k 7 XX", ":1"},
			{"TTL k", ":7"},
			{"EXPIRE k 1 NX XX", "-ERR NX and XX, GT or LT options at the same time are not compatible"},
			{"EXPIRE k 1 GT LT", "-ERR GT and LT options at the same time are not compatible"},
			{"EXPIRE k 1 FOO", "-ERR Unsupported option FOO"},
		}},
		{"lists", []step{
			{"LPUSH l a b c", ":3"},
			{"RPUSH l d e", ":5"},
			{"LRANGE l 0 -1", `["c" "b" "a" "d" "e"]`},
			{"LRANGE l 1 2", `["b" "a"]`},
			{"LRANGE l -2 100", `["d" "e"]`},
			{"LRANGE l 3 1", `[]`},
			{"LRANGE l 10 20", `[]`},
			{"LRANGE l -100 0", `["c"]`},
			{"LRANGE l a 1", notInt},
			{"LRANGE nope 0 -1", `[]`},
			{"LLEN l", ":5"},
			{"LLEN nope", ":0"},
			{"LPOP l", `"c"`},
			{"RPOP l", `"e"`},
			{"LPOP l 2", `["b" "a"]`},
			{"RPOP l 0", `[]`},
			{"RPOP l 5", `["d"]`},
			{"EXISTS l", ":0"},
			{"LPOP l", "nil"},
			{"LPOP l 2", "*nil"},
			{"LPOP l -1", "-ERR value is out of range, must be positive"},
			{"LPOP l x", "-ERR value is out of range, must be positive"},
			{"LPOP l 1 2", arity("lpop")},
			{"LPUSH l", arity("lpush")},
			{"SET s v", "+OK"},
			{"LPUSH s a", wrongType},
			{"LRANGE s 0 1", wrongType},
			{"LLEN s", wrongType},
			{"RPOP s", wrongType},
		}},
		{"list pops through both ends", []step{
			{"RPUSH l 1 2 3", ":3"},
			{"LPUSH l 0", ":4"},
			{"RPOP l", `"3"`},
			{"RPOP l", `"2"`},
			{"RPOP l", `"1"`},
			{"RPOP l", `"0"`},
			{"LPUSH l x y", ":2"},
			{"LPOP l", `"y"`},
			{"LPOP l", `"x"`},
			{"LPOP l", "nil"},
		}},
		{"sets", []step{
			{"SADD s a b a", ":2"},
			{"SADD s b c", ":1"},
			{"SCARD s", ":3"},
			{"SISMEMBER s a", ":1"},
			{"SISMEMBER s z", ":0"},
			{"SREM s a z", ":1"},
			{"SCARD nope", ":0"},
			{"SMEMBERS nope", "[]"},
			{"SPOP nope", "nil"},
			{"SPOP nope 3", "[]"},
			{"SPOP s -1", "-ERR value is out of range, must be positive"},
			{"SADD one x", ":1"},
			{"SMEMBERS one", `["x"]`},
			{"SPOP one", `"x"`},
			{"EXISTS one", ":0"},
			{"SET str v", "+OK"},
			{"SADD str a", wrongType},
			{"SCARD str", wrongType},
			{"SPOP str", wrongType},
			{"SADD s", arity("sadd")},
		}},
		{"hashes", []step{
			{"HSET h f1 v1 f2 v2", ":2"},
			{"HSET h f1 x f3 v3", ":1"},
			{"HGET h f1", `"x"`},
			{"HGET h nope", "nil"},
			{"HGET nope f", "nil"},
			{"HLEN h", ":3"},
			{"HDEL h f1 f2 zz", ":2"},
			{"HGETALL h", `["f3" "v3"]`},
			{"HGETALL nope", "[]"},
			{"HDEL h f3", ":1"},
			{"EXISTS h", ":0"},
			{"HSET h f", arity("hset")},
			{"HSET h f v g", arity("hset")},
			{"SET s v", "+OK"},
			{"HSET s f v", wrongType},
			{"HGET s f", wrongType},
		}},
		{"sorted sets", []step{
			{"ZADD z 3 c 1 a 2 b", ":3"},
			{"ZADD z 1.5 b", ":0"},
			{"ZRANGE z 0 -1 WITHSCORES", `["a" "1" "b" "1.5" "c" "3"]`},
			{"ZRANGE z 0 0", `["a"]`},
			{"ZCARD z", ":3"},
			{"ZSCORE z b", `"1.5"`},
			{"ZSCORE z nope", "nil"},
			{"ZSCORE nope b", "nil"},
			{"ZADD z CH 5 a 9 new", ":2"},
			{"ZADD z NX 0 a", ":0"},
			{"ZADD z XX 0 other", ":0"},
			{"ZADD z GT 1 a", ":0"},
			{"ZADD z LT CH 1 a", ":1"},
			{"ZADD z INCR 2 a", `"3"`},
			{"ZADD z NX INCR 2 a", "nil"},
			{"ZADD z 1 a 2", "-ERR syntax error"},
			{"ZADD z x a", "-ERR value is not a valid float"},
			{"ZADD z nan a", "-ERR value is not a valid float"},
			{"ZADD z -inf lowest +inf highest", ":2"},
			{"ZPOPMIN z", `["lowest" "-inf"]`},
			{"ZPOPMIN z 2", `["b" "1.5" "a" "3"]`},
			{"ZPOPMIN z -1", "-ERR value is out of range, must be positive"},
			{"ZPOPMIN z x", notInt},
			{"ZPOPMIN z 10", `["c" "3" "new" "9" "highest" "inf"]`},
			{"EXISTS z", ":0"},
			{"ZPOPMIN z", "[]"},
			{"ZADD z XX 1 a", ":0"},
			{"EXISTS z", ":0"},
			{"ZADD z NX XX 1 a", "-ERR XX and NX options at the same time are not compatible"},
			{"ZADD z GT LT 1 a", "-ERR GT, LT, and/or NX options at the same time are not compatible"},
			{"ZADD z INCR 1 a 2 b", "-ERR INCR option supports a single increment-element pair"},
			{"ZADD z 1", arity("zadd")},
			{"SET s v", "+OK"},
			{"ZADD s 1 a", wrongType},
			{"ZPOPMIN s", wrongType},
		}},
		{"select flush", []step{
			{"SET k v", "+OK"},
			{"SELECT 1", "+OK"},
			{"GET k", "nil"},
			{"SET k other", "+OK"},
			{"DBSIZE", ":1"},
			{"FLUSHDB", "+OK"},
			{"DBSIZE", ":0"},
			{"SELECT 0", "+OK"},
			{"GET k", `"v"`},
			{"SELECT 16", "-ERR DB index is out of range"},
			{"SELECT x", notInt},
			{"FLUSHALL ASYNC", "+OK"},
			{"DBSIZE", ":0"},
			{"FLUSHALL NOW", "-ERR syntax error"},
		}},
		{"connection", []step{
			{"HELLO 4", "-NOPROTO unsupported protocol version"},
			{"HELLO x", "-ERR Protocol version is not an integer or out of range"},
			{"HELLO 2 SETNAME app", `["server" "redis" "version" "7.0.0" "proto" :2 "id" :1 "mode" "standalone" "role" "master" "modules" []]`},
			{"CLIENT GETNAME", `"app"`},
			{"HELLO 2 BOGUS", "-ERR Syntax error in HELLO option 'BOGUS'"},
			{"CLIENT SETNAME other", "+OK"},
			{"CLIENT GETNAME", `"other"`},
			{"CLIENT SETINFO LIB-NAME go-redis", "+OK"},
			{"CLIENT SETINFO LIB-VER 9", "+OK"},
			{"CLIENT SETINFO COLOR red", "-ERR Unrecognized option 'COLOR'"},
			{"CLIENT ID", ":1"},
			{"CLIENT KILL x", "-ERR unknown subcommand 'KILL'. Try CLIENT HELP."},
			{"CLIENT SETNAME", "-ERR wrong number of arguments for 'client|setname' command"},
			{"CONFIG GET save", `["save" ""]`},
			{"CONFIG GET appendonly", `["appendonly" "no"]`},
			{"CONFIG GET SAVE appendonly", `["appendonly" "no" "save" ""]`},
			{"CONFIG GET data*", `["databases" "16"]`},
			{"CONFIG GET nope", "[]"},
			{"CONFIG SET save x", "+OK"},
			{"CONFIG GET save", `["save" "x"]`},
			{"CONFIG SET nosuch x", "-ERR Unknown option or number of arguments for CONFIG SET - 'nosuch'"},
			{"CONFIG SET databases 3", "-ERR CONFIG SET failed (possibly related to argument 'databases') - can't set immutable config"},
			{"CONFIG GET proto*", `["proto-max-bulk-len" "536870912"]`},
			{"CONFIG SET proto-max-bulk-len 1mb", "-ERR CONFIG SET failed (possibly related to argument 'proto-max-bulk-len') - can't set immutable config"},
			{"CONFIG SET save", "-ERR wrong number of arguments for 'config|set' command"},
			{"CONFIG GET", "-ERR wrong number of arguments for 'config|get' command"},
			{"COMMAND DOCS get", `["get" ["summary" "Returns the string value of a key." "since" "1.0.0" "group" "string"]]`},
			{"COMMAND INFO get nope", `[["get" :2 [+readonly +fast] :1 :1 :1 [+@string +@read +@fast] [] [] []] nil]`},
			{"QUIT", "+OK"},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { runSteps(t, tc.steps) })
	}
}

func TestCommandCount(t *testing.T) {
	h := newHarness(t)
	if got, want := h.do("COMMAND COUNT"), ":"+strconv.Itoa(len(commands)); got != want {
		t.Fatalf("COMMAND COUNT = %s, want %s", got, want)
	}
	// COMMAND lists every command with its arity and flags.
	got := h.do("COMMAND")
	for name, c := range commands {
		if want := fmt.Sprintf(`["%s" :%d [`, name, c.arity); !strings.Contains(got, want) {
			t.Errorf("COMMAND lacks %s", want)
		}
	}
}

func TestSPopAndSMembers(t *testing.T) {
	h := newHarness(t)
	h.do("SADD s a b c d")
	if got := h.do("SMEMBERS s"); len(got) != len(`["a" "b" "c" "d"]`) {
		t.Fatalf("SMEMBERS = %s", got)
	}
	seen := map[string]bool{}
	for range 4 {
		m := h.do("SPOP s")
		if seen[m] || !strings.Contains(`"a" "b" "c" "d"`, m) {
			t.Fatalf("SPOP returned %s (seen %v)", m, seen)
		}
		seen[m] = true
	}
	if got := h.do("EXISTS s"); got != ":0" {
		t.Fatalf("EXISTS after popping everything = %s", got)
	}
	h.do("SADD s a b c")
	if got := h.do("SPOP s 5"); len(got) != len(`["a" "b" "c"]`) {
		t.Fatalf("SPOP s 5 = %s", got)
	}
}

// TestSweep checks that expired keys nobody asks for are deleted anyway.
func TestSweep(t *testing.T) {
	h := newHarness(t)
	for i := range 1000 {
		h.do(fmt.Sprintf("SET k%d v PX %d", i, 100+i%2*1_000_000))
	}
	h.do("SET forever v")
	h.clock = h.clock.Add(time.Second)
	d := &h.srv.store.dbs[0]
	for range 200 {
		h.srv.store.sweep()
	}
	// Half the keys expired; sampling stops once fewer than a quarter of a
	// sample is expired, so a few may remain.
	if n := len(d.data); n > 501+50 || n < 501 {
		t.Fatalf("%d keys after sweeping, want about 501", n)
	}
	if len(d.expires) != len(d.data)-1 {
		t.Fatalf("expires has %d keys, data %d", len(d.expires), len(d.data))
	}
	if got := h.do("DBSIZE"); got == ":1001" {
		t.Fatal("nothing swept")
	}
	if got := h.do("GET forever"); got != `"v"` {
		t.Fatalf("GET forever = %s", got)
	}
}

func TestParseInt(t *testing.T) {
	for s, want := range map[string]int64{
		"0": 0, "7": 7, "-7": -7, "9223372036854775807": 1<<63 - 1, "-9223372036854775808": -1 << 63,
	} {
		if got, ok := parseInt(s); !ok || got != want {
			t.Errorf("parseInt(%q) = %d, %v; want %d", s, got, ok, want)
		}
	}
	for _, s := range []string{"", "-", "+1", "01", "-0", " 1", "1 ", "1.0", "9223372036854775808", "-9223372036854775809", "99999999999999999999", "123456789012345678901"} {
		if got, ok := parseInt(s); ok {
			t.Errorf("parseInt(%q) = %d, want failure", s, got)
		}
	}
}

func TestList(t *testing.T) {
	// The deque against a slice model, through every mix of operations.
	var l list
	var model []string
	for i := range 2000 {
		v := strconv.Itoa(i)
		switch (i * 7919) % 5 {
		case 0:
			l.pushFront(v)
			model = append([]string{v}, model...)
		case 1, 2:
			l.pushBack(v)
			model = append(model, v)
		case 3:
			if len(model) > 0 {
				if got := l.popFront(); got != model[0] {
					t.Fatalf("popFront = %s, want %s", got, model[0])
				}
				model = model[1:]
			}
		case 4:
			if len(model) > 0 {
				if got := l.popBack(); got != model[len(model)-1] {
					t.Fatalf("popBack = %s, want %s", got, model[len(model)-1])
				}
				model = model[:len(model)-1]
			}
		}
		if l.len() != len(model) {
			t.Fatalf("len = %d, want %d", l.len(), len(model))
		}
	}
	for i, v := range model {
		if l.at(i) != v {
			t.Fatalf("at(%d) = %s, want %s", i, l.at(i), v)
		}
	}
}
