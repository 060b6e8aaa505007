package main

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
)

// busyEnv, set in the environment, makes this program a busy process for
// -load instead of the demo.
const busyEnv = "SHMCONN_REDIS_LATENCY_BUSY"

// busyLoop occupies one CPU until the process is killed, as another
// tenant's compute job would on a shared host.
func busyLoop() {
	runtime.GOMAXPROCS(1)
	x := uint64(1)
	for {
		x = x*6364136223846793005 + 1442695040888963407
		if x == 0 {
			fmt.Println(x) // never: keeps the loop from being removed
		}
	}
}

// startLoad starts n busy processes (this program again, with busyEnv)
// and returns the function that stops them. The kernel kills them if the
// demo dies first.
func startLoad(n int) (stop func(), err error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	var procs []*exec.Cmd
	stop = func() {
		for _, p := range procs {
			p.Process.Kill()
			p.Wait()
		}
	}
	for range n {
		cmd := exec.Command(exe)
		cmd.Env = append(os.Environ(), busyEnv+"=1")
		dieWithParent(cmd)
		if err := cmd.Start(); err != nil {
			stop()
			return nil, fmt.Errorf("starting a busy process: %w", err)
		}
		procs = append(procs, cmd)
	}
	return stop, nil
}
