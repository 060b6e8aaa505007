package main

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strconv"
	"testing"
)

// FuzzReadCommand feeds arbitrary bytes to the request parser, which reads
// what a peer sends before anything reaches redis-server. It must never
// panic, never hand on more argument bytes than it read, and every
// request it accepts must survive a round trip through RESP: encoded as a
// multibulk and read again, it is the same request.
func FuzzReadCommand(f *testing.F) {
	for _, s := range []string{
		"*1\r\n$4\r\nPING\r\n",
		"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n",
		"PING\r\n",
		"set k \"a\\x41\\n\" 'it\\'s'\r\n",
		"*9223372036854775807\r\n",
		"*1\r\n$9223372036854775807\r\n",
		"*-1\r\n*0\r\n\r\n",
		"*1\r\n+x\r\n",
		"\"unbalanced\r\n",
		"*2\r\n$3\r\nGET\r\n$1\r\nkXY*1\r\n$-1\r\n",
		"*1\r\n$1\nx\r\n",
		"*2\r\n$20\r\n0123456789012345678\r\n",
	} {
		f.Add([]byte(s))
	}
	lim := limits{maxBulk: 1 << 16, maxQuery: 1 << 20}
	f.Fuzz(func(t *testing.T, in []byte) {
		checkBufferedLikeMultibulk(t, in, lim)
		checkBufferedLikeMultibulk(t, in, limits{maxBulk: 8, maxQuery: 32, unauth: true})
		r := bufio.NewReader(bytes.NewReader(in))
		argBytes := 0
		var reused *command
		for {
			cmd, err := readCommand(r, lim, reused)
			if err != nil {
				checkReadError(t, err)
				return
			}
			if cmd.argc() == 0 {
				t.Fatal("an empty request was handed on")
			}
			argBytes += len(cmd.data)
			if argBytes > len(in) {
				t.Fatalf("%d argument bytes from %d input bytes", argBytes, len(in))
			}
			again, err := readCommand(bufio.NewReader(bytes.NewReader(encodeCommand(cmd))), lim, nil)
			if err != nil {
				t.Fatalf("re-encoded request refused: %v", err)
			}
			if !bytes.Equal(again.data, cmd.data) || !equalInts(again.ends, cmd.ends) {
				t.Fatalf("round trip changed the request: %q %v, then %q %v", cmd.data, cmd.ends, again.data, again.ends)
			}
			reused = cmd
		}
	})
}

// checkBufferedLikeMultibulk fails t unless readBuffered, where it takes a
// request, takes the same one as readMultibulk and leaves the same bytes
// unread.
func checkBufferedLikeMultibulk(t *testing.T, in []byte, lim limits) {
	fast := bufio.NewReader(bytes.NewReader(in))
	fast.Peek(1) // fill the buffer
	var got command
	if !readBuffered(fast, lim, &got) {
		return
	}
	slow := bufio.NewReader(bytes.NewReader(in))
	var want command
	if err := readMultibulk(slow, lim, &want); err != nil {
		t.Fatalf("readBuffered took %q %v, readMultibulk refused it: %v", got.data, got.ends, err)
	}
	if !bytes.Equal(got.data, want.data) || !equalInts(got.ends, want.ends) || fast.Buffered() != slow.Buffered() {
		t.Fatalf("readBuffered took %q %v leaving %d bytes, readMultibulk %q %v leaving %d", got.data, got.ends,
			fast.Buffered(), want.data, want.ends, slow.Buffered())
	}
}

// checkReadError fails t unless err is one readCommand may return: the
// end of the input, or a protocol error Redis would answer.
func checkReadError(t *testing.T, err error) {
	var pe protoError
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.As(err, &pe), errors.Is(err, errQueryLimit):
	default:
		t.Fatalf("unexpected error %v", err)
	}
}

func encodeCommand(cmd *command) []byte {
	b := []byte("*" + strconv.Itoa(cmd.argc()) + "\r\n")
	for i := 0; i < cmd.argc(); i++ {
		a := cmd.arg(i)
		b = append(b, "$"+strconv.Itoa(len(a))+"\r\n"...)
		b = append(append(b, a...), "\r\n"...)
	}
	return b
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestEmptyRequestsSkipped: Redis skips "*0", "*-1" and blank lines and
// answers the next request; the module must too (a negative count once
// panicked the parser, which would take redis-server down with it).
func TestEmptyRequestsSkipped(t *testing.T) {
	s := startServer(t, serverSpec{})
	for _, c := range []*rawConn{s.plainConn(), s.shmConn()} {
		c.send([]byte("*0\r\n*-1\r\n*-5\r\n\r\n*1\r\n$4\r\nPING\r\n"))
		if r := c.read(); r != "+PONG\r\n" {
			t.Fatalf("PING after empty requests: %q", r)
		}
	}
}

// TestReadCommandAllocs: a pipelined request read into a reused command
// allocates nothing (readBuffered's path, and the line reader's for a
// request split across the buffer's end).
func TestReadCommandAllocs(t *testing.T) {
	var in []byte
	for range 2000 {
		in = append(in, "*2\r\n$3\r\nGET\r\n$15\r\nshmconn:latency\r\n"...)
	}
	r := bufio.NewReaderSize(bytes.NewReader(in), 4096) // 4096 is no multiple of the request's 39 bytes
	lim := limits{maxBulk: 512 << 20, maxQuery: 1 << 30}
	var cmd command
	readCommand(r, lim, &cmd) // grows cmd once
	allocs := testing.AllocsPerRun(1000, func() {
		if _, err := readCommand(r, lim, &cmd); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("%v allocations per request", allocs)
	}
	if string(cmd.arg(0)) != "GET" || string(cmd.arg(1)) != "shmconn:latency" {
		t.Errorf("last request read: %q", cmd.data)
	}
}
