//go:build !shmconntrace

package trace

// Enabled reports whether this binary keeps stamps.
const Enabled = false

// Start begins keeping stamps; without -tags shmconntrace it does nothing.
func Start() {}

// Stop ends keeping stamps.
func Stop() {}

// Mark stamps p now; without -tags shmconntrace it does nothing.
func Mark(Point) {}

// Gap records a spinning loop's gap; without -tags shmconntrace it does
// nothing.
func Gap(from, to int64) {}

// Collect returns what was kept: nothing, without -tags shmconntrace.
func Collect() *Log { return &Log{} }
