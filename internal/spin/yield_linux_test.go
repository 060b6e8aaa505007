package spin

import (
	"runtime"
	"syscall"
	"testing"
)

// TestAboveDefault reads the calling thread's nice value: at 0 the
// process is not favoured, at -1 it is (which needs root or
// CAP_SYS_NICE).
func TestAboveDefault(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	tid := syscall.Gettid()
	old, err := syscall.Getpriority(syscall.PRIO_PROCESS, tid)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Setpriority(syscall.PRIO_PROCESS, tid, 20-old)
	if err := syscall.Setpriority(syscall.PRIO_PROCESS, tid, 0); err != nil {
		t.Skipf("cannot set nice 0 from %d: %v", 20-old, err)
	}
	if aboveDefault() {
		t.Error("nice 0: above the default")
	}
	if err := syscall.Setpriority(syscall.PRIO_PROCESS, tid, -1); err != nil {
		t.Skipf("nice -1 needs root or CAP_SYS_NICE: %v", err)
	}
	if !aboveDefault() {
		t.Error("nice -1: not above the default")
	}
}
