package conn

import (
	"encoding/binary"
	"fmt"
)

// debugState describes both rings' shared control blocks, for failing
// tests.
func (c *Conn) debugState() string {
	s := ""
	for i, name := range []string{"dialer->listener", "listener->dialer"} {
		r := c.seg.Control(i)
		s += fmt.Sprintf("%s: tail=%d writerWaiting=%d writerClosed=%d head=%d readerWaiting=%d readerClosed=%d; ",
			name, binary.LittleEndian.Uint64(r[0:]), binary.LittleEndian.Uint32(r[256:]), binary.LittleEndian.Uint32(r[260:]),
			binary.LittleEndian.Uint64(r[128:]), binary.LittleEndian.Uint32(r[384:]), binary.LittleEndian.Uint32(r[388:]))
	}
	return s + fmt.Sprintf("peerDead=%v rwake=%d wwake=%d", c.peerDead.Load(), len(c.rwait.wake), len(c.wwait.wake))
}
