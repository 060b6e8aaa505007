package pow2

import (
	"math"
	"testing"
)

func TestIs(t *testing.T) {
	for _, tc := range []struct {
		n    int
		want bool
	}{
		{math.MinInt, false}, {-4, false}, {-1, false}, {0, false},
		{1, true}, {2, true}, {3, false}, {4, true}, {6, false},
		{4095, false}, {4096, true}, {4097, false},
		{maxPow, true}, {maxPow + 1, false}, {math.MaxInt, false},
	} {
		if got := Is(tc.n); got != tc.want {
			t.Errorf("Is(%d) = %v, want %v", tc.n, got, tc.want)
		}
	}
}

func TestCeil(t *testing.T) {
	for _, tc := range []struct {
		n, want int
		ok      bool
	}{
		{math.MinInt, 1, true}, {-5, 1, true}, {0, 1, true}, {1, 1, true},
		{2, 2, true}, {3, 4, true}, {4, 4, true}, {5, 8, true},
		{4095, 4096, true}, {4096, 4096, true}, {4097, 8192, true},
		{maxPow/2 + 1, maxPow, true}, {maxPow, maxPow, true},
		{maxPow + 1, 0, false}, {math.MaxInt, 0, false},
	} {
		if got, ok := Ceil(tc.n); got != tc.want || ok != tc.ok {
			t.Errorf("Ceil(%d) = %d, %v, want %d, %v", tc.n, got, ok, tc.want, tc.ok)
		}
	}
}

func TestFloor(t *testing.T) {
	for _, tc := range []struct{ n, want int }{
		{math.MinInt, 0}, {-1, 0}, {0, 0}, {1, 1}, {2, 2}, {3, 2},
		{4, 4}, {7, 4}, {4095, 2048}, {4096, 4096}, {4097, 4096},
		{maxPow - 1, maxPow / 2}, {maxPow, maxPow}, {math.MaxInt, maxPow},
	} {
		if got := Floor(tc.n); got != tc.want {
			t.Errorf("Floor(%d) = %d, want %d", tc.n, got, tc.want)
		}
	}
}

// TestAgree checks the three against each other over every small n: Ceil
// and Floor return powers of two that bracket n, equal exactly when Is(n).
func TestAgree(t *testing.T) {
	for n := 1; n <= 1<<16; n++ {
		c, ok := Ceil(n)
		f := Floor(n)
		if !ok || !Is(c) || !Is(f) || f > n || c < n || c >= 2*n || f*2 <= n {
			t.Fatalf("n=%d: Ceil %d (%v), Floor %d", n, c, ok, f)
		}
		if (c == f) != Is(n) {
			t.Fatalf("n=%d: Ceil %d, Floor %d, Is %v", n, c, f, Is(n))
		}
	}
}
