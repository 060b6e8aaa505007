package conn

import (
	"fmt"
	"math/bits"
	"time"

	"github.com/shmconn/shmconn/ring"
)

// Ring size limits, per direction.
const (
	// DefaultRingSize is the ring capacity used when none is configured.
	// 256 KiB holds several 64 KiB writes in flight, which is what keeps
	// streaming from stalling on the peer.
	DefaultRingSize = 256 << 10
	// MinRingSize is the smallest ring a conn uses.
	MinRingSize = 4 << 10
	// MaxRingSize is the largest ring a listener grants.
	MaxRingSize = 64 << 20
	// DefaultHandshakeTimeout bounds the side-socket negotiation when no
	// other deadline applies.
	DefaultHandshakeTimeout = 10 * time.Second
)

// ringSize resolves a configured ring size: 0 means the default; anything
// else is rounded up to a power of two and must lie within limits.
func ringSize(field string, n int) (int, error) {
	switch {
	case n == 0:
		return DefaultRingSize, nil
	case n < 0 || n > MaxRingSize:
		return 0, fmt.Errorf("%w: %s %d outside [0, %d] (0: the default; others are rounded up to a power of two of at least %d)", ErrConfig, field, n, MaxRingSize, MinRingSize)
	}
	n = max(n, MinRingSize)
	return 1 << bits.Len(uint(n-1)), nil
}

// regionSize is the segment region a ring of capacity n needs.
func regionSize(n int) int {
	s, err := ring.Size(n)
	if err != nil {
		panic("shmconn: ring size not validated: " + err.Error()) // unreachable: callers validate n
	}
	return s
}

func validRingSize(n int) bool {
	return n >= MinRingSize && n <= MaxRingSize && bits.OnesCount(uint(n)) == 1
}
