//go:build !linux

package segment

import (
	"errors"
	"time"
)

type platform struct{}

// Create returns errors.ErrUnsupported on this platform.
func Create(dataSize int) (*Segment, error) { return nil, errors.ErrUnsupported }

// CreateAnonymous returns errors.ErrUnsupported on this platform.
func CreateAnonymous(dataSize int) (*Segment, error) { return nil, errors.ErrUnsupported }

// Open returns errors.ErrUnsupported on this platform.
func Open(name string, dataSize int, token Token) (*Segment, error) {
	return nil, errors.ErrUnsupported
}

// Map returns errors.ErrUnsupported on this platform.
func Map(fd int, dataSize int, token Token) (*Segment, error) { return nil, errors.ErrUnsupported }

// FD returns -1 on this platform.
func (s *Segment) FD() int { return -1 }

// Commit returns errors.ErrUnsupported on this platform.
func (s *Segment) Commit(i, off, n int) error { return errors.ErrUnsupported }

// CommitAbsent returns errors.ErrUnsupported on this platform.
func (s *Segment) CommitAbsent(i, off, n int) error { return errors.ErrUnsupported }

// Decommit returns errors.ErrUnsupported on this platform.
func (s *Segment) Decommit(i, off, n int) error { return errors.ErrUnsupported }

// Unlink returns errors.ErrUnsupported on this platform.
func (s *Segment) Unlink() error { return errors.ErrUnsupported }

// Close returns errors.ErrUnsupported on this platform.
func (s *Segment) Close() error { return errors.ErrUnsupported }

// RemoveStale returns errors.ErrUnsupported on this platform.
func RemoveStale(olderThan time.Duration) (int, error) { return 0, errors.ErrUnsupported }

// Bind returns errors.ErrUnsupported on this platform.
func (s *Segment) Bind(rec []byte) error { return errors.ErrUnsupported }

// ConfirmBinding returns errors.ErrUnsupported on this platform.
func (s *Segment) ConfirmBinding(rec []byte) (bool, error) { return false, errors.ErrUnsupported }

// BindingConfirmed returns errors.ErrUnsupported on this platform.
func (s *Segment) BindingConfirmed() (bool, error) { return false, errors.ErrUnsupported }
