package main

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"syscall"
)

// setNice gives every thread of this process the nice value n. On Linux
// a nice value belongs to a thread, and a new thread or process takes
// the value of the thread that created it: once every thread has it, the
// threads the runtime starts later and the children this process starts
// have it too. A thread created while the list is walked is caught by the
// next pass.
func setNice(n int) error {
	done := map[int]bool{}
	for {
		entries, err := os.ReadDir("/proc/self/task")
		if err != nil {
			return err
		}
		found := false
		for _, e := range entries {
			tid, err := strconv.Atoi(e.Name())
			if err != nil || done[tid] {
				continue
			}
			found = true
			err = syscall.Setpriority(syscall.PRIO_PROCESS, tid, n)
			switch {
			case errors.Is(err, syscall.ESRCH): // the thread exited meanwhile
			case errors.Is(err, syscall.EACCES), errors.Is(err, syscall.EPERM):
				return fmt.Errorf("nice %d: %w (a value below the current one needs root or CAP_SYS_NICE)", n, err)
			case err != nil:
				return fmt.Errorf("nice %d: %w", n, err)
			}
			done[tid] = true
		}
		if !found {
			return nil
		}
	}
}
