package conn

import (
	"fmt"
	"runtime/debug"
)

// Shared memory can fault under us: a peer (or anyone with access to a
// named file before it was unlinked) can truncate it, and touching a page
// past the new end raises SIGBUS, which would kill the process. So can a
// page the system cannot give when it is first touched, though Write
// commits its pages beforehand (Conn.commit) and only a kernel without
// MADV_POPULATE_WRITE (before 5.14), or a peer that makes us read pages it
// never wrote, leaves that to the fault. Every path that touches the
// mapping runs with the runtime's panic-on-fault mode on and turns such a
// fault into ErrCorrupt for that call.

// guardFaults switches the calling goroutine to panic-on-fault and returns
// the function that restores it; use as
//
//	defer catchFault(&err, guardFaults())
func guardFaults() (restore bool) { return debug.SetPanicOnFault(true) }

// catchFault recovers a memory fault, reports it through err, and restores
// the goroutine's fault mode. Any other panic keeps going.
func catchFault(err *error, restore bool) {
	r := recover()
	debug.SetPanicOnFault(restore)
	if r == nil {
		return
	}
	if f, ok := r.(interface{ Addr() uintptr }); ok {
		*err = fmt.Errorf("%w: fault at %#x touching shared memory (truncated by the peer, or out of memory?)", ErrCorrupt, f.Addr())
		return
	}
	panic(r)
}
