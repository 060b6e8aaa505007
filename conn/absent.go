package conn

import (
	"errors"
	"fmt"

	"github.com/shmconn/shmconn/segment"
)

// Reading commits memory too. A page of the peer's ring that the peer
// published but never wrote is not in memory: reading it commits it,
// charged to our memory cgroup, and a cgroup at its limit answers that
// fault with the OOM killer. So before a read touches a page of the ring
// for the first time, checkRead commits the pages that are not in memory
// as a Write would commit its own (segment.CommitAbsent: after a headroom
// check, ErrNoMemory when it fails). Once a page is in memory it stays:
// the peer cannot punch it out of a sealed memory file (see
// segment.Unlink), so each page is checked once, and once every page has
// been, reads check nothing more. (A named segment can be punched by a
// peer of our uid; see SECURITY.md.)

// pageSet is a set of the pages of a ring's data area.
type pageSet struct {
	bits []uint64
	left int // pages not in the set; 0: all are
}

func newPageSet(size int) pageSet {
	n := (size + segment.PageSize - 1) / segment.PageSize
	return pageSet{bits: make([]uint64, (n+63)/64), left: n}
}

// add puts pages [lo, hi) in the set and reports whether any was missing.
func (s *pageSet) add(lo, hi int) (added bool) {
	for p := lo; p < hi; p++ {
		w, b := p/64, uint64(1)<<(p%64)
		if s.bits[w]&b == 0 {
			s.bits[w] |= b
			s.left--
			added = true
		}
	}
	return added
}

// has reports whether all of pages [lo, hi) are in the set.
func (s *pageSet) has(lo, hi int) bool {
	for p := lo; p < hi; {
		w := p / 64
		if p%64 == 0 && hi-p >= 64 {
			if s.bits[w] != ^uint64(0) {
				return false
			}
			p += 64
			continue
		}
		if s.bits[w]&(1<<(p%64)) == 0 {
			return false
		}
		p++
	}
	return true
}

// checkRead makes sure that reading the next n bytes of the ring we
// consume (n <= what is readable) commits nothing unchecked (see above),
// and returns how many of them may be read: all, or when memory is short
// those up to the end of the first page, or none and an error wrapping
// ErrNoMemory. Called under rmu.
func (c *Conn) checkRead(n int) (int, error) {
	if c.checked.left == 0 || n == 0 {
		return n, nil
	}
	off := c.cons.Offset()
	err := c.checkPages(off, n)
	if first := segment.PageSize - off%segment.PageSize; errors.Is(err, segment.ErrNoMemory) && n > first {
		n = first
		err = c.checkPages(off, n)
	}
	if err != nil {
		return 0, err
	}
	return n, nil
}

// checkPages checks the pages of bytes [off, off+n) of the ring we
// consume, which may wrap at its end.
func (c *Conn) checkPages(off, n int) error {
	capacity := c.cons.Cap()
	if end := off + n; end > capacity {
		if err := c.checkSpan(0, end-capacity); err != nil {
			return err
		}
		n = capacity - off
	}
	return c.checkSpan(off, n)
}

// checkSpan checks the pages of bytes [off, off+n) of the ring we consume
// that no read has checked yet.
func (c *Conn) checkSpan(off, n int) error {
	lo := off / segment.PageSize
	hi := (off + n + segment.PageSize - 1) / segment.PageSize
	if c.checked.has(lo, hi) {
		return nil
	}
	if err := c.seg.CommitAbsent(1-c.prodArea, lo*segment.PageSize, min(hi*segment.PageSize, c.cons.Cap())-lo*segment.PageSize); err != nil {
		if errors.Is(err, segment.ErrNoMemory) {
			return err
		}
		return fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	c.checked.add(lo, hi)
	return nil
}
