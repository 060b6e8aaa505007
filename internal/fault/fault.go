// Package fault turns a memory fault in shared memory into an error.
//
// Shared memory can fault under us: whoever can truncate the file behind
// a mapping (the peer, or a process of our uid before a named file is
// unlinked) makes every touch of a page past the new end raise SIGBUS, and
// a page the system cannot supply when it is first touched does the same.
// Either would kill the process. Code that touches such a mapping runs
// with the runtime's panic-on-fault mode on (Guard), which turns the
// signal into a panic on the touching goroutine, and recovers that panic
// (Catch), leaving every other panic alone.
package fault

import "runtime/debug"

// Guard switches the calling goroutine to panic-on-fault and returns the
// mode it had, for Catch to restore. Use the two as a pair:
//
//	defer fault.Catch(&err, fault.Guard(), wrap)
func Guard() (old bool) { return debug.SetPanicOnFault(true) }

// Catch, deferred directly (recover works only there), restores the
// goroutine's panic-on-fault mode to old and stops a panic that is a
// memory fault, storing wrap(addr) in *err, addr being the address whose
// touch faulted. Any other panic keeps going; without a panic *err is left
// as it is.
func Catch(err *error, old bool, wrap func(addr uintptr) error) {
	r := recover()
	debug.SetPanicOnFault(old)
	if r == nil {
		return
	}
	if f, ok := r.(interface{ Addr() uintptr }); ok {
		*err = wrap(f.Addr())
		return
	}
	panic(r)
}

// Lent runs f, code that is not ours (a user's io.Reader or io.Writer)
// which we hand shared memory to fill or to read, with panic-on-fault on,
// and sorts out a fault it raises. A fault at an address that shared(addr)
// claims is the shared memory's (a truncation, a page the system could not
// supply): it is returned as wrap(addr), as Catch would. Any other fault
// is f's own and must not be reported as the peer's: it panics on as a
// *Foreign, which Catch leaves alone; other panics go on as they were.
//
// Panic-on-fault is on for f because a fault there with it off kills the
// process, whoever caused it. The price is that f's own faults, which
// would have killed the process with a fatal error, become panics (that a
// recover of the caller's could stop).
func Lent[T any](f func() (T, error), shared func(addr uintptr) bool, wrap func(addr uintptr) error) (v T, err error) {
	old := debug.SetPanicOnFault(true)
	defer func() {
		r := recover()
		debug.SetPanicOnFault(old)
		if r == nil {
			return
		}
		if fe, ok := r.(interface{ Addr() uintptr }); ok {
			if shared(fe.Addr()) {
				err = wrap(fe.Addr())
				return
			}
			if e, ok := r.(error); ok {
				panic(&Foreign{Fault: e})
			}
		}
		panic(r)
	}()
	return f()
}

// Foreign is the panic of a memory fault that code run by Lent raised at
// an address outside the shared memory: a fault of that code's own. It has
// no Addr method, so no Catch up the stack takes it for the peer's.
type Foreign struct {
	Fault error // the runtime's error, with its Addr method
}

func (f *Foreign) Error() string {
	return "memory fault outside shared memory, in code called by shmconn: " + f.Fault.Error()
}

// Unwrap returns the runtime's error.
func (f *Foreign) Unwrap() error { return f.Fault }
