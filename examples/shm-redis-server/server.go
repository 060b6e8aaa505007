package main

import (
	"fmt"
	"maps"
	"net"
	"os"
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

	maxBulkLen int64 // proto-max-bulk-len; set before Serve

	mu       sync.Mutex // guards store, config, the counters below it and sessions' db, name, proto and last command
	store    *Store
	commands int64             // processed since start or CONFIG RESETSTAT
	config   map[string]string // CONFIG SET values, by lower-case name

	pubsub   pubsub
	sessions sync.Map // id -> *session, for CLIENT LIST

	ports      sync.Map // net.Addr.String() -> net.Addr of the listeners, for INFO
	shmLns     sync.Map // *conn.Listener -> struct{}: the listeners whose Stats INFO shmconn sums
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
		wait:       wait,
		started:    time.Now(),
		maxBulkLen: defaultMaxBulkLen,
		store:      NewStore(),
		config:     defaultConfig(),
		pubsub: pubsub{
			channels: map[string]map[*subscriber]struct{}{},
			patterns: map[string]map[*subscriber]struct{}{},
			subs:     map[*subscriber]struct{}{},
			limits:   defaultPubSubLimits,
		},
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
// connections it served and returns nil. Each client's requests are
// bounded (see requestConn) before redcon parses them.
func (s *Server) Serve(ln net.Listener) error {
	s.ports.Store(ln.Addr().String(), ln.Addr())
	defer s.ports.Delete(ln.Addr().String())
	if cl, ok := ln.(*conn.Listener); ok {
		s.shmLns.Store(cl, struct{}{})
		defer s.shmLns.Delete(cl)
	}
	return redcon.Serve(requestListener{ln, s.maxBulkLen}, s.handle, s.accept, s.closed)
}

// Close waits up to timeout for the handlers of clients to return, and
// stops the expiry sweep. Every call to Serve must have returned.
func (s *Server) Close(timeout time.Duration) {
	s.closeSubscribers() // redcon closes only the clients it still serves
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

// session is one client's state. It is touched by that client's handler
// goroutine (redcon's, or serveSubscriber once detached); CLIENT LIST reads
// the fields marked as guarded.
type session struct {
	// Immutable after accept.
	id          int64
	shm         bool // the client talks over shared memory
	unix        bool // the client came through the unix socket
	addr, laddr string
	created     time.Time

	// Guarded by Server.mu.
	db         int
	name       string
	proto      int // 2, or 3 after HELLO 3
	lastActive time.Time
	lastCmd    string

	sub *subscriber // set once, under pubsub.mu, when the client subscribes

	tx        *transaction // between MULTI and EXEC or DISCARD; the handler's own
	watch     *watchState  // guarded by Server.mu
	afterExec []func()     // what EXEC left to do once the mutex is let go (its PUBLISHes)

	quit bool // close after replying
	req  request
}

func (s *Server) accept(c redcon.Conn) bool {
	nc := c.NetConn().(*requestConn).Conn
	_, shm := nc.(*conn.Conn)
	now := time.Now()
	sess := &session{
		id: s.nextID.Add(1), shm: shm, proto: 2, created: now, lastActive: now, lastCmd: "NULL",
		addr: nc.RemoteAddr().String(), laddr: nc.LocalAddr().String(),
	}
	if la, ok := nc.LocalAddr().(*net.UnixAddr); ok {
		// Redis names both ends of a unix socket client by the socket's path.
		sess.unix = true
		sess.addr, sess.laddr = la.Name+":0", la.Name+":0"
	}
	c.SetContext(sess)
	s.sessions.Store(sess.id, sess)
	s.handlers.Add(1)
	s.accepted.Add(1)
	s.clients.Add(1)
	if shm {
		s.shmClients.Add(1)
	}
	return true
}

// closed runs when redcon's handler for c returns: the client left, or it
// subscribed and was detached, and serveSubscriber takes it over from here.
func (s *Server) closed(c redcon.Conn, err error) {
	sess := c.Context().(*session)
	if sess.sub != nil {
		s.handlers.Add(1) // serveSubscriber's
		go s.serveSubscriber(sess.sub)
	} else {
		s.clientGone(sess)
	}
	s.handlers.Done()
}

// clientGone forgets a client that disconnected.
func (s *Server) clientGone(sess *session) {
	s.mu.Lock()
	s.store.unwatch(sess)
	s.mu.Unlock()
	s.sessions.Delete(sess.id)
	if sess.shm {
		s.shmClients.Add(-1)
	}
	s.clients.Add(-1)
}

func (s *Server) handle(c redcon.Conn, cmd redcon.Command) {
	sess := c.Context().(*session)
	s.exec(sess, c, cmd.Args, redcon.BaseWriter(c))
	if sess.quit {
		c.Close()
	}
}

// request is one command being run: what command implementations see.
type request struct {
	srv  *Server
	sess *session
	conn redcon.Conn // nil once the client is detached
	cmd  *command
	args [][]byte // args[0] is the command name
	w    *redcon.Writer

	inExec bool // run by EXEC, under the server's mutex
}

func (r *request) db() *db { return &r.srv.store.dbs[r.sess.db] }

func (r *request) arityError() {
	r.w.WriteError("ERR wrong number of arguments for '" + r.cmd.name + "' command")
}

// exec runs one command and writes its reply to w. c is the client's
// redcon conn, or nil once it is detached. Between MULTI and EXEC the
// command is queued instead (see multi.go).
func (s *Server) exec(sess *session, c redcon.Conn, args [][]byte, w *redcon.Writer) {
	if len(args) == 0 {
		return // an empty line or "*0": Redis ignores it too
	}
	cmd := lookupCommand(args[0])
	if msg := s.refusal(sess, cmd, args); msg != "" {
		if sess.tx != nil {
			sess.tx.failed = true // as Redis: EXEC will answer EXECABORT
		}
		w.WriteError(msg)
		return
	}
	if sess.tx != nil && !txControl[cmd.name] {
		sess.tx.queue(args, w)
		return
	}
	s.mu.Lock()
	s.commands++
	sess.lastActive, sess.lastCmd = time.Now(), cmd.name
	if cmd.has(flagPubSub | flagUnlocked) {
		// Pub/Sub commands write to other clients under their own locks,
		// never under the store's; see pubsub.go. WAIT sleeps.
		s.mu.Unlock()
		s.runCommand(sess, c, cmd, args, w, false)
		return
	}
	s.runCommand(sess, c, cmd, args, w, false)
	after := sess.afterExec
	sess.afterExec = nil
	s.mu.Unlock()
	for _, f := range after {
		f()
	}
}

// refusal is the error for a command that cannot run as sent: unknown,
// with the wrong number of arguments, not allowed in subscribed mode or
// in a transaction; "" if it can run.
func (s *Server) refusal(sess *session, cmd *command, args [][]byte) string {
	switch n := len(args); {
	case cmd == nil:
		return unknownCommand(args)
	case cmd.arity > 0 && n != cmd.arity || n < -cmd.arity:
		return "ERR wrong number of arguments for '" + cmd.name + "' command"
	case s.inSubscribedMode(sess) && !cmd.has(flagSubscribed):
		return fmt.Sprintf("ERR Can't execute '%s': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context", cmd.name)
	case sess.tx != nil && cmd.has(flagPubSub) && cmd.name != "publish" && cmd.name != "pubsub":
		// A subscription leaves redcon's loop (pubsub.go), which cannot
		// happen halfway through EXEC; Redis queues it.
		return "ERR Command not allowed inside a transaction"
	}
	return ""
}

// runCommand runs one checked command, under the server's mutex unless
// the command is flagged to run without it; inExec says it runs as part
// of EXEC, which holds the mutex throughout.
func (s *Server) runCommand(sess *session, c redcon.Conn, cmd *command, args [][]byte, w *redcon.Writer, inExec bool) {
	prev := sess.req // EXEC's own, while it runs its queue
	defer func() { sess.req = prev }()
	sess.req = request{srv: s, sess: sess, conn: c, cmd: cmd, args: args, w: w, inExec: inExec}
	r := &sess.req
	if inExec && cmd.name == "publish" {
		publishAfterExec(r)
		return
	}
	cmd.run(r)
	if cmd.has(flagWrite) {
		r.touchKeys()
	}
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

// command is a command table entry, described as COMMAND INFO and COMMAND
// DOCS do: arity is the number of arguments including the name, negative
// for "at least"; flags, group and summary follow Redis's command table.
type command struct {
	name  string
	arity int
	keySpec
	flags          cmdFlag
	group, summary string
	run            func(*request)
}

// keySpec locates a command's keys: firstKey, lastKey (-1: up to the last
// argument) and step; firstKey 0 means no keys.
type keySpec struct{ firstKey, lastKey, step int }

var (
	noKeys   = keySpec{0, 0, 0}
	oneKey   = keySpec{1, 1, 1}
	allKeys  = keySpec{1, -1, 1} // every argument after the name
	keyPairs = keySpec{1, -1, 2} // key value key value ...
)

// commandTable lists every command once.
var commandTable = []command{
	{"ping", -1, noKeys, flagFast | flagSubscribed | flagStale, "connection", "Returns the server's liveliness response.", cmdPing},
	{"echo", 2, noKeys, flagFast | flagStale | flagLoading, "connection", "Returns the given string.", cmdEcho},
	{"quit", -1, noKeys, flagFast | flagSubscribed | flagStale | flagLoading | flagNoScript, "connection", "Closes the connection.", cmdQuit},
	{"select", 2, noKeys, flagFast | flagStale | flagLoading, "connection", "Changes the selected database.", cmdSelect},
	{"dbsize", 1, noKeys, flagReadOnly | flagFast, "server", "Returns the number of keys in the database.", cmdDBSize},
	{"flushall", -1, noKeys, flagWrite, "server", "Removes all keys from all databases.", cmdFlushAll},
	{"flushdb", -1, noKeys, flagWrite, "server", "Remove all keys from the current database.", cmdFlushDB},
	{"info", -1, noKeys, flagStale | flagLoading, "server", "Returns information and statistics about the server.", cmdInfo},
	{"config", -2, noKeys, flagAdmin | flagStale | flagLoading | flagNoScript, "server", "A container for server configuration commands.", cmdConfig},
	{"command", -1, noKeys, flagStale | flagLoading, "server", "Returns detailed information about all commands.", cmdCommand},
	{"hello", -1, noKeys, flagFast | flagStale | flagLoading | flagNoScript, "connection", "Handshakes with the Redis server.", cmdHello},
	{"client", -2, noKeys, flagStale | flagLoading | flagNoScript, "connection", "A container for client connection commands.", cmdClient},
	{"auth", -2, noKeys, flagFast | flagStale | flagLoading | flagNoScript, "connection", "Authenticates the connection.", cmdAuth},
	{"time", 1, noKeys, flagFast | flagStale | flagLoading, "server", "Returns the server time.", cmdTime},

	{"get", 2, oneKey, flagReadOnly | flagFast, "string", "Returns the string value of a key.", cmdGet},
	{"set", -3, oneKey, flagWrite | flagDenyOOM, "string", "Sets the string value of a key, ignoring its type.", cmdSet},
	{"incr", 2, oneKey, flagWrite | flagDenyOOM | flagFast, "string", "Increments the integer value of a key by one.", cmdIncr},
	{"incrby", 3, oneKey, flagWrite | flagDenyOOM | flagFast, "string", "Increments the integer value of a key by a number.", cmdIncrBy},
	{"decr", 2, oneKey, flagWrite | flagDenyOOM | flagFast, "string", "Decrements the integer value of a key by one.", cmdDecr},
	{"decrby", 3, oneKey, flagWrite | flagDenyOOM | flagFast, "string", "Decrements a number from the integer value of a key.", cmdDecrBy},
	{"mget", -2, allKeys, flagReadOnly | flagFast, "string", "Atomically returns the string values of one or more keys.", cmdMGet},
	{"mset", -3, keyPairs, flagWrite | flagDenyOOM, "string", "Atomically creates or modifies the string values of one or more keys.", cmdMSet},
	{"del", -2, allKeys, flagWrite, "generic", "Deletes one or more keys.", cmdDel},
	{"exists", -2, allKeys, flagReadOnly | flagFast, "generic", "Determines whether one or more keys exist.", cmdExists},
	{"type", 2, oneKey, flagReadOnly | flagFast, "generic", "Determines the type of value stored at a key.", cmdType},
	{"expire", -3, oneKey, flagWrite | flagFast, "generic", "Sets the expiration time of a key in seconds.", cmdExpire},
	{"pexpire", -3, oneKey, flagWrite | flagFast, "generic", "Sets the expiration time of a key in milliseconds.", cmdPExpire},
	{"ttl", 2, oneKey, flagReadOnly | flagFast, "generic", "Returns the expiration time in seconds of a key.", cmdTTL},
	{"pttl", 2, oneKey, flagReadOnly | flagFast, "generic", "Returns the expiration time in milliseconds of a key.", cmdPTTL},
	{"persist", 2, oneKey, flagWrite | flagFast, "generic", "Removes the expiration time of a key.", cmdPersist},

	{"lpush", -3, oneKey, flagWrite | flagDenyOOM | flagFast, "list", "Prepends one or more elements to a list. Creates the key if it doesn't exist.", cmdLPush},
	{"rpush", -3, oneKey, flagWrite | flagDenyOOM | flagFast, "list", "Appends one or more elements to a list. Creates the key if it doesn't exist.", cmdRPush},
	{"lpop", -2, oneKey, flagWrite | flagFast, "list", "Returns the first elements in a list after removing it. Deletes the list if the last element was popped.", cmdLPop},
	{"rpop", -2, oneKey, flagWrite | flagFast, "list", "Returns and removes the last elements of a list. Deletes the list if the last element was popped.", cmdRPop},
	{"lrange", 4, oneKey, flagReadOnly, "list", "Returns a range of elements from a list.", cmdLRange},
	{"llen", 2, oneKey, flagReadOnly | flagFast, "list", "Returns the length of a list.", cmdLLen},

	{"sadd", -3, oneKey, flagWrite | flagDenyOOM | flagFast, "set", "Adds one or more members to a set. Creates the key if it doesn't exist.", cmdSAdd},
	{"srem", -3, oneKey, flagWrite | flagFast, "set", "Removes one or more members from a set. Deletes the set if the last member was removed.", cmdSRem},
	{"scard", 2, oneKey, flagReadOnly | flagFast, "set", "Returns the number of members in a set.", cmdSCard},
	{"sismember", 3, oneKey, flagReadOnly | flagFast, "set", "Determines whether a member belongs to a set.", cmdSIsMember},
	{"smembers", 2, oneKey, flagReadOnly, "set", "Returns all members of a set.", cmdSMembers},
	{"spop", -2, oneKey, flagWrite | flagFast, "set", "Returns one or more random members from a set after removing them. Deletes the set if the last member was popped.", cmdSPop},

	{"hset", -4, oneKey, flagWrite | flagDenyOOM | flagFast, "hash", "Creates or modifies the value of a field in a hash.", cmdHSet},
	{"hget", 3, oneKey, flagReadOnly | flagFast, "hash", "Returns the value of a field in a hash.", cmdHGet},
	{"hgetall", 2, oneKey, flagReadOnly, "hash", "Returns all fields and values in a hash.", cmdHGetAll},
	{"hdel", -3, oneKey, flagWrite | flagFast, "hash", "Deletes one or more fields and their values from a hash. Deletes the hash if no fields remain.", cmdHDel},
	{"hlen", 2, oneKey, flagReadOnly | flagFast, "hash", "Returns the number of fields in a hash.", cmdHLen},

	{"zadd", -4, oneKey, flagWrite | flagDenyOOM | flagFast, "sorted-set", "Adds one or more members to a sorted set, or updates their scores. Creates the key if it doesn't exist.", cmdZAdd},
	{"zcard", 2, oneKey, flagReadOnly | flagFast, "sorted-set", "Returns the number of members in a sorted set.", cmdZCard},
	{"zscore", 3, oneKey, flagReadOnly | flagFast, "sorted-set", "Returns the score of a member in a sorted set.", cmdZScore},
	{"zpopmin", -2, oneKey, flagWrite | flagFast, "sorted-set", "Returns the lowest-scoring members from a sorted set after removing them. Deletes the sorted set if the last member was popped.", cmdZPopMin},
	{"zrange", -4, oneKey, flagReadOnly, "sorted-set", "Returns members in a sorted set within a range of indexes.", cmdZRange},

	{"keys", 2, noKeys, flagReadOnly, "generic", "Returns all key names that match a pattern.", cmdKeys},
	{"scan", -2, noKeys, flagReadOnly, "generic", "Iterates over the key names in the database.", cmdScan},
	{"setnx", 3, oneKey, flagWrite | flagDenyOOM | flagFast, "string", "Set the string value of a key only when the key doesn't exist.", cmdSetNX},
	{"getset", 3, oneKey, flagWrite | flagDenyOOM | flagFast, "string", "Returns the previous string value of a key after setting it to a new value.", cmdGetSet},
	{"getdel", 2, oneKey, flagWrite | flagFast, "string", "Returns the string value of a key after deleting the key.", cmdGetDel},
	{"append", 3, oneKey, flagWrite | flagDenyOOM, "string", "Appends a string to the value of a key. Creates the key if it doesn't exist.", cmdAppend},
	{"strlen", 2, oneKey, flagReadOnly | flagFast, "string", "Returns the length of a string value.", cmdStrLen},

	{"subscribe", -2, noKeys, flagPubSub | flagSubscribed | flagNoScript | flagLoading | flagStale, "pubsub", "Listens for messages published to channels.", cmdSubscribe},
	{"psubscribe", -2, noKeys, flagPubSub | flagSubscribed | flagNoScript | flagLoading | flagStale, "pubsub", "Listens for messages published to channels that match one or more patterns.", cmdSubscribe},
	{"unsubscribe", -1, noKeys, flagPubSub | flagSubscribed | flagNoScript | flagLoading | flagStale, "pubsub", "Stops listening to messages posted to channels.", cmdUnsubscribe},
	{"punsubscribe", -1, noKeys, flagPubSub | flagSubscribed | flagNoScript | flagLoading | flagStale, "pubsub", "Stops listening to messages published to channels that match one or more patterns.", cmdUnsubscribe},
	{"publish", 3, noKeys, flagPubSub | flagLoading | flagStale | flagFast, "pubsub", "Posts a message to a channel.", cmdPublish},
	{"pubsub", -2, noKeys, flagPubSub | flagLoading | flagStale, "pubsub", "A container for Pub/Sub commands.", cmdPubSub},

	{"multi", 1, noKeys, flagNoScript | flagLoading | flagStale | flagFast, "transactions", "Starts a transaction.", cmdMulti},
	{"exec", 1, noKeys, flagNoScript | flagLoading | flagStale, "transactions", "Executes all commands in a transaction.", cmdExec},
	{"discard", 1, noKeys, flagNoScript | flagLoading | flagStale | flagFast, "transactions", "Discards a transaction.", cmdDiscard},
	{"watch", -2, allKeys, flagNoScript | flagLoading | flagStale | flagFast, "transactions", "Monitors changes to keys to determine the execution of a transaction.", cmdWatch},
	{"unwatch", 1, noKeys, flagNoScript | flagLoading | flagStale | flagFast, "transactions", "Forgets about watched keys of a transaction.", cmdUnwatch},
	{"getex", -2, oneKey, flagWrite | flagFast, "string", "Returns the string value of a key after setting its expiration time.", cmdGetEx},
	{"lpos", -3, oneKey, flagReadOnly, "list", "Returns the index of matching elements in a list.", cmdLPos},
	{"object", -2, noKeys, 0, "generic", "A container for object introspection commands.", cmdObject},
	{"wait", 3, noKeys, flagNoScript | flagUnlocked, "generic", "Blocks until the asynchronous replication of all preceding write commands sent by the connection is completed.", cmdWait},
}

// commands is the command table, by lower-case name.
var commands = map[string]*command{}

func init() {
	for i := range commandTable {
		commands[commandTable[i].name] = &commandTable[i]
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
	if r.srv.inSubscribedMode(r.sess) {
		// A subscribed RESP2 client gets a frame it can tell from messages.
		r.w.WriteArray(2)
		r.w.WriteBulkString("pong")
		if len(r.args) > 1 {
			r.w.WriteBulk(r.args[1])
		} else {
			r.w.WriteBulkString("")
		}
		return
	}
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
			r.srv.store.touchAll(&r.srv.store.dbs[i])
			r.srv.store.dbs[i].flush()
		}
		r.w.WriteString("OK")
	}
}

func cmdFlushDB(r *request) {
	if flushMode(r) {
		r.srv.store.touchAll(r.db())
		r.db().flush()
		r.w.WriteString("OK")
	}
}

// cmdInfo is INFO [section ...]: Redis's sections with the fields this
// server has, plus shm_clients. As in Redis, each line ends in CRLF,
// sections are separated by an empty line, and the reply ends with the
// last line's CRLF.
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
	var sections []string
	section := func(name string, lines ...string) {
		if want(strings.ToLower(name)) {
			sections = append(sections, "# "+name+"\r\n"+strings.Join(append(lines, ""), "\r\n"))
		}
	}
	up := time.Since(s.started)
	var server []string
	server = append(server,
		"redis_version:"+redisVersion,
		"redis_mode:standalone",
		"server:shmconn-example",
		fmt.Sprintf("shmconn_wait:%v", s.wait),
		fmt.Sprintf("os:%s %s", runtime.GOOS, runtime.GOARCH),
		fmt.Sprintf("arch_bits:%d", strconv.IntSize),
		"multiplexing_api:goroutines",
		"go_version:"+runtime.Version(),
		fmt.Sprintf("process_id:%d", os.Getpid()),
		fmt.Sprintf("tcp_port:%d", s.tcpPort()),
		fmt.Sprintf("uptime_in_seconds:%d", int64(up.Seconds())),
		fmt.Sprintf("uptime_in_days:%d", int64(up.Hours()/24)),
	)
	section("Server", server...)
	section("Clients",
		fmt.Sprintf("connected_clients:%d", s.clients.Load()),
		fmt.Sprintf("shm_clients:%d", s.shmClients.Load()),
		"maxclients:"+s.config["maxclients"],
		"blocked_clients:0",
	)
	if want("memory") {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		section("Memory",
			fmt.Sprintf("used_memory:%d", ms.HeapAlloc),
			fmt.Sprintf("used_memory_rss:%d", ms.Sys),
			"maxmemory:"+s.config["maxmemory"],
			"mem_allocator:go",
		)
	}
	section("Persistence", "loading:0", "rdb_changes_since_last_save:0", "aof_enabled:0")
	s.pubsub.mu.Lock()
	channels, patterns := len(s.pubsub.channels), len(s.pubsub.patterns)
	s.pubsub.mu.Unlock()
	section("Stats",
		fmt.Sprintf("total_connections_received:%d", s.accepted.Load()),
		fmt.Sprintf("total_commands_processed:%d", s.commands),
		fmt.Sprintf("expired_keys:%d", s.store.expired),
		fmt.Sprintf("pubsub_channels:%d", channels),
		fmt.Sprintf("pubsub_patterns:%d", patterns),
	)
	section("Replication", "role:master", "connected_slaves:0")
	if want("shmconn") {
		section("Shmconn", s.shmconnInfo()...)
	}
	var keyspace []string
	for i := range s.store.dbs {
		if d := &s.store.dbs[i]; len(d.data) > 0 {
			keyspace = append(keyspace, fmt.Sprintf("db%d:keys=%d,expires=%d,avg_ttl=0", i, len(d.data), len(d.expires)))
		}
	}
	section("Keyspace", keyspace...)
	r.w.WriteBulkString(strings.Join(sections, "\r\n"))
}

// shmconnInfo is INFO's shmconn section: the Stats of the listeners being
// served, summed. It tells an operator whether clients got shared memory,
// and if not why.
func (s *Server) shmconnInfo() []string {
	var t conn.Stats
	s.shmLns.Range(func(k, _ any) bool {
		st := k.(*conn.Listener).Stats()
		t.SharedConns += st.SharedConns
		t.Fallbacks.NoSegment += st.Fallbacks.NoSegment
		t.Fallbacks.OpenFailed += st.Fallbacks.OpenFailed
		t.PlainAccepted += st.PlainAccepted
		t.HandshakeErrors.Timeout += st.HandshakeErrors.Timeout
		t.HandshakeErrors.NoSharedMemory += st.HandshakeErrors.NoSharedMemory
		t.HandshakeErrors.Protocol += st.HandshakeErrors.Protocol
		t.HandshakeErrors.Closed += st.HandshakeErrors.Closed
		t.HandshakeErrors.Other += st.HandshakeErrors.Other
		t.BytesRead += st.BytesRead
		t.BytesWritten += st.BytesWritten
		t.WakeupsSent += st.WakeupsSent
		t.WakeupsReceived += st.WakeupsReceived
		t.Parks += st.Parks
		return true
	})
	return []string{
		fmt.Sprintf("shmconn_wait:%v", s.wait),
		fmt.Sprintf("shm_conns_accepted:%d", t.SharedConns),
		fmt.Sprintf("shm_clients:%d", s.shmClients.Load()),
		fmt.Sprintf("fallback_no_segment:%d", t.Fallbacks.NoSegment),
		fmt.Sprintf("fallback_open_failed:%d", t.Fallbacks.OpenFailed),
		fmt.Sprintf("plain_clients_accepted:%d", t.PlainAccepted),
		fmt.Sprintf("handshake_errors_timeout:%d", t.HandshakeErrors.Timeout),
		fmt.Sprintf("handshake_errors_no_shared_memory:%d", t.HandshakeErrors.NoSharedMemory),
		fmt.Sprintf("handshake_errors_protocol:%d", t.HandshakeErrors.Protocol),
		fmt.Sprintf("handshake_errors_closed:%d", t.HandshakeErrors.Closed),
		fmt.Sprintf("handshake_errors_other:%d", t.HandshakeErrors.Other),
		fmt.Sprintf("shm_bytes_read:%d", t.BytesRead),
		fmt.Sprintf("shm_bytes_written:%d", t.BytesWritten),
		fmt.Sprintf("shm_wakeups_sent:%d", t.WakeupsSent),
		fmt.Sprintf("shm_wakeups_received:%d", t.WakeupsReceived),
		fmt.Sprintf("shm_parks:%d", t.Parks),
	}
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

// defaultConfig is what CONFIG GET answers before any CONFIG SET: the
// settings clients ask about (redis-benchmark asks for save and
// appendonly). This server keeps nothing on disk.
func defaultConfig() map[string]string {
	return map[string]string{
		"save":                    "",
		"appendonly":              "no",
		"databases":               strconv.Itoa(numDBs),
		"maxmemory":               "0",
		"maxclients":              "10000",
		"timeout":                 "0",
		"io-threads":              "1",
		"cluster-enabled":         "no",
		"notify-keyspace-events":  "",
		"slowlog-log-slower-than": "10000",
		"hz":                      "10",
	}
}

// readOnlyConfig are the settings CONFIG SET refuses, as Redis does for
// its immutable ones.
var readOnlyConfig = map[string]bool{"databases": true, "io-threads": true, "cluster-enabled": true, "port": true, "proto-max-bulk-len": true}

// cmdConfig is CONFIG GET pattern... | SET name value [name value ...] |
// RESETSTAT. SET stores the value for GET to show; no setting changes
// how this server behaves.
func cmdConfig(r *request) {
	switch strings.ToUpper(string(r.args[1])) {
	case "GET":
		if len(r.args) < 3 {
			subArityError(r)
			return
		}
		params := maps.Clone(r.srv.config)
		params["port"] = strconv.Itoa(r.srv.tcpPort())
		params["proto-max-bulk-len"] = strconv.FormatInt(r.srv.maxBulkLen, 10)
		var names []string
		for name := range params {
			for _, p := range r.args[2:] {
				if globMatch(strings.ToLower(string(p)), name) {
					names = append(names, name)
					break
				}
			}
		}
		slices.Sort(names)
		writeMap(r, len(names))
		for _, name := range names {
			r.w.WriteBulkString(name)
			r.w.WriteBulkString(params[name])
		}
	case "SET":
		if len(r.args) < 4 || len(r.args)%2 != 0 {
			subArityError(r)
			return
		}
		for i := 2; i < len(r.args); i += 2 {
			name := strings.ToLower(string(r.args[i]))
			if _, known := r.srv.config[name]; !known || readOnlyConfig[name] {
				msg := "ERR Unknown option or number of arguments for CONFIG SET - '%s'"
				if readOnlyConfig[name] {
					msg = "ERR CONFIG SET failed (possibly related to argument '%s') - can't set immutable config"
				}
				r.w.WriteError(fmt.Sprintf(msg, r.args[i]))
				return
			}
		}
		for i := 2; i < len(r.args); i += 2 {
			r.srv.config[strings.ToLower(string(r.args[i]))] = string(r.args[i+1])
		}
		r.w.WriteString("OK")
	case "RESETSTAT":
		r.srv.commands, r.srv.store.expired = 0, 0
		r.srv.accepted.Store(0)
		r.w.WriteString("OK")
	case "HELP":
		writeHelp(r, "CONFIG GET <pattern> [<pattern> ...]", "CONFIG SET <directive> <value> [<directive> <value> ...]", "CONFIG RESETSTAT")
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
		cmdCommandDocs(r)
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

// cmdHello is HELLO [protover [AUTH user pass] [SETNAME name]]. HELLO 3
// switches the client to RESP3, which go-redis v9 asks for by default:
// from then on this reply, HGETALL, CONFIG GET and COMMAND DOCS are maps,
// ZSCORE a double and Pub/Sub messages pushes; every other reply is the
// same in both protocols (ZRANGE WITHSCORES and ZPOPMIN keep RESP2's flat
// form, which Redis changes in RESP3).
func cmdHello(r *request) {
	args := r.args[1:]
	proto := r.sess.proto
	if len(args) > 0 {
		v, ok := parseInt(args[0])
		if !ok {
			r.w.WriteError("ERR Protocol version is not an integer or out of range")
			return
		}
		if v != 2 && v != 3 {
			r.w.WriteError("NOPROTO unsupported protocol version")
			return
		}
		proto = int(v)
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
	r.sess.proto = proto
	writeMap(r, 7)
	r.w.WriteBulkString("server")
	r.w.WriteBulkString("redis")
	r.w.WriteBulkString("version")
	r.w.WriteBulkString(redisVersion)
	r.w.WriteBulkString("proto")
	r.w.WriteInt(proto)
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

// cmdClient is CLIENT ID|GETNAME|SETNAME|SETINFO|LIST|INFO.
func cmdClient(r *request) {
	sub := strings.ToUpper(string(r.args[1]))
	wantArgs := map[string]int{"ID": 2, "GETNAME": 2, "SETNAME": 3, "SETINFO": 4, "HELP": 2, "LIST": 2, "INFO": 2}[sub]
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
	case "LIST":
		var sessions []*session
		r.srv.sessions.Range(func(_, v any) bool {
			sessions = append(sessions, v.(*session))
			return true
		})
		slices.SortFunc(sessions, func(a, b *session) int { return int(a.id - b.id) })
		var b strings.Builder
		for _, sess := range sessions {
			b.WriteString(r.srv.clientLine(sess, r.sess))
		}
		r.w.WriteBulkString(b.String())
	case "INFO":
		r.w.WriteBulkString(r.srv.clientLine(r.sess, r.sess))
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
		writeHelp(r, "CLIENT GETNAME", "CLIENT ID", "CLIENT INFO", "CLIENT LIST", "CLIENT SETINFO <LIB-NAME|LIB-VER> <value>", "CLIENT SETNAME <name>")
	}
}

// clientLine is a client's line of CLIENT LIST, with the fields of Redis
// 7.0 this server has, and shm=1 for a client over shared memory. The
// server's mutex is held, which guards the fields other clients change.
func (s *Server) clientLine(sess, self *session) string {
	now := time.Now()
	s.pubsub.mu.Lock()
	nsub, npsub := 0, 0
	if sess.sub != nil {
		nsub, npsub = len(sess.sub.channels), len(sess.sub.patterns)
	}
	s.pubsub.mu.Unlock()
	var flags string
	if nsub+npsub > 0 {
		flags += "P"
	}
	if sess.unix {
		flags += "U"
	}
	if flags == "" {
		flags = "N" // no flag set
	}
	cmd := sess.lastCmd
	if sess == self {
		cmd = "client|" + strings.ToLower(string(self.req.args[1]))
	}
	return fmt.Sprintf("id=%d addr=%s laddr=%s name=%s age=%d idle=%d flags=%s db=%d sub=%d psub=%d multi=-1 cmd=%s user=default resp=%d shm=%d\n",
		sess.id, sess.addr, sess.laddr, sess.name, int(now.Sub(sess.created).Seconds()), int(now.Sub(sess.lastActive).Seconds()),
		flags, sess.db, nsub, npsub, cmd, sess.proto, b2i(sess.shm))
}
