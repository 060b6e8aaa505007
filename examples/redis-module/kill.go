//go:build cgo

package main

import (
	"bytes"
	"strconv"
	"strings"
)

// CLIENT KILL from an shm client: Redis's own CLIENT KILL (run through
// RM_Call) ends the socket clients its filters match; the module ends the
// shm clients they match, which Redis cannot see, and answers for both.
// A socket client's CLIENT KILL does not reach shm clients: the command
// filter sees it before Redis checks the caller's rights, and cannot tell
// who the caller is (Redis 7.0's filter API does not say).

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
			f.id, _ = strconv.ParseUint(string(v), 10, 64)
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
