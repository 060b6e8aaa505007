package conn

import (
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/shmconn/shmconn/atomicx"
	"github.com/shmconn/shmconn/segment"
)

// rawPeer is a dialer written from SPEC.md alone, byte by byte, with none
// of this package's handshake or ring code: once connected it can break
// every rule a hostile peer could.
type rawPeer struct {
	side net.Conn
	seg  *segment.Segment
	cap  uint64 // ring capacity
}

// Ring control block offsets, from SPEC.md section 4. (Where the control
// blocks and data areas lie, section 3, is left to package segment.)
const (
	specTail          = 0
	specHead          = 128
	specWriterWaiting = 256
	specWriterClosed  = 260
	specReaderWaiting = 384
	specReaderClosed  = 388
)

// dialRaw connects to a listener at addr and runs the dialer's handshake
// by hand, asking for rings of ringSize bytes.
func dialRaw(t *testing.T, network, addr string, ringSize uint32) *rawPeer {
	t.Helper()
	side, err := net.Dial(network, addr)
	require.NoError(t, err)
	t.Cleanup(func() { side.Close() })
	_, err = side.Write(rawHello(ringSize))
	require.NoError(t, err)
	side.SetReadDeadline(time.Now().Add(10 * time.Second))
	var fixed [32]byte
	_, err = io.ReadFull(side, fixed[:])
	require.NoError(t, err)
	require.Equal(t, []byte{0, 's', 'h', 'm', 4, 0, 0}, fixed[:7], "reply: magic, version 4, status shared")
	name := make([]byte, fixed[7])
	_, err = io.ReadFull(side, name)
	require.NoError(t, err)
	side.SetReadDeadline(time.Time{})
	size := binary.LittleEndian.Uint32(fixed[8:])
	var token segment.Token
	copy(token[:], fixed[16:32])
	seg, err := segment.Open(string(name), int(size), token)
	require.NoError(t, err)
	t.Cleanup(func() { seg.Close() })
	rawAck(t, side, seg)
	return &rawPeer{side: side, seg: seg, cap: uint64(size)}
}

// rawAck binds the mapped seg to side, acknowledges it and takes the
// listener's confirmation.
func rawAck(t *testing.T, side net.Conn, seg *segment.Segment) {
	t.Helper()
	require.NoError(t, seg.Bind(append(specEndpoint(t, side.LocalAddr()), specEndpoint(t, side.RemoteAddr())...)))
	_, err := side.Write([]byte{'M'})
	require.NoError(t, err)
	var confirm [1]byte
	side.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err = io.ReadFull(side, confirm[:])
	require.NoError(t, err)
	side.SetReadDeadline(time.Time{})
	require.Equal(t, byte('K'), confirm[0], "confirmation")
}

// specEndpoint encodes a side socket's address for the binding record
// (SPEC.md section 3): kind, length, address.
func specEndpoint(t *testing.T, a net.Addr) []byte {
	switch a := a.(type) {
	case *net.TCPAddr:
		b := append([]byte{1, 18}, a.IP.To16()...)
		return binary.LittleEndian.AppendUint16(b, uint16(a.Port))
	case *net.UnixAddr:
		name := a.Name
		switch {
		case name == "@":
			name = ""
		case len(name) > 0 && name[0] == '@':
			name = "\x00" + name[1:]
		}
		return append([]byte{2, byte(len(name))}, name...)
	}
	t.Fatalf("no binding for %T", a)
	return nil
}

// rawHello is a version-4 hello asking for rings of ringSize bytes, no
// flags: the magic, version, flags and ring size in hex, CRLF.
func rawHello(ringSize uint32) []byte {
	return fmt.Appendf([]byte("\xffSHM"), "%04x%04x%08x\r\n", 4, 0, ringSize)
}

// out is the control block of the ring the raw dialer produces into
// (direction 0); in the one it consumes (direction 1).
func (p *rawPeer) out() []byte { return p.seg.Control(0) }
func (p *rawPeer) in() []byte  { return p.seg.Control(1) }

func u64(t *testing.T, region []byte, off int) *atomic.Uint64 {
	v, err := atomicx.Uint64At(region, off)
	require.NoError(t, err)
	return v
}

func u32(t *testing.T, region []byte, off int) *atomic.Uint32 {
	v, err := atomicx.Uint32At(region, off)
	require.NoError(t, err)
	return v
}

// publish writes b into the raw dialer's ring and sends a data wake-up,
// however the flags stand.
func (p *rawPeer) publish(t *testing.T, b []byte) {
	t.Helper()
	tail := u64(t, p.out(), specTail)
	at := tail.Load()
	data := p.seg.Data(0)
	for i, c := range b {
		data[int((at+uint64(i))%p.cap)] = c
	}
	tail.Store(at + uint64(len(b)))
	_, err := p.side.Write([]byte{'d'})
	require.NoError(t, err)
}
