package conn

import (
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
// writer took. It returned 0 (found by an adversarial review).
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
