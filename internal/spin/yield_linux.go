package spin

import "syscall"

// osYield gives the CPU to another runnable thread on this CPU, if there
// is one, and returns at once (well under a microsecond) if not.
func osYield() { syscall.Syscall(syscall.SYS_SCHED_YIELD, 0, 0, 0) }
