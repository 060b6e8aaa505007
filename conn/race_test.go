//go:build race

package conn

// raceEnabled: the race detector multiplies a process's memory several
// times, which memory-limit tests must allow for.
const raceEnabled = true
