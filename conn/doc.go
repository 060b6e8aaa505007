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
// cannot be (over TCP: the peer is on another host, runs as another user,
// or sees another /dev/shm; or memory ran out; or something relays the side
// socket between the two), both sides fall back to
// carrying the stream over the side socket and hand out that socket
// itself, unless the fallback is turned off.
//
// # Memory
//
// Over a unix side socket the segment is an anonymous memory file passed
// as a descriptor, sealed so nobody can resize it: nothing appears in
// /dev/shm and its size does not matter. Over TCP it is a named file in
// /dev/shm, unlinked as soon as the dialer has mapped it. Either way pages
// are committed as the writer first reaches them, each side in its own
// memory cgroup, in steps that double what is committed, up to 256 KiB
// at a time (a conn that has written n bytes has committed at most 2n, or
// a page, per direction; a step costs system calls, and one per page
// slowed one small message in 64): an idle conn costs three pages (12 KiB:
// the control blocks and the first page of each ring), a client that stops
// after its hello one page, and a conn that streamed its two rings. A conn is
// admitted only while its full size would fit, and no page is committed
// that would leave the memory cgroup less than a reserve (a 16th of its
// limit, at least 2 MiB): a Write that needs one fails with ErrNoMemory
// rather than bring the OOM killer. So does a Read of pages the peer
// published without writing them, which reading would commit on our
// side; and the memory file is sealed against hole punching once both
// sides mapped it, so pages once committed stay (see SECURITY.md). A *Conn the program drops without
// Close is closed once the garbage collector finds it unreachable, as an
// os.File is: its peer reads io.EOF and its memory is given back.
//
// # Waiting
//
// A Read with nothing to read, or a Write into a full ring, waits
// according to the conn's WaitPolicy: WaitAdaptive (the default) spins
// briefly (how long follows its recent waits, in time, never in loop
// counts; none when its own last message had to wake the peer, whose
// answer then comes after a kernel wake-up; a few microseconds when its
// recent waits all outlasted the spin), then, on Linux, dozes: it blocks
// its thread in a futex wait on its waiting flag in the shared segment,
// which the peer's futex wake ends, for 200 us (up to 20 ms when its recent
// waits were that short: a request every few milliseconds), and then parks on
// Go's netpoller until the peer wakes it through the side socket, so an
// idle conn costs no CPU and no thread; WaitSpin keeps spinning, for the
// lowest latency at any request rate. Under WaitSpin no goroutine polls on
// its own: one of the waiting calls of the process leads and spins,
// watching its own conn and the conditions of all the other waiting calls,
// which park as WaitAdaptive's do (the peer wakes them); it wakes the one
// whose bytes arrive first in-process and hands it the lead, and drops the
// lead when its own call returns (the next waiting call takes it), so a
// process spins at most one core, and none when no call waits. A spinning
// call gives its CPU to any thread waiting for it every 20 us, since the
// kernel often wakes the peer on the spinner's CPU. Both spin only briefly
// on a contended host, where a spinner loses the kernel's wake-up
// preference and would be slower than a socket.
//
// A doze costs what a park on the netpoller does not: its system calls
// are raw, so the goroutine keeps its P and its thread while it dozes.
// That is what makes it fast (one thread woken per message, on the
// waker's CPU, where a netpoller park wakes two or three threads, often
// on an idle CPU), and why it is bounded: while a call dozes its P runs
// no other goroutine (a doze longer than 200 us is taken in slices of
// 200 us, and parks after a slice when goroutines wait for a P; dozes
// back to back let the P run its timers and queued goroutines first,
// once every 200 us), and a
// garbage collection's stop-the-world waits for the futex wait to end,
// which the runtime's preemption signal does at once (a collection
// beside a doze stretched to 20 s took about a millisecond). At most max(1, GOMAXPROCS/2) calls of a
// process doze at once, the others park at once, and none doze with
// GOMAXPROCS 1. The wake-up's other system calls (the wake-up byte, the
// side socket's reads) are raw too, so that none wakes the runtime's
// sysmon thread.
//
// On a host whose CPUs are busy with other work, run a latency-critical
// pair above that work: start both the client and the server under
// nice -n -15 (which needs root or CAP_SYS_NICE) and leave the rest at the
// default. A nice value ranks a thread only against the threads of its
// own scheduling group: with autogroup (sched_autogroup_enabled), its
// session; under a cgroup's cpu controller, its cgroup. Against busy
// work of another group the groups' weights decide (cpu.weight, or the
// nice value in /proc/<pid>/autogroup): measured on Linux 6.18, a
// spinner at nice -15 lost 6-9% of its CPU to a busy process of its own
// session and 50-55% to one of another session. Beside a busy process a
// spinning call still finds the CPUs contended and parks: each of its
// yields forfeits the rest of its time slice, even one that returns at
// once, which hands the busy process most of its CPU; and a spinner that
// kept its CPU shared it with its own client, whose round trips then took
// 30-40 us in context switches. The kernel wakes a parked call ahead of
// the busy work: measured at one request per millisecond with a busy
// process per CPU on a 2-vCPU VM, p50 near a unix socket's and p99 of
// 0.1-1.3 ms, where at the default priority it was 0.8-2.3 ms. A spinning
// server answers in its idle time (about 1 us) only on a CPU of its own,
// with the busy work and its client on others (taskset): measured so on
// a host shared with other sessions' builds, p50 was 0.9-1.8 us in 7 of
// 12 runs and 34-44 us (parked) in the rest, p99 0.2-7 ms against a unix
// socket's 0.1-3.9 ms. go run ./examples/shmbench -load cpu -nice=-15
// measures the case.
//
// # Errors
//
// Errors come wrapped in a *net.OpError, as package net's do, except
// io.EOF, which is returned bare; match them with errors.Is. Which failure
// matches which (TestErrorTable checks each row):
//
//	failure                                          errors.Is matches
//	-----------------------------------------------  ---------------------------------------------
//	Dial reached a server that is not a listener     ErrNotShmconn, ErrHandshake
//	  (fails at its first answer: an echo, -ERR,
//	  HTTP/1.1 400, a greeting; a silent one times out)
//	Listener got a client that is not a Dialer       ErrNotShmconn, ErrHandshake (OnHandshakeError)
//	  (without AcceptPlain)
//	the peer speaks another handshake version        ErrVersion, ErrHandshake
//	  (whatever its reply holds after its version)
//	the handshake ran out of time (Dialer.Timeout,   ErrHandshake, os.ErrDeadlineExceeded,
//	  the context's deadline, HandshakeTimeout)        context.DeadlineExceeded; Timeout() is true
//	the dial's context was cancelled                 ErrHandshake, context.Canceled
//	malformed message, or refused by the listener    ErrHandshake
//	client refused by AuthorizePeer                  ErrPeerNotAllowed, ErrHandshake, the hook's error
//	no shared memory, and no fallback on one side    ErrNoSharedMemory, ErrHandshake
//	the two sides do not map one segment over one    ErrSegmentMismatch, ErrHandshake: the reason
//	  side socket (a relay between them, a segment     given to OnFallback on both sides, or with
//	  file swapped in /dev/shm)                        ErrNoSharedMemory where either has no fallback
//	a shortage that passes (out of file descriptors  ErrHandshake (and the errno, such as
//	  or memory) while setting up the segment          syscall.EMFILE): the dial fails, never falls back
//	a Dialer or ListenConfig field out of range      ErrConfig
//	a deadline passed                                os.ErrDeadlineExceeded; Timeout() is true
//	the peer closed its writing end (Read), or       io.EOF, for good: later Reads return it too
//	  CloseRead was called
//	Write after CloseWrite, or after the peer closed syscall.EPIPE (a Write blocked for space
//	                                                   when CloseWrite is called too)
//	use after Close, or a call blocked when Close    net.ErrClosed
//	  is called; Close after the first (which
//	  returns nil)
//	Accept after the Listener's Close, or a          net.ErrClosed (a handshake's through
//	  handshake that Close cut off                     OnHandshakeError, counted as Closed)
//	the peer died without closing                    syscall.ECONNRESET
//	the peer broke the shared-memory protocol        ErrCorrupt
//	  (counters, a truncated segment)
//	a Write (or ReadFrom) needs a page while         ErrNoMemory; the bytes it reports went
//	  /dev/shm is full or the memory cgroup is         through, no more; the conn stays usable:
//	  short of headroom                                retry once memory is freed
//	a Read (or WriteTo) of pages the peer published  ErrNoMemory: nothing consumed; retry
//	  without writing them, short of memory so         once memory is freed
//
// Connecting the side socket itself fails as net.Dialer does (for example
// syscall.ECONNREFUSED), before any handshake.
//
// # Words
//
// Each of these words means one thing in this package, its docs and the
// packages below it:
//
//   - publish: make bytes written into a ring visible to the consumer
//     (ring.Producer.Write, Publish); a release store of the tail.
//   - consume: give bytes read from a ring back to the producer as space
//     (ring.Consumer.Read, Consume); a conn stores the head in batches
//     (ring.Consumer.SetConsumeBatch).
//   - commit: back pages of a segment with memory (segment.Commit,
//     CommitAbsent; Conn.commit before a Write), and decommit: give them
//     back (segment.Decommit).
//   - release (store): only the memory-ordering sense (atomicx.StoreRelease).
//   - spin: a waiting call looking at shared memory without blocking
//     (package spin), for a time, never a loop count.
//   - doze: a waiting call blocking its thread in a futex wait on its
//     waiting flag word in the shared segment, briefly (doze.go).
//   - park: a waiting call blocking as a goroutine on the wake-up carrier
//     (its side socket through the netpoller, or a channel while another
//     call reads the side), until a wake-up, its deadline, Close or the
//     peer's end; it holds no thread.
//   - announce: set our waiting flag in the ring (ring.Consumer.PrepareWait,
//     PrepareDoze) before a park or a doze, so that the peer owes a
//     wake-up; withdraw: clear it (CancelWait).
//   - arm: set a timer: a deadline's, for a call about to block
//     (deadline.go), or the runtime's, which a socket deadline sets.
//   - wake-up: what one side sends when it finds the other's waiting flag
//     set: a futex wake for a dozing call, a byte through the carrier for
//     a parked one.
//   - poke: make a parked or dozing call of our own look at the conn
//     again (its deadline moved, CloseWrite, Close).
//   - carrier: what moves wake-ups between the processes and notices the
//     peer's end; here the side socket (side.go).
//   - side socket: the unix or TCP connection a Dialer makes to a
//     Listener, which carries the handshake, then the wake-ups.
//   - leader, follower: under WaitSpin, the one waiting call of a process
//     that spins, and the others, which park (the peer, or the leader when
//     their bytes arrive first, wakes them).
//   - fallback: both sides carrying the stream over the side socket when
//     memory cannot be shared; the conn is then a plain one.
//   - plain: a conn or client that is not shared memory: an ordinary
//     socket conn (a fallback, or a client that never spoke shmconn and
//     that a Listener with AcceptPlain serves).
//   - flush: move a direction's pending byte count to where Stats reads
//     it.
//
// Stats.Parks is the one count that spans two of these words: it counts
// the times a Read or Write blocked, parked or dozed (Dozes counts those
// that dozed).
//
// # Memory ordering
//
// Bytes are published across processes by release stores and acquire
// loads of counters in shared memory, and the sleep protocol's flags by
// full barriers (package ring says why each is enough). The race detector
// cannot see the other process; the in-process tests run both ends in one
// process so it sees both.
package conn
