package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
)

// Redis's own bounds on a request (server.h, networking.c).
const (
	maxInline         = 64 << 10 // PROTO_INLINE_MAX_SIZE: an inline request, or a count line
	maxMultibulk      = 1 << 20  // elements of one request
	maxUnauthMultiLen = 10       // elements before AUTH, where AUTH is required
	maxUnauthBulkLen  = 16384    // bytes of one argument before AUTH
)

// protoError is a request Redis would answer with "-ERR Protocol error:
// ..." and then close the connection.
type protoError string

func (e protoError) Error() string { return "Protocol error: " + string(e) }

// errQueryLimit: a request larger than client-query-buffer-limit; Redis
// closes such a client without a reply.
var errQueryLimit = errors.New("request exceeds client-query-buffer-limit")

// limits bound one request.
type limits struct {
	maxBulk  int64 // proto-max-bulk-len
	maxQuery int64 // client-query-buffer-limit
	unauth   bool  // the client must still AUTH: Redis's tighter bounds apply
}

// command is one request's arguments, laid end to end in data (the layout
// the C side takes): argument i is data[ends[i-1]:ends[i]].
type command struct {
	data []byte
	ends []int
}

func (c *command) argc() int { return len(c.ends) }

func (c *command) arg(i int) []byte {
	start := 0
	if i > 0 {
		start = c.ends[i-1]
	}
	return c.data[start:c.ends[i]]
}

// reset empties c for reuse, keeping its memory unless a large request
// grew it (an idle conn should not hold a large buffer).
func (c *command) reset() {
	if cap(c.data) > maxKeptRequest {
		c.data = nil
	}
	if cap(c.ends) > 1024 {
		c.ends = nil
	}
	c.data, c.ends = c.data[:0], c.ends[:0]
}

// maxKeptRequest: a conn keeps a request's buffer for the next if it is no
// larger.
const maxKeptRequest = 64 << 10

// sub is the command of c's arguments from to to (sharing c's data).
func (c *command) sub(from, to int) *command {
	s := &command{ends: make([]int, 0, to-from)}
	start := 0
	if from > 0 {
		start = c.ends[from-1]
	}
	s.data = c.data[start:c.ends[to-1]]
	for _, end := range c.ends[from:to] {
		s.ends = append(s.ends, end-start)
	}
	return s
}

func (c *command) clone() *command {
	return &command{data: bytes.Clone(c.data), ends: append([]int(nil), c.ends...)}
}

func (c *command) push(b []byte) {
	c.data = append(c.data, b...)
	c.ends = append(c.ends, len(c.data))
}

// readCommand reads one request, multibulk or inline, within lim, into
// cmd (reset first; nil: a new one). Empty requests (an empty line, "*0")
// are skipped, as Redis skips them. A malformed or oversized one returns a
// protoError.
func readCommand(r *bufio.Reader, lim limits, cmd *command) (*command, error) {
	if cmd == nil {
		cmd = &command{}
	}
	for {
		cmd.reset()
		if readBuffered(r, lim, cmd) {
			return cmd, nil
		}
		cmd.reset()
		b, err := r.Peek(1)
		if err != nil {
			return nil, err
		}
		if b[0] == '*' {
			err = readMultibulk(r, lim, cmd)
		} else {
			err = readInline(r, cmd)
		}
		if err != nil {
			return nil, err
		}
		if cmd.argc() > 0 {
			return cmd, nil
		}
	}
}

// readBuffered reads a multibulk request that lies whole in r's buffer,
// well formed and within lim, in one pass over the buffer (the usual case
// of a pipeline). false leaves r as it was, and cmd partly filled: the
// request is incomplete, empty or something readMultibulk must judge
// (an error, a line ending in a bare "\n").
func readBuffered(r *bufio.Reader, lim limits, cmd *command) bool {
	buf, _ := r.Peek(r.Buffered())
	n, i, ok := bufferedCount(buf, 0, '*')
	if !ok || n < 1 || n > maxMultibulk || lim.unauth && n > maxUnauthMultiLen {
		return false
	}
	for range n {
		size, j, ok := bufferedCount(buf, i, '$')
		if !ok || size < 0 || size > lim.maxBulk || lim.unauth && size > maxUnauthBulkLen ||
			int64(len(cmd.data))+size > lim.maxQuery || int64(len(buf)-j) < size+2 {
			return false
		}
		cmd.data = append(cmd.data, buf[j:j+int(size)]...)
		cmd.ends = append(cmd.ends, len(cmd.data))
		i = j + int(size) + 2 // Redis skips the two bytes after a bulk unchecked
	}
	r.Discard(i)
	return true
}

// bufferedCount parses a count line ("*3\r\n", "$5\r\n") at buf[i:] that
// starts with prefix, and gives the index after it. false: no such line
// whole in buf, or one that is not plain: a sign, a leading zero, more
// than 18 digits, a bare "\n" (parseInt and readLine judge those).
func bufferedCount(buf []byte, i int, prefix byte) (n int64, next int, ok bool) {
	if i >= len(buf) || buf[i] != prefix {
		return 0, 0, false
	}
	j := i + 1
	for ; j < len(buf) && j-i <= 18; j++ {
		ch := buf[j]
		if ch < '0' || ch > '9' {
			break
		}
		n = n*10 + int64(ch-'0')
	}
	digits := j - i - 1
	if digits == 0 || digits > 18 || (digits > 1 && buf[i+1] == '0') || j+1 >= len(buf) || buf[j] != '\r' ||
		buf[j+1] != '\n' {
		return 0, 0, false
	}
	return n, j + 2, true
}

// readLine reads a line ending in "\n" (without it, and without a "\r"
// before it) of at most max bytes; tooLong names a longer one. The line
// may lie in r's buffer: it is valid until the next read from r.
func readLine(r *bufio.Reader, max int, tooLong string) ([]byte, error) {
	chunk, err := r.ReadSlice('\n')
	if err == nil { // the usual case: a whole line in the buffer, no copy
		if len(chunk) > max+2 {
			return nil, protoError(tooLong)
		}
		return trimEOL(chunk), nil
	}
	line := bytes.Clone(chunk)
	for err == bufio.ErrBufferFull {
		// Redis refuses a line as soon as more than max bytes arrive
		// without its end; waiting for a newline instead could wait for
		// good, with the reader's buffer (max bytes) already full.
		if len(line) > max+2 || len(line) >= max && lineGoesOn(r) {
			return nil, protoError(tooLong)
		}
		chunk, err = r.ReadSlice('\n')
		line = append(line, chunk...)
	}
	if len(line) > max+2 {
		return nil, protoError(tooLong)
	}
	if err != nil {
		if err == io.EOF && len(line) > 0 {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return trimEOL(line), nil
}

// trimEOL drops a line's "\n", and a "\r" before it.
func trimEOL(line []byte) []byte {
	return bytes.TrimSuffix(line[:len(line)-1], []byte("\r"))
}

// lineGoesOn reports whether the next bytes of r continue a line rather
// than end it ("\n" or "\r\n"). It waits for one or two bytes.
func lineGoesOn(r *bufio.Reader) bool {
	b, err := r.Peek(1)
	if err != nil || b[0] == '\n' {
		return false
	}
	if b[0] != '\r' {
		return true
	}
	b, err = r.Peek(2)
	return err == nil && b[1] != '\n'
}

// parseInt is Redis's string2ll: an optional minus sign and decimal
// digits, no leading zeros, no spaces, within int64.
func parseInt(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 20 || (len(b) > 1 && b[0] == '0') || b[0] == '+' {
		return 0, false
	}
	neg := b[0] == '-'
	if neg && (len(b) == 1 || b[1] == '0') {
		return 0, false
	}
	if neg {
		b = b[1:]
	}
	// Accumulate the magnitude as uint64: it holds -math.MinInt64.
	var u uint64
	for _, ch := range b {
		if ch < '0' || ch > '9' || u > (math.MaxUint64-9)/10 {
			return 0, false
		}
		u = u*10 + uint64(ch-'0')
	}
	switch {
	case neg && u <= 1<<63:
		return -int64(u), true
	case !neg && u < 1<<63:
		return int64(u), true
	}
	return 0, false
}

func readMultibulk(r *bufio.Reader, lim limits, cmd *command) error {
	line, err := readLine(r, maxInline, "too big mbulk count string")
	if err != nil {
		return err
	}
	n, ok := parseInt(line[1:])
	switch {
	case !ok || n > maxMultibulk:
		return protoError("invalid multibulk length")
	case lim.unauth && n > maxUnauthMultiLen:
		return protoError("unauthenticated multibulk length")
	case n <= 0:
		return nil // Redis skips "*0" and "*-1"
	}
	if cap(cmd.ends) < int(min(n, 64)) {
		cmd.ends = make([]int, 0, min(n, 64))
	}
	for i := int64(0); i < n; i++ {
		if err := readBulk(r, lim, cmd); err != nil {
			return err
		}
	}
	return nil
}

func readBulk(r *bufio.Reader, lim limits, cmd *command) error {
	line, err := readLine(r, maxInline, "too big bulk count string")
	if err != nil {
		return err
	}
	if len(line) == 0 || line[0] != '$' {
		got := byte('\n')
		if len(line) > 0 {
			got = line[0]
		}
		return protoError(fmt.Sprintf("expected '$', got '%c'", got))
	}
	n, ok := parseInt(line[1:])
	switch {
	case !ok || n < 0 || n > lim.maxBulk:
		return protoError("invalid bulk length")
	case lim.unauth && n > maxUnauthBulkLen:
		return protoError("unauthenticated bulk length")
	case int64(len(cmd.data))+n > lim.maxQuery:
		return errQueryLimit
	}
	if int64(r.Buffered()) >= n+2 { // the usual case: the bulk and its CRLF are buffered
		b, _ := r.Peek(int(n))
		cmd.data = append(cmd.data, b...)
		cmd.ends = append(cmd.ends, len(cmd.data))
		_, err = r.Discard(int(n) + 2)
		return err
	}
	// Grow as bytes arrive, so that a length alone commits no memory.
	start := len(cmd.data)
	for int64(len(cmd.data)-start) < n {
		want := min(n-int64(len(cmd.data)-start), 1<<20)
		cmd.data = append(cmd.data, make([]byte, want)...)
		got := len(cmd.data) - int(want)
		if _, err := io.ReadFull(r, cmd.data[got:]); err != nil {
			return unexpected(err)
		}
	}
	cmd.ends = append(cmd.ends, len(cmd.data))
	_, err = r.Discard(2) // Redis skips the two bytes after a bulk unchecked
	return unexpected(err)
}

func unexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

func readInline(r *bufio.Reader, cmd *command) error {
	line, err := readLine(r, maxInline, "too big inline request")
	if err != nil {
		return err
	}
	args, ok := splitArgs(line)
	if !ok {
		return protoError("unbalanced quotes in request")
	}
	for _, a := range args {
		cmd.push(a)
	}
	return nil
}

// splitArgs splits an inline request as Redis's sdssplitargs does:
// arguments separated by blanks, "double quoted" with backslash escapes
// (\n \r \t \b \a \xHH), or 'single quoted' with only \' escaped.
func splitArgs(line []byte) ([][]byte, bool) {
	var args [][]byte
	i := 0
	for {
		for i < len(line) && isBlank(line[i]) {
			i++
		}
		if i == len(line) {
			return args, true
		}
		arg, next, ok := nextArg(line, i)
		if !ok {
			return nil, false
		}
		args, i = append(args, arg), next
	}
}

func isBlank(b byte) bool { return b == ' ' || b == '\n' || b == '\r' || b == '\t' || b == 0 }

func nextArg(line []byte, i int) (arg []byte, next int, ok bool) {
	arg = []byte{}
	var quote byte
	for ; i < len(line); i++ {
		c := line[i]
		switch {
		case quote == 0 && isBlank(c):
			return arg, i, true
		case quote == 0 && (c == '"' || c == '\''):
			quote = c
		case quote != 0 && c == quote:
			// A closing quote must be followed by a blank or the end.
			if i+1 < len(line) && !isBlank(line[i+1]) {
				return nil, 0, false
			}
			return arg, i + 1, true
		case quote == '"' && c == '\\' && i+1 < len(line):
			i++
			arg, i = appendEscape(arg, line, i)
		case quote == '\'' && c == '\\' && i+1 < len(line) && line[i+1] == '\'':
			i++
			arg = append(arg, '\'')
		default:
			arg = append(arg, c)
		}
	}
	return arg, i, quote == 0
}

func appendEscape(arg, line []byte, i int) ([]byte, int) {
	if line[i] == 'x' && i+2 < len(line) {
		if v, err := strconv.ParseUint(string(line[i+1:i+3]), 16, 8); err == nil {
			return append(arg, byte(v)), i + 2
		}
	}
	esc := map[byte]byte{'n': '\n', 'r': '\r', 't': '\t', 'b': '\b', 'a': '\a'}
	if e, ok := esc[line[i]]; ok {
		return append(arg, e), i
	}
	return append(arg, line[i]), i
}

// value is one RESP2 reply, as the module reads its own RM_Call replies
// (COMMAND INFO, CONFIG GET, ACL GETUSER).
type value struct {
	kind byte // '+', '-', ':', '$', '*'
	str  []byte
	num  int64
	arr  []value
	null bool
}

// parseValue parses one RESP2 value at the start of b.
func parseValue(b []byte) (v value, rest []byte, err error) {
	i := bytes.Index(b, []byte("\r\n"))
	if len(b) == 0 || i < 0 {
		return v, nil, errors.New("truncated reply")
	}
	v.kind, v.str, rest = b[0], b[1:i], b[i+2:]
	switch v.kind {
	case '+', '-':
		return v, rest, nil
	case ':':
		v.num, err = strconv.ParseInt(string(v.str), 10, 64)
		return v, rest, err
	case '$', '*':
		n, err := strconv.Atoi(string(v.str))
		if err != nil || n < 0 {
			v.null = true
			return v, rest, err
		}
		if v.kind == '$' {
			if len(rest) < n+2 {
				return v, nil, errors.New("truncated bulk")
			}
			v.str = rest[:n]
			return v, rest[n+2:], nil
		}
		v.arr = make([]value, n)
		for j := range v.arr {
			if v.arr[j], rest, err = parseValue(rest); err != nil {
				return v, nil, err
			}
		}
		return v, rest, nil
	}
	return v, nil, fmt.Errorf("unknown reply type %q", v.kind)
}
