//go:build !linux

package segment

import (
	"errors"
	"time"
)

// Dir is where segment files would live; shared-memory segments are only
// implemented on Linux.
var Dir = ""

type platform struct{}

// Create returns errors.ErrUnsupported on this platform.
func Create(regionSize int) (*Segment, error) { return nil, errors.ErrUnsupported }

// Open returns errors.ErrUnsupported on this platform.
func Open(name string, regionSize int, token Token) (*Segment, error) {
	return nil, errors.ErrUnsupported
}

// Unlink returns errors.ErrUnsupported on this platform.
func (s *Segment) Unlink() error { return errors.ErrUnsupported }

// Close returns errors.ErrUnsupported on this platform.
func (s *Segment) Close() error { return errors.ErrUnsupported }

// RemoveStale returns errors.ErrUnsupported on this platform.
func RemoveStale(olderThan time.Duration) (int, error) { return 0, errors.ErrUnsupported }
