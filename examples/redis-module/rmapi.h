// rmapi.h declares the part of redis-server's module API this module uses:
// the documented ABI (function names as RedisModule_GetApi knows them, C
// signatures, constants), written here rather than taken from Redis's
// redismodule.h. Every function is reached through a pointer that
// rm_load_api fills at load time, the way RedisModule_Init does.

#ifndef SHMCONN_RMAPI_H
#define SHMCONN_RMAPI_H

#include <stddef.h>
#include <stdint.h>

// Opaque handles: the module never looks inside them (except a context's
// first word, the GetApi pointer, as the ABI documents).
typedef struct RedisModuleCtx RedisModuleCtx;
typedef struct RedisModuleString RedisModuleString;
typedef struct RedisModuleCallReply RedisModuleCallReply;
typedef struct RedisModuleUser RedisModuleUser;
typedef struct RedisModuleInfoCtx RedisModuleInfoCtx;
typedef struct RedisModuleCommandFilterCtx RedisModuleCommandFilterCtx;
typedef struct RedisModuleCommandFilter RedisModuleCommandFilter;

// A server event, passed by value (id, data version).
typedef struct {
	uint64_t id;
	uint64_t dataver;
} rm_event;

enum {
	RM_OK = 0,
	RM_ERR = 1,
	RM_APIVER_1 = 1,
	RM_EVENT_SHUTDOWN = 5, // REDISMODULE_EVENT_SHUTDOWN, data version 1
	RM_CTX_FLAGS_SLAVE = 1 << 3,
	RM_CTX_FLAGS_READONLY = 1 << 4,
	RM_CTX_FLAGS_CLUSTER = 1 << 5,
	// Keyspace event classes (REDISMODULE_NOTIFY_*).
	RM_NOTIFY_GENERIC = 1 << 2,
	RM_NOTIFY_LIST = 1 << 4,
	RM_NOTIFY_ZSET = 1 << 7,
	RM_NOTIFY_STREAM = 1 << 10,
};

typedef int (*rm_cmd_func)(RedisModuleCtx *ctx, RedisModuleString **argv, int argc);
typedef void (*rm_info_func)(RedisModuleInfoCtx *ctx, int for_crash_report);
typedef void (*rm_event_func)(RedisModuleCtx *ctx, rm_event e, uint64_t sub, void *data);
typedef void (*rm_filter_func)(RedisModuleCommandFilterCtx *fctx);
typedef void (*rm_oneshot_func)(void *data);
typedef int (*rm_notify_func)(RedisModuleCtx *ctx, int type, const char *event, RedisModuleString *key);

// All since 7.0 (the oldest server this module loads on), unless noted.
extern int (*rm_GetApi)(const char *name, void *slot);
extern void (*rm_SetModuleAttribs)(RedisModuleCtx *ctx, const char *name, int ver, int apiver);
extern int (*rm_IsModuleNameBusy)(const char *name);
extern void (*rm_Log)(RedisModuleCtx *ctx, const char *level, const char *fmt, ...);
extern const char *(*rm_StringPtrLen)(const RedisModuleString *s, size_t *len);
extern RedisModuleString *(*rm_CreateString)(RedisModuleCtx *ctx, const char *p, size_t len);
extern void (*rm_FreeString)(RedisModuleCtx *ctx, RedisModuleString *s);
extern RedisModuleCallReply *(*rm_Call)(RedisModuleCtx *ctx, const char *cmd, const char *fmt, ...);
extern const char *(*rm_CallReplyProto)(RedisModuleCallReply *r, size_t *len);
extern void (*rm_FreeCallReply)(RedisModuleCallReply *r);
extern RedisModuleCtx *(*rm_GetDetachedThreadSafeContext)(RedisModuleCtx *ctx);
extern void (*rm_FreeThreadSafeContext)(RedisModuleCtx *ctx);
extern void (*rm_ThreadSafeContextLock)(RedisModuleCtx *ctx);
extern void (*rm_ThreadSafeContextUnlock)(RedisModuleCtx *ctx);
extern int (*rm_SelectDb)(RedisModuleCtx *ctx, int db);
extern unsigned long long (*rm_GetClientId)(RedisModuleCtx *ctx);
extern int (*rm_GetContextFlags)(RedisModuleCtx *ctx);
extern RedisModuleUser *(*rm_GetModuleUserFromUserName)(RedisModuleString *name);
extern void (*rm_SetContextUser)(RedisModuleCtx *ctx, const RedisModuleUser *u);
extern void (*rm_FreeModuleUser)(RedisModuleUser *u);
extern int (*rm_ACLCheckCommandPermissions)(RedisModuleUser *u, RedisModuleString **argv, int argc);
extern int (*rm_EventLoopAddOneShot)(rm_oneshot_func f, void *data);
extern int (*rm_RegisterInfoFunc)(RedisModuleCtx *ctx, rm_info_func f);
extern int (*rm_InfoAddSection)(RedisModuleInfoCtx *ctx, const char *name);
extern int (*rm_InfoAddFieldULongLong)(RedisModuleInfoCtx *ctx, const char *field, unsigned long long v);
extern int (*rm_SubscribeToServerEvent)(RedisModuleCtx *ctx, rm_event e, rm_event_func f);
extern int (*rm_SubscribeToKeyspaceEvents)(RedisModuleCtx *ctx, int types, rm_notify_func f);
extern RedisModuleCommandFilter *(*rm_RegisterCommandFilter)(RedisModuleCtx *ctx, rm_filter_func f, int flags);
extern int (*rm_CommandFilterArgsCount)(RedisModuleCommandFilterCtx *fctx);
extern RedisModuleString *(*rm_CommandFilterArgGet)(RedisModuleCommandFilterCtx *fctx, int pos);
extern int (*rm_CreateCommand)(RedisModuleCtx *ctx, const char *name, rm_cmd_func f, const char *flags, int first, int last, int step);
extern int (*rm_ReplyWithStringBuffer)(RedisModuleCtx *ctx, const char *buf, size_t len);
extern int (*rm_ReplyWithError)(RedisModuleCtx *ctx, const char *err);

#endif
