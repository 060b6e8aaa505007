package main

import (
	"fmt"
	"strconv"
	"strings"
)

// FormatTTY renders rep the way redis-cli does for a terminal: strings
// quoted, "(integer) n", "(nil)", "(error) ...", and arrays as numbered
// lines, nested ones indented under their index. It ends with a newline.
func FormatTTY(rep Reply) string {
	var b strings.Builder
	formatTTY(&b, rep, "")
	return b.String()
}

func formatTTY(b *strings.Builder, rep Reply, prefix string) {
	switch {
	case rep.Nil:
		b.WriteString("(nil)\n")
	case rep.Kind == Error:
		b.WriteString("(error) " + rep.Str + "\n")
	case rep.Kind == Status, rep.Kind == Verbatim, rep.Kind == BigNumber:
		b.WriteString(rep.Str + "\n")
	case rep.Kind == Integer:
		fmt.Fprintf(b, "(integer) %d\n", rep.Int)
	case rep.Kind == Double:
		b.WriteString("(double) " + rep.Str + "\n")
	case rep.Kind == Boolean:
		b.WriteString(map[int64]string{0: "(false)\n", 1: "(true)\n"}[rep.Int])
	case rep.Kind == Bulk:
		b.WriteString(Quote(rep.Str) + "\n")
	case len(rep.Elems) == 0:
		b.WriteString(emptyTTY[rep.Kind])
	default:
		// Indices are right-aligned to the widest; an element's own
		// elements are indented past its index. A map shows "n# key =>
		// value", a set "n~ member".
		n, sep := len(rep.Elems), ")"
		switch rep.Kind {
		case Map:
			n, sep = n/2, "#"
		case Set:
			sep = "~"
		}
		width := len(strconv.Itoa(n))
		inner := prefix + strings.Repeat(" ", width+2)
		for i := 0; i < len(rep.Elems); i++ {
			if i > 0 {
				b.WriteString(prefix) // the first line follows the parent's index
			}
			idx := i + 1
			if rep.Kind == Map {
				idx = i/2 + 1
			}
			fmt.Fprintf(b, "%*d%s ", width, idx, sep)
			formatTTY(b, rep.Elems[i], inner)
			if rep.Kind == Map {
				i++
				s := b.String()
				b.Reset()
				b.WriteString(strings.TrimSuffix(s, "\n") + " => ")
				formatTTY(b, rep.Elems[i], inner)
			}
		}
	}
}

// emptyTTY is how redis-cli shows an empty aggregate of each kind.
var emptyTTY = map[Kind]string{Array: "(empty array)\n", Map: "(empty hash)\n", Set: "(empty set)\n", Push: "(empty push)\n"}

// FormatRaw renders rep the way redis-cli does when its output is not a
// terminal (or with --raw): bare values, array elements one per line,
// nothing for nil. It ends with a newline.
func FormatRaw(rep Reply) string {
	var b strings.Builder
	formatRaw(&b, rep)
	b.WriteByte('\n')
	return b.String()
}

func formatRaw(b *strings.Builder, rep Reply) {
	switch {
	case rep.Nil:
	case rep.Kind == Error:
		b.WriteString(rep.Str + "\n")
	case rep.Kind == Status, rep.Kind == Bulk, rep.Kind == Verbatim, rep.Kind == Double, rep.Kind == BigNumber:
		b.WriteString(rep.Str)
	case rep.Kind == Integer:
		b.WriteString(strconv.FormatInt(rep.Int, 10))
	case rep.Kind == Boolean:
		b.WriteString(map[int64]string{0: "(false)", 1: "(true)"}[rep.Int])
	case rep.Kind == Map:
		for i := 0; i+1 < len(rep.Elems); i += 2 {
			if i > 0 {
				b.WriteByte('\n')
			}
			formatRaw(b, rep.Elems[i])
			b.WriteByte(' ')
			formatRaw(b, rep.Elems[i+1])
		}
	default:
		for i, e := range rep.Elems {
			if i > 0 {
				b.WriteByte('\n')
			}
			formatRaw(b, e)
		}
	}
}

// Quote quotes s as redis-cli does (sdscatrepr): in double quotes, with
// backslash escapes for quotes, backslashes and control characters and
// \xHH for other bytes outside printable ASCII.
func Quote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\\', '"':
			b.WriteByte('\\')
			b.WriteByte(c)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		case '\a':
			b.WriteString(`\a`)
		case '\b':
			b.WriteString(`\b`)
		default:
			if c >= ' ' && c <= '~' {
				b.WriteByte(c)
			} else {
				fmt.Fprintf(&b, `\x%02x`, c)
			}
		}
	}
	b.WriteByte('"')
	return b.String()
}

// SplitArgs splits an interactive command line into arguments as
// redis-cli does (sdssplitargs): spaces separate arguments; in double
// quotes, backslash escapes (\n, \r, \t, \b, \a, \xHH, and any character
// itself) apply; in single quotes only \' does. A closing quote must be
// followed by a space or the end. It fails on unbalanced quotes.
func SplitArgs(line string) ([]string, error) {
	var args []string
	i := 0
	for {
		for i < len(line) && isSpace(line[i]) {
			i++
		}
		if i == len(line) {
			return args, nil
		}
		var cur []byte
		inDQ, inSQ := false, false
		for done := false; !done; {
			switch {
			case inDQ:
				switch {
				case i == len(line):
					return nil, errUnbalanced
				case line[i] == '\\' && i+3 < len(line) && line[i+1] == 'x' && isHex(line[i+2]) && isHex(line[i+3]):
					v, _ := strconv.ParseUint(line[i+2:i+4], 16, 8)
					cur = append(cur, byte(v))
					i += 3
				case line[i] == '\\' && i+1 < len(line):
					i++
					cur = append(cur, unescape(line[i]))
				case line[i] == '"':
					if i+1 < len(line) && !isSpace(line[i+1]) {
						return nil, errUnbalanced
					}
					done = true
				default:
					cur = append(cur, line[i])
				}
			case inSQ:
				switch {
				case i == len(line):
					return nil, errUnbalanced
				case line[i] == '\\' && i+1 < len(line) && line[i+1] == '\'':
					i++
					cur = append(cur, '\'')
				case line[i] == '\'':
					if i+1 < len(line) && !isSpace(line[i+1]) {
						return nil, errUnbalanced
					}
					done = true
				default:
					cur = append(cur, line[i])
				}
			default:
				switch {
				case i == len(line) || isSpace(line[i]):
					done = true
					i-- // the space is skipped by the outer loop
				case line[i] == '"':
					inDQ = true
				case line[i] == '\'':
					inSQ = true
				default:
					cur = append(cur, line[i])
				}
			}
			i++
		}
		args = append(args, string(cur))
		if i > len(line) {
			i = len(line)
		}
	}
}

var errUnbalanced = fmt.Errorf("Invalid argument(s)")

func isSpace(c byte) bool {
	return c == ' ' || c == '\n' || c == '\r' || c == '\t' || c == '\v' || c == '\f'
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unescape(c byte) byte {
	switch c {
	case 'n':
		return '\n'
	case 'r':
		return '\r'
	case 't':
		return '\t'
	case 'b':
		return '\b'
	case 'a':
		return '\a'
	}
	return c
}
