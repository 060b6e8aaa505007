// Package segment creates, maps and unmaps the shared memory that two
// processes of one connection share: one page holding a versioned header
// and a control block per direction, followed by two equal data areas, one
// per direction.
//
// A segment is either an anonymous memory file (CreateAnonymous, Map: a
// memfd, passed to the peer as a descriptor over a unix socket and sealed
// against shrinking and growing) or a named file under /dev/shm (Create,
// Open: for peers reached over TCP). A named file is created with a random
// name, O_EXCL and mode 0600; the opening side checks the header (magic,
// version, sizes, and a random token the creator told it over the side
// socket) and maps it; then the creator unlinks it. From then on no file
// exists and the memory lives only as long as the mappings, so a crash of
// either process leaves nothing in /dev/shm. A crash between Create and
// Unlink can leave a file behind: RemoveStale removes those whose creator
// has died. A memfd never has a name to leave behind.
//
// Nothing is allocated up front: a page of a data area is committed when a
// writer first reaches it (Commit), so an idle connection costs the page of
// control blocks and the pages its bytes went through.
//
// This package knows nothing of rings or sockets: it hands out byte areas.
package segment

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unsafe"
)

// Layout of the first page. Offsets are pinned by a test; changing any of
// them requires a new version.
const (
	offMagic      = 0   // [8]byte magic
	offVersion    = 8   // uint32 little-endian version
	offHeaderSize = 12  // uint32 headerSize
	offDataSize   = 16  // uint64 size of each data area
	offRegions    = 24  // uint32 number of directions (2)
	offCreatorPID = 28  // uint32 pid of the creating process, 0 for a memfd
	offToken      = 32  // [TokenSize]byte random token
	offConfirmed  = 48  // uint32 set to 1 by the creator once it found the opener's binding
	offBinding    = 256 // [bindingSize]byte: the opener's binding record, zero-padded

	// offControl is where the first control block starts: on a cache-line
	// boundary of its own, after the header that never changes.
	offControl = 512

	// headerSize is the first page: header and control blocks. It is a
	// page so the data areas start page-aligned and a data area's first
	// write commits exactly one page.
	headerSize = 4096
	// ControlSize is the size of each direction's control block.
	ControlSize = 512
	// regions is the number of directions.
	regions = 2
	// TokenSize is the length of the random token in the header.
	TokenSize = 16
	// bindingSize is the room in the header for the opener's binding
	// record (see Bind).
	bindingSize = 256
	// version is the layout version written and accepted by this package;
	// a header of another version is refused (ErrHeader).
	version = 3
	// maxDataSize bounds a data area, so a hostile size cannot make us map
	// absurd amounts of memory.
	maxDataSize = 1 << 30
	// PageSize is the unit data areas come in, and the unit of Commit.
	PageSize = 4096
)

// magic identifies a shmconn segment: the first 8 bytes of its header.
const magic = "shmconn\x00"

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
	// would accept: wrong magic, version, sizes, token or seals.
	ErrHeader = errors.New("segment: header mismatch")
	// ErrSize means a data area size is out of range or misaligned.
	ErrSize = errors.New("segment: invalid data size")
	// ErrClosed means the segment was already closed.
	ErrClosed = errors.New("segment: closed")
	// ErrNoMemory means shared memory could not be created or a page of it
	// committed: /dev/shm is full, or the memory cgroup is at its limit.
	ErrNoMemory = errors.New("segment: out of shared memory")
)

// errTruncated means the file was truncated under the mapping (only a
// named segment can be, by a process of our uid before it was unlinked).
// Callers see it as a failed Commit; none tells it from other failures.
var errTruncated = errors.New("segment: file truncated under the mapping")

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

func checkDataSize(size int) error {
	if size <= 0 || size > maxDataSize || size%PageSize != 0 {
		return fmt.Errorf("%w: %d (want a positive multiple of %d up to %d)", ErrSize, size, PageSize, maxDataSize)
	}
	return nil
}

// totalSize returns the file size of a segment with the given data area
// size.
func totalSize(dataSize int) int { return headerSize + regions*dataSize }

func writeHeader(mem []byte, dataSize, pid int, token Token) {
	copy(mem[offMagic:], magic)
	binary.LittleEndian.PutUint32(mem[offVersion:], version)
	binary.LittleEndian.PutUint32(mem[offHeaderSize:], headerSize)
	binary.LittleEndian.PutUint64(mem[offDataSize:], uint64(dataSize))
	binary.LittleEndian.PutUint32(mem[offRegions:], regions)
	binary.LittleEndian.PutUint32(mem[offCreatorPID:], uint32(pid))
	copy(mem[offToken:], token[:])
}

// checkHeader validates a header read from a file the other process
// created. mem must be at least headerSize long.
func checkHeader(mem []byte, dataSize int, token Token) error {
	if len(mem) < headerSize {
		return fmt.Errorf("%w: %d bytes", ErrHeader, len(mem))
	}
	var tok Token
	copy(tok[:], mem[offToken:])
	switch {
	case string(mem[offMagic:offMagic+len(magic)]) != magic:
		return fmt.Errorf("%w: bad magic", ErrHeader)
	case binary.LittleEndian.Uint32(mem[offVersion:]) != version:
		return fmt.Errorf("%w: version %d, want %d", ErrHeader, binary.LittleEndian.Uint32(mem[offVersion:]), version)
	case binary.LittleEndian.Uint32(mem[offHeaderSize:]) != headerSize:
		return fmt.Errorf("%w: header size %d", ErrHeader, binary.LittleEndian.Uint32(mem[offHeaderSize:]))
	case binary.LittleEndian.Uint64(mem[offDataSize:]) != uint64(dataSize):
		return fmt.Errorf("%w: data size %d, want %d", ErrHeader, binary.LittleEndian.Uint64(mem[offDataSize:]), dataSize)
	case binary.LittleEndian.Uint32(mem[offRegions:]) != regions:
		return fmt.Errorf("%w: %d regions", ErrHeader, binary.LittleEndian.Uint32(mem[offRegions:]))
	case tok != token:
		return fmt.Errorf("%w: token mismatch", ErrHeader)
	}
	return nil
}

// confirmedMark is what the creator writes at offConfirmed once it found
// the opener's binding record.
const confirmedMark = 1

// putBinding writes rec, zero-padded, into the binding record's room.
func putBinding(mem, rec []byte) error {
	if len(rec) > bindingSize {
		return fmt.Errorf("%w: binding record of %d bytes", ErrSize, len(rec))
	}
	area := mem[offBinding : offBinding+bindingSize]
	clear(area[copy(area, rec):])
	return nil
}

// holdsBinding reports whether the binding record's room holds exactly
// rec, zero-padded.
func holdsBinding(mem, rec []byte) bool {
	if len(rec) > bindingSize {
		return false
	}
	area := mem[offBinding : offBinding+bindingSize]
	for _, b := range area[len(rec):] {
		if b != 0 {
			return false
		}
	}
	return string(area[:len(rec)]) == string(rec)
}

// Segment is one mapped shared-memory file. Unlink and Close may be called
// from any goroutine, but the caller must make sure nobody calls Control,
// Data or Commit, or touches an area, during or after Close.
type Segment struct {
	name     string // "" for a memfd
	token    Token
	dataSize int
	mem      []byte // the whole mapping
	plat     platform
}

// Name returns the segment's file name (in /dev/shm), or "" for an
// anonymous segment.
func (s *Segment) Name() string { return s.name }

// Token returns the random token in the header.
func (s *Segment) Token() Token { return s.token }

// contains reports whether addr lies in the segment's mapping. It is false
// once the segment is closed.
func (s *Segment) contains(addr uintptr) bool {
	if len(s.mem) == 0 {
		return false
	}
	base := uintptr(unsafe.Pointer(unsafe.SliceData(s.mem)))
	return addr >= base && addr-base < uintptr(len(s.mem))
}

// sealed reports whether nobody can change the segment's size: it is an
// anonymous memory file, sealed against shrinking and growing before it
// was passed. A named file can be truncated by any process of the uid
// until it is unlinked, and after that by any that opened it, and a touch
// of a page past its end faults.
func (s *Segment) sealed() bool { return s.name == "" }

// Control returns direction i's control block (ControlSize bytes, on the
// first page). Direction 0 carries bytes from the opener to the creator,
// direction 1 the other way.
func (s *Segment) Control(i int) []byte {
	if i < 0 || i >= regions || s.mem == nil {
		return nil
	}
	off := offControl + i*ControlSize
	return s.mem[off : off+ControlSize : off+ControlSize]
}

// Data returns direction i's data area. Its pages are committed only when
// first written; call Commit before writing a page for the first time, so
// running out of memory is an error rather than a SIGBUS.
func (s *Segment) Data(i int) []byte {
	if i < 0 || i >= regions || s.mem == nil {
		return nil
	}
	off := headerSize + i*s.dataSize
	return s.mem[off : off+s.dataSize : off+s.dataSize]
}
