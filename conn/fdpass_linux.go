package conn

import (
	"fmt"
	"io"
	"net"

	"golang.org/x/sys/unix"

	"github.com/shmconn/shmconn/internal/handshake"
)

// Over a unix side socket the listener passes the segment as a descriptor
// of an anonymous memory file (SCM_RIGHTS) with its reply: no name in
// /dev/shm, nothing left by a crash, no size limit of /dev/shm.

// descriptorSocket returns c as a socket that can pass descriptors, or nil.
func descriptorSocket(c net.Conn) *net.UnixConn {
	uc, _ := c.(*net.UnixConn)
	return uc
}

// sendWithDescriptor writes b with fd attached to its first byte.
func sendWithDescriptor(uc *net.UnixConn, b []byte, fd int) error {
	n, _, err := uc.WriteMsgUnix(b, unix.UnixRights(fd), nil)
	if err == nil && n < len(b) {
		_, err = uc.Write(b[n:])
	}
	return err
}

// replyReader reads the listener's reply from the side socket and, on a
// unix socket, keeps the descriptors that come with it. Its room for
// control messages holds one descriptor: the kernel closes any more a
// hostile listener attaches to one read, and more than one over all reads
// is refused.
type replyReader struct {
	r         io.Reader
	uc        *net.UnixConn // nil: no descriptors can come
	fds       []int
	truncated bool     // the kernel dropped descriptors (MSG_CTRUNC)
	oob       [32]byte // > unix.CmsgSpace(4)
}

func newReplyReader(side net.Conn) *replyReader {
	return &replyReader{r: side, uc: descriptorSocket(side)}
}

// canTakeDescriptor reports whether the dialer may offer FlagDescriptor.
func (r *replyReader) canTakeDescriptor() bool { return r.uc != nil }

func (r *replyReader) Read(b []byte) (int, error) {
	if r.uc == nil {
		return r.r.Read(b)
	}
	n, oobn, flags, _, err := r.uc.ReadMsgUnix(b, r.oob[:])
	if err != nil {
		// recvmsg's -1 can come through on errors.
		n, oobn = max(n, 0), max(oobn, 0)
	}
	// More descriptors than fit, or none we could take (our descriptor
	// table is full): the kernel closed those.
	r.truncated = r.truncated || flags&unix.MSG_CTRUNC != 0
	if oobn > 0 {
		r.collect(r.oob[:oobn])
	}
	return n, err
}

func (r *replyReader) collect(oob []byte) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return
	}
	for i := range msgs {
		if fds, err := unix.ParseUnixRights(&msgs[i]); err == nil {
			r.fds = append(r.fds, fds...)
		}
	}
}

// descriptor returns the segment descriptor the reply carried if rep says
// it carries one (the caller owns it then), and closes every other
// descriptor that came.
func (r *replyReader) descriptor(rep handshake.Reply) (int, error) {
	want := rep.Status == handshake.StatusShared && rep.Flags&handshake.ReplyDescriptor != 0
	fds := r.fds
	r.fds = nil
	if want && len(fds) == 1 && !r.truncated {
		return fds[0], nil
	}
	for _, fd := range fds {
		unix.Close(fd)
	}
	switch {
	case want && len(fds) == 0 && r.truncated:
		// The one descriptor sent could not be installed: we are out of
		// descriptors, a shortage that passes.
		return -1, fmt.Errorf("the segment's descriptor could not be received: %w", unix.EMFILE)
	case want:
		return -1, fmt.Errorf("%w: %d descriptors with the reply, want 1", handshake.ErrProtocol, len(fds))
	case len(fds) > 0:
		return -1, fmt.Errorf("%w: a descriptor with a reply that has none", handshake.ErrProtocol)
	}
	return -1, nil
}

// close releases descriptors that came with a reply nobody will use.
func (r *replyReader) close() {
	for _, fd := range r.fds {
		unix.Close(fd)
	}
	r.fds = nil
}
