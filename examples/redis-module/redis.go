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
	"sync/atomic"
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
	lockQueue()
	C.shm_lock()
}

// lockWaiters is shm_lock_waiters: the goroutines waiting for serverLock.
var lockWaiters = (*int32)(unsafe.Pointer(&C.shm_lock_waiters))

// lockQueue takes serverLock, counted in lockWaiters while it waits.
func lockQueue() {
	if serverLock.TryLock() {
		return
	}
	atomic.AddInt32(lockWaiters, 1)
	serverLock.Lock()
	atomic.AddInt32(lockWaiters, -1)
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

// maxRun bounds the commands one shm_run call runs, and maxRunBytes
// their arguments' bytes (past it a run takes no more).
const (
	maxRun      = 64
	maxRunBytes = 16 << 10
)

// runner holds what a conn reuses for each run of commands through
// shm_run: the arguments' lengths and, in C memory, the commands' settings
// and results (shm_cmd; as out parameters in Go memory they would escape
// to the heap at every call) and shm_run's conn state (the reply too big
// for the caller's buffer, the conn's ACL user as last looked up).
type runner struct {
	lens []C.size_t
	conn *C.shm_conn
	cmds *[maxRun]C.shm_cmd
	n    int // commands set for the next run
}

func newRunner() runner {
	return runner{
		conn: (*C.shm_conn)(C.calloc(1, C.sizeof_shm_conn)),
		cmds: (*[maxRun]C.shm_cmd)(C.calloc(maxRun, C.sizeof_shm_cmd)),
	}
}

// forgetUser drops the cached ACL user: the conn runs as another one now.
// Under the lock.
func (r *runner) forgetUser() { C.shm_conn_forget_user(r.conn) }

// kill marks the conn ended by CLIENT KILL: shm_run runs none of its
// commands from now on. Under the lock.
func (r *runner) kill() { r.conn.killed = 1 }

// killed says whether CLIENT KILL ended the conn. Under the lock.
func (r *runner) killed() bool { return r.conn.killed != 0 }

// free: under the lock.
func (r *runner) free() {
	r.forgetUser()
	C.free(unsafe.Pointer(r.conn))
	C.free(unsafe.Pointer(r.cmds))
}

// The outcomes of a command run by runner.run.
const (
	callOK      = C.SHM_CALL_OK
	callNoReply = C.SHM_CALL_NOREPLY
	callNoUser  = C.SHM_CALL_NOUSER
	callPaused  = C.SHM_CALL_PAUSED
	callKilled  = C.SHM_CALL_KILLED
)

// add sets the next command of the run: its argc arguments follow the
// previous command's, it runs with RM_Call's format fmt, CLIENT PAUSE WRITE
// holds it if write, and the main thread is woken after it if wake.
func (r *runner) add(fmt *C.char, argc int, write, wake bool) {
	cmd := &r.cmds[r.n]
	cmd.fmt, cmd.argc, cmd.write, cmd.wake = fmt, C.int(argc), cBool(write), cBool(wake)
	r.n++
}

// clear forgets the commands set.
func (r *runner) clear() { r.n = 0 }

// setLens lays the arguments' lengths of cmd (every command of the run,
// end to end) out for the C side.
func (r *runner) setLens(cmd *command) {
	r.lens = r.lens[:0]
	prev := 0
	for _, end := range cmd.ends {
		r.lens = append(r.lens, C.size_t(end-prev))
		prev = end
	}
}

// run runs the commands set from the from-th on, whose arguments start at
// argument first of cmd (setLens laid its lengths out), as shm_run does:
// one cgo call, one lock per command, the replies copied into out while
// they fit, until their replies' bytes exceed room. It returns how many
// have a result (result gives them). The caller must not hold the lock,
// nor serverLock.
func (r *runner) run(ctx rmCtx, user rmString, cmd *command, from, first int, out []byte, room int) int {
	data := cmd.data
	if first > 0 {
		data = data[cmd.ends[first-1]:]
	}
	if len(data) == 0 {
		data = emptyArg
	}
	var outp *C.char
	if cap(out) > 0 {
		outp = (*C.char)(unsafe.Pointer(&out[:1][0]))
	}
	// shm_run takes and releases the server lock itself, so the goroutine
	// need not stay on its thread; serverLock still keeps waiting conns off
	// OS threads, and shm_run lets a waiting one in between two commands.
	lockQueue()
	n := C.shm_run(ctx, user, (*C.char)(unsafe.Pointer(&data[0])), &r.lens[first], &r.cmds[from], C.int(r.n-from),
		outp, C.size_t(len(out)), C.size_t(room), r.conn)
	serverLock.Unlock()
	return int(n)
}

// runResult is one command's result from runner.run.
type runResult struct {
	status int
	reply  []byte         // callOK: the reply's RESP bytes, in out or in big
	big    unsafe.Pointer // C memory holding reply when out was too small; free frees it
	paused time.Duration  // callPaused: how long CLIENT PAUSE still holds the command
	errno  syscall.Errno  // callNoReply: why
}

// result is the i-th command's result from the last run, given its out
// (of the length run had).
func (r *runner) result(i int, out []byte) runResult {
	cmd := &r.cmds[i]
	res := runResult{status: int(cmd.status)}
	switch res.status {
	case callOK:
		off, n := int(cmd.off), int(cmd.len)
		if off+n <= len(out) {
			res.reply = out[off : off+n : off+n]
		} else { // only the last command's reply goes to big
			res.big = unsafe.Pointer(r.conn.big)
			res.reply = unsafe.Slice((*byte)(res.big), n)
		}
	case callPaused:
		res.paused = time.Duration(cmd.len) * time.Millisecond
	case callNoReply:
		res.errno = syscall.Errno(cmd.err)
	}
	return res
}

func (r runResult) free() {
	if r.big != nil {
		C.free(r.big)
	}
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
