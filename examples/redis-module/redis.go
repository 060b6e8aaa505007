//go:build cgo

package main

// The Go side of the bridge to redis-server: thin wrappers over bridge.c,
// and the functions redis-server calls back (exported to C).

/*
#include <stdlib.h>
#include "bridge.h"
*/
import "C"

import (
	"runtime"
	"sync"
	"syscall"
	"time"
	"unsafe"
)

// serverLock orders the goroutines that want the server lock, so that at
// most one OS thread waits in RM_ThreadSafeContextLock at a time however
// many conns there are.
var serverLock sync.Mutex

// lockServer takes the server lock (the main thread lets go of it while
// it waits for events). The goroutine stays on its thread until
// unlockServer: the lock is a pthread mutex, which only its owner may
// release. Go code running on the main thread (INFO, SHMCONN.CLIENTS,
// the shutdown event) never takes serverLock, which a goroutine may hold
// while it waits for the main thread.
func lockServer() {
	runtime.LockOSThread()
	serverLock.Lock()
	C.shm_lock()
}

func unlockServer() {
	C.shm_unlock()
	serverLock.Unlock()
	runtime.UnlockOSThread()
}

// rmCtx is a thread-safe context of its own for one conn: its client
// carries the conn's database and id. Create and free under the lock.
type rmCtx = *C.RedisModuleCtx

func newCtx() rmCtx                   { return C.shm_ctx_new() }
func freeCtx(ctx rmCtx)               { C.shm_ctx_free(ctx) }
func clientID(ctx rmCtx) uint64       { return uint64(C.shm_client_id(ctx)) }
func selectDB(ctx rmCtx, db int) bool { return C.shm_select(ctx, C.int(db)) == C.RM_OK }
func ctxFlags(ctx rmCtx) int          { return int(C.shm_ctx_flags(ctx)) }

// rmString is a RedisModuleString the module owns, such as a conn's user
// name. Create and free under the lock.
type rmString = *C.RedisModuleString

func newString(s string) rmString {
	p := C.CString(s)
	defer C.free(unsafe.Pointer(p))
	return C.shm_string(p, C.size_t(len(s)))
}

func freeString(s rmString) {
	if s != nil {
		C.shm_string_free(s)
	}
}

// argv lays a command out for the C side: its bytes and each argument's
// length.
func argv(cmd *command) (*C.char, *C.size_t, []C.size_t) {
	lens := make([]C.size_t, cmd.argc())
	prev := 0
	for i, end := range cmd.ends {
		lens[i] = C.size_t(end - prev)
		prev = end
	}
	data := cmd.data
	if len(data) == 0 {
		data = []byte{0} // a valid pointer for empty arguments
	}
	return (*C.char)(unsafe.Pointer(&data[0])), &lens[0], lens
}

// callResult is what one RM_Call gave.
type callResult struct {
	reply  []byte        // the reply's RESP bytes (a copy)
	errno  syscall.Errno // when RM_Call refused with no reply
	noUser bool          // the conn's ACL user is gone
}

// rmCall runs cmd through RM_Call under the lock, as user (nil: the
// module's unrestricted user), with RM_Call's format flags.
func rmCall(ctx rmCtx, user rmString, flags string, cmd *command) callResult {
	fmtStr := C.CString("v" + flags)
	defer C.free(unsafe.Pointer(fmtStr))
	buf, lens, keep := argv(cmd)
	var reply *C.RedisModuleCallReply
	var proto *C.char
	var plen C.size_t
	rc, err := C.shm_call(ctx, user, fmtStr, buf, lens, C.int(cmd.argc()), &reply, &proto, &plen)
	runtime.KeepAlive(keep)
	runtime.KeepAlive(cmd)
	var res callResult
	switch rc {
	case C.SHM_CALL_OK:
		res.reply = C.GoBytes(unsafe.Pointer(proto), C.int(plen))
		C.shm_reply_free(reply)
	case C.SHM_CALL_NOUSER:
		res.noUser = true
	default:
		res.errno, _ = err.(syscall.Errno)
	}
	return res
}

// runner holds what runner.call reuses for each of a conn's commands: the
// arguments' lengths and, in C memory, shm_run's conn state (its result,
// which as an out parameter in Go memory would escape to the heap at
// every call, and the conn's ACL user as last looked up).
type runner struct {
	lens []C.size_t
	res  *C.shm_conn
}

func newRunner() runner {
	return runner{res: (*C.shm_conn)(C.calloc(1, C.sizeof_shm_conn))}
}

// forgetUser drops the cached ACL user: the conn runs as another one now.
// Under the lock.
func (r *runner) forgetUser() { C.shm_conn_forget_user(r.res) }

// free: under the lock.
func (r *runner) free() {
	r.forgetUser()
	C.free(unsafe.Pointer(r.res))
}

// The outcomes of runner.call.
const (
	callOK      = C.SHM_CALL_OK
	callNoReply = C.SHM_CALL_NOREPLY
	callNoUser  = C.SHM_CALL_NOUSER
	callPaused  = C.SHM_CALL_PAUSED
)

// runResult is what one runner.call gave.
type runResult struct {
	status int
	reply  []byte         // callOK: the reply's RESP bytes, in out or in big
	big    unsafe.Pointer // C memory holding reply when out was too small; free frees it
	paused time.Duration  // callPaused: how long CLIENT PAUSE still holds the command
	errno  syscall.Errno  // callNoReply: why
}

func (r runResult) free() {
	if r.big != nil {
		C.free(r.big)
	}
}

// call runs cmd as shm_run does (one cgo call: lock, CLIENT PAUSE's check,
// RM_Call as user with the format fmt, the reply copied into out when it
// fits, unlock, and a wake-up of the main thread after a write when wake).
// The caller must not hold the lock, nor serverLock.
func (r *runner) call(ctx rmCtx, user rmString, fmt *C.char, cmd *command, write, wake bool, out []byte) runResult {
	r.lens = r.lens[:0]
	prev := 0
	for _, end := range cmd.ends {
		r.lens = append(r.lens, C.size_t(end-prev))
		prev = end
	}
	data := cmd.data
	if len(data) == 0 {
		data = emptyArg
	}
	var outp *C.char
	if cap(out) > 0 {
		outp = (*C.char)(unsafe.Pointer(&out[:1][0]))
	}
	// shm_run takes and releases the server lock itself, so the goroutine
	// need not stay on its thread; serverLock still keeps waiting conns off
	// OS threads.
	serverLock.Lock()
	rc := C.shm_run(ctx, user, fmt, (*C.char)(unsafe.Pointer(&data[0])), &r.lens[0], C.int(cmd.argc()),
		cBool(write), cBool(wake), outp, C.size_t(cap(out)), r.res)
	serverLock.Unlock()
	res := runResult{status: int(rc)}
	switch rc {
	case callOK:
		n := int(r.res.len)
		if r.res.big != nil {
			res.big = unsafe.Pointer(r.res.big)
			res.reply = unsafe.Slice((*byte)(res.big), n)
		} else {
			res.reply = out[:n]
		}
	case callPaused:
		res.paused = time.Duration(r.res.len) * time.Millisecond
	case callNoReply:
		res.errno = syscall.Errno(r.res.err)
	}
	return res
}

// emptyArg gives C a valid pointer for a command of empty arguments.
var emptyArg = []byte{0}

func cBool(b bool) C.int {
	if b {
		return 1
	}
	return 0
}

// callFmts are RM_Call's formats for callFlags's four outcomes, made once:
// [noscript][RESP3].
var callFmts = [2][2]*C.char{
	{C.CString("v!ECMS"), C.CString("v!ECMS3")},
	{C.CString("v!ECM"), C.CString("v!ECM3")},
}

// callFmt is "v" and callFlags(ci) as a C string, for a cached command.
func callFmt(ci *cmdInfo, resp int) *C.char {
	n, r := 0, 0
	if ci.noscript {
		n = 1
	}
	if resp == 3 {
		r = 1
	}
	return callFmts[n][r]
}

// aclCheck asks whether user may run cmd, for the commands the module
// answers itself. Under the lock.
func aclCheck(user rmString, cmd *command) syscall.Errno {
	buf, lens, keep := argv(cmd)
	rc := C.shm_acl_check(user, buf, lens, C.int(cmd.argc()))
	runtime.KeepAlive(keep)
	runtime.KeepAlive(cmd)
	return syscall.Errno(rc)
}

// wakeMainThread: see shm_wake.
func wakeMainThread() { C.shm_wake() }

// The keyspace events blocked clients wait for: see on_key_event.
func setKeyPipe(fd uintptr) { C.shm_key_pipe(C.int(fd)) }
func addKeyWaiters(n int)   { C.shm_key_waiters_add(C.int(n)) }
func clearKeyEventPending() { C.shm_key_pending_clear() }

// pauseLeft says how long CLIENT PAUSE still holds a command (write: one
// that may write or replicate).
func pauseLeft(write bool) time.Duration {
	w := 0
	if write {
		w = 1
	}
	left := C.shm_pause_left(C.int(w), C.longlong(time.Now().UnixMilli()))
	return time.Duration(left) * time.Millisecond
}

func logWarning(msg string) {
	p := C.CString(msg)
	defer C.free(unsafe.Pointer(p))
	l := C.CString("warning")
	defer C.free(unsafe.Pointer(l))
	C.shm_log(l, p)
}

// The module in this process, set by goOnLoad.
var mod *module

//export goOnLoad
func goOnLoad(ctx *C.RedisModuleCtx, args **C.RedisModuleString, argc C.int) C.int {
	strs := make([]string, int(argc))
	for i := range strs {
		var n C.size_t
		p := C.shm_arg(args, C.int(i), &n)
		strs[i] = C.GoStringN(p, C.int(n))
	}
	m, err := load(ctx, strs)
	if err != nil {
		logWarning("shmconn: " + err.Error())
		return C.RM_ERR
	}
	mod = m
	return C.RM_OK
}

//export goInfo
func goInfo(ictx *C.RedisModuleInfoCtx) {
	if mod == nil {
		return
	}
	C.shm_info_section(ictx)
	for _, f := range mod.infoFields() {
		name := C.CString(f.name)
		C.shm_info_u64(ictx, name, C.ulonglong(f.value))
		C.free(unsafe.Pointer(name))
	}
}

//export goClients
func goClients(ctx *C.RedisModuleCtx) {
	var list []byte
	if mod != nil {
		list = mod.clientList()
	}
	p := (*C.char)(unsafe.Pointer(unsafe.StringData(string(list) + "\x00")))
	C.shm_reply_buf(ctx, p, C.size_t(len(list)))
}

//export goShutdown
func goShutdown() {
	if mod != nil {
		mod.shutdown()
	}
}

// RM_GetContextFlags bits the module reads.
const (
	flagSlave    = int(C.RM_CTX_FLAGS_SLAVE)
	flagReadonly = int(C.RM_CTX_FLAGS_READONLY)
	flagCluster  = int(C.RM_CTX_FLAGS_CLUSTER)
)
