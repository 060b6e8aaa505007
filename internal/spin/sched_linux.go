package spin

import (
	"runtime"
	"sync"
	"syscall"
	"time"
)

// The scheduler's own account of a thread (/proc/thread-self/schedstat:
// time on a CPU, time runnable but waiting for one, and how many times it
// got one) says whether the host is contended for us: the average wait per
// turn on a CPU. Measured on a 2-vCPU VM with a thread that sleeps 1 ms
// and works 100 us in a loop: 10 us on an idle host, 27 us beside two
// busy processes at nice 19, 89 us beside two at nice 0. Batch jobs at low
// priority barely delay us and do not count; peers at our priority do.
const (
	// sampleEvery bounds how often the account is read (about 10 us).
	sampleEvery = 20 * time.Millisecond
	// minTurns is how many turns on a CPU a verdict needs.
	minTurns = 10
	// ContendedDelay is the average wait for a CPU per turn above which
	// the host counts as contended.
	ContendedDelay = 50 * time.Microsecond
)

// schedSampler compares a thread's account with the previous reading of
// the same thread.
type schedSampler struct {
	mu          sync.Mutex
	next        int64 // monotonic ns of the next sample
	tid         int
	wait, turns int64
}

var sched schedSampler

func (s *schedSampler) due(t int64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t < s.next {
		return false
	}
	s.next = t + int64(sampleEvery)
	return true
}

// sample reads the calling thread's account and reports whether its
// threads waited more than ContendedDelay per turn since the last reading
// of the same thread.
func (s *schedSampler) sample(int64) bool {
	runtime.LockOSThread()
	tid := syscall.Gettid()
	wait, turns, ok := readSchedstat()
	runtime.UnlockOSThread()
	if !ok {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if tid != s.tid || turns < s.turns {
		s.tid, s.wait, s.turns = tid, wait, turns
		return false
	}
	dw, dt := wait-s.wait, turns-s.turns
	if dt < minTurns {
		return false // too few turns to judge; keep the old reading
	}
	s.wait, s.turns = wait, turns
	return dw > int64(ContendedDelay)*dt
}

// readSchedstat parses "run_ns wait_ns turns".
func readSchedstat() (wait, turns int64, ok bool) {
	// Plain system calls: an os.File would try to register the file with
	// the netpoller on every open.
	fd, err := syscall.Open("/proc/thread-self/schedstat", syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return 0, 0, false
	}
	defer syscall.Close(fd)
	var buf [96]byte
	n, err := syscall.Read(fd, buf[:])
	if err != nil || n <= 0 {
		return 0, 0, false
	}
	var v [3]int64
	field := 0
	for _, c := range buf[:n] {
		switch {
		case c >= '0' && c <= '9' && field < 3:
			v[field] = v[field]*10 + int64(c-'0')
		case c == ' ':
			field++
		}
	}
	return v[1], v[2], field >= 2
}
