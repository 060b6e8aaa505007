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

// Ring control block offsets, from SPEC.md section 4.
const (
	specTail          = 0
	specHead          = 128
	specWriterWaiting = 256
	specWriterClosed  = 260
	specReaderWaiting = 384
	specReaderClosed  = 388
	specData          = 512
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
	require.Equal(t, []byte{0, 's', 'h', 'm', 2, 0, 0}, fixed[:7], "reply: magic, version 2, status shared")
	name := make([]byte, fixed[7])
	_, err = io.ReadFull(side, name)
	require.NoError(t, err)
	side.SetReadDeadline(time.Time{})
	size := binary.LittleEndian.Uint32(fixed[8:])
	var token segment.Token
	copy(token[:], fixed[16:32])
	seg, err := segment.Open(string(name), regionSize(int(size)), token)
	require.NoError(t, err)
	t.Cleanup(func() { seg.Close() })
	_, err = side.Write([]byte{'M'})
	require.NoError(t, err)
	return &rawPeer{side: side, seg: seg, cap: uint64(size)}
}

// rawHello is a version-2 hello asking for rings of ringSize bytes, no
// flags: the magic, version, flags and ring size in hex, CRLF.
func rawHello(ringSize uint32) []byte {
	return fmt.Appendf([]byte("\xffSHM"), "%04x%04x%08x\r\n", 2, 0, ringSize)
}

// out is the ring the raw dialer produces into (region 0); in the one it
// consumes (region 1).
func (p *rawPeer) out() []byte { return p.seg.Region(0) }
func (p *rawPeer) in() []byte  { return p.seg.Region(1) }

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
	r := p.out()
	tail := u64(t, r, specTail)
	at := tail.Load()
	for i, c := range b {
		r[specData+int((at+uint64(i))%p.cap)] = c
	}
	tail.Store(at + uint64(len(b)))
	_, err := p.side.Write([]byte{'d'})
	require.NoError(t, err)
}
