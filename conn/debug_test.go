package conn

import (
	"encoding/binary"
	"fmt"
)

// debugState describes both rings' shared control blocks, for failing
// tests. The offsets are SPEC.md's (rawpeer_test.go), which TestLayout in
// package ring pins.
func (c *Conn) debugState() string {
	s := ""
	for i, name := range []string{"dialer->listener", "listener->dialer"} {
		r := c.seg.Control(i)
		s += fmt.Sprintf("%s: tail=%d writerWaiting=%d writerClosed=%d head=%d readerWaiting=%d readerClosed=%d; ",
			name, binary.LittleEndian.Uint64(r[specTail:]), binary.LittleEndian.Uint32(r[specWriterWaiting:]), binary.LittleEndian.Uint32(r[specWriterClosed:]),
			binary.LittleEndian.Uint64(r[specHead:]), binary.LittleEndian.Uint32(r[specReaderWaiting:]), binary.LittleEndian.Uint32(r[specReaderClosed:]))
	}
	return s + fmt.Sprintf("peerDead=%v rwake=%d wwake=%d", c.carrier.peerEnded(), len(c.rwait.wake), len(c.wwait.wake))
}
