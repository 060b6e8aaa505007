//go:build cgo

package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unsafe"
)

// client is one shm conn. Its goroutine owns it; the fields SHMCONN.CLIENTS
// reads on the main thread (marked) are written only under the server lock.
type client struct {
	m       *module
	nc      net.Conn
	r       *bufio.Reader
	w       *bufio.Writer
	created time.Time

	ctx     rmCtx    // its own thread-safe context: database, id
	userStr rmString // the ACL user its commands run as
	run     runner   // its state for runner.call (shm_run)
	req     command  // the request being served (reused: queue keeps a copy)

	// Written under the server lock.
	id     uint64
	user   string
	authed bool
	db     int
	resp   int
	name   string

	// Written without the lock (the goroutine stores, the main thread loads).
	lastCmd  atomic.Pointer[string]
	lastUsed atomic.Int64 // unix nanoseconds

	multi      []*command // queued commands; nil: not in MULTI
	multiDirty bool       // a queued command was refused: EXEC aborts

	werr error // a failed reply write, or the output limits passed: the conn ends
}

const (
	errNoAuth      = "-NOAUTH Authentication required.\r\n"
	errExecAbort   = "-EXECABORT Transaction discarded because of previous errors.\r\n"
	errNotInMulti  = "-ERR Command not allowed inside a transaction\r\n"
	errUnsupported = "-ERR %s is not supported over shmconn; use a socket connection\r\n"
	errUserDeleted = "-ERR your ACL user was deleted\r\n"
	errCallRefused = "-ERR shmconn: RedisModule_Call refused: %v\r\n"
)

func (c *client) serve() {
	defer c.m.forget(c)
	defer c.nc.Close()
	c.r = bufio.NewReaderSize(c.nc, 64<<10)
	c.w = bufio.NewWriterSize(c.nc, 64<<10)
	lockServer()
	c.start()
	unlockServer()
	defer c.free()
	for c.serveOne() {
	}
	c.w.Flush()
}

// start sets the client up as Redis sets up a new connection: database 0,
// RESP2, the default user, authenticated if that user needs no password.
func (c *client) start() {
	c.run = newRunner()
	c.ctx = newCtx()
	c.id = clientID(c.ctx)
	c.resp = 2
	c.setUser("default")
	c.authed = c.m.defaultNoPass()
	c.lastUsed.Store(time.Now().UnixNano())
}

func (c *client) free() {
	lockServer()
	freeString(c.userStr)
	freeCtx(c.ctx)
	c.run.free()
	unlockServer()
}

// setUser: under the lock.
func (c *client) setUser(name string) {
	c.run.forgetUser()
	freeString(c.userStr)
	c.user, c.userStr = name, newString(name)
}

// defaultNoPass says whether the default user is on and needs no
// password, as a new socket client then starts authenticated. Under the lock.
func (m *module) defaultNoPass() bool {
	res := rmCall(m.ctx, nil, "", newCommand("ACL", "GETUSER", "default"))
	v, _, err := parseValue(res.reply)
	if err != nil || len(v.arr) < 2 {
		return false
	}
	var on, nopass bool
	for _, f := range v.arr[1].arr {
		on = on || string(f.str) == "on"
		nopass = nopass || string(f.str) == "nopass"
	}
	return on && nopass
}

// serveOne reads and answers one request; false ends the conn.
func (c *client) serveOne() bool {
	cfg := c.m.cfg.Load()
	waited := c.r.Buffered() == 0
	if waited {
		if err := c.w.Flush(); err != nil {
			return false
		}
		if cfg.timeout > 0 {
			c.nc.SetReadDeadline(time.Now().Add(cfg.timeout))
		}
	}
	cmd, err := readCommand(c.r, limits{maxBulk: cfg.maxBulk, maxQuery: cfg.maxQuery, unauth: !c.authed}, &c.req)
	if waited {
		// Once per batch of requests: CLIENT LIST's idle counts seconds.
		c.lastUsed.Store(time.Now().UnixNano())
	}
	if err != nil {
		// Only here: errors.As's target escapes, an allocation per request.
		var pe protoError
		if errors.As(err, &pe) {
			c.w.WriteString("-ERR " + pe.Error() + "\r\n")
		}
		return false
	}
	ok := c.dispatch(cmd)
	if c.werr != nil && (errors.Is(c.werr, errOutputLimit) || isTimeout(c.werr)) {
		logWarning(fmt.Sprintf("shmconn: client id=%d closed for overcoming of output buffer limits", c.id))
	}
	return ok && c.werr == nil
}

var errOutputLimit = errors.New("output exceeds client-output-buffer-limit's hard limit")

// reply queues one reply within the normal class of client-output-buffer-limit.
// A client holds at most one reply, as it reads its next request only once
// that reply is written, so pending output is the reply's unwritten part:
// more than the hard limit ends the conn at once, as Redis ends a socket
// client; more than the soft limit must shrink to it within the soft time.
func (c *client) reply(s string) {
	// Only read from: the bytes are copied into the write buffer or the conn.
	c.replyBytes(unsafe.Slice(unsafe.StringData(s), len(s)))
}

// replyBytes is reply for a reply in b, which may lie in the write
// buffer's free space (bufio.Writer.AvailableBuffer).
func (c *client) replyBytes(b []byte) {
	if c.werr != nil {
		return
	}
	lim := c.m.cfg.Load().out
	pending := c.w.Buffered() + len(b)
	switch {
	case lim.hard > 0 && pending > lim.hard:
		c.werr = errOutputLimit
	case lim.soft > 0 && pending > lim.soft:
		c.werr = c.writeOverSoft(b, lim)
	default:
		_, c.werr = c.w.Write(b)
	}
}

// writeOverSoft writes what lies beyond the soft limit under a deadline of
// the soft time, then the rest as usual. (Flush leaves the buffer's free
// space as it is, and Write copies with memmove: b may lie there.)
func (c *client) writeOverSoft(b []byte, lim outputLimit) error {
	c.nc.SetWriteDeadline(time.Now().Add(lim.softTime))
	err := c.w.Flush()
	if over := len(b) - lim.soft; err == nil && over > 0 {
		_, err = c.nc.Write(b[:over])
		b = b[over:]
	}
	c.nc.SetWriteDeadline(time.Time{})
	if err != nil {
		return err
	}
	_, err = c.w.Write(b)
	return err
}

// dispatch answers one command; false ends the conn.
func (c *client) dispatch(cmd *command) bool {
	ci := c.m.cachedCommand(cmd.arg(0))
	var name string
	if ci != nil {
		name = ci.name
	} else {
		name = lower(cmd.arg(0))
	}
	switch name {
	case "quit":
		c.reply("+OK\r\n")
		return false
	case "reset":
		c.reset()
		return true
	case "auth":
		c.auth(cmd)
		return true
	case "hello":
		c.hello(cmd)
		return true
	case "multi", "exec", "discard", "watch":
		return c.transaction(name, cmd)
	}
	if c.multi != nil {
		return c.queue(cmd)
	}
	switch name {
	case "subscribe", "psubscribe", "ssubscribe", "unsubscribe", "punsubscribe", "sunsubscribe", "monitor", "wait",
		"sync", "psync": // RM_Call's client cannot become a replica: redis-server crashes
		c.reply(fmt.Sprintf(errUnsupported, strings.ToUpper(name)))
		return true
	}
	return c.runOne(cmd, ci)
}

// runOne runs a command outside a transaction, waiting out CLIENT PAUSE,
// and, for a blocking command, its timeout. ci: the command's cached
// cmdInfo, or nil.
func (c *client) runOne(cmd *command, ci *cmdInfo) bool {
	if sc := ci.forCall(cmd); ci != nil && !ci.blocking && ci.name != "client" && ci.name != "select" && !(sc.noscript && sc.write) {
		return c.runFast(cmd, ci)
	}
	if b := c.blockingTimeout(cmd); b != nil {
		return c.runBlocking(cmd, b)
	}
	reply, ok := c.runPaused([]*command{cmd}, false)
	c.reply(string(reply))
	return ok
}

// minReplyRoom: the write buffer is flushed before a command when it has
// less room than this, so that most replies go straight into it.
const minReplyRoom = 4 << 10

// runFast runs a command that needs nothing under the lock but RM_Call
// and CLIENT PAUSE's check (not CLIENT or SELECT, which change the conn,
// not a blocking command, not one refuse checks READONLY for), with one
// cgo call (runner.call) that takes the lock, runs it, copies the reply into
// the write buffer and lets go. It makes exec's checks and replies as
// exec does.
func (c *client) runFast(cmd *command, ci *cmdInfo) bool {
	c.lastCmd.Store(&ci.name)
	if r := c.refuse(ci.name, ci, cmd); r != "" {
		c.reply(r)
		return true
	}
	if c.w.Available() < minReplyRoom && c.werr == nil {
		c.werr = c.w.Flush()
	}
	out := c.w.AvailableBuffer()
	for {
		sc := ci.forCall(cmd)
		res := c.run.call(c.ctx, c.userStr, callFmt(sc, c.resp), cmd, sc.write, ci.write || ci.container, out[:cap(out)])
		switch res.status {
		case callPaused:
			time.Sleep(min(res.paused, 10*time.Millisecond))
			continue
		case callNoUser:
			c.reply(errUserDeleted)
			return false
		case callNoReply:
			c.reply(fmt.Sprintf(errCallRefused, res.errno))
			return true
		}
		c.replyBytes(c.translate(res.reply, ci, cmd))
		res.free()
		return true
	}
}

// runPaused runs cmds under one lock, after any CLIENT PAUSE that holds
// them has passed. A transaction's replies come as one array. false: the
// conn must end (its ACL user was deleted).
func (c *client) runPaused(cmds []*command, tx bool) ([]byte, bool) {
	for {
		lockServer()
		if wait := c.pauseLeft(cmds); wait > 0 {
			unlockServer()
			time.Sleep(min(wait, 10*time.Millisecond))
			continue
		}
		out, wrote, ok := c.runLocked(cmds, tx)
		unlockServer()
		if wrote {
			wakeMainThread()
		}
		return out, ok
	}
}

func (c *client) pauseLeft(cmds []*command) time.Duration {
	var left time.Duration
	for _, cmd := range cmds {
		ci := c.m.command(lower(cmd.arg(0)))
		left = max(left, pauseLeft(ci != nil && ci.writes()))
	}
	return left
}

// runLocked runs cmds under the lock (one, or a transaction's).
func (c *client) runLocked(cmds []*command, tx bool) (out []byte, wrote, ok bool) {
	if tx {
		out = fmt.Appendf(out, "*%d\r\n", len(cmds))
	}
	ok = true
	for _, cmd := range cmds {
		r, w, alive := c.exec(cmd)
		out, wrote, ok = append(out, r...), wrote || w, ok && alive
	}
	c.lastUsed.Store(time.Now().UnixNano())
	return out, wrote, ok
}

// exec runs one command under the lock, with a socket client's checks.
func (c *client) exec(cmd *command) (reply []byte, wrote, alive bool) {
	name := lower(cmd.arg(0))
	c.lastCmd.Store(&name)
	if bytes.IndexByte(cmd.arg(0), 0) >= 0 {
		return unknownCommand(cmd), false, true
	}
	ci := c.m.command(name)
	if ci == nil {
		// Not RM_Call: it would run a command the module knows nothing of
		// without the checks refuse makes (NOAUTH first of all).
		return unknownCommand(cmd), false, true
	}
	if r := c.refuse(name, ci, cmd); r != "" {
		return []byte(r), false, true
	}
	switch name {
	case "client":
		if r, handled := c.clientCommand(cmd); handled {
			return r, false, true
		}
	case "auth": // queued in MULTI: they change the conn, not RM_Call's client
		return []byte(c.authLocked(cmd)), false, true
	case "hello":
		return []byte(c.helloLocked(cmd)), false, true
	}
	res := rmCall(c.ctx, c.userStr, c.callFlags(ci.forCall(cmd)), cmd)
	switch {
	case res.noUser:
		return []byte(errUserDeleted), false, false
	case res.reply == nil:
		return []byte(fmt.Sprintf(errCallRefused, res.errno)), false, true
	}
	if name == "select" && string(res.reply) == "+OK\r\n" {
		c.db, _ = strconv.Atoi(string(cmd.arg(1)))
		selectDB(c.ctx, c.db)
	}
	return c.translate(res.reply, ci, cmd), ci.writes() || ci.container, true
}

// refuse applies the checks RM_Call does not make for a socket client:
// authentication, DEBUG and MODULE's protection, READONLY for a command
// that cannot run in script mode. "" lets the command run.
func (c *client) refuse(name string, ci *cmdInfo, cmd *command) string {
	if !arityOK(ci, cmd) {
		return "" // RM_Call answers with Redis's own error
	}
	cfg := c.m.cfg.Load()
	switch {
	case !c.authed && !ci.noAuth:
		return errNoAuth
	case name == "debug" && cfg.debugCmd == "no", name == "module" && cfg.moduleCmd == "no" && protectedModuleSub[lower(cmd.arg(1))]:
		opt := "enable-" + name + "-command"
		return fmt.Sprintf("-ERR %s command not allowed. If the %s option is set to \"local\", you can run it from a local connection, otherwise you need to set this option in the configuration file, and then restart the server.\r\n", strings.ToUpper(name), opt)
	case ci.forCall(cmd).noscript && ci.forCall(cmd).write && ctxFlags(c.ctx)&(flagSlave|flagReadonly) == flagSlave|flagReadonly:
		return "-READONLY You can't write against a read only replica.\r\n"
	}
	return ""
}

// protectedModuleSub: the MODULE subcommands enable-module-command
// guards (Redis's PROTECTED flag, which COMMAND INFO does not show); MODULE
// LIST is served to anyone its ACL lets run it.
var protectedModuleSub = map[string]bool{"load": true, "loadex": true, "unload": true}

func arityOK(ci *cmdInfo, cmd *command) bool {
	n := cmd.argc()
	return (ci.arity >= 0 && n == ci.arity) || (ci.arity < 0 && n >= -ci.arity)
}

// callFlags are RM_Call's format flags for a command from this client:
//
//	!  replicate to the AOF and replicas, as a socket client's write is
//	E  errors as replies, with Redis's messages
//	C  run as the client's ACL user (NOPERM per command, key and channel)
//	M  refuse deny-oom commands over maxmemory (OOM)
//	S  script mode: READONLY on a read-only replica, MISCONF, NOREPLICAS,
//	   MASTERDOWN; left out for commands a script may not run
//	   (refuse checks READONLY for those)
//	3  a RESP3 reply, after HELLO 3
func (c *client) callFlags(ci *cmdInfo) string {
	f := "!ECM"
	if ci == nil || !ci.noscript {
		f += "S"
	}
	if c.resp == 3 {
		f += "3"
	}
	return f
}

// translate gives RM_Call's own wording of an ACL refusal the words a
// socket client reads.
func (c *client) translate(reply []byte, ci *cmdInfo, cmd *command) []byte {
	const prefix = "-ERR acl verification failed, "
	if !bytes.HasPrefix(reply, []byte(prefix)) {
		return reply
	}
	switch {
	case bytes.Contains(reply, []byte("keys")):
		return []byte("-NOPERM this user has no permissions to access one of the keys used as arguments\r\n")
	case bytes.Contains(reply, []byte("channel")):
		return []byte("-NOPERM this user has no permissions to access one of the channels used as arguments\r\n")
	}
	full := lower(cmd.arg(0))
	if ci != nil && ci.container && cmd.argc() > 1 {
		full += "|" + lower(cmd.arg(1))
	}
	return []byte("-NOPERM this user has no permissions to run the '" + full + "' command\r\n")
}

func unknownCommand(cmd *command) []byte {
	var args strings.Builder
	for i := 1; i < cmd.argc() && args.Len() < 128; i++ {
		fmt.Fprintf(&args, "'%.128s' ", cmd.arg(i))
	}
	return fmt.Appendf(nil, "-ERR unknown command '%.128s', with args beginning with: %s\r\n", cmd.arg(0), args.String())
}
