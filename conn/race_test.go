//go:build race

package conn

// raceEnabled reports whether the race detector is on. It runs atomic
// operations on memory outside Go's heap in C, on the system stack, where
// a fault (a truncated segment) cannot become a Go panic: tests that
// truncate segments under live atomics skip themselves then.
const raceEnabled = true
