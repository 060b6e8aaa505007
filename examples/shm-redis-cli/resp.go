package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// Kind is a reply type, named by its first byte on the wire.
type Kind byte

// The RESP2 reply types.
const (
	Status  Kind = '+'
	Error   Kind = '-'
	Integer Kind = ':'
	Bulk    Kind = '$'
	Array   Kind = '*'
)

// The types RESP3 adds, which a server uses after HELLO 3 (redis-cli -3).
const (
	Map       Kind = '%'
	Set       Kind = '~'
	Push      Kind = '>'
	Null      Kind = '_'
	Double    Kind = ','
	Boolean   Kind = '#'
	Verbatim  Kind = '='
	BigNumber Kind = '('
	Attribute Kind = '|' // metadata before a reply; ReadReply skips it
)

// Reply is one decoded reply.
type Reply struct {
	Kind  Kind
	Str   string  // Status, Error, Bulk, Double, BigNumber, Verbatim (without its "txt:" format)
	Int   int64   // Integer, and Boolean as 0 or 1
	Elems []Reply // Array, Set, Push, and Map as key, value, key, value ...
	Nil   bool    // the null Bulk ($-1), null Array (*-1) or RESP3 Null
}

// Limits on what ReadReply accepts, so a broken or hostile server cannot
// make the client allocate without bound: Redis's own proto-max-bulk-len,
// and a nesting depth no real reply comes near.
const (
	maxBulkLen = 512 << 20
	maxDepth   = 64
)

// errProtocol means the server sent something that is not RESP2.
var errProtocol = errors.New("redis-cli: protocol error")

// ReadReply reads one reply from r.
func ReadReply(r *bufio.Reader) (Reply, error) {
	return readReply(r, 0)
}

func readReply(r *bufio.Reader, depth int) (Reply, error) {
	if depth > maxDepth {
		return Reply{}, fmt.Errorf("%w: replies nested deeper than %d", errProtocol, maxDepth)
	}
	line, err := readLine(r)
	if err != nil {
		return Reply{}, err
	}
	if len(line) == 0 {
		return Reply{}, fmt.Errorf("%w: empty line", errProtocol)
	}
	rep := Reply{Kind: Kind(line[0])}
	body := line[1:]
	switch rep.Kind {
	case Status, Error, Double, BigNumber:
		rep.Str = string(body)
	case Null:
		rep.Nil = true
	case Boolean:
		switch string(body) {
		case "t":
			rep.Int = 1
		case "f":
		default:
			return Reply{}, fmt.Errorf("%w: boolean %q", errProtocol, body)
		}
	case Integer:
		if rep.Int, err = strconv.ParseInt(string(body), 10, 64); err != nil {
			return Reply{}, fmt.Errorf("%w: integer %q", errProtocol, body)
		}
	case Bulk, Verbatim:
		n, err := readLen(body, maxBulkLen)
		if err != nil || n < 0 {
			rep.Nil = true
			return rep, err
		}
		// Memory as the bytes arrive, not all at once on a length the
		// server claims.
		var b bytes.Buffer
		if _, err := io.CopyN(&b, r, int64(n)+2); err != nil {
			return Reply{}, noEOF(err)
		}
		buf := b.Bytes()
		if buf[n] != '\r' || buf[n+1] != '\n' {
			return Reply{}, fmt.Errorf("%w: bulk string not followed by CRLF", errProtocol)
		}
		rep.Str = string(buf[:n])
		if rep.Kind == Verbatim {
			if len(rep.Str) < 4 || rep.Str[3] != ':' {
				return Reply{}, fmt.Errorf("%w: verbatim string without a format", errProtocol)
			}
			rep.Str = rep.Str[4:]
		}
	case Array, Set, Push, Map, Attribute:
		n, err := readLen(body, 1<<30-1)
		if err != nil || n < 0 {
			rep.Nil = true
			return rep, err
		}
		if rep.Kind == Map || rep.Kind == Attribute {
			n *= 2
		}
		// Grow as elements arrive rather than trusting the count.
		rep.Elems = make([]Reply, 0, min(n, 1024))
		for range n {
			e, err := readReply(r, depth+1)
			if err != nil {
				return Reply{}, noEOF(err)
			}
			rep.Elems = append(rep.Elems, e)
		}
		if rep.Kind == Attribute { // metadata about the reply that follows
			return readReply(r, depth+1)
		}
	default:
		return Reply{}, fmt.Errorf("%w: unexpected reply type %q", errProtocol, line[0])
	}
	return rep, nil
}

// readLine reads a CRLF-terminated line and returns it without the CRLF.
func readLine(r *bufio.Reader) ([]byte, error) {
	line, err := r.ReadSlice('\n')
	switch {
	case err == bufio.ErrBufferFull:
		return nil, fmt.Errorf("%w: line longer than %d bytes", errProtocol, r.Size())
	case err != nil:
		if len(line) > 0 {
			err = noEOF(err)
		}
		return nil, err
	case len(line) < 2 || line[len(line)-2] != '\r':
		return nil, fmt.Errorf("%w: line not ended by CRLF", errProtocol)
	}
	return line[:len(line)-2], nil
}

// readLen parses a bulk or array length: -1 for null, else 0 to limit.
func readLen(b []byte, limit int) (int, error) {
	n, err := strconv.Atoi(string(b))
	if err != nil || n < -1 || n > limit {
		return 0, fmt.Errorf("%w: length %q", errProtocol, b)
	}
	return n, nil
}

// noEOF turns an end of stream inside a reply into io.ErrUnexpectedEOF.
func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// AppendCommand appends args as a RESP array of bulk strings, the form
// every command takes on the wire.
func AppendCommand(b []byte, args ...string) []byte {
	b = append(b, '*')
	b = strconv.AppendInt(b, int64(len(args)), 10)
	b = append(b, '\r', '\n')
	for _, a := range args {
		b = append(b, '$')
		b = strconv.AppendInt(b, int64(len(a)), 10)
		b = append(b, '\r', '\n')
		b = append(b, a...)
		b = append(b, '\r', '\n')
	}
	return b
}

// AppendReply appends rep in RESP2. It is ReadReply's inverse.
func AppendReply(b []byte, rep Reply) []byte {
	b = append(b, byte(rep.Kind))
	switch rep.Kind {
	case Status, Error:
		b = append(b, rep.Str...)
	case Integer:
		b = strconv.AppendInt(b, rep.Int, 10)
	case Bulk:
		if rep.Nil {
			return append(b, "-1\r\n"...)
		}
		b = strconv.AppendInt(b, int64(len(rep.Str)), 10)
		b = append(b, '\r', '\n')
		b = append(b, rep.Str...)
	case Array:
		if rep.Nil {
			return append(b, "-1\r\n"...)
		}
		b = strconv.AppendInt(b, int64(len(rep.Elems)), 10)
		b = append(b, '\r', '\n')
		for _, e := range rep.Elems {
			b = AppendReply(b, e)
		}
		return b
	}
	return append(b, '\r', '\n')
}
