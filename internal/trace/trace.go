// Package trace stamps the moments a round trip passes in packages conn
// and spin (a Write's bytes published, a waiting Read's condition seen, a
// spinner off its CPU), so that a run of two processes can tell where its
// time goes: both processes read the same clock, so their stamps compare
// directly. examples/roundtrace runs such a pair and breaks each round
// trip into its legs.
//
// Stamps are kept only in binaries built with -tags shmconntrace; in any
// other build every function here is empty and Enabled is false, so the
// calls in conn's hot path compile to nothing.
package trace

// Point is a moment a call passes.
type Point uint8

const (
	WriteEnter Point = iota // a Write begins
	Published               // a Write's bytes are in the ring: the tail is stored
	AwaitEnter              // a Read found the ring empty and waits
	Ready                   // a waiting Read's condition came true, without parking
	Park                    // a call parks reading its side socket
	Unpark                  // ... and returns from it
	ReadDone                // a Read returns bytes
	NumPoints
)

// GapMin is the shortest stretch between two looks of a spinning loop
// that is recorded as a gap: the loop looks about every 0.5 us, so a gap
// this long means its thread was off the CPU (or in a system call).
const GapMin = 4000 // ns

// Log is what one process recorded: for each Point its stamps in order,
// and the gaps of its spinning loops, all in Unix nanoseconds.
type Log struct {
	Points  [NumPoints][]int64
	Gaps    [][2]int64
	Dropped int64 // stamps and gaps past Capacity, not kept
}

// Capacity is how many stamps are kept per point, and gaps in all; later
// ones are dropped.
const Capacity = 1 << 16
