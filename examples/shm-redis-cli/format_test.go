package main

import (
	"reflect"
	"testing"
	"time"
)

func bulk(s string) Reply   { return Reply{Kind: Bulk, Str: s} }
func integer(n int64) Reply { return Reply{Kind: Integer, Int: n} }
func array(e ...Reply) Reply {
	if e == nil {
		e = []Reply{}
	}
	return Reply{Kind: Array, Elems: e}
}

func TestFormat(t *testing.T) {
	ten := make([]Reply, 10)
	for i := range ten {
		ten[i] = integer(int64(i))
	}
	for _, tc := range []struct {
		name     string
		rep      Reply
		tty, raw string
	}{
		{"status", Reply{Kind: Status, Str: "OK"}, "OK\n", "OK\n"},
		{"error", Reply{Kind: Error, Str: "ERR no"}, "(error) ERR no\n", "ERR no\n\n"},
		{"integer", integer(-3), "(integer) -3\n", "-3\n"},
		{"bulk", bulk("a \"b\"\n\x01é"), `"a \"b\"\n\x01\xc3\xa9"` + "\n", "a \"b\"\n\x01é\n"},
		{"nil", Reply{Kind: Bulk, Nil: true}, "(nil)\n", "\n"},
		{"null array", Reply{Kind: Array, Nil: true}, "(nil)\n", "\n"},
		{"empty array", array(), "(empty array)\n", "\n"},
		{"array", array(bulk("a"), integer(1), Reply{Kind: Bulk, Nil: true}),
			"1) \"a\"\n2) (integer) 1\n3) (nil)\n", "a\n1\n\n"},
		// Nested arrays indent under their index, as redis-cli prints
		// COMMAND INFO.
		{"nested", array(array(bulk("get"), integer(2), array()), Reply{Kind: Bulk, Nil: true}),
			"1) 1) \"get\"\n   2) (integer) 2\n   3) (empty array)\n2) (nil)\n", "get\n2\n\n\n"},
		{"wide", array(append(ten[:9:9], array(bulk("x"), bulk("y")))...),
			" 1) (integer) 0\n 2) (integer) 1\n 3) (integer) 2\n 4) (integer) 3\n 5) (integer) 4\n" +
				" 6) (integer) 5\n 7) (integer) 6\n 8) (integer) 7\n 9) (integer) 8\n10) 1) \"x\"\n    2) \"y\"\n",
			"0\n1\n2\n3\n4\n5\n6\n7\n8\nx\ny\n"},
	} {
		if got := FormatTTY(tc.rep); got != tc.tty {
			t.Errorf("%s: FormatTTY = %q, want %q", tc.name, got, tc.tty)
		}
		if got := FormatRaw(tc.rep); got != tc.raw {
			t.Errorf("%s: FormatRaw = %q, want %q", tc.name, got, tc.raw)
		}
	}
}

func TestSplitArgs(t *testing.T) {
	for _, tc := range []struct {
		line string
		want []string
	}{
		{"", nil},
		{"   ", nil},
		{"set k v", []string{"set", "k", "v"}},
		{"  set\tk   v  ", []string{"set", "k", "v"}},
		{`set k "a b"`, []string{"set", "k", "a b"}},
		{`set k "a\"b\n\x41\\"`, []string{"set", "k", "a\"b\nA\\"}},
		{`set k 'it\'s "x"'`, []string{"set", "k", `it's "x"`}},
		{`set k 'a\nb'`, []string{"set", "k", `a\nb`}},
		{`set k ""`, []string{"set", "k", ""}},
		{`set k ab"c d"`, []string{"set", "k", "abc d"}},
		{`set k "\xZZ"`, []string{"set", "k", "xZZ"}},
	} {
		got, err := SplitArgs(tc.line)
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("SplitArgs(%q) = %q, %v; want %q", tc.line, got, err, tc.want)
		}
	}
	for _, bad := range []string{`set "k`, `set 'k`, `set "k"v`, `set 'k'v`, `get "a\"`} {
		if got, err := SplitArgs(bad); err == nil {
			t.Errorf("SplitArgs(%q) = %q, want an error", bad, got)
		}
	}
}

func TestLatencyStats(t *testing.T) {
	s := newLatencyStats()
	for _, us := range []int{10, 20, 30, 40, 1000} {
		s.record(time.Duration(us) * time.Microsecond)
	}
	want := "min: 0.010, max: 1.000, avg: 0.220, p50: 0.030, p99: 1.000 (5 samples)"
	if got := s.String(); got != want {
		t.Fatalf("String = %q, want %q", got, want)
	}
	s.reset()
	if got := s.String(); got != "min: 0.000, max: 0.000, avg: 0.000, p50: 0.000, p99: 0.000 (0 samples)" {
		t.Fatalf("after reset: %q", got)
	}
}
