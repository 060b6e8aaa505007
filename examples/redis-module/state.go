//go:build cgo

package main

import (
	"bytes"
	"fmt"
	"strings"
	"syscall"
	"time"
)

// The per-connection commands the module answers itself, since RM_Call
// runs each command on a fresh client: AUTH, HELLO, RESET, MULTI/EXEC/
// DISCARD, and CLIENT ID/SETNAME/GETNAME/INFO.

// auth runs AUTH through RM_Call, which checks the password and answers
// as Redis does; on +OK the conn runs as that user from now on.
func (c *client) auth(cmd *command) {
	if c.multi != nil {
		c.queue(cmd)
		return
	}
	lockServer()
	r := c.authLocked(cmd)
	unlockServer()
	c.reply(r)
}

// authLocked is AUTH [user] pass, under the lock (also from EXEC).
func (c *client) authLocked(cmd *command) string {
	user := "default"
	if cmd.argc() == 3 {
		user = string(cmd.arg(1))
	}
	return c.authenticate(user, cmd)
}

// authenticate: under the lock.
func (c *client) authenticate(user string, cmd *command) string {
	res := rmCall(c.ctx, nil, "E", cmd)
	if string(res.reply) == "+OK\r\n" {
		c.setUser(user)
		c.authed = true
	}
	return string(res.reply)
}

// hello: HELLO [protover [AUTH user pass] [SETNAME name]]. In MULTI it
// is queued, as Redis queues it, and runs at EXEC.
func (c *client) hello(cmd *command) {
	if c.multi != nil {
		c.queue(cmd)
		return
	}
	lockServer()
	r := c.helloLocked(cmd)
	unlockServer()
	c.reply(r)
}

// helloLocked answers HELLO under the lock (also from EXEC).
func (c *client) helloLocked(cmd *command) string {
	ver := c.resp
	if cmd.argc() >= 2 {
		n, ok := parseInt(cmd.arg(1))
		if !ok {
			return "-ERR Protocol version is not an integer or out of range\r\n"
		}
		if n < 2 || n > 3 {
			return "-NOPROTO unsupported protocol version\r\n"
		}
		ver = int(n)
	}
	var authCmd *command
	name, setName := "", false
	for i := 2; i < cmd.argc(); i++ {
		opt, more := strings.ToLower(string(cmd.arg(i))), cmd.argc()-i-1
		switch {
		case opt == "auth" && more >= 2:
			authCmd = newCommand("AUTH", string(cmd.arg(i+1)), string(cmd.arg(i+2)))
			i += 2
		case opt == "setname" && more >= 1:
			name, setName = string(cmd.arg(i+1)), true
			i++
		default:
			return fmt.Sprintf("-ERR Syntax error in HELLO option '%s'\r\n", cmd.arg(i))
		}
	}
	if authCmd != nil {
		if r := c.authenticate(string(authCmd.arg(1)), authCmd); r != "+OK\r\n" {
			return r
		}
	}
	if !c.authed {
		return "-NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time\r\n"
	}
	if setName {
		if r := validName(name); r != "" {
			return r
		}
		c.name = name
	}
	c.resp = ver
	return c.helloReply()
}

// helloReply is HELLO's map, in the conn's protocol. Under the lock.
func (c *client) helloReply() string {
	info := rmCall(c.ctx, nil, "", newCommand("INFO", "server"))
	version := infoValue(string(info.reply), "redis_version")
	mode, role := "standalone", "master"
	flags := ctxFlags(c.ctx)
	if flags&flagCluster != 0 {
		mode = "cluster"
	}
	if flags&flagSlave != 0 {
		role = "replica"
	}
	fl := ""
	if c.resp == 3 {
		fl = "3"
	}
	modules := rmCall(c.ctx, nil, fl, newCommand("MODULE", "LIST"))
	var b strings.Builder
	if c.resp == 3 {
		b.WriteString("%7\r\n")
	} else {
		b.WriteString("*14\r\n")
	}
	bulk := func(s string) { fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(s), s) }
	bulk("server")
	bulk("redis")
	bulk("version")
	bulk(version)
	bulk("proto")
	fmt.Fprintf(&b, ":%d\r\n", c.resp)
	bulk("id")
	fmt.Fprintf(&b, ":%d\r\n", c.id)
	bulk("mode")
	bulk(mode)
	bulk("role")
	bulk(role)
	bulk("modules")
	b.Write(modules.reply)
	return b.String()
}

func infoValue(info, name string) string {
	for _, line := range strings.Split(info, "\r\n") {
		if v, ok := strings.CutPrefix(line, name+":"); ok {
			return v
		}
	}
	return ""
}

// validName is CLIENT SETNAME's rule: no spaces, newlines or other
// characters outside '!' to '~'.
func validName(name string) string {
	for _, ch := range []byte(name) {
		if ch < '!' || ch > '~' {
			return "-ERR Client names cannot contain spaces, newlines or special characters.\r\n"
		}
	}
	return ""
}

// reset is RESET: as a new connection, but still connected.
func (c *client) reset() {
	c.multi, c.multiDirty = nil, false
	lockServer()
	c.db, c.resp, c.name = 0, 2, ""
	selectDB(c.ctx, 0)
	c.setUser("default")
	c.authed = c.m.defaultNoPass()
	unlockServer()
	c.reply("+RESET\r\n")
}

// transaction handles MULTI, EXEC, DISCARD and WATCH.
func (c *client) transaction(name string, cmd *command) bool {
	if r := c.checkHandled(cmd); r != "" {
		// As processCommand's rejectCommand: a refused command marks the
		// transaction, and a refused EXEC discards it.
		switch {
		case name == "exec":
			c.multi, c.multiDirty = nil, false
			r = "-EXECABORT Transaction discarded because of: " + r[1:]
		case c.multi != nil:
			c.multiDirty = true
		}
		c.reply(r)
		return true
	}
	switch {
	case name == "watch" && c.multi != nil:
		c.reply("-ERR WATCH inside MULTI is not allowed\r\n")
	case name == "watch":
		c.reply(fmt.Sprintf(errUnsupported, "WATCH"))
	case name == "multi" && c.multi != nil:
		c.reply("-ERR MULTI calls can not be nested\r\n")
	case name == "multi":
		c.multi, c.multiDirty = []*command{}, false
		c.reply("+OK\r\n")
	case c.multi == nil:
		c.reply(fmt.Sprintf("-ERR %s without MULTI\r\n", strings.ToUpper(name)))
	case name == "discard":
		c.multi = nil
		c.reply("+OK\r\n")
	case c.multiDirty:
		c.multi = nil
		c.reply(errExecAbort)
	default:
		cmds := c.multi
		c.multi = nil
		out, ok := c.runPaused(cmds, true)
		c.reply(string(out))
		return ok
	}
	return true
}

// checkHandled makes the checks processCommand makes before a command the
// module answers or refuses itself: arity, authentication, ACL (the
// command, its keys and channels).
func (c *client) checkHandled(cmd *command) string {
	lockServer()
	defer unlockServer()
	ci := c.m.command(lower(cmd.arg(0)))
	if ci == nil {
		return ""
	}
	if r := lookupError(ci, cmd); r != "" {
		return r
	}
	if !c.authed && !ci.noAuth {
		return errNoAuth
	}
	switch aclCheck(c.userStr, cmd) {
	case 0:
		return ""
	case syscall.EACCES:
		return c.noPerm(cmd, ci)
	}
	return string(c.translate([]byte(aclErrPrefix+"command.\r\n"), ci, cmd))
}

// queue adds a command to the transaction, refusing what Redis refuses
// at that point (the transaction then aborts at EXEC).
func (c *client) queue(cmd *command) bool {
	name := lower(cmd.arg(0))
	lockServer()
	ci := c.m.command(name)
	r := ""
	switch {
	case ci == nil:
		r = string(unknownCommand(cmd))
	case lookupError(ci, cmd) != "":
		r = lookupError(ci, cmd)
	case !c.authed && !ci.noAuth:
		r = errNoAuth
	case ci.flags["no_multi"] || ci.flags["pubsub"] && name != "publish" && name != "spublish":
		r = errNotInMulti
	case aclCheck(c.userStr, cmd) == syscall.EACCES: // as Redis checks ACLs before it queues
		r = c.noPerm(cmd, ci)
	}
	unlockServer()
	if r != "" {
		c.multiDirty = true
		c.reply(r)
		return true
	}
	c.multi = append(c.multi, cmd.clone())
	c.reply("+QUEUED\r\n")
	return true
}

// noPerm is the NOPERM error a socket client gets for a command its ACL
// user may not run (aclCheck said EACCES), as ACL DRYRUN words the reason.
// Under the lock.
func (c *client) noPerm(cmd *command, ci *cmdInfo) string {
	if c.m.aclRemoved {
		// RM_Call checks the same rules, under the same lock, before it
		// would run the command: it refuses, with the reason.
		res := rmCall(c.ctx, c.userStr, "CE", cmd)
		if bytes.HasPrefix(res.reply, []byte(aclErrPrefix)) {
			return string(c.translate(res.reply, ci, cmd))
		}
		return string(c.translate([]byte(aclErrPrefix+"command.\r\n"), ci, cmd))
	}
	dry := newCommand("ACL", "DRYRUN", c.user)
	for i := range cmd.argc() {
		dry.push(cmd.arg(i))
	}
	why := string(rmCall(c.m.ctx, nil, "", dry).reply)
	switch {
	case strings.Contains(why, " key"):
		why = "keys"
	case strings.Contains(why, " channel"):
		why = "channel"
	default:
		why = "command"
	}
	return string(c.translate([]byte("-ERR acl verification failed, "+why+".\r\n"), ci, cmd))
}

// clientCommand answers the CLIENT subcommands about the conn itself.
// Under the lock; handled is false for the others, which RM_Call runs.
func (c *client) clientCommand(cmd *command) (reply []byte, handled bool) {
	if cmd.argc() < 2 {
		return nil, false
	}
	sub := lower(cmd.arg(1))
	switch sub {
	case "id", "getname", "info", "setname", "reply", "tracking", "caching", "getredir", "no-evict":
	default:
		return nil, false
	}
	if r := c.checkLocked(cmd); r != "" {
		return []byte(r), true
	}
	switch sub {
	case "id":
		return fmt.Appendf(nil, ":%d\r\n", c.id), true
	case "getname":
		if c.name == "" {
			return nullReply(c.resp), true
		}
		return fmt.Appendf(nil, "$%d\r\n%s\r\n", len(c.name), c.name), true
	case "info":
		info := c.appendInfo(nil)
		return fmt.Appendf(nil, "$%d\r\n%s\r\n", len(info), info), true
	case "setname":
		if r := validName(string(cmd.arg(2))); r != "" {
			return []byte(r), true
		}
		c.name = string(cmd.arg(2))
		return []byte("+OK\r\n"), true
	}
	return fmt.Appendf(nil, errUnsupported, "CLIENT "+strings.ToUpper(sub)), true
}

// checkLocked: ACL of a CLIENT subcommand (refuse checked its arity).
// Under the lock.
func (c *client) checkLocked(cmd *command) string {
	sub := lower(cmd.arg(1))
	if aclCheck(c.userStr, cmd) != 0 {
		return fmt.Sprintf("-NOPERM this user has no permissions to run the 'client|%s' command\r\n", sub)
	}
	return ""
}

func nullReply(resp int) []byte {
	if resp == 3 {
		return []byte("_\r\n")
	}
	return []byte("$-1\r\n")
}

// appendInfo appends the conn's line in CLIENT LIST's format. Under the
// lock (or on the main thread, which holds it).
func (c *client) appendInfo(b []byte) []byte {
	now := time.Now()
	multi := -1
	if c.multi != nil {
		multi = len(c.multi)
	}
	flags := "N"
	if c.multi != nil {
		flags = "x"
	}
	addr := c.addr()
	lastCmd := ""
	if p := c.lastCmd.Load(); p != nil {
		lastCmd = *p
	}
	return fmt.Appendf(b, "id=%d addr=%s laddr=%s fd=-1 name=%s age=%d idle=%d flags=%s db=%d sub=0 psub=0 ssub=0 multi=%d qbuf=0 qbuf-free=0 argv-mem=0 multi-mem=0 rbs=0 rbp=0 obl=0 oll=0 omem=0 tot-mem=0 events=r cmd=%s user=%s redir=-1 resp=%d transport=shmconn\n",
		c.id, addr, addr, c.name, int(now.Sub(c.created).Seconds()), int(now.Sub(time.Unix(0, c.lastUsed.Load())).Seconds()),
		flags, c.db, multi, lastCmd, c.user, c.resp)
}
