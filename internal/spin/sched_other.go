//go:build !linux

package spin

// Without the scheduler's per-thread account, contention is judged by
// preemption gaps alone.
type schedSampler struct{}

var sched schedSampler

func (schedSampler) due(int64) bool    { return false }
func (schedSampler) sample(int64) bool { return false }
