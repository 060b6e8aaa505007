//go:build shmconntrace

package trace

import (
	"sync/atomic"
	"time"
)

// Enabled reports whether this binary keeps stamps.
const Enabled = true

var (
	on     atomic.Bool
	stamps [NumPoints][Capacity]int64
	counts [NumPoints]atomic.Int64
	gaps   [Capacity][2]int64
	ngaps  atomic.Int64
)

// Start begins keeping stamps (a run leaves its warm-up out).
func Start() { on.Store(true) }

// Stop ends keeping stamps.
func Stop() { on.Store(false) }

// Mark stamps p now.
func Mark(p Point) {
	if !on.Load() {
		return
	}
	if i := counts[p].Add(1) - 1; i < Capacity {
		stamps[p][i] = time.Now().UnixNano()
	}
}

// Gap records that a spinning loop did not look between from and to
// (Unix nanoseconds).
func Gap(from, to int64) {
	if !on.Load() {
		return
	}
	if i := ngaps.Add(1) - 1; i < Capacity {
		gaps[i] = [2]int64{from, to}
	}
}

// Collect returns what was kept since the process started. Call it after
// Stop, when no call stamps any more.
func Collect() *Log {
	var l Log
	for p := range NumPoints {
		c := counts[p].Load()
		l.Points[p] = append([]int64(nil), stamps[p][:min(c, Capacity)]...)
		l.Dropped += max(c-Capacity, 0)
	}
	c := ngaps.Load()
	l.Gaps = append([][2]int64(nil), gaps[:min(c, Capacity)]...)
	l.Dropped += max(c-Capacity, 0)
	return &l
}
