package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/tidwall/redcon"
)

// protocolCase is bytes a client sends and all it gets back before the
// server closes the connection.
type protocolCase struct {
	name, in, want string
	// redis: the real redis-server 7.0 answers the same.
	redis bool
}

func protocolErr(msg string) string { return "-ERR Protocol error: " + msg + "\r\n" }

var protocolCases = []protocolCase{
	{"bulk length 2^63-1", "*1\r\n$9223372036854775807\r\n", protocolErr("invalid bulk length"), true},
	{"multibulk count 2^63-1", "*9223372036854775807\r\n", protocolErr("invalid multibulk length"), true},
	{"multibulk count 2^31", "*2147483648\r\n", protocolErr("invalid multibulk length"), true},
	{"multibulk count 2^20+1", "*1048577\r\n", protocolErr("invalid multibulk length"), false}, // Redis 7 allows up to 2^31-1
	{"multibulk count overflows", "*99999999999999999999\r\n", protocolErr("invalid multibulk length"), true},
	{"multibulk count not a number", "*abc\r\n", protocolErr("invalid multibulk length"), true},
	{"multibulk count empty", "*\r\n", protocolErr("invalid multibulk length"), true},
	{"multibulk count with a plus", "*+1\r\n", protocolErr("invalid multibulk length"), true},
	{"multibulk count with a leading zero", "*01\r\n", protocolErr("invalid multibulk length"), true},
	{"multibulk count with a space", "* 1\r\n", protocolErr("invalid multibulk length"), true},
	{"multibulk count ended by LF alone", "*1\n$4\r\nPING\r\n", protocolErr("invalid multibulk length"), true},
	{"multibulk count line too long", "*" + strings.Repeat("1", 64<<10+1), protocolErr("too big mbulk count string"), true},
	{"bulk length 2^63-1 after a good command", "*1\r\n$4\r\nPING\r\n*1\r\n$9223372036854775807\r\n", "+PONG\r\n" + protocolErr("invalid bulk length"), true},
	{"bulk length -1", "*1\r\n$-1\r\n", protocolErr("invalid bulk length"), true},
	{"bulk length -2^63", "*1\r\n$-9223372036854775808\r\n", protocolErr("invalid bulk length"), true},
	{"bulk length -0", "*1\r\n$-0\r\n", protocolErr("invalid bulk length"), true},
	{"bulk length overflows", "*1\r\n$99999999999999999999\r\n", protocolErr("invalid bulk length"), true},
	{"bulk length not a number", "*1\r\n$abc\r\n", protocolErr("invalid bulk length"), true},
	{"bulk length with a plus", "*1\r\n$+4\r\nPING\r\n", protocolErr("invalid bulk length"), true},
	{"bulk length just over 512 MiB", "*1\r\n$536870913\r\n", protocolErr("invalid bulk length"), true},
	{"bulk length ended by LF alone", "*1\r\n$4\nPING\r\n", protocolErr("invalid bulk length"), true},
	{"bulk length line too long", "*1\r\n$" + strings.Repeat("1", 64<<10+1), protocolErr("too big bulk count string"), true},
	{"bulk without a dollar", "*1\r\nx4\r\n", protocolErr("expected '$', got 'x'"), true},
	{"bulk not ended by CRLF", "*1\r\n$4\r\nPINGxx", protocolErr("invalid bulk length"), false}, // Redis skips the two bytes unread
	{"second bulk length 2^63-1", "*2\r\n$4\r\nECHO\r\n$9223372036854775807\r\n", protocolErr("invalid bulk length"), true},
	{"inline request without a newline", strings.Repeat("a", 64<<10+1), protocolErr("too big inline request"), true},
	{"inline request over 64 KiB", "ECHO " + strings.Repeat("a", 64<<10) + "\r\n", protocolErr("too big inline request"), false}, // Redis takes it if it arrives in one read
	{"subscribed, then bulk length 2^63-1", "SUBSCRIBE ch\r\n*1\r\n$9223372036854775807\r\n",
		"*3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n" + protocolErr("invalid bulk length"), true},
}

// exchange sends in on a new connection and returns everything that comes
// back until the server closes it, failing if it does not within 10 s.
func exchange(t *testing.T, c net.Conn, in string) string {
	t.Helper()
	require.NoError(t, c.SetDeadline(time.Now().Add(10*time.Second)))
	_, err := io.WriteString(c, in)
	require.NoError(t, err)
	got, err := io.ReadAll(c)
	// A unix socket closed with bytes unread reports that to its peer
	// once the peer has read the rest.
	if !errors.Is(err, syscall.ECONNRESET) {
		require.NoError(t, err, "reply so far %q; the server should have closed the connection", got)
	}
	return string(got)
}

// TestProtocolErrors sends each malformed or oversized request of
// protocolCases, over the plain socket and over shared memory, to a
// server in another process: each client gets Redis's protocol error and
// is disconnected, and a second client is served throughout.
func TestProtocolErrors(t *testing.T) {
	srv := startChild(t, "-addr", "", "-unix", socketPath(t), "-wait", "adaptive")
	for _, shm := range []bool{false, true} {
		t.Run(fmt.Sprint("shm=", shm), func(t *testing.T) {
			other := pubSubDial(t, srv.unix, shm)
			for _, tc := range protocolCases {
				t.Run(tc.name, func(t *testing.T) {
					require.Equal(t, tc.want, exchange(t, pubSubDial(t, srv.unix, shm), tc.in))
					require.Equal(t, "+PONG\r\n", roundTrip(t, other, "PING\r\n"), "the other client")
				})
			}
		})
	}
}

// TestProtocolErrorsMatchRealServer sends the cases marked redis to the
// real redis-server and requires the answers protocolCases expects.
func TestProtocolErrorsMatchRealServer(t *testing.T) {
	real := startRealServer(t)
	for _, tc := range protocolCases {
		if !tc.redis {
			continue
		}
		t.Run(tc.name, func(t *testing.T) {
			c, err := net.Dial("unix", real.sock)
			require.NoError(t, err)
			defer c.Close()
			require.Equal(t, tc.want, exchange(t, c, tc.in))
		})
	}
}

// TestIgnoredRequests: as in Redis, a multibulk count of zero or less is
// a request that does nothing, and an empty line is an empty inline
// request; the client stays connected.
func TestIgnoredRequests(t *testing.T) {
	srv := startChild(t, "-addr", "", "-unix", socketPath(t), "-wait", "adaptive")
	real := startRealServer(t)
	for _, in := range []string{"*0\r\n", "*-1\r\n", "*-5\r\n", "\r\n", "\n", "   \r\n"} {
		for _, sock := range []string{srv.unix, real.sock} {
			c := pubSubDial(t, sock, false)
			require.Equal(t, "+PONG\r\n", roundTrip(t, c, in+"*1\r\n$4\r\nPING\r\n"), "after %q to %s", in, sock)
			require.Equal(t, "+PONG\r\n", roundTrip(t, c, "PING\r\n"), "after %q to %s", in, sock)
		}
	}
}

// TestLargeRequests: requests within the limits pass whole, also when
// they arrive a byte at a time: a bulk string larger than any buffer, a
// multibulk of many elements, an inline request of 64 KiB.
func TestLargeRequests(t *testing.T) {
	srv := startChild(t, "-addr", "", "-unix", socketPath(t), "-wait", "adaptive")
	for _, shm := range []bool{false, true} {
		t.Run(fmt.Sprint("shm=", shm), func(t *testing.T) {
			c := pubSubDial(t, srv.unix, shm)
			r := bufio.NewReader(c)
			big := strings.Repeat("v", 3<<20+1)
			_, err := fmt.Fprintf(c, "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$%d\r\n%s\r\n", len(big), big)
			require.NoError(t, err)
			reply, err := readReply(r)
			require.NoError(t, err)
			require.Equal(t, "+OK", reply)
			_, err = io.WriteString(c, "*2\r\n$6\r\nSTRLEN\r\n$1\r\nk\r\n")
			require.NoError(t, err)
			reply, err = readReply(r)
			require.NoError(t, err)
			require.Equal(t, ":"+strconv.Itoa(len(big)), reply)

			var req strings.Builder
			const n = 100000
			fmt.Fprintf(&req, "*%d\r\n$4\r\nSADD\r\n$%d\r\n%s\r\n", n+2, len(t.Name()), t.Name())
			for i := range n {
				fmt.Fprintf(&req, "$%d\r\n%d\r\n", len(strconv.Itoa(i)), i)
			}
			_, err = io.WriteString(c, req.String())
			require.NoError(t, err)
			reply, err = readReply(r)
			require.NoError(t, err)
			require.Equal(t, ":"+strconv.Itoa(n), reply)

			arg := strings.Repeat("a", 64<<10-len("ECHO ")-2)
			slow := "*2\r\n$4\r\nECHO\r\n$3\r\nabc\r\nECHO " + arg + "\r\n"
			const bytewise = 4 << 10 // the first bytes are sent one at a time
			for i := range bytewise {
				_, err = io.WriteString(c, slow[i:i+1])
				require.NoError(t, err)
			}
			_, err = io.WriteString(c, slow[bytewise:])
			require.NoError(t, err)
			for _, want := range []string{"abc", arg} {
				reply, err = readReply(r)
				require.NoError(t, err)
				require.Equal(t, want, reply)
			}
		})
	}
}

// TestProtocolErrorFreesClient: after the two requests that crashed the
// server or made it count to 2^63, sent by clients that leave at once, the
// server forgets those clients and uses no CPU, and still serves others.
func TestProtocolErrorFreesClient(t *testing.T) {
	srv := startChild(t, "-addr", "", "-unix", socketPath(t), "-wait", "adaptive")
	other := pubSubDial(t, srv.unix, false)
	r := bufio.NewReader(other)
	connected := func() string {
		_, err := io.WriteString(other, "INFO clients\r\n")
		require.NoError(t, err)
		info, err := readReply(r)
		require.NoError(t, err)
		for line := range strings.SplitSeq(info, "\r\n") {
			if v, ok := strings.CutPrefix(line, "connected_clients:"); ok {
				return v
			}
		}
		t.Fatalf("no connected_clients in %q", info)
		return ""
	}
	require.Equal(t, "1", connected())
	for _, shm := range []bool{false, true} {
		for _, in := range []string{"*1\r\n$9223372036854775807\r\n", "*9223372036854775807\r\n"} {
			c := pubSubDial(t, srv.unix, shm)
			_, err := io.WriteString(c, in)
			require.NoError(t, err)
			c.Close()
		}
	}
	require.Eventually(t, func() bool { return connected() == "1" }, 10*time.Second, 10*time.Millisecond,
		"the bad clients are still connected")
	used := cpuTime(t, srv.Cmd.Process.Pid)
	time.Sleep(time.Second)
	used = cpuTime(t, srv.Cmd.Process.Pid) - used
	// Idle, the server uses a few ms a second; a goroutine counting to
	// 2^63 takes whatever share of a core it gets, which on a loaded
	// machine may be well under a whole one, but not this little.
	require.Less(t, used, 250*time.Millisecond, "CPU time the server used in a second, idle")
	require.Equal(t, "+PONG\r\n", roundTrip(t, other, "PING\r\n"))
}

// cpuTime is the CPU time process pid has used, from /proc.
func cpuTime(t *testing.T, pid int) time.Duration {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if os.IsNotExist(err) && pid == os.Getpid() {
		t.Skip("no /proc")
	}
	require.NoError(t, err, "the server process")
	// The fields after the command name, which is in parentheses: utime
	// and stime are the 12th and 13th, in clock ticks of 1/100 s (USER_HZ
	// on every Linux architecture Go supports).
	fields := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	var ticks int64
	for _, f := range fields[11:13] {
		n, err := strconv.ParseInt(f, 10, 64)
		require.NoError(t, err)
		ticks += n
	}
	return time.Duration(ticks) * 10 * time.Millisecond
}

// TestMaxBulkLenFlag: -proto-max-bulk-len sets the longest bulk string.
func TestMaxBulkLenFlag(t *testing.T) {
	srv := startChild(t, "-addr", "", "-unix", socketPath(t), "-wait", "adaptive", "-proto-max-bulk-len", "1048576")
	c := pubSubDial(t, srv.unix, true)
	at := strings.Repeat("a", 1<<20)
	require.Equal(t, "$1048576\r\n"+at+"\r\n", roundTripAll(t, c, "*2\r\n$4\r\nECHO\r\n$1048576\r\n"+at+"\r\n", len(at)+12))
	_, err := io.WriteString(c, "CONFIG GET proto-max-bulk-len\r\n")
	require.NoError(t, err)
	reply, err := readReply(bufio.NewReader(c))
	require.NoError(t, err)
	require.Equal(t, "*[proto-max-bulk-len 1048576]", reply)
	over := pubSubDial(t, srv.unix, true)
	require.Equal(t, protocolErr("invalid bulk length"), exchange(t, over, "*2\r\n$4\r\nECHO\r\n$1048577\r\n"+at[:1000]))
}

// roundTripAll writes req and reads n bytes back.
func roundTripAll(t *testing.T, c net.Conn, req string, n int) string {
	t.Helper()
	_, err := io.WriteString(c, req)
	require.NoError(t, err)
	b := make([]byte, n)
	_, err = io.ReadFull(c, b)
	require.NoError(t, err)
	return string(b)
}

// TestRequestTooLarge: a request may not pass maxRequestLen, however its
// bulk strings are within the limit.
func TestRequestTooLarge(t *testing.T) {
	s := requestScanner{maxBulkLen: defaultMaxBulkLen}
	zeros := make([]byte, 1<<20)
	var scanned int64
	next := "*3\r\n$536870912\r\n"
	var err error
	for err == nil && scanned < 2*maxRequestLen {
		b := zeros[:min(int64(len(zeros)), max(s.bulkLeft-2, 0))]
		if len(b) == 0 {
			b = []byte(next)
			next = "\r\n$536870912\r\n"
		}
		var n int
		var end bool
		n, end, err = s.scan(b)
		require.False(t, end)
		scanned += int64(n)
	}
	require.ErrorIs(t, err, errRequestTooLarge)
	require.InDelta(t, maxRequestLen, scanned, 2<<20)
}

// chunkConn is a net.Conn whose Read returns data a few bytes at a time.
type chunkConn struct {
	net.Conn // nil: only Read is called
	data     []byte
	chunk    int
}

func (c *chunkConn) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	n := copy(p[:min(len(p), c.chunk)], c.data)
	c.data = c.data[n:]
	return n, nil
}

// modelRequests splits in into requests by requestScanner's rules, the
// simple way, with all of in at hand: the whole requests before the
// first error, each with its arguments (nil for an inline request), and
// the error (nil if in ends in a request or part of one).
func modelRequests(in []byte, maxBulkLen int64) (reqs []string, args [][]string, err error) {
	// line is the line at in[pos:] up to '\r' and the byte after it.
	line := func(pos int, tooBig string) (l []byte, lf byte, ok bool, err error) {
		i := bytes.IndexByte(in[pos:], '\r')
		switch {
		case i > maxInlineLen || i < 0 && len(in)-pos > maxInlineLen:
			return nil, 0, false, protocolError(tooBig)
		case i < 0 || pos+i+1 == len(in):
			return nil, 0, false, nil
		}
		return in[pos : pos+i], in[pos+i+1], true, nil
	}
	for pos := 0; pos < len(in); {
		start := pos
		if in[pos] != '*' {
			i := bytes.IndexByte(in[pos:], '\n')
			if i > maxInlineLen || i < 0 && len(in)-pos > maxInlineLen {
				return reqs, args, protocolError("too big inline request")
			}
			if i < 0 {
				return reqs, args, nil
			}
			pos += i + 1
			reqs, args = append(reqs, string(in[start:pos])), append(args, nil)
			continue
		}
		l, lf, ok, err := line(pos, "too big mbulk count string")
		if !ok {
			return reqs, args, err
		}
		count, ok := parseInt(l[1:])
		if lf != '\n' || !ok || count > maxMultibulkLen {
			return reqs, args, protocolError("invalid multibulk length")
		}
		pos += len(l) + 2
		req := []string{}
		for range count {
			l, lf, ok, err := line(pos, "too big bulk count string")
			if !ok {
				return reqs, args, err
			}
			if len(l) == 0 || l[0] != '$' {
				got := "' '"
				if len(l) > 0 && l[0] != '\n' {
					got = "'" + string(l[:1]) + "'"
				}
				return reqs, args, protocolError("expected '$', got " + got)
			}
			n, ok := parseInt(l[1:])
			if lf != '\n' || !ok || n < 0 || n > maxBulkLen {
				return reqs, args, protocolError("invalid bulk length")
			}
			pos += len(l) + 2
			if crlf := in[min(pos+int(n), len(in)):min(pos+int(n)+2, len(in))]; !bytes.HasPrefix([]byte("\r\n"), crlf) {
				return reqs, args, protocolError("invalid bulk length")
			}
			if int64(len(in)-pos) < n+2 {
				return reqs, args, nil
			}
			req = append(req, string(in[pos:pos+int(n)]))
			pos += int(n) + 2
		}
		reqs, args = append(reqs, string(in[start:pos])), append(args, req)
	}
	return reqs, args, nil
}

// FuzzRequestConn checks requestConn against modelRequests, with the
// input arriving in pieces of any size, and that redcon parses what it
// hands on without failing: each multibulk request into its arguments.
func FuzzRequestConn(f *testing.F) {
	for _, tc := range protocolCases {
		if len(tc.in) < 1000 {
			f.Add([]byte(tc.in), uint8(3))
		}
	}
	for _, s := range []string{"*0\r\n*-1\r\nPING\r\n", "*2\r\n$3\r\nGET\r\n$1\r\nk\r\nSET k \"a b\"\r\n", "\r\n\n  \r\n*1\r\n$0\r\n\r\n",
		"*1\r\n\r\n", "*1\r\n$\n\r\n", "PING 'a\r\n"} {
		f.Add([]byte(s), uint8(1))
	}
	f.Fuzz(func(t *testing.T, in []byte, chunk uint8) {
		const maxBulkLen = 1 << 20
		wantReqs, wantArgs, wantErr := modelRequests(in, maxBulkLen)
		c := newRequestConn(&chunkConn{data: in, chunk: int(chunk%64) + 1}, maxBulkLen)
		c.answer = false // nothing to write to
		var handed []byte
		var err error
		for p := make([]byte, int(chunk%16)+1); err == nil; {
			var n int
			n, err = c.Read(p)
			handed = append(handed, p[:n]...)
		}
		if wantErr == nil {
			wantErr = io.EOF
		}
		if !errors.Is(err, wantErr) && err != wantErr {
			t.Fatalf("error %v, want %v", err, wantErr)
		}
		var want []byte
		for i, r := range wantReqs {
			if wantArgs[i] != nil && len(wantArgs[i]) == 0 {
				r = strings.Repeat(" ", len(r)-2) + "\r\n" // ignored, handed on as a blank line
			}
			want = append(want, r...)
		}
		if !bytes.Equal(handed, want) {
			t.Fatalf("handed on %q, want %q", handed, want)
		}

		for i, r := range wantReqs {
			if len(wantArgs[i]) == 0 {
				continue
			}
			cmd, err := redcon.Parse([]byte(r))
			if err != nil {
				t.Fatalf("redcon.Parse(%q): %v", r, err)
			}
			if len(cmd.Args) != len(wantArgs[i]) {
				t.Fatalf("redcon.Parse(%q) = %q, want %q", r, cmd.Args, wantArgs[i])
			}
			for j, a := range cmd.Args {
				if string(a) != wantArgs[i][j] {
					t.Fatalf("redcon.Parse(%q) = %q, want %q", r, cmd.Args, wantArgs[i])
				}
			}
		}
		// As the server reads them: inline requests may be refused for
		// their quotes, nothing else.
		rd := redcon.NewReader(bytes.NewReader(handed))
		for {
			_, err := rd.ReadCommand()
			if err == io.EOF {
				break
			}
			if err != nil {
				if !strings.Contains(err.Error(), "unbalanced quotes") {
					t.Fatalf("redcon: %v, reading %q", err, handed)
				}
				break
			}
		}
	})
}
