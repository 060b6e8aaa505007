// Package segment creates, names, maps and unlinks the shared-memory file
// that two processes of one connection share: a versioned header followed
// by two equal byte regions, one per direction.
//
// The listening side creates the file under /dev/shm with a random name,
// O_EXCL and mode 0600; the dialing side opens it by that name, checks the
// header (magic, version, sizes, and a random token the creator told it
// over the side socket) and maps it; then the creator unlinks it. From then
// on no file exists and the memory lives only as long as the mappings, so a
// crash of either process leaves nothing in /dev/shm. A crash between
// Create and Unlink can leave a file behind: RemoveStale removes those
// whose creator has died.
//
// This package knows nothing of rings or sockets: it hands out regions.
package segment

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Header layout, at the start of the segment. Offsets are pinned by a test;
// changing any of them requires a new Version.
const (
	offMagic      = 0  // [8]byte Magic
	offVersion    = 8  // uint32 little-endian Version
	offHeaderSize = 12 // uint32 HeaderSize
	offRegionSize = 16 // uint64 size of each region
	offRegions    = 24 // uint32 number of regions (2)
	offCreatorPID = 28 // uint32 pid of the creating process
	offToken      = 32 // [TokenSize]byte random token

	// HeaderSize is the space reserved for the header. It is a page so the
	// regions start page-aligned.
	HeaderSize = 4096
	// Regions is the number of regions: one per direction.
	Regions = 2
	// TokenSize is the length of the random token in the header.
	TokenSize = 16
	// Version is the layout version written and accepted by this package.
	Version = 1
	// MaxRegionSize bounds a region, so a hostile size cannot make us map
	// absurd amounts of memory.
	MaxRegionSize = 1<<30 + 4096
	// regionAlign keeps every region's atomics aligned.
	regionAlign = 64
)

// Magic identifies a shmconn segment.
var Magic = [8]byte{'s', 'h', 'm', 'c', 'o', 'n', 'n', 0}

// Token is the random value the creator writes into the header and tells
// the opener over the side socket, so the opener maps only the segment it
// was offered (not a stale file, nor one on another host with the same
// name).
type Token [TokenSize]byte

// Name prefix and shape: "shmconn-<pid>-<16 lowercase hex digits>".
const (
	namePrefix  = "shmconn-"
	randHexLen  = 16
	maxPIDDigit = 10
	// MaxNameLen is the longest valid name.
	MaxNameLen = len(namePrefix) + maxPIDDigit + 1 + randHexLen
)

var (
	// ErrName means a name does not match the strict pattern of names this
	// package creates.
	ErrName = errors.New("segment: invalid name")
	// ErrHeader means the file's header is not a segment this package
	// would accept: wrong magic, version, sizes or token.
	ErrHeader = errors.New("segment: header mismatch")
	// ErrSize means a region size is out of range or misaligned.
	ErrSize = errors.New("segment: invalid region size")
	// ErrClosed means the segment was already closed.
	ErrClosed = errors.New("segment: closed")
)

// ValidName reports whether name has the exact shape of names Create
// makes. Anything else (a path, "..", an empty string, a long name) is
// refused before it reaches the file system.
func ValidName(name string) bool {
	rest, ok := strings.CutPrefix(name, namePrefix)
	if !ok {
		return false
	}
	pid, random, ok := strings.Cut(rest, "-")
	if !ok || len(pid) == 0 || len(pid) > maxPIDDigit || len(random) != randHexLen {
		return false
	}
	for _, c := range []byte(pid) {
		if c < '0' || c > '9' {
			return false
		}
	}
	for _, c := range []byte(random) {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// namePID returns the creator pid encoded in a valid name.
func namePID(name string) (int, bool) {
	if !ValidName(name) {
		return 0, false
	}
	rest := strings.TrimPrefix(name, namePrefix)
	pid, _, _ := strings.Cut(rest, "-")
	n, err := strconv.ParseUint(pid, 10, 32)
	return int(n), err == nil && n > 0
}

func newName(pid int) (string, error) {
	var r [randHexLen / 2]byte
	if _, err := rand.Read(r[:]); err != nil {
		return "", err
	}
	return namePrefix + strconv.Itoa(pid) + "-" + hex.EncodeToString(r[:]), nil
}

func checkRegionSize(size int) error {
	if size <= 0 || size > MaxRegionSize || size%regionAlign != 0 {
		return fmt.Errorf("%w: %d (want a positive multiple of %d up to %d)", ErrSize, size, regionAlign, MaxRegionSize)
	}
	return nil
}

// TotalSize returns the file size of a segment with the given region size.
func TotalSize(regionSize int) int { return HeaderSize + Regions*regionSize }

func writeHeader(mem []byte, regionSize, pid int, token Token) {
	copy(mem[offMagic:], Magic[:])
	binary.LittleEndian.PutUint32(mem[offVersion:], Version)
	binary.LittleEndian.PutUint32(mem[offHeaderSize:], HeaderSize)
	binary.LittleEndian.PutUint64(mem[offRegionSize:], uint64(regionSize))
	binary.LittleEndian.PutUint32(mem[offRegions:], Regions)
	binary.LittleEndian.PutUint32(mem[offCreatorPID:], uint32(pid))
	copy(mem[offToken:], token[:])
}

// checkHeader validates a header read from a file the other process
// created. mem must be at least HeaderSize long.
func checkHeader(mem []byte, regionSize int, token Token) error {
	if len(mem) < HeaderSize {
		return fmt.Errorf("%w: %d bytes", ErrHeader, len(mem))
	}
	var tok Token
	copy(tok[:], mem[offToken:])
	switch {
	case [8]byte(mem[offMagic:offMagic+8]) != Magic:
		return fmt.Errorf("%w: bad magic", ErrHeader)
	case binary.LittleEndian.Uint32(mem[offVersion:]) != Version:
		return fmt.Errorf("%w: version %d, want %d", ErrHeader, binary.LittleEndian.Uint32(mem[offVersion:]), Version)
	case binary.LittleEndian.Uint32(mem[offHeaderSize:]) != HeaderSize:
		return fmt.Errorf("%w: header size %d", ErrHeader, binary.LittleEndian.Uint32(mem[offHeaderSize:]))
	case binary.LittleEndian.Uint64(mem[offRegionSize:]) != uint64(regionSize):
		return fmt.Errorf("%w: region size %d, want %d", ErrHeader, binary.LittleEndian.Uint64(mem[offRegionSize:]), regionSize)
	case binary.LittleEndian.Uint32(mem[offRegions:]) != Regions:
		return fmt.Errorf("%w: %d regions", ErrHeader, binary.LittleEndian.Uint32(mem[offRegions:]))
	case tok != token:
		return fmt.Errorf("%w: token mismatch", ErrHeader)
	}
	return nil
}

// Segment is one mapped shared-memory file. Unlink and Close may be called
// from any goroutine, but the caller must make sure nobody calls Region or
// touches a region during or after Close.
type Segment struct {
	name       string
	token      Token
	regionSize int
	mem        []byte // the whole mapping
	plat       platform
}

// Name returns the segment's file name (relative to Dir).
func (s *Segment) Name() string { return s.name }

// Token returns the random token in the header.
func (s *Segment) Token() Token { return s.token }

// RegionSize returns the size of each region.
func (s *Segment) RegionSize() int { return s.regionSize }

// Region returns region i (0 or 1) of the mapping. Region 0 carries bytes
// from the opener to the creator, region 1 the other way.
func (s *Segment) Region(i int) []byte {
	if i < 0 || i >= Regions || s.mem == nil {
		return nil
	}
	off := HeaderSize + i*s.regionSize
	return s.mem[off : off+s.regionSize : off+s.regionSize]
}
