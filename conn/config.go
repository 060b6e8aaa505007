package conn

import (
	"encoding"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/shmconn/shmconn/internal/pow2"
)

// Ring size limits, per direction, and the handshake's default bound.
const (
	// DefaultRingSize is the ring capacity used when none is configured.
	// 256 KiB holds several 64 KiB writes in flight, which is what keeps
	// streaming from stalling on the peer.
	DefaultRingSize = 256 << 10
	// MinRingSize is the smallest ring a conn uses: one page, the unit in
	// which a ring's memory is committed.
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
	p, _ := pow2.Ceil(max(n, MinRingSize)) // cannot overflow: n <= MaxRingSize
	return p, nil
}

func validRingSize(n int) bool {
	return n >= MinRingSize && n <= MaxRingSize && pow2.Is(n)
}

// validWait checks the Wait field of a config, named field.
func validWait(field string, p WaitPolicy) error {
	if p.validate() != nil {
		return fmt.Errorf("%w: %s %v (want WaitAdaptive or WaitSpin)", ErrConfig, field, p)
	}
	return nil
}

var (
	_ encoding.TextMarshaler   = WaitPolicy(0)
	_ encoding.TextUnmarshaler = (*WaitPolicy)(nil)
	_ json.Unmarshaler         = (*WaitPolicy)(nil)
)

// MarshalText returns the policy's name, as String does; an unknown policy
// is an error wrapping ErrConfig.
func (p WaitPolicy) MarshalText() ([]byte, error) {
	if err := p.validate(); err != nil {
		return nil, err
	}
	return []byte(p.String()), nil
}

// UnmarshalText sets the policy from its name, as ParseWaitPolicy does, so
// a WaitPolicy can be a flag (flag.TextVar) or a field of a text config.
func (p *WaitPolicy) UnmarshalText(b []byte) error {
	v, err := ParseWaitPolicy(string(b))
	if err != nil {
		return err
	}
	*p = v
	return nil
}

// UnmarshalJSON sets the policy from a JSON string, its name as
// UnmarshalText takes it, or from a JSON number, 0 (WaitAdaptive) or 1
// (WaitSpin), the constant's value, which a config that stores the policy
// as an integer holds (encoding/json hands UnmarshalText strings only). null leaves
// the policy unchanged, as encoding/json does for other types. Anything
// else is an error wrapping ErrConfig. Encoding needs no MarshalJSON:
// encoding/json writes the name through MarshalText.
func (p *WaitPolicy) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	var name string
	if json.Unmarshal(b, &name) == nil {
		return p.UnmarshalText([]byte(name))
	}
	n, err := strconv.Atoi(string(b))
	v := WaitPolicy(n)
	if err != nil || v.validate() != nil {
		return fmt.Errorf("%w: wait policy %s (want \"adaptive\", \"spin\", 0 or 1)", ErrConfig, b)
	}
	*p = v
	return nil
}
