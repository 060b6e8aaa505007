//go:build cgo

package main

import (
	"bytes"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// CLIENT KILL and CLIENT LIST from an shm client: Redis's own (run through
// RM_Call) see the socket clients; the module adds the shm clients, which
// Redis cannot see, to the answer. A socket client's CLIENT KILL does not
// reach shm clients: the command filter sees it before Redis checks the
// caller's rights, and cannot tell who the caller is (Redis 7.0's filter
// API does not say).

// killFilter is a CLIENT KILL's filters, as Redis 7.0 reads them, for an
// shm client: its type is normal, its address and local address are the
// module's socket with port 0.
type killFilter struct {
	old         bool   // CLIENT KILL addr: the old form, which kills its caller too
	addr, laddr []byte // nil: any
	user        []byte // nil: any
	typ         []byte // nil: any
	id          uint64 // 0: any
	skipme      bool
}

// parseKillFilter reads the filters of a CLIENT KILL that Redis accepted:
// CLIENT KILL addr, or CLIENT KILL followed by option value pairs (a later
// option of the same name wins, as in Redis).
func parseKillFilter(cmd *command) killFilter {
	if cmd.argc() == 3 {
		return killFilter{old: true, addr: cmd.arg(2)}
	}
	f := killFilter{skipme: true}
	for i := 2; i+1 < cmd.argc(); i += 2 {
		v := cmd.arg(i + 1)
		switch lower(cmd.arg(i)) {
		case "id":
			var err error
			if f.id, err = strconv.ParseUint(string(v), 10, 64); err != nil {
				f.id = math.MaxUint64 // no client's: Redis takes only 1 to 2^63-1
			}
		case "type":
			f.typ = v
		case "addr":
			f.addr = v
		case "laddr":
			f.laddr = v
		case "user":
			f.user = v
		case "skipme":
			f.skipme = strings.EqualFold(string(v), "yes")
		}
	}
	return f
}

// matches says whether the filter picks shm client c when caller runs it.
// Under the lock.
func (f *killFilter) matches(c, caller *client) bool {
	addr := c.addr()
	switch {
	case f.addr != nil && string(f.addr) != addr,
		f.laddr != nil && string(f.laddr) != addr,
		f.typ != nil && !strings.EqualFold(string(f.typ), "normal"),
		f.id != 0 && f.id != c.id,
		f.user != nil && string(f.user) != c.user,
		c == caller && f.skipme:
		return false
	}
	return true
}

// killShm ends the shm clients that CLIENT KILL cmd matches, once Redis
// has answered it (reply) for its own clients, and gives the answer for
// both: the old form's OK or "No such client", the new form's count.
// self: the caller matched; it ends after its reply, as Redis closes a
// client that killed itself. Under the lock.
func (c *client) killShm(cmd *command, reply []byte) (out []byte, self bool) {
	f := parseKillFilter(cmd)
	var killed int64
	switch {
	case f.old && string(reply) == "+OK\r\n":
		killed = 1
	case f.old && string(reply) == "-ERR No such client\r\n":
	case !f.old && len(reply) > 0 && reply[0] == ':':
		killed, _ = strconv.ParseInt(string(bytes.TrimSpace(reply[1:])), 10, 64)
	default:
		return reply, false // refused: no one ends
	}
	n, self := c.m.kill(&f, c)
	killed += int64(n)
	switch {
	case !f.old:
		return append(strconv.AppendInt([]byte(":"), killed, 10), "\r\n"...), self
	case killed > 0:
		return []byte("+OK\r\n"), self
	}
	return reply, self
}

// kill ends the shm clients f matches (caller's conn is left open, for
// its reply) and counts them. Under the lock: no command of theirs runs
// after it.
func (m *module) kill(f *killFilter, caller *client) (n int, self bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for c := range m.clients {
		if !c.live || !f.matches(c, caller) {
			continue
		}
		n++
		c.live = false
		c.run.kill()
		if c == caller {
			self = true
		} else {
			c.nc.Close()
		}
	}
	return n, self
}

// listShm adds to CLIENT LIST's reply, which lists Redis's clients, a line
// for each shm client its filter (TYPE, or ID followed by ids) picks.
// Under the lock.
func (c *client) listShm(cmd *command, reply []byte) []byte {
	var head string
	switch {
	case bytes.HasPrefix(reply, []byte("$")):
	case bytes.HasPrefix(reply, []byte("=")): // RESP3's verbatim string
		head = "txt:"
	default:
		return reply // refused
	}
	_, rest, ok := bytes.Cut(reply, []byte("\r\n"))
	body, ok2 := bytes.CutSuffix(rest, []byte("\r\n"))
	body, ok3 := bytes.CutPrefix(body, []byte(head))
	if !ok || !ok2 || !ok3 {
		return reply
	}
	pick := func(*client) bool { return true }
	switch {
	case cmd.argc() == 4 && strings.EqualFold(string(cmd.arg(2)), "type"):
		normal := strings.EqualFold(string(cmd.arg(3)), "normal")
		pick = func(*client) bool { return normal }
	case cmd.argc() >= 3 && strings.EqualFold(string(cmd.arg(2)), "id"):
		ids := map[uint64]bool{}
		for i := 3; i < cmd.argc(); i++ {
			id, _ := strconv.ParseUint(string(cmd.arg(i)), 10, 64)
			ids[id] = true
		}
		pick = func(o *client) bool { return ids[o.id] }
	}
	lines := bytes.Clone(body)
	c.m.mu.Lock()
	for o := range c.m.clients {
		if o.live && pick(o) {
			lines = o.appendInfo(lines)
		}
	}
	c.m.mu.Unlock()
	out := fmt.Appendf(nil, "%c%d\r\n%s", reply[0], len(head)+len(lines), head)
	return append(append(out, lines...), "\r\n"...)
}
