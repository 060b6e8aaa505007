package main

import "fmt"

// cmdFlag is a command flag as COMMAND INFO reports it, plus two this
// server uses to route commands.
type cmdFlag uint16

const (
	flagWrite cmdFlag = 1 << iota
	flagReadOnly
	flagDenyOOM
	flagAdmin
	flagPubSub // runs without the store's lock; see pubsub.go
	flagNoScript
	flagLoading
	flagStale
	flagFast
	flagSubscribed // allowed while a RESP2 client has subscriptions
	flagUnlocked   // runs without the store's lock: it may sleep
)

var flagNames = []struct {
	f    cmdFlag
	name string
}{
	{flagWrite, "write"}, {flagReadOnly, "readonly"}, {flagDenyOOM, "denyoom"}, {flagAdmin, "admin"},
	{flagPubSub, "pubsub"}, {flagNoScript, "noscript"}, {flagLoading, "loading"}, {flagStale, "stale"},
	{flagFast, "fast"},
}

func (c *command) has(f cmdFlag) bool { return c.flags&f != 0 }

// writeCommandInfo writes one command's entry of COMMAND and COMMAND INFO
// in Redis 7's ten-field form: name, arity, flags, first key, last key,
// step, ACL categories, tips, key specs, subcommands.
func writeCommandInfo(r *request, c *command) {
	r.w.WriteArray(10)
	r.w.WriteBulkString(c.name)
	r.w.WriteInt(c.arity)
	var flags []string
	for _, f := range flagNames {
		if c.has(f.f) {
			flags = append(flags, f.name)
		}
	}
	r.w.WriteArray(len(flags))
	for _, f := range flags {
		r.w.WriteString(f)
	}
	r.w.WriteInt(c.firstKey)
	r.w.WriteInt(c.lastKey)
	r.w.WriteInt(c.step)
	cats := []string{"@" + c.group}
	for _, f := range []struct {
		f   cmdFlag
		cat string
	}{{flagWrite, "@write"}, {flagReadOnly, "@read"}, {flagFast, "@fast"}, {flagAdmin, "@admin"}} {
		if c.has(f.f) {
			cats = append(cats, f.cat)
		}
	}
	if !c.has(flagFast) {
		cats = append(cats, "@slow")
	}
	r.w.WriteArray(len(cats))
	for _, cat := range cats {
		r.w.WriteString(cat)
	}
	r.w.WriteArray(0) // tips
	r.w.WriteArray(0) // key specs: first/last/step above say where keys are
	r.w.WriteArray(0) // subcommands
}

// writeCommandDocs writes COMMAND DOCS's entry for c, a map flattened for
// RESP2: summary, since and group. redis-cli builds its hints from it.
func writeCommandDocs(r *request, c *command) {
	r.w.WriteBulkString(c.name)
	writeMap(r, 3)
	r.w.WriteBulkString("summary")
	r.w.WriteBulkString(c.summary)
	r.w.WriteBulkString("since")
	r.w.WriteBulkString("1.0.0")
	r.w.WriteBulkString("group")
	r.w.WriteBulkString(c.group)
}

// writeMap writes the header of a map of n pairs: a RESP3 map to a client
// that said HELLO 3, a flat array of 2n elements otherwise.
func writeMap(r *request, n int) {
	if r.sess.proto == 3 {
		r.w.WriteRaw(fmt.Appendf(nil, "%%%d\r\n", n))
	} else {
		r.w.WriteArray(2 * n)
	}
}

// cmdCommandDocs is COMMAND DOCS [name ...].
func cmdCommandDocs(r *request) {
	var cs []*command
	if len(r.args) == 2 {
		for _, n := range commandNames() {
			cs = append(cs, commands[n])
		}
	} else {
		for _, a := range r.args[2:] {
			if c := lookupCommand(a); c != nil {
				cs = append(cs, c)
			}
		}
	}
	writeMap(r, len(cs))
	for _, c := range cs {
		writeCommandDocs(r, c)
	}
}
