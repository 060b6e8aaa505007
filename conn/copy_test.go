package conn

import (
	"bytes"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// writerFunc is an io.Writer made of a function.
type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// TestWriteToCountOnClose: a WriteTo whose conn is closed while its writer
// is taking bytes returns net.ErrClosed and, as ever, how many bytes the
// writer took, not 0.
func TestWriteToCountOnClose(t *testing.T) {
	for _, network := range []string{"unix", "tcp"} {
		t.Run(network, func(t *testing.T) {
			a, b := newPair(t, network, ListenConfig{}, Dialer{})
			w := &gatedWriter{gates: []chan struct{}{make(chan struct{})}}
			var took atomic.Int64
			counted := writerFunc(func(p []byte) (int, error) {
				n, err := w.Write(p)
				took.Add(int64(n))
				return n, err
			})
			type result struct {
				n   int64
				err error
			}
			done := make(chan result, 1)
			go func() {
				n, err := a.WriteTo(counted)
				done <- result{n, err}
			}()
			_, err := b.Write(make([]byte, 500))
			require.NoError(t, err)
			require.Eventually(t, func() bool { return w.calls.Load() == 1 }, 5*time.Second, time.Millisecond)
			require.NoError(t, a.Close())
			close(w.gates[0]) // the writer takes the 500 bytes after Close
			r := <-done
			require.ErrorIs(t, r.err, net.ErrClosed)
			require.Equal(t, took.Load(), r.n, "WriteTo's count against what the writer took")
			require.Equal(t, int64(500), r.n)
		})
	}
}

// TestCopyHandsOutPrivateBytes: the writer WriteTo feeds and the reader
// ReadFrom fills get buffers of the conn's own, never shared memory, so
// the peer cannot change bytes under them. The peer (through its own
// mapping of the segment) scribbles over the ring while the writer or
// reader is running: the writer still has the bytes the peer published,
// and an io.TeeReader's log and the peer both get what the source
// produced.
func TestCopyHandsOutPrivateBytes(t *testing.T) {
	for _, network := range []string{"unix", "tcp"} {
		t.Run(network+"/writeto", func(t *testing.T) {
			a, b := newPair(t, network, ListenConfig{}, Dialer{})
			published := []byte("checked, then kept")
			entered, scribbled := make(chan []byte, 1), make(chan struct{})
			var kept []byte
			done := make(chan error, 1)
			go func() {
				_, err := a.WriteTo(writerFunc(func(p []byte) (int, error) {
					entered <- bytes.Clone(p) // the check
					<-scribbled
					kept = bytes.Clone(p) // the store
					return len(p), nil
				}))
				done <- err
			}()
			_, err := b.Write(published)
			require.NoError(t, err)
			require.Equal(t, published, receive(t, entered, "the writer's call"))
			scribble(b.seg.Data(b.prodArea)[:len(published)])
			close(scribbled)
			require.NoError(t, b.Close())
			require.NoError(t, receive(t, done, "WriteTo's end"))
			require.Equal(t, published, kept, "the writer's bytes changed under it")
		})
		t.Run(network+"/readfrom", func(t *testing.T) {
			a, b := newPair(t, network, ListenConfig{}, Dialer{})
			produced := []byte("what the source produced")
			inRead, scribbled := make(chan struct{}), make(chan struct{})
			calls := 0
			source := readerFunc(func(p []byte) (int, error) {
				if calls++; calls > 1 {
					return 0, io.EOF
				}
				n := copy(p, produced)
				close(inRead)
				<-scribbled
				return n, nil
			})
			var log bytes.Buffer
			done := make(chan error, 1)
			go func() {
				_, err := a.ReadFrom(io.TeeReader(source, &log))
				done <- err
			}()
			receive(t, inRead, "the source's Read")
			scribble(b.seg.Data(1 - b.prodArea)[:len(produced)])
			close(scribbled)
			require.NoError(t, receive(t, done, "ReadFrom's end"))
			require.Equal(t, produced, log.Bytes(), "the tee's log")
			got := make([]byte, len(produced))
			_, err := io.ReadFull(b, got)
			require.NoError(t, err)
			require.Equal(t, produced, got, "what the peer read")
		})
	}
}

// scribble overwrites m as a hostile peer would.
func scribble(m []byte) {
	for i := range m {
		m[i] = 'X'
	}
}

// readerFunc is an io.Reader made of a function.
type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }
