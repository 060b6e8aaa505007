//go:build linux

package conn

import (
	"io"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/shmconn/shmconn/internal/handshake"
	"github.com/shmconn/shmconn/segment"
)

// TestHostileListenerDescriptors has a dialer face listeners that lie
// about the descriptor they pass: none, two, one with a reply that names a
// file, an unsealed memory file, a regular file, a pipe, one with a reply
// that falls back. Every dial fails
// (or falls back where both allow it), nothing is mapped that could be
// truncated under us, and every descriptor that arrived is closed.
func TestHostileListenerDescriptors(t *testing.T) {
	victim := filepath.Join(t.TempDir(), "victim")
	require.NoError(t, os.WriteFile(victim, make([]byte, segmentSize(MinRingSize)), 0o600))
	good, err := segment.CreateAnonymous(MinRingSize)
	require.NoError(t, err)
	defer good.Close()
	unsealed, err := unix.MemfdCreate("unsealed", unix.MFD_CLOEXEC)
	require.NoError(t, err)
	defer unix.Close(unsealed)
	require.NoError(t, unix.Ftruncate(unsealed, int64(segmentSize(MinRingSize))))
	// Give it the header of the good one, so only the seals differ.
	hdr := make([]byte, segment.PageSize)
	_, err = unix.Pread(good.FD(), hdr, 0)
	require.NoError(t, err)
	_, err = unix.Pwrite(unsealed, hdr, 0)
	require.NoError(t, err)
	file, err := unix.Open(victim, unix.O_RDWR|unix.O_CLOEXEC, 0)
	require.NoError(t, err)
	defer unix.Close(file)
	var pipe [2]int
	require.NoError(t, unix.Pipe2(pipe[:], unix.O_CLOEXEC))
	defer unix.Close(pipe[0])
	defer unix.Close(pipe[1])

	byFD := handshake.Reply{Version: handshake.Version, Status: handshake.StatusShared, RingSize: MinRingSize, Flags: handshake.ReplyDescriptor, Token: good.Token()}
	named := byFD
	named.Flags, named.Name = 0, "shmconn-1-0123456789abcdef"
	plain := handshake.Reply{Version: handshake.Version, Status: handshake.StatusPlain, Flags: handshake.ReplyFallback}
	for _, tc := range []struct {
		name     string
		reply    handshake.Reply
		fds      []int
		fallback bool // the dialer allows the fallback: the reply must still be refused
	}{
		{"no descriptor", byFD, nil, false},
		{"two descriptors", byFD, []int{good.FD(), good.FD()}, false},
		{"descriptor with a name", named, []int{good.FD()}, false},
		{"unsealed memfd", byFD, []int{unsealed}, false},
		{"regular file", byFD, []int{file}, false},
		{"pipe", byFD, []int{pipe[0]}, false},
		{"wrong token", func() handshake.Reply { r := byFD; r.Token[0]++; return r }(), []int{good.FD()}, false},
		{"descriptor with a fallback", plain, []int{good.FD()}, true},
	} {
		before := openFDs(t)
		t.Run(tc.name, func(t *testing.T) {
			addr := fakeDescriptorListener(t, tc.reply, tc.fds)
			d := Dialer{NoFallback: !tc.fallback, RingSize: MinRingSize, Timeout: time.Second}
			c, err := d.Dial("unix", addr)
			require.Error(t, err)
			require.Nil(t, c)
			require.ErrorIs(t, err, ErrHandshake)
			if tc.fallback {
				require.ErrorIs(t, err, handshake.ErrProtocol)
			}
			t.Log(err)
		})
		// The fake listener is gone now (its cleanup waited for it).
		require.Equal(t, before, openFDs(t), "%s: descriptors leaked", tc.name)
	}
	b, err := os.ReadFile(victim)
	require.NoError(t, err)
	require.Equal(t, make([]byte, segmentSize(MinRingSize)), b, "the regular file was written")
}

// fakeDescriptorListener answers one dialer with reply and the descriptors
// fds attached (each in its own control message), then waits for it to go.
func fakeDescriptorListener(t *testing.T, reply handshake.Reply, fds []int) string {
	addr := listenAddr(t, "unix")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: addr, Net: "unix"})
	require.NoError(t, err)
	done := make(chan struct{})
	t.Cleanup(func() {
		ln.Close()
		<-done
	})
	go func() {
		defer close(done)
		c, err := ln.AcceptUnix()
		if err != nil {
			return
		}
		defer c.Close()
		io.ReadFull(c, make([]byte, handshake.HelloSize))
		b, _ := handshake.AppendReply(nil, reply)
		var oob []byte
		for _, fd := range fds {
			oob = append(oob, unix.UnixRights(fd)...)
		}
		c.WriteMsgUnix(b, oob, nil)
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		io.Copy(io.Discard, c)
	}()
	return addr
}

// segmentSize is the file size of a segment with rings of the given size
// (SPEC.md section 3): a first page, then the two data areas.
func segmentSize(ring int) int { return segment.PageSize + 2*ring }
