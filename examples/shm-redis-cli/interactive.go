package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
)

// Commands the real redis-cli answers itself, at the prompt: HELP and
// CLEAR; and its subscribe mode.

// clearScreen moves the cursor home and clears the terminal, as the real
// redis-cli's "clear" does.
const clearScreen = "\x1b[H\x1b[2J"

// genericHelp is what "help" prints after the version line: the lines of
// the real redis-cli's that apply here (it also offers completion and
// hints, which this one does not).
const genericHelp = `To get help about Redis commands type:
      "help @<group>" to get a list of commands in <group>
      "help <command>" for help on <command>
      "quit" to exit
`

// localCommand runs a command the prompt answers without sending it
// (HELP, CLEAR) and reports whether args was one.
func localCommand(c *client, args []string, out io.Writer) bool {
	switch {
	case strings.EqualFold(args[0], "clear"):
		io.WriteString(out, clearScreen)
	case strings.EqualFold(args[0], "help") && len(args) == 1:
		fmt.Fprintf(out, "%s\n%s", version, genericHelp)
	case strings.EqualFold(args[0], "help"):
		commandHelp(c, strings.Join(args[1:], " "), out)
	default:
		return false
	}
	return true
}

// commandHelp prints help on a command, or on the commands of a "@group",
// in the real redis-cli's layout, from the server's COMMAND DOCS (the real
// one carries a table of its own). It prints nothing for a topic the
// server does not know.
func commandHelp(c *client, topic string, out io.Writer) {
	if !c.connected() {
		return
	}
	group, isGroup := strings.CutPrefix(topic, "@")
	query := []string{"COMMAND", "DOCS"}
	if !isGroup {
		query = append(query, topic)
	}
	rep, err := c.do(query...)
	if err != nil || rep.Kind == Error {
		return
	}
	docs := map[string]map[string]string{}
	for i := 0; i+1 < len(rep.Elems); i += 2 {
		fields := map[string]string{}
		for j := 0; j+1 < len(rep.Elems[i+1].Elems); j += 2 {
			fields[rep.Elems[i+1].Elems[j].Str] = rep.Elems[i+1].Elems[j+1].Str
		}
		if !isGroup || strings.EqualFold(fields["group"], group) {
			docs[rep.Elems[i].Str] = fields
		}
	}
	names := make([]string, 0, len(docs))
	for n := range docs {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		d := docs[n]
		// The grey part is the real one's synopsis of the arguments,
		// which this one leaves empty.
		fmt.Fprintf(out, "\r\n  \x1b[1m%s\x1b[0m \x1b[90m\x1b[0m\r\n", strings.ToUpper(n))
		for _, k := range []string{"summary", "since", "group"} {
			fmt.Fprintf(out, "  \x1b[33m%s:\x1b[0m %s\r\n", k, d[k])
		}
	}
	if len(names) > 0 {
		io.WriteString(out, "\r\n")
	}
}

// isSubscribe reports whether args subscribes, after which the real
// redis-cli only prints what arrives.
func isSubscribe(args []string) bool {
	return len(args) > 0 && (strings.EqualFold(args[0], "subscribe") || strings.EqualFold(args[0], "psubscribe"))
}

// readMessages is the real redis-cli's subscribe mode: unless the output
// is raw it says "Reading messages...", then prints first (the reply to
// SUBSCRIBE) and every reply and message that follows, until an error
// reply (back: to the prompt, or exit 0), the connection ends (1), or
// Ctrl-C (130).
func readMessages(ctx context.Context, c *client, std stdio, format func(Reply) string, raw bool, first Reply) (code int, back bool) {
	if !raw {
		fmt.Fprintln(std.out, "Reading messages... (press Ctrl-C to quit)")
	}
	for rep := first; ; {
		io.WriteString(std.out, format(rep))
		if rep.Kind == Error {
			return 0, true
		}
		var err error
		if rep, err = c.read(); err != nil {
			return ioError(ctx, std, err), false
		}
	}
}
