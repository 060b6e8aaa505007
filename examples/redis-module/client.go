//go:build cgo

package main

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"math"
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
	req     command  // the request being served, and those runFast runs with it (reused: queue keeps a copy)
	next    command  // a request read ahead of a run that may not join it
	runCmds []runCmd // the commands of a run (runFast)

	// Written under the server lock.
	live   bool // from start until free, or a CLIENT KILL that ended it
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

	lastInfo *cmdInfo // the command cachedCommand found last
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
	c.live = true
}

func (c *client) free() {
	lockServer()
	c.live = false
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
	if m.aclRemoved {
		return m.authWithoutPassword()
	}
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

// authWithoutPassword is defaultNoPass without ACL GETUSER: AUTH default
// with a random password succeeds exactly when the default user is on and
// needs no password. (A failure goes to the ACL log, which ACL LOG, being
// removed too, cannot show.) Under the lock.
func (m *module) authWithoutPassword() bool {
	res := rmCall(m.ctx, nil, "E", newCommand("AUTH", "default", rand.Text()))
	return string(res.reply) == "+OK\r\n"
}

// serveOne reads and answers one request; false ends the conn.
func (c *client) serveOne() bool {
	cfg := c.m.cfg.Load()
	waited := c.r.Buffered() == 0
	if waited {
		if err := c.w.Flush(); err != nil {
			return false
		}
		// Once per batch of requests, as its replies went out (Redis
		// counts CLIENT LIST's idle from a client's last read or write),
		// rather than on the way from a request to its reply.
		now := time.Now()
		c.lastUsed.Store(now.UnixNano())
		if cfg.timeout > 0 {
			c.nc.SetReadDeadline(now.Add(cfg.timeout))
		}
	}
	cmd, err := readCommand(c.r, limits{maxBulk: cfg.maxBulk, maxQuery: cfg.maxQuery, unauth: !c.authed}, &c.req)
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
// Pending output is what the write buffer holds with the reply (it is
// flushed whenever the client's requests run out): more than the hard
// limit ends the conn at once, as Redis ends a socket client (and runAll
// runs none of the client's later commands); more than the soft limit
// must shrink to it within the soft time.
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
	ci := c.cachedCommand(cmd.arg(0))
	if ci == nil && bytes.IndexByte(cmd.arg(0), 0) < 0 {
		lockServer()
		ci = c.m.command(lower(cmd.arg(0)))
		unlockServer()
	}
	if ci == nil {
		// Unknown, or renamed away ("" included): exec and queue answer
		// as Redis does, whatever the name.
		if c.multi != nil {
			return c.queue(cmd)
		}
		return c.runOne(cmd, nil)
	}
	name := ci.name
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
		// A socket client without the rights gets NOAUTH or NOPERM first.
		if r := c.checkHandled(cmd); r != "" {
			c.reply(r)
		} else {
			c.reply(fmt.Sprintf(errUnsupported, strings.ToUpper(name)))
		}
		return true
	}
	return c.runOne(cmd, ci)
}

// cachedCommand is module.cachedCommand, which it asks only for a command
// other than the one it found last: a pipeline mostly repeats one.
func (c *client) cachedCommand(name []byte) *cmdInfo {
	if ci := c.lastInfo; ci != nil && sameName(name, ci.name) {
		return ci
	}
	ci := c.m.cachedCommand(name)
	if ci != nil {
		c.lastInfo = ci
	}
	return ci
}

// sameName says whether name, in any case, is lowerName.
func sameName(name []byte, lowerName string) bool {
	if len(name) != len(lowerName) {
		return false
	}
	for i, ch := range name {
		if 'A' <= ch && ch <= 'Z' {
			ch += 'a' - 'A'
		}
		if ch != lowerName[i] {
			return false
		}
	}
	return true
}

// connCommands are the commands that dispatch answers or refuses itself,
// or that change the conn (CLIENT, SELECT: exec sees to them): never run
// by runFast.
var connCommands = map[string]bool{
	"quit": true, "reset": true, "auth": true, "hello": true, "multi": true, "exec": true, "discard": true,
	"watch": true, "subscribe": true, "psubscribe": true, "ssubscribe": true, "unsubscribe": true,
	"punsubscribe": true, "sunsubscribe": true, "monitor": true, "wait": true, "sync": true, "psync": true,
	"client": true, "select": true,
}

// runOne runs a command outside a transaction, waiting out CLIENT PAUSE,
// and, for a blocking command, its timeout. ci: the command's cached
// cmdInfo, or nil.
func (c *client) runOne(cmd *command, ci *cmdInfo) bool {
	if c.runsFast(cmd, ci) {
		return c.runFast(cmd, ci)
	}
	if b := c.blockingTimeout(cmd); b != nil {
		return c.runBlocking(cmd, b)
	}
	reply, ok := c.runPaused([]*command{cmd}, false)
	c.reply(string(reply))
	return ok
}

// runsFast says whether runFast may run cmd (ci: its cached cmdInfo, or
// nil): a command that needs nothing under the lock but RM_Call and CLIENT
// PAUSE's check (not one dispatch answers itself, not CLIENT or SELECT,
// which change the conn, not a blocking command, not one refuse checks
// READONLY for), outside a transaction.
func (c *client) runsFast(cmd *command, ci *cmdInfo) bool {
	if ci == nil || !ci.plain || c.multi != nil {
		return false
	}
	sc := ci.forCall(cmd)
	return !(sc.noscript && sc.write)
}

// The write buffer is flushed before a run of commands when it has less
// room than minReplyRoom, so that most replies go straight into it, or
// holds flushAt bytes, so that a pipelining client parses replies while
// later commands run, and gets them often enough (a run takes some tens of
// microseconds) to stay within the spin of a conn's wait rather than park
// and need a kernel wake-up.
const (
	minReplyRoom = 4 << 10
	flushAt      = 4 << 10
)

// runFast runs cmd (c.req), and the requests after it that are already
// buffered and that runsFast allows, up to maxRun of them, with one cgo
// call (runner.run) that runs each under a lock of its own and copies
// their replies into the write buffer. It makes exec's checks and replies
// as exec does. A buffered request that may not join is served after them.
func (c *client) runFast(cmd *command, ci *cmdInfo) bool {
	if r := c.refuse(ci.name, ci, cmd); r != "" {
		c.lastCmd.Store(&ci.name)
		c.reply(r)
		return true
	}
	c.run.clear()
	c.runCmds = append(c.runCmds[:0], runCmd{ci: ci})
	c.addRun(cmd, ci)
	next := c.readRun(cmd)
	// For CLIENT LIST: one store per run, of the last command's name.
	c.lastCmd.Store(&c.runCmds[len(c.runCmds)-1].ci.name)
	if !c.runAll(cmd) {
		return false
	}
	if next == nil || c.werr != nil {
		return true // serveOne ends the conn after a failed write
	}
	// next is served as c.req, so that its run may read ahead into c.next.
	c.req, c.next = c.next, c.req
	return c.dispatch(&c.req)
}

// runCmd is a command of a run: its cmdInfo, and its first argument in
// the run's command.
type runCmd struct {
	ci    *cmdInfo
	first int
}

// addRun sets the last command of c.runCmds, whose arguments are the last
// of cmd, for the run.
func (c *client) addRun(cmd *command, ci *cmdInfo) {
	first := c.runCmds[len(c.runCmds)-1].first
	sc := ci
	if ci.container {
		sc = ci.forCall(cmd.sub(first, cmd.argc()))
	}
	c.run.add(callFmt(sc, c.resp), cmd.argc()-first, sc.write, ci.write || ci.container)
}

// readRun appends to cmd the buffered requests that may join its run, and
// returns the first that may not (in c.next), or nil.
func (c *client) readRun(cmd *command) *command {
	cfg := c.m.cfg.Load()
	lim := limits{maxBulk: cfg.maxBulk, maxQuery: cfg.maxQuery, unauth: !c.authed}
	for len(c.runCmds) < maxRun && len(cmd.data) < maxRunBytes && c.r.Buffered() > 0 {
		c.next.reset()
		if !readBuffered(c.r, lim, &c.next) {
			c.next.reset()
			return nil
		}
		ci := c.cachedCommand(c.next.arg(0))
		if !c.runsFast(&c.next, ci) || c.refuse(ci.name, ci, &c.next) != "" {
			return &c.next
		}
		c.runCmds = append(c.runCmds, runCmd{ci: ci, first: cmd.argc()})
		for i := range c.next.argc() {
			cmd.push(c.next.arg(i))
		}
		c.addRun(cmd, ci)
	}
	return nil
}

// runAll runs the commands of c.runCmds (their arguments in cmd) and
// writes their replies, each as exec would. false ends the conn.
func (c *client) runAll(cmd *command) bool {
	c.run.setLens(cmd)
	for from := 0; from < len(c.runCmds); {
		if (c.w.Available() < minReplyRoom || c.w.Buffered() >= flushAt) && c.werr == nil {
			c.werr = c.w.Flush()
		}
		if c.werr != nil {
			return true // serveOne ends the conn
		}
		room := math.MaxInt
		if hard := c.m.cfg.Load().out.hard; hard > 0 {
			room = max(0, hard-c.w.Buffered())
		}
		out := c.w.AvailableBuffer()
		out = out[:cap(out)]
		done := c.run.run(c.ctx, c.userStr, cmd, from, c.runCmds[from].first, out, room)
		moved := false
		for i := from; i < from+done; i++ {
			res := c.run.result(i, out)
			var reply []byte // one that is not where res.reply lies
			switch res.status {
			case callPaused:
				time.Sleep(min(res.paused, 10*time.Millisecond))
				done = i - from // run it again
				continue
			case callNoUser:
				c.reply(errUserDeleted)
				return false
			case callKilled:
				return false
			case callNoReply:
				reply = []byte(fmt.Sprintf(errCallRefused, res.errno))
			default:
				if bytes.HasPrefix(res.reply, []byte(aclErrPrefix)) {
					reply = c.translate(res.reply, c.runCmds[i].ci, c.runCommand(cmd, i))
				}
			}
			if reply == nil {
				c.replyBytes(res.reply)
				res.free()
				continue
			}
			// Replies lie in out end to end, in the write buffer's free
			// space, and each is written where it lies, unless one
			// before it has changed length: the rest must move first.
			if !moved {
				out, moved = bytes.Clone(out), true
			}
			c.replyBytes(reply)
			res.free()
		}
		from += done
	}
	return true
}

// runCommand is the i-th command of a run whose arguments are cmd's.
func (c *client) runCommand(cmd *command, i int) *command {
	end := cmd.argc()
	if i+1 < len(c.runCmds) {
		end = c.runCmds[i+1].first
	}
	return cmd.sub(c.runCmds[i].first, end)
}

// runPaused runs cmds under one lock, after any CLIENT PAUSE that holds
// them has passed. A transaction's replies come as one array. false: the
// conn must end (its ACL user was deleted, or a CLIENT KILL ended it).
func (c *client) runPaused(cmds []*command, tx bool) ([]byte, bool) {
	for {
		lockServer()
		if c.run.killed() {
			unlockServer()
			return nil, false
		}
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
	reply = c.translate(res.reply, ci, cmd)
	switch {
	case name != "client":
	case cmd.argc() > 2 && strings.EqualFold(string(cmd.arg(1)), "kill"):
		var self bool
		reply, self = c.killShm(cmd, reply)
		return reply, true, !self
	case strings.EqualFold(string(cmd.arg(1)), "list"):
		reply = c.listShm(cmd, reply)
	}
	return reply, ci.writes() || ci.container, true
}

// refuse applies the checks RM_Call does not make for a socket client:
// the subcommand and arity (lookupError, before NOAUTH), authentication,
// DEBUG and MODULE's protection, READONLY for a command that cannot run in
// script mode. "" lets the command run.
func (c *client) refuse(name string, ci *cmdInfo, cmd *command) string {
	if r := lookupError(ci, cmd); r != "" {
		return r
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

// lookupError is the error Redis gives a known command before it checks
// anything else (NOAUTH included): an unknown subcommand of a container
// command, or an argument count its arity (a subcommand's own) refuses;
// or "".
func lookupError(ci *cmdInfo, cmd *command) string {
	if ci.container && cmd.argc() >= 2 && ci.subs[lower(cmd.arg(1))] == nil {
		return fmt.Sprintf("-ERR unknown subcommand '%.128s'. Try %s HELP.\r\n", cmd.arg(1), strings.ToUpper(string(cmd.arg(0))))
	}
	sc := ci.forCall(cmd)
	if arityOK(sc, cmd) {
		return ""
	}
	return "-ERR wrong number of arguments for '" + sc.name + "' command\r\n"
}

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

// aclErrPrefix begins RM_Call's ACL refusals.
const aclErrPrefix = "-ERR acl verification failed, "

// translate gives RM_Call's own wording of an ACL refusal the words a
// socket client reads.
func (c *client) translate(reply []byte, ci *cmdInfo, cmd *command) []byte {
	if !bytes.HasPrefix(reply, []byte(aclErrPrefix)) {
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

// addr is the client's address (and local address) in CLIENT LIST and
// CLIENT KILL: the module's socket, port 0, as Redis shows a unix socket
// client's.
func (c *client) addr() string { return c.m.opts.socket + ":0" }
