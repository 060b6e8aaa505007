// Package conn gives two processes on one host a net.Conn whose bytes
// travel through shared memory instead of the kernel's socket stack.
//
// A Dialer connects an ordinary side socket (unix or tcp) to a Listener;
// the two negotiate a shared-memory segment over it (see SPEC.md), and
// from then on Read and Write move bytes through two lock-free rings in
// that segment, one per direction. The side socket stays open for the
// life of the conn: its end-of-file tells each side at once that the other
// closed or died, and it carries the one-byte wake-ups a parked reader or
// writer needs.
//
//	ln, _ := conn.Listen("unix", "/tmp/app.sock")
//	go http.Serve(ln, handler)               // or grpc, redcon, your own
//	c, _ := conn.Dial("unix", "/tmp/app.sock") // a net.Conn
//
// Conns from Dial and Accept are *Conn when memory is shared. When it
// cannot be (the peer is on another host, runs as another user, or sees
// another /dev/shm), both sides fall back to carrying the stream over the
// side socket and hand out that socket itself, unless the fallback is
// turned off.
//
// # Waiting
//
// A Read with nothing to read, or a Write into a full ring, waits
// according to the conn's WaitPolicy: WaitAdaptive (the default) spins
// briefly (how long follows its recent waits, in time, never in loop
// counts) and then parks on Go's netpoller until the peer wakes it, so an
// idle conn costs no CPU; WaitSpin keeps spinning, for the lowest latency
// at any request rate, with one spinning waiter per process (a leader
// among the waiting calls) watching all the others. Both spin only
// briefly on a contended host, where a spinner loses the kernel's
// wake-up preference and would be slower than a socket.
//
// # Memory ordering
//
// Bytes are published across processes by release stores and acquire
// loads of counters in shared memory, and the sleep protocol's flags by
// full barriers (package ring says why each is enough). The race detector
// cannot see the other process; the in-process tests run both ends in one
// process so it sees both.
package conn
