// Package futex blocks a thread on a 32-bit word in memory shared between
// processes, and wakes it, with raw system calls: the Go runtime is not
// told, so the goroutine keeps its P and its thread while it waits, no
// other thread is woken for it (a system call the runtime knows of can
// wake its sysmon thread, and a goroutine parked through the scheduler
// is handed to a thread by another wake-up), and the kernel runs the
// woken thread where the waker's runs. The price: a blocked thread holds
// its P, so other goroutines cannot use that P, and a garbage collector's
// stop-the-world waits for the wait to end. Callers must bound every wait
// to a short time and limit how many threads wait at once.
//
// The futexes are shared (no FUTEX_PRIVATE_FLAG): the word lives in a
// mapping of a file that another process maps too. Linux only; elsewhere
// Supported is false, Wait returns at once and Wake does nothing.
package futex
