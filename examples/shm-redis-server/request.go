package main

import (
	"bytes"
	"errors"
	"net"
	"time"
)

// Requests are bounded here, before redcon parses them: redcon's parser
// panics on a bulk length near 2^63 (its end overflows), counts up to any
// multibulk count however few bytes follow (2^63 takes forever, after the
// client has left), buffers an inline request without end, and parses a
// request again from its start each time more of it arrives. So each
// client's conn is a requestConn, which hands redcon only whole requests
// within Redis's limits, found in one pass, and answers any other with
// Redis's protocol error and closes the connection, as Redis does.

// The limits, Redis's own.
const (
	// maxMultibulkLen bounds the elements of a request. Redis 6 has the
	// same limit; Redis 7 allows 2^31-1. Each element costs this server
	// some 40 bytes of argument tables however short it is on the wire
	// (6 bytes at least), so the Redis 6 limit is kept.
	maxMultibulkLen = 1 << 20
	// defaultMaxBulkLen bounds one bulk string: Redis's proto-max-bulk-len
	// default. The -proto-max-bulk-len flag sets another.
	defaultMaxBulkLen = 512 << 20
	// maxInlineLen bounds an inline request's line (Redis's
	// PROTO_INLINE_MAX_SIZE), and the "*<count>" and "$<length>" lines.
	// Redis takes a longer inline line if all of it arrives in one read;
	// here it is refused however it arrives.
	maxInlineLen = 64 << 10
	// maxRequestLen bounds the bytes of one request: Redis's
	// client-query-buffer-limit default. Past it the client is closed
	// without a reply, as by Redis.
	maxRequestLen = 1 << 30
)

// protocolError is a request that breaks RESP or the limits. Its client
// gets "-ERR " and its text, and is disconnected.
type protocolError string

func (e protocolError) Error() string { return "Protocol error: " + string(e) }

// reply is the error reply to the client.
func (e protocolError) reply() string { return "ERR " + e.Error() }

// errRequestTooLarge is a request longer than maxRequestLen.
var errRequestTooLarge = errors.New("redis-server: request larger than the query buffer limit")

// scanState is where a requestScanner is in a request.
type scanState uint8

const (
	atRequest  scanState = iota // the next byte begins a request
	inInline                    // an inline request's line, up to its '\n'
	inHeader                    // a "*<count>" or "$<length>" line, up to its '\r'
	atHeaderLF                  // the '\n' after a header line's '\r'
	inBulk                      // a bulk string and its CRLF
)

// requestScanner finds where requests end in a client's byte stream and
// checks them against the limits, keeping its place between calls, so
// that bytes arriving a few at a time are each looked at once. It follows
// redis-server 7.0's processInlineBuffer and processMultibulkBuffer, but
// requires the CRLF that ends a header line or a bulk string, which Redis
// skips unread (as redcon requires it).
type requestScanner struct {
	maxBulkLen int64 // immutable

	state    scanState
	size     int64    // bytes of the request so far
	counting bool     // the header line is the multibulk's "*<count>", not a bulk string's
	line     int      // bytes of the inline or header line so far
	header   [22]byte // a header line's first bytes: '*' or '$', then its number (20 bytes at most)
	elems    int64    // bulk strings of the multibulk still to come, the current one included
	bulkLeft int64    // bytes of the current bulk string still to come, its CRLF included
	empty    bool     // the request that ended has a count of 0 or less: Redis ignores it
}

// scan scans on through b, which follows the bytes scanned before, and
// stops just after the end of a request if one ends in b. It returns the
// bytes it took and whether a request ended there, or the first error.
func (s *requestScanner) scan(b []byte) (n int, end bool, err error) {
	if s.state == atRequest && len(b) > 0 {
		s.size, s.line, s.empty = 0, 0, false
		s.state = inInline
		if b[0] == '*' {
			s.state, s.counting = inHeader, true
		}
	}
	for n < len(b) && !end && err == nil {
		var k int
		switch s.state {
		case inInline:
			k, end, err = s.scanInline(b[n:])
		case inHeader:
			k, err = s.scanHeader(b[n:])
		case atHeaderLF:
			k, end, err = s.endHeader(b[n])
		case inBulk:
			k, end, err = s.scanBulk(b[n:])
		}
		n += k
	}
	if s.size += int64(n); s.size > maxRequestLen && err == nil {
		err = errRequestTooLarge
	}
	return n, end, err
}

func (s *requestScanner) scanInline(b []byte) (n int, end bool, err error) {
	i := bytes.IndexByte(b, '\n')
	if i < 0 {
		i = len(b)
	} else {
		end = true
		s.state = atRequest
	}
	if s.line += i; s.line > maxInlineLen {
		return 0, false, protocolError("too big inline request")
	}
	if end {
		return i + 1, true, nil
	}
	return i, false, nil
}

func (s *requestScanner) scanHeader(b []byte) (n int, err error) {
	i := bytes.IndexByte(b, '\r')
	if i < 0 {
		i = len(b)
	}
	if s.line < len(s.header) {
		copy(s.header[s.line:], b[:i])
	}
	if s.line += i; s.line > maxInlineLen {
		if s.counting {
			return 0, protocolError("too big mbulk count string")
		}
		return 0, protocolError("too big bulk count string")
	}
	if i < len(b) {
		s.state = atHeaderLF
		return i + 1, nil
	}
	return i, nil
}

// endHeader checks the byte after a header line's '\r', and the line.
func (s *requestScanner) endHeader(lf byte) (n int, end bool, err error) {
	number, ok := parseInt(s.header[1:max(1, min(s.line, len(s.header)))])
	if s.counting {
		switch {
		case lf != '\n' || !ok || number > maxMultibulkLen:
			return 0, false, protocolError("invalid multibulk length")
		case number <= 0:
			s.empty = true
			s.state = atRequest
			return 1, true, nil
		}
		s.elems = number
		s.state, s.counting, s.line = inHeader, false, 0
		return 1, false, nil
	}
	switch first := s.header[0]; {
	case s.line == 0 || first != '$':
		// Redis's message shows the byte; a line break would end it.
		if s.line == 0 || first == '\n' {
			first = ' '
		}
		return 0, false, protocolError("expected '$', got '" + string([]byte{first}) + "'")
	case lf != '\n' || !ok || number < 0 || number > s.maxBulkLen:
		return 0, false, protocolError("invalid bulk length")
	}
	s.bulkLeft = number + 2
	s.state = inBulk
	return 1, false, nil
}

func (s *requestScanner) scanBulk(b []byte) (n int, end bool, err error) {
	if s.bulkLeft > 2 {
		n := int(min(s.bulkLeft-2, int64(len(b))))
		s.bulkLeft -= int64(n)
		return n, false, nil
	}
	if b[0] != "\r\n"[2-s.bulkLeft] {
		return 0, false, protocolError("invalid bulk length")
	}
	if s.bulkLeft--; s.bulkLeft > 0 {
		return 1, false, nil
	}
	if s.elems--; s.elems == 0 {
		s.state = atRequest
		return 1, true, nil
	}
	s.state, s.line = inHeader, 0
	return 1, false, nil
}

// Buffer sizes of a requestConn.
const (
	minReadSize = 16 << 10 // room a read has at least
	maxIdleBuf  = 64 << 10 // larger buffers are let go of when empty
)

// protocolErrorWriteTimeout bounds the write of a protocol error's reply:
// the client may not be reading.
const protocolErrorWriteTimeout = time.Second

// requestConn is a client's conn as redcon reads it: Read hands on only
// whole requests within the limits, and after them the error that ends
// reading. Read is called by one goroutine at a time (redcon's handler,
// or serveSubscriber once the client is detached).
type requestConn struct {
	net.Conn

	scan requestScanner
	// buf holds what was read: [start, ready) whole requests not yet
	// handed on, [ready, len) the request still arriving.
	buf          []byte
	start, ready int
	err          error // ends reading once [start, ready) is handed on
	// answer makes Read write a protocolError's reply itself. It is set
	// while redcon's handler reads, which flushes every reply before it
	// reads again, so the error follows the replies to the requests
	// before it; a detached client's replies are queued, and so is its
	// protocol error (serveSubscriber).
	answer bool
}

func newRequestConn(c net.Conn, maxBulkLen int64) *requestConn {
	return &requestConn{Conn: c, scan: requestScanner{maxBulkLen: maxBulkLen}, answer: true}
}

// Read hands on whole requests; once none is left and reading has ended,
// it returns why: the conn's error, a protocolError, or
// errRequestTooLarge.
func (c *requestConn) Read(p []byte) (int, error) {
	for c.start == c.ready {
		if c.err != nil {
			c.answerError()
			return 0, c.err
		}
		c.fill()
	}
	n := copy(p, c.buf[c.start:c.ready])
	c.start += n
	return n, nil
}

// fill reads once from the conn and scans what came.
func (c *requestConn) fill() {
	c.makeRoom()
	from := len(c.buf)
	n, err := c.Conn.Read(c.buf[from:cap(c.buf)])
	c.buf = c.buf[:from+n]
	for from < len(c.buf) {
		k, end, serr := c.scan.scan(c.buf[from:])
		from += k
		if serr != nil {
			c.err = serr
			c.buf = c.buf[:c.ready] // what follows a bad request is never run
			return
		}
		if end {
			if c.scan.empty {
				// Redis ignores "*0" and negative counts, which redcon
				// refuses; spaces before the CRLF make an empty inline
				// request, which both ignore.
				for i := c.ready; i < from-2; i++ {
					c.buf[i] = ' '
				}
			}
			c.ready = from
		}
	}
	if err != nil {
		c.err = err
	}
}

// makeRoom makes room for a read of at least minReadSize after the bytes
// not yet handed on, moving them to the front or growing the buffer
// (doubling it, so a request of n bytes is copied O(n) times in all).
func (c *requestConn) makeRoom() {
	if c.start == len(c.buf) {
		c.start, c.ready = 0, 0
		c.buf = c.buf[:0]
		if cap(c.buf) > maxIdleBuf {
			c.buf = nil
		}
	}
	if cap(c.buf)-len(c.buf) >= minReadSize {
		return
	}
	kept := c.buf[c.start:]
	buf := c.buf[:0]
	if len(kept)+minReadSize > cap(c.buf)/2 {
		buf = make([]byte, 0, max(2*cap(c.buf), len(kept)+minReadSize))
	}
	c.buf = append(buf, kept...)
	c.ready -= c.start
	c.start = 0
}

// answerError writes a protocolError's reply, once, if Read is to.
func (c *requestConn) answerError() {
	var pe protocolError
	if !c.answer || !errors.As(c.err, &pe) {
		return
	}
	c.answer = false
	c.Conn.SetWriteDeadline(time.Now().Add(protocolErrorWriteTimeout))
	c.Conn.Write([]byte("-" + pe.reply() + "\r\n")) // it is disconnected next, whether this was written or not
}

// requestListener gives redcon each accepted conn as a requestConn.
type requestListener struct {
	net.Listener
	maxBulkLen int64
}

func (ln requestListener) Accept() (net.Conn, error) {
	c, err := ln.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return newRequestConn(c, ln.maxBulkLen), nil
}
