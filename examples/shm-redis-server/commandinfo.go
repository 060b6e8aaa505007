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

// commandMeta describes each command for COMMAND INFO and COMMAND DOCS:
// flags, group and a one-line summary, after Redis's command table.
var commandMeta = map[string]struct {
	flags          cmdFlag
	group, summary string
}{
	"ping":     {flagFast | flagSubscribed | flagStale, "connection", "Returns the server's liveliness response."},
	"echo":     {flagFast | flagStale | flagLoading, "connection", "Returns the given string."},
	"quit":     {flagFast | flagSubscribed | flagStale | flagLoading | flagNoScript, "connection", "Closes the connection."},
	"reset":    {flagFast | flagSubscribed | flagStale | flagLoading | flagNoScript, "connection", "Resets the connection."},
	"select":   {flagFast | flagStale | flagLoading, "connection", "Changes the selected database."},
	"hello":    {flagFast | flagStale | flagLoading | flagNoScript, "connection", "Handshakes with the Redis server."},
	"client":   {flagStale | flagLoading | flagNoScript, "connection", "A container for client connection commands."},
	"auth":     {flagFast | flagStale | flagLoading | flagNoScript, "connection", "Authenticates the connection."},
	"dbsize":   {flagReadOnly | flagFast, "server", "Returns the number of keys in the database."},
	"flushall": {flagWrite, "server", "Removes all keys from all databases."},
	"flushdb":  {flagWrite, "server", "Remove all keys from the current database."},
	"info":     {flagStale | flagLoading, "server", "Returns information and statistics about the server."},
	"config":   {flagAdmin | flagStale | flagLoading | flagNoScript, "server", "A container for server configuration commands."},
	"command":  {flagStale | flagLoading, "server", "Returns detailed information about all commands."},
	"time":     {flagFast | flagStale | flagLoading, "server", "Returns the server time."},

	"get":    {flagReadOnly | flagFast, "string", "Returns the string value of a key."},
	"set":    {flagWrite | flagDenyOOM, "string", "Sets the string value of a key, ignoring its type."},
	"setnx":  {flagWrite | flagDenyOOM | flagFast, "string", "Set the string value of a key only when the key doesn't exist."},
	"getset": {flagWrite | flagDenyOOM | flagFast, "string", "Returns the previous string value of a key after setting it to a new value."},
	"getdel": {flagWrite | flagFast, "string", "Returns the string value of a key after deleting the key."},
	"append": {flagWrite | flagDenyOOM, "string", "Appends a string to the value of a key. Creates the key if it doesn't exist."},
	"strlen": {flagReadOnly | flagFast, "string", "Returns the length of a string value."},
	"incr":   {flagWrite | flagDenyOOM | flagFast, "string", "Increments the integer value of a key by one."},
	"incrby": {flagWrite | flagDenyOOM | flagFast, "string", "Increments the integer value of a key by a number."},
	"decr":   {flagWrite | flagDenyOOM | flagFast, "string", "Decrements the integer value of a key by one."},
	"decrby": {flagWrite | flagDenyOOM | flagFast, "string", "Decrements a number from the integer value of a key."},
	"mget":   {flagReadOnly | flagFast, "string", "Atomically returns the string values of one or more keys."},
	"mset":   {flagWrite | flagDenyOOM, "string", "Atomically creates or modifies the string values of one or more keys."},

	"del":     {flagWrite, "generic", "Deletes one or more keys."},
	"exists":  {flagReadOnly | flagFast, "generic", "Determines whether one or more keys exist."},
	"type":    {flagReadOnly | flagFast, "generic", "Determines the type of value stored at a key."},
	"expire":  {flagWrite | flagFast, "generic", "Sets the expiration time of a key in seconds."},
	"pexpire": {flagWrite | flagFast, "generic", "Sets the expiration time of a key in milliseconds."},
	"ttl":     {flagReadOnly | flagFast, "generic", "Returns the expiration time in seconds of a key."},
	"pttl":    {flagReadOnly | flagFast, "generic", "Returns the expiration time in milliseconds of a key."},
	"persist": {flagWrite | flagFast, "generic", "Removes the expiration time of a key."},
	"keys":    {flagReadOnly, "generic", "Returns all key names that match a pattern."},
	"scan":    {flagReadOnly, "generic", "Iterates over the key names in the database."},

	"lpush":  {flagWrite | flagDenyOOM | flagFast, "list", "Prepends one or more elements to a list. Creates the key if it doesn't exist."},
	"rpush":  {flagWrite | flagDenyOOM | flagFast, "list", "Appends one or more elements to a list. Creates the key if it doesn't exist."},
	"lpop":   {flagWrite | flagFast, "list", "Returns the first elements in a list after removing it. Deletes the list if the last element was popped."},
	"rpop":   {flagWrite | flagFast, "list", "Returns and removes the last elements of a list. Deletes the list if the last element was popped."},
	"lrange": {flagReadOnly, "list", "Returns a range of elements from a list."},
	"llen":   {flagReadOnly | flagFast, "list", "Returns the length of a list."},

	"sadd":      {flagWrite | flagDenyOOM | flagFast, "set", "Adds one or more members to a set. Creates the key if it doesn't exist."},
	"srem":      {flagWrite | flagFast, "set", "Removes one or more members from a set. Deletes the set if the last member was removed."},
	"scard":     {flagReadOnly | flagFast, "set", "Returns the number of members in a set."},
	"sismember": {flagReadOnly | flagFast, "set", "Determines whether a member belongs to a set."},
	"smembers":  {flagReadOnly, "set", "Returns all members of a set."},
	"spop":      {flagWrite | flagFast, "set", "Returns one or more random members from a set after removing them. Deletes the set if the last member was popped."},

	"hset":    {flagWrite | flagDenyOOM | flagFast, "hash", "Creates or modifies the value of a field in a hash."},
	"hget":    {flagReadOnly | flagFast, "hash", "Returns the value of a field in a hash."},
	"hgetall": {flagReadOnly, "hash", "Returns all fields and values in a hash."},
	"hdel":    {flagWrite | flagFast, "hash", "Deletes one or more fields and their values from a hash. Deletes the hash if no fields remain."},
	"hlen":    {flagReadOnly | flagFast, "hash", "Returns the number of fields in a hash."},

	"zadd":    {flagWrite | flagDenyOOM | flagFast, "sorted-set", "Adds one or more members to a sorted set, or updates their scores. Creates the key if it doesn't exist."},
	"zcard":   {flagReadOnly | flagFast, "sorted-set", "Returns the number of members in a sorted set."},
	"zscore":  {flagReadOnly | flagFast, "sorted-set", "Returns the score of a member in a sorted set."},
	"zpopmin": {flagWrite | flagFast, "sorted-set", "Returns the lowest-scoring members from a sorted set after removing them. Deletes the sorted set if the last member was popped."},
	"zrange":  {flagReadOnly, "sorted-set", "Returns members in a sorted set within a range of indexes."},

	"subscribe":    {flagPubSub | flagSubscribed | flagNoScript | flagLoading | flagStale, "pubsub", "Listens for messages published to channels."},
	"psubscribe":   {flagPubSub | flagSubscribed | flagNoScript | flagLoading | flagStale, "pubsub", "Listens for messages published to channels that match one or more patterns."},
	"unsubscribe":  {flagPubSub | flagSubscribed | flagNoScript | flagLoading | flagStale, "pubsub", "Stops listening to messages posted to channels."},
	"punsubscribe": {flagPubSub | flagSubscribed | flagNoScript | flagLoading | flagStale, "pubsub", "Stops listening to messages published to channels that match one or more patterns."},
	"publish":      {flagPubSub | flagLoading | flagStale | flagFast, "pubsub", "Posts a message to a channel."},
	"pubsub":       {flagPubSub | flagLoading | flagStale, "pubsub", "A container for Pub/Sub commands."},

	"multi":   {flagNoScript | flagLoading | flagStale | flagFast, "transactions", "Starts a transaction."},
	"exec":    {flagNoScript | flagLoading | flagStale, "transactions", "Executes all commands in a transaction."},
	"discard": {flagNoScript | flagLoading | flagStale | flagFast, "transactions", "Discards a transaction."},
	"watch":   {flagNoScript | flagLoading | flagStale | flagFast, "transactions", "Monitors changes to keys to determine the execution of a transaction."},
	"unwatch": {flagNoScript | flagLoading | flagStale | flagFast, "transactions", "Forgets about watched keys of a transaction."},
	"getex":   {flagWrite | flagFast, "string", "Returns the string value of a key after setting its expiration time."},
	"lpos":    {flagReadOnly, "list", "Returns the index of matching elements in a list."},
	"object":  {0, "generic", "A container for object introspection commands."},
	"wait":    {flagNoScript | flagUnlocked, "generic", "Blocks until the asynchronous replication of all preceding write commands sent by the connection is completed."},
}

// describeCommands attaches commandMeta to the command table; a command
// without a description is a programming error.
func describeCommands() {
	for name, c := range commands {
		m, ok := commandMeta[name]
		if !ok {
			panic("redis-server: no commandMeta for " + name)
		}
		c.flags, c.group, c.summary = m.flags, m.group, m.summary
	}
}

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
