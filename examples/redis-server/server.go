package main

import (
	"fmt"
	"net"
	"os"
	"path"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tidwall/redcon"

	"github.com/shmconn/shmconn/conn"
)

// redisVersion is the Redis version whose behaviour this server follows,
// reported by INFO and HELLO.
const redisVersion = "7.0.0"

// Server runs commands against a Store for any number of clients. Serve
// may be called with several listeners at once; each command runs under
// one mutex, so commands are atomic and see each other in order, as in
// Redis.
type Server struct {
	// Immutable after NewServer.
	wait    conn.WaitPolicy
	started time.Time

	mu       sync.Mutex // guards store and the counters below it
	store    *Store
	commands int64 // processed since start or CONFIG RESETSTAT

	ports      sync.Map // net.Addr.String() -> net.Addr of the listeners, for INFO
	nextID     atomic.Int64
	clients    atomic.Int64 // connected now
	shmClients atomic.Int64 // connected now over shared memory
	accepted   atomic.Int64
	handlers   sync.WaitGroup // one per accepted client until its handler returns

	stopSweep chan struct{}
	sweepDone chan struct{}
}

// NewServer returns a server with an empty store and starts its expiry
// sweep; Close stops it.
func NewServer(wait conn.WaitPolicy) *Server {
	s := &Server{
		wait:      wait,
		started:   time.Now(),
		store:     NewStore(),
		stopSweep: make(chan struct{}),
		sweepDone: make(chan struct{}),
	}
	go s.sweepLoop()
	return s
}

func (s *Server) sweepLoop() {
	defer close(s.sweepDone)
	t := time.NewTicker(sweepInterval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			s.mu.Lock()
			s.store.sweep()
			s.mu.Unlock()
		case <-s.stopSweep:
			return
		}
	}
}

// Serve answers the clients of ln until ln is closed; it then closes the
// connections it served and returns nil.
func (s *Server) Serve(ln net.Listener) error {
	s.ports.Store(ln.Addr().String(), ln.Addr())
	defer s.ports.Delete(ln.Addr().String())
	return redcon.Serve(ln, s.handle, s.accept, s.closed)
}

// Close waits up to timeout for the handlers of clients to return, and
// stops the expiry sweep. Every call to Serve must have returned.
func (s *Server) Close(timeout time.Duration) {
	done := make(chan struct{})
	go func() {
		s.handlers.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(timeout):
	}
	close(s.stopSweep)
	<-s.sweepDone
}

// session is one client's state. It is touched only by that client's
// handler goroutine.
type session struct {
	id   int64
	db   int
	name string
	shm  bool // the client talks over shared memory
	quit bool // close after replying
	req  request
}

func (s *Server) accept(c redcon.Conn) bool {
	_, shm := c.NetConn().(*conn.Conn)
	c.SetContext(&session{id: s.nextID.Add(1), shm: shm})
	s.handlers.Add(1)
	s.accepted.Add(1)
	s.clients.Add(1)
	if shm {
		s.shmClients.Add(1)
	}
	return true
}

func (s *Server) closed(c redcon.Conn, err error) {
	if c.Context().(*session).shm {
		s.shmClients.Add(-1)
	}
	s.clients.Add(-1)
	s.handlers.Done()
}

func (s *Server) handle(c redcon.Conn, cmd redcon.Command) {
	sess := c.Context().(*session)
	s.exec(sess, cmd.Args, redcon.BaseWriter(c))
	if sess.quit {
		c.Close()
	}
}

// request is one command being run: what command implementations see.
type request struct {
	srv  *Server
	sess *session
	cmd  *command
	args [][]byte // args[0] is the command name
	w    *redcon.Writer
}

func (r *request) db() *db { return &r.srv.store.dbs[r.sess.db] }

func (r *request) arityError() {
	r.w.WriteError("ERR wrong number of arguments for '" + r.cmd.name + "' command")
}

// exec runs one command and writes its reply to w.
func (s *Server) exec(sess *session, args [][]byte, w *redcon.Writer) {
	if len(args) == 0 {
		return // an empty line or "*0": Redis ignores it too
	}
	cmd := lookupCommand(args[0])
	if cmd == nil {
		w.WriteError(unknownCommand(args))
		return
	}
	sess.req = request{srv: s, sess: sess, cmd: cmd, args: args, w: w}
	r := &sess.req
	if n := len(args); cmd.arity > 0 && n != cmd.arity || n < -cmd.arity {
		r.arityError()
		return
	}
	s.mu.Lock()
	s.commands++
	cmd.run(r)
	s.mu.Unlock()
	sess.req = request{}
}

// unknownCommand is Redis's error for a command it does not know, quoting
// the first arguments up to about 128 bytes.
func unknownCommand(args [][]byte) string {
	var quoted []byte
	for _, a := range args[1:] {
		if len(quoted) >= 128 {
			break
		}
		quoted = fmt.Appendf(quoted, "'%.*s' ", 128-len(quoted), a)
	}
	return fmt.Sprintf("ERR unknown command '%.128s', with args beginning with: %s", args[0], quoted)
}

// command describes a command as COMMAND INFO does: arity is the number
// of arguments including the name, negative for "at least"; firstKey,
// lastKey and step locate the keys (lastKey -1: up to the last argument).
type command struct {
	name                    string
	arity                   int
	firstKey, lastKey, step int
	run                     func(*request)
}

// commands is the command table, by lower-case name.
var commands = map[string]*command{}

func init() {
	for _, c := range []*command{
		{"ping", -1, 0, 0, 0, cmdPing},
		{"echo", 2, 0, 0, 0, cmdEcho},
		{"quit", -1, 0, 0, 0, cmdQuit},
		{"select", 2, 0, 0, 0, cmdSelect},
		{"dbsize", 1, 0, 0, 0, cmdDBSize},
		{"flushall", -1, 0, 0, 0, cmdFlushAll},
		{"flushdb", -1, 0, 0, 0, cmdFlushDB},
		{"info", -1, 0, 0, 0, cmdInfo},
		{"config", -2, 0, 0, 0, cmdConfig},
		{"command", -1, 0, 0, 0, cmdCommand},
		{"hello", -1, 0, 0, 0, cmdHello},
		{"client", -2, 0, 0, 0, cmdClient},
		{"auth", -2, 0, 0, 0, cmdAuth},
		{"time", 1, 0, 0, 0, cmdTime},

		{"get", 2, 1, 1, 1, cmdGet},
		{"set", -3, 1, 1, 1, cmdSet},
		{"incr", 2, 1, 1, 1, cmdIncr},
		{"incrby", 3, 1, 1, 1, cmdIncrBy},
		{"decr", 2, 1, 1, 1, cmdDecr},
		{"decrby", 3, 1, 1, 1, cmdDecrBy},
		{"mget", -2, 1, -1, 1, cmdMGet},
		{"mset", -3, 1, -1, 2, cmdMSet},
		{"del", -2, 1, -1, 1, cmdDel},
		{"exists", -2, 1, -1, 1, cmdExists},
		{"type", 2, 1, 1, 1, cmdType},
		{"expire", -3, 1, 1, 1, cmdExpire},
		{"pexpire", -3, 1, 1, 1, cmdPExpire},
		{"ttl", 2, 1, 1, 1, cmdTTL},
		{"pttl", 2, 1, 1, 1, cmdPTTL},
		{"persist", 2, 1, 1, 1, cmdPersist},

		{"lpush", -3, 1, 1, 1, cmdLPush},
		{"rpush", -3, 1, 1, 1, cmdRPush},
		{"lpop", -2, 1, 1, 1, cmdLPop},
		{"rpop", -2, 1, 1, 1, cmdRPop},
		{"lrange", 4, 1, 1, 1, cmdLRange},
		{"llen", 2, 1, 1, 1, cmdLLen},

		{"sadd", -3, 1, 1, 1, cmdSAdd},
		{"srem", -3, 1, 1, 1, cmdSRem},
		{"scard", 2, 1, 1, 1, cmdSCard},
		{"sismember", 3, 1, 1, 1, cmdSIsMember},
		{"smembers", 2, 1, 1, 1, cmdSMembers},
		{"spop", -2, 1, 1, 1, cmdSPop},

		{"hset", -4, 1, 1, 1, cmdHSet},
		{"hget", 3, 1, 1, 1, cmdHGet},
		{"hgetall", 2, 1, 1, 1, cmdHGetAll},
		{"hdel", -3, 1, 1, 1, cmdHDel},
		{"hlen", 2, 1, 1, 1, cmdHLen},

		{"zadd", -4, 1, 1, 1, cmdZAdd},
		{"zcard", 2, 1, 1, 1, cmdZCard},
		{"zscore", 3, 1, 1, 1, cmdZScore},
		{"zpopmin", -2, 1, 1, 1, cmdZPopMin},
		{"zrange", -4, 1, 1, 1, cmdZRange},
	} {
		commands[c.name] = c
	}
}

// lookupCommand finds a command by name in any case, without allocating.
func lookupCommand(name []byte) *command {
	var buf [16]byte
	if len(name) > len(buf) {
		return nil
	}
	for i, c := range name {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		buf[i] = c
	}
	return commands[string(buf[:len(name)])]
}

// Connection and server commands.

func cmdPing(r *request) {
	switch len(r.args) {
	case 1:
		r.w.WriteString("PONG")
	case 2:
		r.w.WriteBulk(r.args[1])
	default:
		r.arityError()
	}
}

func cmdEcho(r *request) { r.w.WriteBulk(r.args[1]) }

func cmdQuit(r *request) {
	r.w.WriteString("OK")
	r.sess.quit = true
}

func cmdAuth(r *request) {
	r.w.WriteError("ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?")
}

func cmdTime(r *request) {
	now := time.Now()
	r.w.WriteArray(2)
	r.w.WriteBulkString(strconv.FormatInt(now.Unix(), 10))
	r.w.WriteBulkString(strconv.Itoa(now.Nanosecond() / 1000))
}

func cmdSelect(r *request) {
	n, ok := parseInt(r.args[1])
	switch {
	case !ok:
		r.w.WriteError(errNotInt)
	case n < 0 || n >= numDBs:
		r.w.WriteError("ERR DB index is out of range")
	default:
		r.sess.db = int(n)
		r.w.WriteString("OK")
	}
}

func cmdDBSize(r *request) { r.w.WriteInt(len(r.db().data)) }

// flushMode checks FLUSHALL's and FLUSHDB's optional ASYNC or SYNC.
func flushMode(r *request) bool {
	if len(r.args) > 2 || len(r.args) == 2 && !strings.EqualFold(string(r.args[1]), "ASYNC") && !strings.EqualFold(string(r.args[1]), "SYNC") {
		r.w.WriteError(errSyntax)
		return false
	}
	return true
}

func cmdFlushAll(r *request) {
	if flushMode(r) {
		for i := range r.srv.store.dbs {
			r.srv.store.dbs[i].flush()
		}
		r.w.WriteString("OK")
	}
}

func cmdFlushDB(r *request) {
	if flushMode(r) {
		r.db().flush()
		r.w.WriteString("OK")
	}
}

// cmdInfo is INFO [section ...]: a small subset of Redis's sections.
func cmdInfo(r *request) {
	want := func(section string) bool {
		if len(r.args) == 1 {
			return true
		}
		for _, a := range r.args[1:] {
			switch strings.ToLower(string(a)) {
			case section, "all", "default", "everything":
				return true
			}
		}
		return false
	}
	s := r.srv
	var b strings.Builder
	line := func(format string, args ...any) {
		fmt.Fprintf(&b, format, args...)
		b.WriteString("\r\n")
	}
	if want("server") {
		up := time.Since(s.started)
		line("# Server")
		line("redis_version:%s", redisVersion)
		line("redis_mode:standalone")
		line("server:shmconn-example")
		line("shmconn_wait:%v", s.wait)
		line("os:%s %s", runtime.GOOS, runtime.GOARCH)
		line("arch_bits:%d", strconv.IntSize)
		line("go_version:%s", runtime.Version())
		line("process_id:%d", os.Getpid())
		if tcp := s.tcpPort(); tcp != 0 {
			line("tcp_port:%d", tcp)
		}
		line("uptime_in_seconds:%d", int64(up.Seconds()))
		line("uptime_in_days:%d", int64(up.Hours()/24))
		line("")
	}
	if want("clients") {
		line("# Clients")
		line("connected_clients:%d", s.clients.Load())
		line("shm_clients:%d", s.shmClients.Load())
		line("")
	}
	if want("stats") {
		line("# Stats")
		line("total_connections_received:%d", s.accepted.Load())
		line("total_commands_processed:%d", s.commands)
		line("expired_keys:%d", s.store.expired)
		line("")
	}
	if want("keyspace") {
		line("# Keyspace")
		for i := range s.store.dbs {
			if d := &s.store.dbs[i]; len(d.data) > 0 {
				line("db%d:keys=%d,expires=%d,avg_ttl=0", i, len(d.data), len(d.expires))
			}
		}
	}
	r.w.WriteBulkString(strings.TrimSuffix(b.String(), "\r\n"))
}

// tcpPort is the port of one of the server's TCP listeners, or 0.
func (s *Server) tcpPort() int {
	port := 0
	s.ports.Range(func(_, v any) bool {
		if a, ok := v.(*net.TCPAddr); ok {
			port = a.Port
			return false
		}
		return true
	})
	return port
}

func unknownSubcommand(r *request) {
	r.w.WriteError(fmt.Sprintf("ERR unknown subcommand '%.128s'. Try %s HELP.", r.args[1], strings.ToUpper(r.cmd.name)))
}

// subArityError is the arity error of a subcommand, named "cmd|sub".
func subArityError(r *request) {
	r.w.WriteError(fmt.Sprintf("ERR wrong number of arguments for '%s|%s' command", r.cmd.name, strings.ToLower(string(r.args[1]))))
}

// cmdConfig answers CONFIG GET with the settings clients ask about
// (redis-benchmark asks for save and appendonly): this server keeps
// nothing on disk. CONFIG SET is not supported.
func cmdConfig(r *request) {
	switch strings.ToUpper(string(r.args[1])) {
	case "GET":
		if len(r.args) < 3 {
			subArityError(r)
			return
		}
		params := map[string]string{
			"save":            "",
			"appendonly":      "no",
			"databases":       strconv.Itoa(numDBs),
			"maxmemory":       "0",
			"maxclients":      "10000",
			"timeout":         "0",
			"port":            strconv.Itoa(r.srv.tcpPort()),
			"io-threads":      "1",
			"cluster-enabled": "no",
		}
		var names []string
		for name := range params {
			for _, p := range r.args[2:] {
				if ok, _ := path.Match(strings.ToLower(string(p)), name); ok {
					names = append(names, name)
					break
				}
			}
		}
		slices.Sort(names)
		r.w.WriteArray(2 * len(names))
		for _, name := range names {
			r.w.WriteBulkString(name)
			r.w.WriteBulkString(params[name])
		}
	case "RESETSTAT":
		r.srv.commands, r.srv.store.expired = 0, 0
		r.srv.accepted.Store(0)
		r.w.WriteString("OK")
	case "HELP":
		writeHelp(r, "CONFIG GET <pattern> [<pattern> ...]", "CONFIG RESETSTAT")
	default:
		unknownSubcommand(r)
	}
}

func writeHelp(r *request, lines ...string) {
	r.w.WriteArray(len(lines))
	for _, l := range lines {
		r.w.WriteString(l)
	}
}

// cmdCommand is COMMAND [COUNT|INFO name...|LIST|DOCS]. redis-cli asks
// COMMAND DOCS for its hints; an empty reply makes it use its built-in
// help.
func cmdCommand(r *request) {
	if len(r.args) == 1 {
		names := commandNames()
		r.w.WriteArray(len(names))
		for _, n := range names {
			writeCommandInfo(r, commands[n])
		}
		return
	}
	switch strings.ToUpper(string(r.args[1])) {
	case "COUNT":
		r.w.WriteInt(len(commands))
	case "LIST":
		names := commandNames()
		r.w.WriteArray(len(names))
		for _, n := range names {
			r.w.WriteBulkString(n)
		}
	case "INFO":
		r.w.WriteArray(len(r.args) - 2)
		for _, a := range r.args[2:] {
			if c := lookupCommand(a); c != nil {
				writeCommandInfo(r, c)
			} else {
				r.w.WriteNull()
			}
		}
	case "DOCS":
		r.w.WriteArray(0)
	case "HELP":
		writeHelp(r, "COMMAND", "COMMAND COUNT", "COMMAND DOCS", "COMMAND INFO <command-name> [<command-name> ...]", "COMMAND LIST")
	default:
		unknownSubcommand(r)
	}
}

func commandNames() []string {
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

func writeCommandInfo(r *request, c *command) {
	r.w.WriteArray(6)
	r.w.WriteBulkString(c.name)
	r.w.WriteInt(c.arity)
	r.w.WriteArray(0) // flags
	r.w.WriteInt(c.firstKey)
	r.w.WriteInt(c.lastKey)
	r.w.WriteInt(c.step)
}

// cmdHello is HELLO [protover [AUTH user pass] [SETNAME name]]. The server
// speaks RESP2 only, so HELLO 3 fails with NOPROTO, as a Redis without
// RESP3 would: go-redis, which sends HELLO 3 first, then carries on in
// RESP2.
func cmdHello(r *request) {
	args := r.args[1:]
	if len(args) > 0 {
		v, ok := parseInt(args[0])
		if !ok {
			r.w.WriteError("ERR Protocol version is not an integer or out of range")
			return
		}
		if v != 2 {
			r.w.WriteError("NOPROTO unsupported protocol version")
			return
		}
		args = args[1:]
	}
	name, setName := "", false
	for len(args) > 0 {
		switch opt := strings.ToUpper(string(args[0])); {
		case opt == "AUTH" && len(args) >= 3:
			args = args[3:] // no passwords here: every user gets in
		case opt == "SETNAME" && len(args) >= 2:
			name, setName = string(args[1]), true
			args = args[2:]
		default:
			r.w.WriteError(fmt.Sprintf("ERR Syntax error in HELLO option '%s'", args[0]))
			return
		}
	}
	if setName {
		if !validClientName(name) {
			r.w.WriteError(errClientName)
			return
		}
		r.sess.name = name
	}
	// A map, flattened for RESP2.
	r.w.WriteArray(14)
	r.w.WriteBulkString("server")
	r.w.WriteBulkString("redis")
	r.w.WriteBulkString("version")
	r.w.WriteBulkString(redisVersion)
	r.w.WriteBulkString("proto")
	r.w.WriteInt(2)
	r.w.WriteBulkString("id")
	r.w.WriteInt64(r.sess.id)
	r.w.WriteBulkString("mode")
	r.w.WriteBulkString("standalone")
	r.w.WriteBulkString("role")
	r.w.WriteBulkString("master")
	r.w.WriteBulkString("modules")
	r.w.WriteArray(0)
}

const errClientName = "ERR Client names cannot contain spaces, newlines or special characters."

func validClientName(name string) bool {
	for i := 0; i < len(name); i++ {
		if name[i] < '!' || name[i] > '~' {
			return false
		}
	}
	return true
}

// cmdClient is CLIENT ID|GETNAME|SETNAME|SETINFO.
func cmdClient(r *request) {
	sub := strings.ToUpper(string(r.args[1]))
	wantArgs := map[string]int{"ID": 2, "GETNAME": 2, "SETNAME": 3, "SETINFO": 4, "HELP": 2}[sub]
	switch {
	case wantArgs == 0:
		unknownSubcommand(r)
		return
	case len(r.args) != wantArgs:
		subArityError(r)
		return
	}
	switch sub {
	case "ID":
		r.w.WriteInt64(r.sess.id)
	case "GETNAME":
		if r.sess.name == "" {
			r.w.WriteNull()
		} else {
			r.w.WriteBulkString(r.sess.name)
		}
	case "SETNAME":
		if name := string(r.args[2]); validClientName(name) {
			r.sess.name = name
			r.w.WriteString("OK")
		} else {
			r.w.WriteError(errClientName)
		}
	case "SETINFO":
		// go-redis sends LIB-NAME and LIB-VER; nothing here reads them.
		switch attr := strings.ToUpper(string(r.args[2])); attr {
		case "LIB-NAME", "LIB-VER":
			r.w.WriteString("OK")
		default:
			r.w.WriteError(fmt.Sprintf("ERR Unrecognized option '%s'", r.args[2]))
		}
	case "HELP":
		writeHelp(r, "CLIENT GETNAME", "CLIENT ID", "CLIENT SETINFO <LIB-NAME|LIB-VER> <value>", "CLIENT SETNAME <name>")
	}
}
