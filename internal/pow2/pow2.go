// Package pow2 is the size math for power-of-two buffers: ring capacities
// must be powers of two (a counter maps to a data index with a mask), and
// sizes asked for are rounded to one. It is the one place that arithmetic
// is written.
package pow2

import "math/bits"

// maxPow is the largest power of two an int holds.
const maxPow = 1 << (bits.UintSize - 2)

// Is reports whether n is a power of two (1, 2, 4, ...).
func Is(n int) bool { return n > 0 && n&(n-1) == 0 }

// Ceil returns the smallest power of two >= n (1 for n <= 1). ok is false
// when that power does not fit in an int: n above 2^62 with 64-bit ints.
func Ceil(n int) (p int, ok bool) {
	if n <= 1 {
		return 1, true
	}
	if n > maxPow {
		return 0, false
	}
	return 1 << bits.Len(uint(n-1)), true
}

// Floor returns the largest power of two <= n, or 0 when n < 1 (no power
// of two is that small).
func Floor(n int) int {
	if n < 1 {
		return 0
	}
	return 1 << (bits.Len(uint(n)) - 1)
}
