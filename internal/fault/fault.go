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
