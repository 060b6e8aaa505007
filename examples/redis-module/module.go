//go:build cgo

package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/shmconn/shmconn/conn"
)

// module is the state of the loaded module: the listener, its clients,
// and what it knows of the server's configuration and commands.
type module struct {
	opts options
	ln   *conn.Listener
	ctx  rmCtx // for the module's own calls (CONFIG GET, COMMAND INFO), under the lock

	// aclRemoved: ACL is renamed to "" (set at load): no one can change or
	// free ACL users at run time but CONFIG SET requirepass, and the module
	// cannot ask ACL GETUSER or ACL DRYRUN.
	aclRemoved bool

	keys     *keyChanges
	cfg      atomic.Pointer[serverConfig]
	accepted atomic.Uint64 // clients accepted
	refused  atomic.Uint64 // clients refused at maxclients

	mu      sync.Mutex // guards clients and writes to cmds; never held while waiting for the server lock
	clients map[*client]struct{}
	cmds    atomic.Pointer[map[string]*cmdInfo] // replaced, never changed: read without a lock

	closing   chan struct{}
	closeOnce sync.Once
}

// serverConfig is what the module reads of redis-server's configuration,
// refreshed every second (CONFIG SET changes it).
type serverConfig struct {
	maxBulk    int64         // proto-max-bulk-len
	maxQuery   int64         // client-query-buffer-limit
	timeout    time.Duration // timeout: idle clients are closed after it; 0: never
	debugCmd   string        // enable-debug-command: yes, no, local
	moduleCmd  string        // enable-module-command
	maxClients int           // maxclients, unless the module's own is given
	out        outputLimit   // client-output-buffer-limit's normal class
}

// outputLimit is a client class's output limits: a client whose pending
// output exceeds hard, or exceeds soft for softTime, is closed. 0: no limit.
type outputLimit struct {
	hard, soft int
	softTime   time.Duration
}

var configNames = []string{"proto-max-bulk-len", "client-query-buffer-limit", "timeout",
	"enable-debug-command", "enable-module-command", "maxclients", "client-output-buffer-limit"}

// load starts the module: it reads the configuration, listens and serves.
// It runs on the main thread during RedisModule_OnLoad, which holds the
// server lock.
func load(loadCtx rmCtx, args []string) (*module, error) {
	o, err := parseOptions(args)
	if err != nil {
		return nil, err
	}
	m := &module{opts: o, clients: map[*client]struct{}{}, closing: make(chan struct{})}
	m.cmds.Store(&map[string]*cmdInfo{})
	cfg, err := m.readConfig(loadCtx)
	if err != nil {
		return nil, err
	}
	m.cfg.Store(cfg)
	m.ctx = newCtx()
	if m.command("get") == nil {
		freeCtx(m.ctx)
		return nil, errors.New("COMMAND INFO does not answer (is COMMAND renamed?): the module needs it to check each command as Redis does")
	}
	if err := m.checkNames(); err != nil {
		freeCtx(m.ctx)
		return nil, err
	}
	if m.keys, err = newKeyChanges(); err != nil {
		return nil, err
	}
	if m.ln, err = listen(o); err != nil {
		return nil, err
	}
	go m.acceptLoop()
	go m.refreshConfig()
	return m, nil
}

// filteredNames are the commands the command filter (bridge.c) knows by
// name: ACL and EXEC, which may change or free ACL users, and CLIENT,
// whose PAUSE holds shm clients. Under other names it would miss them: a
// conn would use a user ACL DELUSER freed, and crash the server, or write
// through a pause. Removed (renamed to ""), they cannot run at all.
var filteredNames = []string{"acl", "exec", "client"}

// checkNames refuses a server where a command of filteredNames is renamed,
// and notes whether ACL is removed. Under the lock, at load.
func (m *module) checkNames() error {
	for _, name := range filteredNames {
		if m.command(name) != nil {
			continue
		}
		if !m.removed(name) {
			return fmt.Errorf("%s is renamed (rename-command): the module needs it under its own name, or removed (rename-command %s \"\")",
				strings.ToUpper(name), strings.ToUpper(name))
		}
		if name == "acl" {
			m.aclRemoved = true
		}
	}
	return nil
}

// removed says whether the command named name, which COMMAND INFO does not
// find by that name, is gone rather than renamed: COMMAND LIST names every
// command by its own name, whatever name rename-command gave it. Under the
// lock.
func (m *module) removed(name string) bool {
	res := rmCall(m.ctx, nil, "", newCommand("COMMAND", "LIST", "FILTERBY", "PATTERN", name))
	v, _, err := parseValue(res.reply)
	if err != nil || v.kind != '*' {
		return false
	}
	for _, e := range v.arr {
		if string(e.str) == name {
			return false
		}
	}
	return true
}

// listen listens on the socket path, first removing a stale socket: one
// that is a socket and refuses connections. Any other file stays.
func listen(o options) (*conn.Listener, error) {
	if err := removeStale(o.socket); err != nil {
		return nil, err
	}
	lc := conn.ListenConfig{Wait: o.wait}
	ln, err := lc.Listen(context.Background(), "unix", o.socket)
	if err != nil {
		return nil, err
	}
	if o.perm != 0 {
		if err := os.Chmod(o.socket, o.perm); err != nil {
			ln.Close()
			return nil, err
		}
	}
	return ln, nil
}

func removeStale(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.Mode().Type() != fs.ModeSocket {
		return fmt.Errorf("%s exists and is not a socket; not removing it", path)
	}
	c, err := net.DialTimeout("unix", path, time.Second)
	if err == nil {
		c.Close()
		return fmt.Errorf("%s: another process listens on it", path)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("%s: cannot tell whether it is stale: %v", path, err)
	}
	return os.Remove(path)
}

// readConfig reads serverConfig with one CONFIG GET. Under the lock.
func (m *module) readConfig(ctx rmCtx) (*serverConfig, error) {
	cmd := newCommand(append([]string{"CONFIG", "GET"}, configNames...)...)
	res := rmCall(ctx, nil, "", cmd)
	v, _, err := parseValue(res.reply)
	if err != nil || v.kind != '*' {
		return nil, fmt.Errorf("CONFIG GET: %q %v", res.reply, err)
	}
	kv := map[string]string{}
	for i := 0; i+1 < len(v.arr); i += 2 {
		kv[string(v.arr[i].str)] = string(v.arr[i+1].str)
	}
	num := func(k string) int64 { n, _ := strconv.ParseInt(kv[k], 10, 64); return n }
	return &serverConfig{
		maxBulk:    num("proto-max-bulk-len"),
		maxQuery:   num("client-query-buffer-limit"),
		timeout:    time.Duration(num("timeout")) * time.Second,
		debugCmd:   kv["enable-debug-command"],
		moduleCmd:  kv["enable-module-command"],
		maxClients: int(num("maxclients")),
		out:        normalLimit(kv["client-output-buffer-limit"]),
	}, nil
}

// normalLimit reads the normal class from client-output-buffer-limit's
// value ("normal 0 0 0 replica ... pubsub ...", sizes in bytes).
func normalLimit(v string) outputLimit {
	f := strings.Fields(v)
	for i := 0; i+3 < len(f); i += 4 {
		if f[i] != "normal" {
			continue
		}
		hard, _ := strconv.Atoi(f[i+1])
		soft, _ := strconv.Atoi(f[i+2])
		secs, _ := strconv.Atoi(f[i+3])
		return outputLimit{hard: hard, soft: soft, softTime: time.Duration(secs) * time.Second}
	}
	return outputLimit{}
}

func (m *module) refreshConfig() {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-m.closing:
			return
		case <-t.C:
		}
		lockServer()
		cfg, err := m.readConfig(m.ctx)
		unlockServer()
		if err == nil {
			m.cfg.Store(cfg)
		}
	}
}

func (m *module) maxClients() int {
	if m.opts.maxClients > 0 {
		return m.opts.maxClients
	}
	return m.cfg.Load().maxClients
}

func (m *module) acceptLoop() {
	for {
		nc, err := m.ln.Accept()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				logWarning("shmconn: accept: " + err.Error())
			}
			return
		}
		m.accepted.Add(1)
		c := &client{m: m, nc: nc, created: time.Now()}
		if !m.admit(c) {
			m.refused.Add(1)
			nc.Write([]byte("-ERR max number of clients reached\r\n"))
			nc.Close()
			continue
		}
		go c.serve()
	}
}

func (m *module) admit(c *client) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	select {
	case <-m.closing:
		return false
	default:
	}
	if len(m.clients) >= m.maxClients() {
		return false
	}
	m.clients[c] = struct{}{}
	return true
}

func (m *module) forget(c *client) {
	m.mu.Lock()
	delete(m.clients, c)
	m.mu.Unlock()
}

// shutdown closes the listener and every client: redis-server is exiting
// (it runs on the main thread, in the shutdown event).
func (m *module) shutdown() {
	m.closeOnce.Do(func() {
		close(m.closing)
		m.ln.Close()
		m.mu.Lock()
		for c := range m.clients {
			c.nc.Close()
		}
		m.mu.Unlock()
	})
}

type infoField struct {
	name  string
	value uint64
}

// infoFields are INFO shmconn's fields. Called on the main thread.
func (m *module) infoFields() []infoField {
	s := m.ln.Stats()
	m.mu.Lock()
	n := len(m.clients)
	m.mu.Unlock()
	he := s.HandshakeErrors
	return []infoField{
		{"clients", uint64(n)},
		{"clients_accepted", m.accepted.Load()},
		{"clients_refused_maxclients", m.refused.Load()},
		{"shared_conns", s.SharedConns},
		{"fallbacks_no_segment", s.Fallbacks.NoSegment},
		{"fallbacks_open_failed", s.Fallbacks.OpenFailed},
		{"handshake_errors", he.Timeout + he.NoSharedMemory + he.Protocol + he.Closed + he.Other},
		{"handshake_errors_timeout", he.Timeout},
		{"handshake_errors_protocol", he.Protocol},
		{"handshake_errors_closed", he.Closed},
		{"handshake_errors_other", he.Other + he.NoSharedMemory},
		{"bytes_read", s.BytesRead},
		{"bytes_written", s.BytesWritten},
		{"wakeups_sent", s.WakeupsSent},
		{"wakeups_received", s.WakeupsReceived},
		{"parks", s.Parks},
	}
}

// clientList is SHMCONN.CLIENTS's reply: a CLIENT LIST line per shm
// client. Called on the main thread, which holds the server lock, so the
// fields clients write under that lock are stable.
func (m *module) clientList() []byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	var b []byte
	for c := range m.clients {
		b = c.appendInfo(b)
	}
	return b
}

// cmdInfo is what COMMAND INFO says of a command, as far as the module
// needs it. Immutable once cached.
type cmdInfo struct {
	name      string // lower case
	arity     int
	flags     map[string]bool
	container bool // it has subcommands (CONFIG, CLIENT, ...)
	// Read per command, so kept out of the map:
	write    bool // it may write or replicate (CLIENT PAUSE WRITE holds it; the main thread is woken after it)
	noAuth   bool // it runs before AUTH
	noscript bool // a script may not run it
	blocking bool // it may block (blockingTimeout says whether this call does)
	plain    bool // RM_Call runs it with nothing of the module's under the lock: not blocking, not a conn command (connCommands)
	// A container's subcommands by name (lower case), each with flags of
	// its own: MODULE LIST may run in a script where MODULE LOAD may not.
	subs map[string]*cmdInfo
}

// forCall is the cmdInfo whose flags apply to cmd: its subcommand's for a
// container command, else ci itself (also for nil).
func (ci *cmdInfo) forCall(cmd *command) *cmdInfo {
	if ci == nil || !ci.container || cmd.argc() < 2 {
		return ci
	}
	if sub := ci.subs[lower(cmd.arg(1))]; sub != nil {
		return sub
	}
	return ci
}

// writes: the command may write or replicate.
func (ci *cmdInfo) writes() bool { return ci.write }

// command looks a command up, caching what COMMAND INFO says. Under the
// lock. nil: no such command.
func (m *module) command(name string) *cmdInfo {
	if ci := (*m.cmds.Load())[name]; ci != nil {
		return ci
	}
	res := rmCall(m.ctx, nil, "", newCommand("COMMAND", "INFO", name))
	v, _, err := parseValue(res.reply)
	if err != nil || len(v.arr) != 1 || len(v.arr[0].arr) < 3 {
		return nil
	}
	ci := parseCmdInfo(name, v.arr[0].arr)
	m.mu.Lock()
	old := *m.cmds.Load()
	cmds := make(map[string]*cmdInfo, len(old)+1)
	for k, v := range old {
		cmds[k] = v
	}
	cmds[name] = ci
	m.cmds.Store(&cmds)
	m.mu.Unlock()
	return ci
}

// parseCmdInfo reads one entry of COMMAND INFO's reply (at least its
// name, arity and flags), subcommands included.
func parseCmdInfo(name string, e []value) *cmdInfo {
	ci := &cmdInfo{name: name, arity: int(e[1].num), flags: map[string]bool{}}
	for _, f := range e[2].arr {
		ci.flags[string(f.str)] = true
	}
	ci.container = len(e) > 9 && len(e[9].arr) > 0
	ci.write = ci.flags["write"] || ci.flags["may_replicate"]
	ci.noAuth, ci.noscript = ci.flags["no_auth"], ci.flags["noscript"]
	ci.blocking = blockingCommands[name]
	ci.plain = !ci.blocking && !connCommands[name]
	if ci.container {
		ci.subs = make(map[string]*cmdInfo, len(e[9].arr))
		for _, sub := range e[9].arr {
			full := strings.ToLower(string(sub.arr[0].str)) // "module|list"
			if len(sub.arr) >= 3 && strings.HasPrefix(full, name+"|") {
				ci.subs[full[len(name)+1:]] = parseCmdInfo(full, sub.arr)
			}
		}
	}
	return ci
}

// cachedCommand is the cached cmdInfo of the command named name (any
// case), or nil if none is cached yet. It needs no lock.
func (m *module) cachedCommand(name []byte) *cmdInfo {
	var buf [32]byte
	if len(name) > len(buf) {
		return nil
	}
	for i, ch := range name {
		if 'A' <= ch && ch <= 'Z' {
			ch += 'a' - 'A'
		}
		buf[i] = ch
	}
	return (*m.cmds.Load())[string(buf[:len(name)])]
}

func newCommand(args ...string) *command {
	c := &command{}
	for _, a := range args {
		c.push([]byte(a))
	}
	return c
}

func lower(b []byte) string { return strings.ToLower(string(b)) }
