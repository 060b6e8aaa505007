//go:build !linux

package conn

import (
	"errors"
	"io"
	"net"

	"github.com/shmconn/shmconn/internal/handshake"
)

// Descriptors are passed only on Linux, where segments are anonymous
// memory files; elsewhere there is no shared memory at all.

func descriptorSocket(c net.Conn) *net.UnixConn { return nil }

func sendWithDescriptor(uc *net.UnixConn, b []byte, fd int) error { return errNoDescriptorSocket }

type replyReader struct{ r io.Reader }

func newReplyReader(side net.Conn) *replyReader { return &replyReader{r: side} }

func (r *replyReader) canTakeDescriptor() bool { return false }

func (r *replyReader) Read(b []byte) (int, error) { return r.r.Read(b) }

func (r *replyReader) descriptor(rep handshake.Reply) (int, error) {
	if rep.Flags&handshake.ReplyDescriptor != 0 {
		return -1, handshake.ErrProtocol
	}
	return -1, nil
}

func (r *replyReader) close() {}

var errNoDescriptorSocket = errors.New("shmconn: descriptors are not passed on this platform")
