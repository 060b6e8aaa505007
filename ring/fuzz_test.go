package ring

import (
	"encoding/binary"
	"errors"
	"testing"
)

// FuzzRingCorrupt plays an honest producer and consumer while a hostile
// peer overwrites the shared control block between their calls. Whatever
// it writes, every call must return normally (no panic, no out-of-bounds
// access), any error must be ErrCorrupt, and a consumer must never return
// more bytes than it was given room for.
//
// The input is a program: each 9-byte step is an opcode and an operand;
// its first 8 bytes also give the counters their start. The target lives in
// package ring, not package fuzz, to start the counters anywhere (initAt)
// and to poke them through the layout's names.
func FuzzRingCorrupt(f *testing.F) {
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 0, 50, 1, 0, 0, 0, 0, 0, 0, 0, 20})
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 1, 0, 2, 0, 0, 0, 0, 0, 0, 0, 255, 1, 0, 0, 0, 0, 0, 0, 0, 20})
	f.Add([]byte{3, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1, 0, 0, 0, 0, 0, 0, 0, 20})
	f.Fuzz(func(t *testing.T, prog []byte) {
		const capacity = 256
		p, c, mem := newPair(t, capacity, binary.LittleEndian.Uint64(append(prog, make([]byte, 8)...)))
		buf := make([]byte, 2*capacity)
		for len(prog) >= 9 {
			op, arg := prog[0], binary.LittleEndian.Uint64(prog[1:9])
			prog = prog[9:]
			var err error
			switch op % 8 {
			case 0:
				_, err = p.Write(buf[:arg%uint64(len(buf))])
			case 1:
				n := int(arg % uint64(len(buf)))
				var got int
				got, err = c.Read(buf[:n])
				if got > n {
					t.Fatalf("Read returned %d into %d bytes", got, n)
				}
			case 2: // the peer writes a word of the control block
				off := int(arg%uint64(ControlSize/8)) * 8
				binary.LittleEndian.PutUint64(mem[off:], arg)
			case 3:
				binary.LittleEndian.PutUint64(mem[offTail:], arg)
			case 4:
				binary.LittleEndian.PutUint64(mem[offHead:], arg)
			case 5:
				var r []byte
				r, err = p.Reserve(int(arg % 1024))
				if err == nil {
					err = p.Publish(len(r))
				}
			case 6:
				var r []byte
				r, err = c.Peek()
				if len(r) > capacity {
					t.Fatalf("Peek returned %d bytes of a %d-byte ring", len(r), capacity)
				}
				if err == nil {
					err = c.Consume(len(r))
				}
			case 7:
				c.PrepareWait()
				p.PrepareWait(int(arg % 512))
				p.HasSpace(int(arg % 512))
				c.Pending()
				p.WakeReader()
				c.WakeWriter()
				if c.PrepareDoze() && arg%2 == 0 {
					c.EndDoze()
				}
				if p.PrepareDoze(int(arg%512)) && arg%3 == 0 {
					p.EndDoze()
				}
			}
			if err != nil && !errors.Is(err, ErrCorrupt) {
				t.Fatalf("op %d: error %v is not ErrCorrupt", op%8, err)
			}
		}
	})
}
