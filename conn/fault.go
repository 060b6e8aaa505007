package conn

import "fmt"

// Shared memory can fault under us: a peer (or anyone with access to a
// named file before it was unlinked) can truncate it, and touching a page
// past the new end raises SIGBUS, which would kill the process. So can a
// page the system cannot give when it is first touched, though Write
// commits its pages beforehand (Conn.commit), and so does Read the pages
// the peer published without writing them (checkRead): only a kernel
// without MADV_POPULATE_WRITE (before 5.14), or a peer that punches holes
// in a named segment, leaves that to the fault. Every path that touches the
// mapping turns such a fault into ErrCorrupt for that call, with
//
//	defer fault.Catch(&err, fault.Guard(), corrupted)
//
// Code of the caller's (the io.Reader and io.Writer of ReadFrom and
// WriteTo) never gets shared memory: it runs outside these guards, on
// buffers of ours, so a fault of its own is its own, as it would be
// anywhere else.

// corrupted reports a memory fault at addr in the shared segment as
// ErrCorrupt.
func corrupted(addr uintptr) error {
	return fmt.Errorf("%w: fault at %#x touching shared memory (truncated by the peer, or out of memory?)", ErrCorrupt, addr)
}
