package integration

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/shmconn/shmconn/conn"
)

// testTimeout bounds every client call, so a hang fails a test instead of
// the whole run.
const testTimeout = 10 * time.Second

// waitPolicies are the policies every library runs under.
var waitPolicies = []conn.WaitPolicy{conn.WaitAdaptive, conn.WaitSpin}

// listen starts a Listener on a fresh address of network ("unix" or "tcp")
// with the fallback off, so a client that cannot share memory fails
// instead of silently passing over the side socket. The Listener is closed
// at the end of the test.
func listen(t *testing.T, network string, wait conn.WaitPolicy) *conn.Listener {
	t.Helper()
	addr := "127.0.0.1:0"
	if network == "unix" {
		addr = filepath.Join(t.TempDir(), "shm.sock")
	}
	lc := conn.ListenConfig{Wait: wait, NoFallback: true}
	ln, err := lc.Listen(context.Background(), network, addr)
	require.NoError(t, err)
	t.Cleanup(func() { ln.Close() })
	return ln
}

// shmDialer is a conn.Dialer that counts its dials and refuses any conn
// that is not shared memory.
type shmDialer struct {
	conn.Dialer
	dials atomic.Int64
}

func newDialer(wait conn.WaitPolicy) *shmDialer {
	return &shmDialer{Dialer: conn.Dialer{Wait: wait, Timeout: testTimeout, NoFallback: true}}
}

// DialContext has the signature net/http and go-redis take.
func (d *shmDialer) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	c, err := d.Dialer.DialContext(ctx, network, address)
	if err != nil {
		return nil, err
	}
	if _, ok := c.(*conn.Conn); !ok {
		c.Close()
		return nil, fmt.Errorf("dialed a %T, want a *conn.Conn", c)
	}
	d.dials.Add(1)
	return c, nil
}

// connTypes counts, by dynamic type, the conns a server was handed. It is
// safe for concurrent use.
type connTypes struct {
	mu sync.Mutex
	n  map[string]int
}

func (ct *connTypes) record(c net.Conn) {
	ct.mu.Lock()
	defer ct.mu.Unlock()
	if ct.n == nil {
		ct.n = make(map[string]int)
	}
	ct.n[fmt.Sprintf("%T", c)]++
}

// requireShared fails the test unless the server saw at least one conn and
// all of them were *conn.Conn.
func (ct *connTypes) requireShared(t *testing.T) {
	t.Helper()
	ct.mu.Lock()
	defer ct.mu.Unlock()
	require.NotEmpty(t, ct.n, "the server accepted no conn")
	for typ := range ct.n {
		require.Equal(t, "*conn.Conn", typ, "the server accepted a conn that is not shared memory")
	}
}

// typeRecordingListener records the type of every conn it accepts, for
// servers (gRPC) that expose no hook of their own.
type typeRecordingListener struct {
	net.Listener
	types *connTypes
}

func (l typeRecordingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.types.record(c)
	}
	return c, err
}
