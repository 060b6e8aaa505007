// bridge.h: the C functions the Go side calls. Each wraps one or a few
// module API calls so that Go makes one cgo call per step (cgo cannot call
// variadic functions or function pointers itself).

#ifndef SHMCONN_BRIDGE_H
#define SHMCONN_BRIDGE_H

#include "rmapi.h"

// Results of shm_call.
enum {
	SHM_CALL_OK = 0,      // *reply holds the reply
	SHM_CALL_NOREPLY = 1, // RM_Call refused without a reply; errno says why
	SHM_CALL_NOUSER = 2,  // the conn's ACL user no longer exists
	SHM_CALL_PAUSED = 3,  // shm_run: CLIENT PAUSE holds the command
	SHM_CALL_KILLED = 4,  // shm_run: CLIENT KILL ended the conn
};

// A conn's state for shm_run: the reply that did not fit the caller's
// buffer, whether CLIENT KILL ended the conn, and the conn's ACL user as
// last looked up.
typedef struct {
	char *big;  // the last command's reply, when it did not fit out (malloc'd)
	int killed; // set under the lock by CLIENT KILL: no command runs after it

	RedisModuleUser *user;       // NULL: to be looked up
	unsigned long long user_gen; // g_acl_gen when user was looked up
} shm_conn;

// One command of the commands shm_run runs: what the caller sets, then its
// result.
typedef struct {
	const char *fmt; // RM_Call's format: "v" and flag characters
	int argc;        // its arguments, the next argc of the caller's lens
	int write;       // it may write: CLIENT PAUSE WRITE holds it
	int wake;        // wake the main thread after it

	int status;      // SHM_CALL_*
	int err;         // SHM_CALL_NOREPLY: the errno
	size_t off, len; // SHM_CALL_OK: the reply, len bytes at out+off (or in big); SHM_CALL_PAUSED: len is the milliseconds left
} shm_cmd;

// Goroutines waiting to take the server lock (serverLock in redis.go):
// shm_run ends its run of commands when one does.
extern int shm_lock_waiters;

int shm_has_api(const char *name);
void shm_lock(void);
void shm_unlock(void);
RedisModuleCtx *shm_ctx_new(void);
void shm_ctx_free(RedisModuleCtx *ctx);
int shm_call(RedisModuleCtx *ctx, RedisModuleString *user, const char *fmt, const char *buf,
             const size_t *lens, int argc, RedisModuleCallReply **reply, const char **proto, size_t *plen);
int shm_run(RedisModuleCtx *ctx, RedisModuleString *user, const char *buf, const size_t *lens, shm_cmd *cmds, int n,
            char *out, size_t outcap, size_t room, shm_conn *conn);
void shm_conn_forget_user(shm_conn *conn);
int shm_acl_check(RedisModuleString *user, const char *buf, const size_t *lens, int argc);
void shm_reply_free(RedisModuleCallReply *r);
RedisModuleString *shm_string(const char *p, size_t len);
void shm_string_free(RedisModuleString *s);
const char *shm_arg(RedisModuleString **argv, int i, size_t *len);
void shm_wake(void);
void shm_key_pipe(int fd);
void shm_key_waiters_add(int n);
void shm_key_pending_clear(void);
long long shm_pause_left(int write, long long now_ms);
void shm_info_section(RedisModuleInfoCtx *ictx);
void shm_info_u64(RedisModuleInfoCtx *ictx, const char *field, unsigned long long v);
void shm_reply_buf(RedisModuleCtx *ctx, const char *buf, size_t len);
void shm_log(const char *level, const char *msg);
unsigned long long shm_client_id(RedisModuleCtx *ctx);
int shm_select(RedisModuleCtx *ctx, int db);
int shm_ctx_flags(RedisModuleCtx *ctx);

#endif
