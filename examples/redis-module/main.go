// Command redis-module is a Redis module that serves shmconn clients from
// an unmodified redis-server. Build it as a shared object and load it:
//
//	go build -buildmode=c-shared -o shmconn-redis.so ./examples/redis-module
//	redis-server --loadmodule ./shmconn-redis.so unixsocket /run/redis/redis-shm.sock \
//	    [unixsocketperm 700] [wait spin|adaptive] [maxclients N]
//
// Each shm client gets what a socket client has: its commands run through
// RedisModule_Call on a thread-safe context under the server lock (one
// command, or one MULTI/EXEC transaction, per lock), as the client's ACL
// user (AUTH, HELLO; ACL changes apply from its next command, and a
// deleted user ends the conn), in its database (SELECT), with its
// protocol (RESP2 or RESP3), and the reply's RESP bytes go back as Redis
// wrote them. The rules a socket client meets apply: NOAUTH, NOPERM,
// READONLY on a read-only replica, OOM under maxmemory, MISCONF, CLIENT PAUSE,
// enable-debug-command, maxclients, the idle timeout and the normal class
// of client-output-buffer-limit (a client's pending output is what its
// write buffer holds: past the hard limit its conn ends and the commands
// it sent after that reply do not run). Blocking commands
// (BLPOP and family, BZPOPMIN, BLMOVE, XREAD and XREADGROUP with BLOCK)
// wait for their timeout by running their non-blocking form again each
// time a list, sorted set or stream changes (a keyspace event wakes them;
// a poll every 100 ms at most catches what raises none); WAIT, WATCH, SUBSCRIBE and its family, MONITOR, SYNC and
// PSYNC are refused with an error saying so, after the arity, NOAUTH and
// NOPERM checks a socket client meets.
//
// INFO shmconn shows the listener's counters, SHMCONN.CLIENTS lists the
// shm clients in CLIENT LIST's format. CLIENT KILL and CLIENT LIST sent
// over shm see the shm clients as well as Redis's own; Redis's CLIENT
// LIST, INFO and KILL, from a socket, do not see shm clients. MODULE UNLOAD is refused: a Go
// runtime cannot be unloaded.
package main

// main is never called: redis-server calls RedisModule_OnLoad.
func main() {}
