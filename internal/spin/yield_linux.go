package spin

import "syscall"

// osYield gives the CPU to another runnable thread on this CPU, if there
// is one, and returns at once (well under a microsecond) if not. It is a
// raw system call: through syscall.Syscall the runtime would count the
// time given away as a blocking call and hand this P to another thread,
// woken on some other CPU (often the peer's), and the spinning goroutine
// would come back on yet another.
func osYield() { syscall.RawSyscall(syscall.SYS_SCHED_YIELD, 0, 0, 0) }

// firstOSYield is FirstOSYield here: a sched_yield with nobody waiting for
// the CPU costs well under a microsecond.
const firstOSYield = FirstOSYield
