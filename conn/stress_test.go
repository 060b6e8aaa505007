package conn

import (
	"fmt"
	"io"
	"sync"
	"testing"
	"time"
)

// TestPingPongStress runs many conns ping-ponging small messages at once,
// setting deadlines before every call as clients such as go-redis do, and
// reports the shared state of any conn that stalls.
func TestPingPongStress(t *testing.T) {
	conns, rounds := 16, 3000
	if testing.Short() {
		conns, rounds = 8, 500
	}
	for _, tc := range []struct {
		network        string
		server, client WaitPolicy
	}{
		{"unix", WaitAdaptive, WaitAdaptive},
		{"tcp", WaitAdaptive, WaitAdaptive},
		// Many spin-policy waiters on 2 cores: one leads, the others
		// follow, and nobody may starve.
		{"unix", WaitSpin, WaitAdaptive},
		{"unix", WaitSpin, WaitSpin},
	} {
		t.Run(fmt.Sprintf("%s/%v-%v", tc.network, tc.server, tc.client), func(t *testing.T) {
			var wg sync.WaitGroup
			for i := range conns {
				c1, c2 := newPair(t, tc.network, ListenConfig{Wait: tc.server}, Dialer{Wait: tc.client})
				wg.Add(2)
				go func() { // server: echo
					defer wg.Done()
					buf := make([]byte, 64)
					for {
						c2.SetReadDeadline(time.Now().Add(30 * time.Second))
						n, err := c2.Read(buf)
						if err != nil {
							if err != io.EOF {
								t.Errorf("conn %d server read: %v; %s", i, err, c2.debugState())
							}
							return
						}
						c2.SetWriteDeadline(time.Now().Add(30 * time.Second))
						if _, err := c2.Write(buf[:n]); err != nil {
							t.Errorf("conn %d server write: %v", i, err)
							return
						}
					}
				}()
				go func() { // client
					defer wg.Done()
					defer c1.CloseWrite()
					msg := []byte(fmt.Sprintf("conn %d ping pong message", i))
					got := make([]byte, len(msg))
					for r := range rounds {
						c1.SetWriteDeadline(time.Now().Add(30 * time.Second))
						if _, err := c1.Write(msg); err != nil {
							t.Errorf("conn %d round %d write: %v", i, r, err)
							return
						}
						c1.SetReadDeadline(time.Now().Add(30 * time.Second))
						if _, err := io.ReadFull(c1, got); err != nil {
							t.Errorf("conn %d round %d read: %v; %s", i, r, err, c1.debugState())
							return
						}
					}
				}()
			}
			wg.Wait()
		})
	}
}
