package main

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"reflect"
	"runtime"
	"strings"
	"testing"
)

func TestReadReply(t *testing.T) {
	for _, tc := range []struct {
		wire string
		want Reply
	}{
		{"+OK\r\n", Reply{Kind: Status, Str: "OK"}},
		{"-ERR bad thing\r\n", Reply{Kind: Error, Str: "ERR bad thing"}},
		{":-42\r\n", Reply{Kind: Integer, Int: -42}},
		{"$5\r\nhe\r\no\r\n", Reply{Kind: Bulk, Str: "he\r\no"}},
		{"$0\r\n\r\n", Reply{Kind: Bulk, Str: ""}},
		{"$-1\r\n", Reply{Kind: Bulk, Nil: true}},
		{"*-1\r\n", Reply{Kind: Array, Nil: true}},
		{"*0\r\n", Reply{Kind: Array, Elems: []Reply{}}},
		{"*2\r\n*1\r\n:1\r\n$1\r\nx\r\n", Reply{Kind: Array, Elems: []Reply{
			{Kind: Array, Elems: []Reply{{Kind: Integer, Int: 1}}},
			{Kind: Bulk, Str: "x"},
		}}},
	} {
		r := bufio.NewReader(strings.NewReader(tc.wire + "+next\r\n"))
		got, err := ReadReply(r)
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ReadReply(%q) = %+v, %v; want %+v", tc.wire, got, err, tc.want)
			continue
		}
		if next, err := ReadReply(r); err != nil || next.Str != "next" {
			t.Errorf("after %q: read %+v, %v; want the next reply", tc.wire, next, err)
		}
		if back := string(AppendReply(nil, got)); back != tc.wire && tc.wire != "*0\r\n" {
			t.Errorf("AppendReply(ReadReply(%q)) = %q", tc.wire, back)
		}
	}
}

func TestReadReplyErrors(t *testing.T) {
	for _, tc := range []struct {
		wire string
		want error
	}{
		{"", io.EOF},
		{"+OK", io.ErrUnexpectedEOF},
		{"+OK\n", errProtocol},
		{"\r\n", errProtocol},
		{"?what\r\n", errProtocol},
		{":12x\r\n", errProtocol},
		{"$3\r\nab", io.ErrUnexpectedEOF},
		{"$3\r\nabcd\r\n", errProtocol},
		{"$-2\r\n", errProtocol},
		{"$x\r\n", errProtocol},
		{"$1000000000\r\n", errProtocol},
		{"*2\r\n:1\r\n", io.ErrUnexpectedEOF},
		{"*-5\r\n", errProtocol},
		{strings.Repeat("*1\r\n", maxDepth+2) + ":1\r\n", errProtocol},
		{"+" + strings.Repeat("x", 70<<10) + "\r\n", errProtocol},
	} {
		_, err := ReadReply(bufio.NewReaderSize(strings.NewReader(tc.wire), 64<<10))
		if !errors.Is(err, tc.want) {
			name := tc.wire
			if len(name) > 40 {
				name = name[:40] + "..."
			}
			t.Errorf("ReadReply(%q) error = %v, want %v", name, err, tc.want)
		}
	}
}

func TestAppendCommand(t *testing.T) {
	got := string(AppendCommand(nil, "SET", "k", "a b\r\n"))
	if want := "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\na b\r\n\r\n"; got != want {
		t.Fatalf("AppendCommand = %q, want %q", got, want)
	}
}

// FuzzReadReply checks that any input either fails or decodes into a
// reply that encodes back to exactly the bytes consumed.
func FuzzReadReply(f *testing.F) {
	for _, s := range []string{"+OK\r\n", "-ERR x\r\n", ":1\r\n", "$3\r\nabc\r\n", "$-1\r\n", "*-1\r\n",
		"*2\r\n$1\r\na\r\n*1\r\n:2\r\n", "*1\r\n*1\r\n*1\r\n$0\r\n\r\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		br := bufio.NewReader(bytes.NewReader(data))
		rep, err := ReadReply(br)
		if err != nil {
			return
		}
		if !resp2(rep) {
			return // AppendReply writes RESP2 only
		}
		consumed := len(data) - br.Buffered()
		if got := AppendReply(nil, rep); !bytes.Equal(got, data[:consumed]) {
			// Integers may be written differently ("+1", "01") than
			// AppendReply writes them; anything else must round-trip.
			again, err := ReadReply(bufio.NewReader(bytes.NewReader(got)))
			if err != nil || !reflect.DeepEqual(again, rep) {
				t.Fatalf("%q decoded to %+v, which encodes to %q and decodes to %+v, %v", data[:consumed], rep, got, again, err)
			}
		}
	})
}

// resp2 reports whether rep and its elements are of RESP2's kinds.
func resp2(rep Reply) bool {
	switch rep.Kind {
	case Status, Error, Integer, Bulk:
		return true
	case Array:
		for _, e := range rep.Elems {
			if !resp2(e) {
				return false
			}
		}
		return true
	}
	return false
}

// TestReadReplyAllocatesAsBytesArrive: a bulk length the server claims
// costs memory only as the bytes arrive, not all at once.
func TestReadReplyAllocatesAsBytesArrive(t *testing.T) {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := ReadReply(bufio.NewReader(strings.NewReader("$536870912\r\nabc")))
	runtime.ReadMemStats(&after)
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("error %v, want io.ErrUnexpectedEOF", err)
	}
	if allocated := after.TotalAlloc - before.TotalAlloc; allocated > 1<<20 {
		t.Fatalf("reading a 3-byte start of a 512 MiB bulk string allocated %d bytes", allocated)
	}
}
