//go:build cgo

// bridge.c: the module's C side: RedisModule_OnLoad/OnUnload, the API
// pointers, and small wrappers the Go side calls (see bridge.h).

#include <errno.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "bridge.h"
#include "_cgo_export.h"

int (*rm_GetApi)(const char *name, void *slot);
void (*rm_SetModuleAttribs)(RedisModuleCtx *ctx, const char *name, int ver, int apiver);
int (*rm_IsModuleNameBusy)(const char *name);
void (*rm_Log)(RedisModuleCtx *ctx, const char *level, const char *fmt, ...);
const char *(*rm_StringPtrLen)(const RedisModuleString *s, size_t *len);
RedisModuleString *(*rm_CreateString)(RedisModuleCtx *ctx, const char *p, size_t len);
void (*rm_FreeString)(RedisModuleCtx *ctx, RedisModuleString *s);
RedisModuleCallReply *(*rm_Call)(RedisModuleCtx *ctx, const char *cmd, const char *fmt, ...);
const char *(*rm_CallReplyProto)(RedisModuleCallReply *r, size_t *len);
void (*rm_FreeCallReply)(RedisModuleCallReply *r);
RedisModuleCtx *(*rm_GetDetachedThreadSafeContext)(RedisModuleCtx *ctx);
void (*rm_FreeThreadSafeContext)(RedisModuleCtx *ctx);
void (*rm_ThreadSafeContextLock)(RedisModuleCtx *ctx);
void (*rm_ThreadSafeContextUnlock)(RedisModuleCtx *ctx);
int (*rm_SelectDb)(RedisModuleCtx *ctx, int db);
unsigned long long (*rm_GetClientId)(RedisModuleCtx *ctx);
int (*rm_GetContextFlags)(RedisModuleCtx *ctx);
RedisModuleUser *(*rm_GetModuleUserFromUserName)(RedisModuleString *name);
void (*rm_SetContextUser)(RedisModuleCtx *ctx, const RedisModuleUser *u);
void (*rm_FreeModuleUser)(RedisModuleUser *u);
int (*rm_ACLCheckCommandPermissions)(RedisModuleUser *u, RedisModuleString **argv, int argc);
int (*rm_EventLoopAddOneShot)(rm_oneshot_func f, void *data);
int (*rm_RegisterInfoFunc)(RedisModuleCtx *ctx, rm_info_func f);
int (*rm_InfoAddSection)(RedisModuleInfoCtx *ctx, const char *name);
int (*rm_InfoAddFieldULongLong)(RedisModuleInfoCtx *ctx, const char *field, unsigned long long v);
int (*rm_SubscribeToServerEvent)(RedisModuleCtx *ctx, rm_event e, rm_event_func f);
int (*rm_SubscribeToKeyspaceEvents)(RedisModuleCtx *ctx, int types, rm_notify_func f);
RedisModuleCommandFilter *(*rm_RegisterCommandFilter)(RedisModuleCtx *ctx, rm_filter_func f, int flags);
int (*rm_CommandFilterArgsCount)(RedisModuleCommandFilterCtx *fctx);
RedisModuleString *(*rm_CommandFilterArgGet)(RedisModuleCommandFilterCtx *fctx, int pos);
int (*rm_CreateCommand)(RedisModuleCtx *ctx, const char *name, rm_cmd_func f, const char *flags, int first, int last, int step);
int (*rm_ReplyWithStringBuffer)(RedisModuleCtx *ctx, const char *buf, size_t len);
int (*rm_ReplyWithError)(RedisModuleCtx *ctx, const char *err);

#define API(name) {"RedisModule_" #name, (void **)&rm_##name}

// Every call the module makes, all present since Redis 7.0: a server
// without one of them refuses to load the module rather than crash later.
static const struct {
	const char *name;
	void **slot;
} apis[] = {
	API(SetModuleAttribs), API(IsModuleNameBusy), API(Log), API(StringPtrLen),
	API(CreateString), API(FreeString), API(Call), API(CallReplyProto),
	API(FreeCallReply), API(GetDetachedThreadSafeContext), API(FreeThreadSafeContext),
	API(ThreadSafeContextLock), API(ThreadSafeContextUnlock), API(SelectDb),
	API(GetClientId), API(GetContextFlags), API(GetModuleUserFromUserName),
	API(SetContextUser), API(FreeModuleUser), API(ACLCheckCommandPermissions),
	API(EventLoopAddOneShot), API(RegisterInfoFunc), API(InfoAddSection),
	API(InfoAddFieldULongLong), API(SubscribeToServerEvent), API(SubscribeToKeyspaceEvents), API(RegisterCommandFilter),
	API(CommandFilterArgsCount), API(CommandFilterArgGet), API(CreateCommand),
	API(ReplyWithStringBuffer), API(ReplyWithError),
};

// g_ctx is the module's detached context: the parent of every conn's
// context (it carries the module, for logging and RM_Call's bookkeeping).
static RedisModuleCtx *g_ctx;

// The state of CLIENT PAUSE, which the module API does not expose: written
// by the command filter on the main thread, read by conn goroutines.
static long long g_pause_end_ms; // 0: not paused
static int g_pause_all;          // 1: CLIENT PAUSE ALL, 0: WRITE

// The ABI: a context's first word is the GetApi function (RedisModule_Init
// reads it the same way).
static int load_api(RedisModuleCtx *ctx) {
	rm_GetApi = (int (*)(const char *, void *))((void **)ctx)[0];
	for (size_t i = 0; i < sizeof apis / sizeof apis[0]; i++)
		if (rm_GetApi(apis[i].name, apis[i].slot) != RM_OK) {
			fprintf(stderr, "shmconn: this redis-server lacks %s\n", apis[i].name);
			return RM_ERR;
		}
	return RM_OK;
}

int shm_has_api(const char *name) {
	void *p;
	return rm_GetApi(name, &p) == RM_OK;
}

// Blocked shm clients wait for a change to a key their command could pop
// from. The keyspace callback runs under the server lock on whichever
// thread made the change; while a client waits (g_key_waiters > 0) it
// writes one byte to g_key_pipe, unless one is already unread
// (g_key_pending), and the Go side wakes every waiter.
static int g_key_pipe = -1; // write end, non-blocking
static int g_key_waiters;
static int g_key_pending;

static int on_key_event(RedisModuleCtx *ctx, int type, const char *event, RedisModuleString *key) {
	(void)ctx, (void)type, (void)event, (void)key;
	if (__atomic_load_n(&g_key_waiters, __ATOMIC_SEQ_CST) > 0 &&
	    !__atomic_exchange_n(&g_key_pending, 1, __ATOMIC_SEQ_CST) && write(g_key_pipe, "k", 1) != 1)
		__atomic_store_n(&g_key_pending, 0, __ATOMIC_SEQ_CST);
	return RM_OK;
}

void shm_key_pipe(int fd) { g_key_pipe = fd; }
void shm_key_waiters_add(int n) { __atomic_add_fetch(&g_key_waiters, n, __ATOMIC_SEQ_CST); }

// SYNC POINT: cleared by the Go reader after it read the byte and before it
// wakes the waiters, so an event after the clear writes again.
void shm_key_pending_clear(void) { __atomic_store_n(&g_key_pending, 0, __ATOMIC_SEQ_CST); }

static void on_info(RedisModuleInfoCtx *ictx, int for_crash_report) {
	// A crash report must print whatever state the Go runtime is in.
	if (!for_crash_report)
		goInfo(ictx);
}

static void on_shutdown(RedisModuleCtx *ctx, rm_event e, uint64_t sub, void *data) {
	(void)ctx, (void)e, (void)sub, (void)data;
	goShutdown();
}

static int clients_cmd(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
	(void)argv;
	if (argc != 1)
		return rm_ReplyWithError(ctx, "ERR wrong number of arguments for 'shmconn.clients' command");
	goClients(ctx);
	return RM_OK;
}

static int arg_is(RedisModuleCommandFilterCtx *f, int pos, const char *want) {
	size_t n;
	const char *p = rm_StringPtrLen(rm_CommandFilterArgGet(f, pos), &n);
	return n == strlen(want) && strncasecmp(p, want, n) == 0;
}

static long long now_ms(void);

// Counts the commands that may change or free ACL users: every ACL command,
// and EXEC, which may run ACL commands queued earlier. Written by
// on_command before such a command runs, read by conn_user, both under the
// lock.
static unsigned long long g_acl_gen;

// Sees every command before it runs (from a client, a MULTI queue, or
// RM_Call), under the lock: records CLIENT PAUSE and UNPAUSE so that shm
// clients are held as socket clients are, and counts what may change ACL
// users in g_acl_gen.
static void on_command(RedisModuleCommandFilterCtx *f) {
	int argc = rm_CommandFilterArgsCount(f);
	if (argc < 1)
		return;
	size_t n;
	const char *name = rm_StringPtrLen(rm_CommandFilterArgGet(f, 0), &n);
	// A look at the first letter spares most commands the calls below.
	char first = (char)(name[0] | 0x20);
	if ((first == 'a' && n == 3 && strncasecmp(name, "acl", 3) == 0) ||
	    (first == 'e' && n == 4 && strncasecmp(name, "exec", 4) == 0))
		__atomic_add_fetch(&g_acl_gen, 1, __ATOMIC_SEQ_CST);
	if (argc < 2 || first != 'c' || n != 6 || strncasecmp(name, "client", 6) != 0)
		return;
	if (argc == 2 && arg_is(f, 1, "unpause")) {
		__atomic_store_n(&g_pause_end_ms, 0, __ATOMIC_SEQ_CST);
		return;
	}
	if ((argc != 3 && argc != 4) || !arg_is(f, 1, "pause"))
		return;
	int all = argc == 3 || arg_is(f, 3, "all");
	if (argc == 4 && !all && !arg_is(f, 3, "write"))
		return;
	const char *p = rm_StringPtrLen(rm_CommandFilterArgGet(f, 2), &n);
	char num[24];
	if (n == 0 || n >= sizeof num)
		return;
	memcpy(num, p, n);
	num[n] = 0;
	char *end;
	long long ms = strtoll(num, &end, 10);
	if (*end || ms < 0)
		return;
	__atomic_store_n(&g_pause_all, all, __ATOMIC_SEQ_CST);
	__atomic_store_n(&g_pause_end_ms, now_ms() + ms, __ATOMIC_SEQ_CST);
}


static long long now_ms(void) {
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

long long shm_pause_left(int write, long long now) {
	long long end = __atomic_load_n(&g_pause_end_ms, __ATOMIC_SEQ_CST);
	if (end <= now || (!write && !__atomic_load_n(&g_pause_all, __ATOMIC_SEQ_CST)))
		return 0;
	return end - now;
}

// pause_left is shm_pause_left now; it reads the clock only while paused.
static long long pause_left(int write) {
	if (__atomic_load_n(&g_pause_end_ms, __ATOMIC_SEQ_CST) == 0)
		return 0;
	return shm_pause_left(write, now_ms());
}

int RedisModule_OnLoad(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
	if (load_api(ctx) != RM_OK || rm_IsModuleNameBusy("shmconn"))
		return RM_ERR;
	rm_SetModuleAttribs(ctx, "shmconn", 1, RM_APIVER_1);
	g_ctx = rm_GetDetachedThreadSafeContext(ctx);
	rm_event shutdown = {RM_EVENT_SHUTDOWN, 1};
	if (rm_RegisterInfoFunc(ctx, on_info) != RM_OK ||
	    rm_SubscribeToServerEvent(ctx, shutdown, on_shutdown) != RM_OK ||
	    rm_SubscribeToKeyspaceEvents(ctx, RM_NOTIFY_GENERIC | RM_NOTIFY_LIST | RM_NOTIFY_ZSET | RM_NOTIFY_STREAM,
	                                 on_key_event) != RM_OK ||
	    rm_RegisterCommandFilter(ctx, on_command, 0) == NULL ||
	    rm_CreateCommand(ctx, "shmconn.clients", clients_cmd, "admin deny-script", 0, 0, 0) != RM_OK) {
		rm_Log(ctx, "warning", "shmconn: cannot register the INFO section, events, filter or command");
		return RM_ERR;
	}
	return goOnLoad(ctx, argv, argc);
}

// A Go runtime cannot be unloaded (its threads would run on in unmapped
// code), so MODULE UNLOAD is refused: returning an error cancels it.
int RedisModule_OnUnload(RedisModuleCtx *ctx) {
	rm_Log(ctx, "warning", "shmconn: a Go runtime cannot be unloaded; restart redis-server to drop the module");
	return RM_ERR;
}

// shm_lock and shm_unlock take and release the server lock (RM_ThreadSafeContextLock
// ignores its argument; the unlock propagates the writes made under the lock
// to the AOF and replicas).
void shm_lock(void) { rm_ThreadSafeContextLock(g_ctx); }
void shm_unlock(void) { rm_ThreadSafeContextUnlock(g_ctx); }

// Called under the lock: creating a context creates a client.
RedisModuleCtx *shm_ctx_new(void) { return rm_GetDetachedThreadSafeContext(g_ctx); }
void shm_ctx_free(RedisModuleCtx *ctx) { rm_FreeThreadSafeContext(ctx); }

// Requests of up to argv_stack arguments, and names shorter than
// name_stack bytes, are laid out on the stack: no allocation per command.
enum { argv_stack = 16, name_stack = 64 };

// make_argv turns argc arguments laid end to end in buf into strings, in
// stack (argv_stack entries) when they fit.
static RedisModuleString **make_argv(const char *buf, const size_t *lens, int argc, RedisModuleString **stack) {
	RedisModuleString **v = argc <= argv_stack ? stack : malloc(sizeof(*v) * (size_t)argc);
	if (!v)
		return NULL;
	for (int i = 0; i < argc; buf += lens[i], i++)
		v[i] = rm_CreateString(NULL, buf, lens[i]);
	return v;
}

static void free_argv(RedisModuleString **v, int argc, RedisModuleString **stack) {
	for (int i = 0; i < argc; i++)
		rm_FreeString(NULL, v[i]);
	if (v != stack)
		free(v);
}

// The most arguments after the name that call_buffers passes.
enum { max_buffers = 16 };

// call_buffers is RM_Call for n <= max_buffers arguments after the name,
// laid end to end in buf, passed as buffers ("b"): RM_Call makes their
// strings itself, so they are the command's alone, as a socket client's
// are (with "v" the module holds a reference too, and Redis then stores a
// value as it came, an integer as embstr rather than int), none is made
// and freed by the module, and RM_Call's vector needs no growing. fmt: "v"
// and RM_Call's flag characters. RM_Call reads as many pairs as f names
// and ignores the rest.
static RedisModuleCallReply *call_buffers(RedisModuleCtx *ctx, const char *name, const char *fmt, const char *buf,
                                          const size_t *lens, int n) {
	char f[max_buffers + 16];
	size_t flags = strlen(fmt + 1);
	if (flags >= sizeof f - max_buffers) {
		errno = EBADF;
		return NULL;
	}
	memset(f, 'b', (size_t)n);
	memcpy(f + n, fmt + 1, flags + 1);
	const char *p[max_buffers];
	size_t l[max_buffers];
	for (int i = 0; i < n; buf += lens[i], i++)
		p[i] = buf, l[i] = lens[i];
	switch (n) {
	case 0:
		return rm_Call(ctx, name, f);
	case 1:
		return rm_Call(ctx, name, f, p[0], l[0]);
	case 2:
		return rm_Call(ctx, name, f, p[0], l[0], p[1], l[1]);
	default:
		for (int i = n; i < max_buffers; i++)
			p[i] = NULL, l[i] = 0;
		return rm_Call(ctx, name, f, p[0], l[0], p[1], l[1], p[2], l[2], p[3], l[3], p[4], l[4], p[5], l[5],
		               p[6], l[6], p[7], l[7], p[8], l[8], p[9], l[9], p[10], l[10], p[11], l[11], p[12], l[12],
		               p[13], l[13], p[14], l[14], p[15], l[15]);
	}
}

// call_locked runs one command (argc >= 1 arguments laid end to end in buf)
// through RM_Call, as user u if as_user (a NULL u: the user is gone), or
// else unrestricted. Under the lock. fmt must be "v" followed by RM_Call's
// flag characters.
static int call_locked(RedisModuleCtx *ctx, RedisModuleUser *u, int as_user, const char *fmt, const char *buf,
                       const size_t *lens, int argc, RedisModuleCallReply **reply) {
	char stack_name[name_stack];
	RedisModuleString *stack_argv[argv_stack];
	char *name = lens[0] < name_stack ? stack_name : malloc(lens[0] + 1);
	int by_buffers = argc - 1 <= max_buffers;
	RedisModuleString **v = by_buffers ? NULL : make_argv(buf + lens[0], lens + 1, argc - 1, stack_argv);
	int rc = SHM_CALL_NOREPLY;
	if (!name || (!by_buffers && !v)) {
		errno = ENOMEM;
	} else if (as_user && !u) {
		rc = SHM_CALL_NOUSER;
	} else {
		memcpy(name, buf, lens[0]);
		name[lens[0]] = 0;
		rm_SetContextUser(ctx, u);
		if (by_buffers)
			*reply = call_buffers(ctx, name, fmt, buf + lens[0], lens + 1, argc - 1);
		else
			*reply = rm_Call(ctx, name, fmt, v, (size_t)(argc - 1));
		rm_SetContextUser(ctx, NULL);
		if (*reply)
			rc = SHM_CALL_OK;
	}
	int saved = errno;
	if (v)
		free_argv(v, argc - 1, stack_argv);
	if (name && name != stack_name)
		free(name);
	errno = saved;
	return rc;
}

// shm_call runs one command through RM_Call under the lock as call_locked
// does, as user (NULL: unrestricted), and gives the reply's RESP bytes in
// *proto.
int shm_call(RedisModuleCtx *ctx, RedisModuleString *user, const char *fmt, const char *buf,
             const size_t *lens, int argc, RedisModuleCallReply **reply, const char **proto, size_t *plen) {
	RedisModuleUser *u = user ? rm_GetModuleUserFromUserName(user) : NULL;
	int rc = call_locked(ctx, u, user != NULL, fmt, buf, lens, argc, reply);
	int saved = errno;
	if (u)
		rm_FreeModuleUser(u);
	errno = saved;
	if (rc == SHM_CALL_OK)
		*proto = rm_CallReplyProto(*reply, plen);
	return rc;
}

// conn_user is the conn's ACL user named name, looked up again whenever an
// ACL command or an EXEC ran since the last lookup (on_command counts them
// in g_acl_gen before they run): a user that ACL DELUSER or ACL LOAD freed
// is never used, and ACL SETUSER changes a user in place. Under the lock.
static RedisModuleUser *conn_user(shm_conn *conn, RedisModuleString *name) {
	unsigned long long gen = __atomic_load_n(&g_acl_gen, __ATOMIC_SEQ_CST);
	if (conn->user && conn->user_gen == gen)
		return conn->user;
	shm_conn_forget_user(conn);
	conn->user = rm_GetModuleUserFromUserName(name);
	conn->user_gen = gen;
	return conn->user;
}

void shm_conn_forget_user(shm_conn *conn) {
	if (conn->user)
		rm_FreeModuleUser(conn->user);
	conn->user = NULL;
}

static long long pause_left(int write);
static void wake_noop(void *data);

int shm_lock_waiters;

// run_one runs cmd (its arguments laid end to end in buf, their lengths in
// lens) as run_cmds does, its reply copied to out+*used when it fits in
// outcap, or else into conn->big. It takes and releases the lock.
static void run_one(RedisModuleCtx *ctx, RedisModuleString *user, const char *buf, const size_t *lens, shm_cmd *cmd,
                    char *out, size_t outcap, size_t *used, shm_conn *conn) {
	cmd->err = 0;
	rm_ThreadSafeContextLock(g_ctx);
	if (conn->killed) {
		rm_ThreadSafeContextUnlock(g_ctx);
		cmd->status = SHM_CALL_KILLED;
		return;
	}
	long long left = pause_left(cmd->write);
	if (left > 0) {
		rm_ThreadSafeContextUnlock(g_ctx);
		cmd->status = SHM_CALL_PAUSED;
		cmd->len = (size_t)left;
		return;
	}
	RedisModuleCallReply *reply = NULL;
	int rc = call_locked(ctx, user ? conn_user(conn, user) : NULL, user != NULL, cmd->fmt, buf, lens, cmd->argc,
	                     &reply);
	if (rc == SHM_CALL_OK) {
		size_t len;
		const char *proto = rm_CallReplyProto(reply, &len);
		cmd->len = len;
		cmd->off = *used;
		if (len <= outcap - *used) {
			memcpy(out + *used, proto, len);
			*used += len;
		} else if ((conn->big = malloc(len ? len : 1))) {
			memcpy(conn->big, proto, len);
		} else {
			rc = SHM_CALL_NOREPLY;
			errno = ENOMEM;
		}
		rm_FreeCallReply(reply);
	}
	if (rc == SHM_CALL_NOREPLY)
		cmd->err = errno;
	rm_ThreadSafeContextUnlock(g_ctx);
	cmd->status = rc;
	if (rc == SHM_CALL_OK && cmd->wake)
		rm_EventLoopAddOneShot(wake_noop, NULL);
}

// shm_run runs up to n commands of the conn conn in turn (their arguments
// laid end to end in buf, their lengths in lens), in one call from Go,
// each under a lock of its own (run_one: it takes the lock, holds a
// command CLIENT PAUSE holds, runs it through RM_Call as user (the conn's
// cached user: conn_user) or unrestricted (NULL), copies the reply out,
// releases the lock and, after a write, wakes the main thread). It stops
// after a command that was paused, whose user is gone or whose conn CLIENT
// KILL ended (run_one checks under the lock), whose reply went to
// conn->big or after which the replies' bytes exceed room (the conn's
// output limit: the conn ends there, as a socket client does), and before
// the next command once a goroutine waits for the lock
// (shm_lock_waiters), so that other conns interleave. Returns the number
// of commands that have a result in cmds.
int shm_run(RedisModuleCtx *ctx, RedisModuleString *user, const char *buf, const size_t *lens, shm_cmd *cmds, int n,
            char *out, size_t outcap, size_t room, shm_conn *conn) {
	conn->big = NULL;
	size_t used = 0, total = 0;
	for (int i = 0; i < n; i++) {
		if (i > 0 && __atomic_load_n(&shm_lock_waiters, __ATOMIC_RELAXED) > 0)
			return i;
		shm_cmd *cmd = &cmds[i];
		run_one(ctx, user, buf, lens, cmd, out, outcap, &used, conn);
		if (cmd->status == SHM_CALL_OK)
			total += cmd->len;
		if (cmd->status == SHM_CALL_PAUSED || cmd->status == SHM_CALL_NOUSER || cmd->status == SHM_CALL_KILLED ||
		    conn->big || total > room)
			return i + 1;
		for (int a = 0; a < cmd->argc; a++)
			buf += lens[a];
		lens += cmd->argc;
	}
	return n;
}

// shm_acl_check asks whether user may run the command (ACL rules for the
// command, its keys and channels), for commands the module answers itself.
// Under the lock. Returns 0 or an errno (EACCES: denied; ESRCH: no user).
int shm_acl_check(RedisModuleString *user, const char *buf, const size_t *lens, int argc) {
	RedisModuleUser *u = rm_GetModuleUserFromUserName(user);
	if (!u)
		return ESRCH;
	RedisModuleString *stack[argv_stack];
	RedisModuleString **v = make_argv(buf, lens, argc, stack);
	int rc = ENOMEM;
	if (v) {
		rc = rm_ACLCheckCommandPermissions(u, v, argc) == RM_OK ? 0 : errno;
		free_argv(v, argc, stack);
	}
	rm_FreeModuleUser(u);
	return rc;
}

void shm_reply_free(RedisModuleCallReply *r) { rm_FreeCallReply(r); }
RedisModuleString *shm_string(const char *p, size_t len) { return rm_CreateString(NULL, p, len); }
void shm_string_free(RedisModuleString *s) { rm_FreeString(NULL, s); }

const char *shm_arg(RedisModuleString **argv, int i, size_t *len) { return rm_StringPtrLen(argv[i], len); }

static void wake_noop(void *data) { (void)data; }

// shm_wake makes the main thread run an event-loop iteration now (the
// one-shot's pipe write wakes it), so that what a write did reaches
// replicas, the AOF and clients blocked on the socket without waiting for
// the next timer tick.
void shm_wake(void) { rm_EventLoopAddOneShot(wake_noop, NULL); }

// The section named after the module: INFO shmconn.
void shm_info_section(RedisModuleInfoCtx *ictx) { rm_InfoAddSection(ictx, ""); }
void shm_info_u64(RedisModuleInfoCtx *ictx, const char *field, unsigned long long v) {
	rm_InfoAddFieldULongLong(ictx, field, v);
}

void shm_reply_buf(RedisModuleCtx *ctx, const char *buf, size_t len) { rm_ReplyWithStringBuffer(ctx, buf, len); }

void shm_log(const char *level, const char *msg) { rm_Log(g_ctx, level, "%s", msg); }

unsigned long long shm_client_id(RedisModuleCtx *ctx) { return rm_GetClientId(ctx); }
int shm_select(RedisModuleCtx *ctx, int db) { return rm_SelectDb(ctx, db); }
int shm_ctx_flags(RedisModuleCtx *ctx) { return rm_GetContextFlags(ctx); }
