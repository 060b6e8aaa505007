package conn

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// listenAddr returns a fresh address for network.
func listenAddr(t testing.TB, network string) string {
	switch network {
	case "unix":
		return filepath.Join(t.TempDir(), "s.sock")
	case "tcp":
		return "127.0.0.1:0"
	}
	t.Fatalf("unknown network %q", network)
	return ""
}

// pipeMaker returns a nettest.MakePipe for shmconn pairs over network.
func pipeMaker(t *testing.T, network string, lc ListenConfig, d Dialer) func() (net.Conn, net.Conn, func(), error) {
	return func() (net.Conn, net.Conn, func(), error) {
		ln, err := lc.Listen(context.Background(), network, listenAddr(t, network))
		if err != nil {
			return nil, nil, nil, err
		}
		c1, c2, err := dialPair(ln, d)
		ln.Close()
		if err != nil {
			return nil, nil, nil, err
		}
		stop := func() {
			c1.Close()
			c2.Close()
		}
		return c1, c2, stop, nil
	}
}

// accepted is the outcome of one Accept.
type accepted struct {
	c   net.Conn
	err error
}

// acceptAsync accepts one conn from ln in the background.
func acceptAsync(ln net.Listener) <-chan accepted {
	ch := make(chan accepted, 1)
	go func() {
		c, err := ln.Accept()
		ch <- accepted{c, err}
	}()
	return ch
}

// receive waits for a value on ch, failing the test after 10 s.
func receive[T any](t testing.TB, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatalf("%s never came", what)
		panic("unreachable")
	}
}

// dialPair dials ln and returns both ends; both are *Conn.
func dialPair(ln *Listener, d Dialer) (*Conn, *Conn, error) {
	ch := acceptAsync(ln)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	dc, err := d.DialContext(ctx, ln.Addr().Network(), ln.Addr().String())
	if err != nil {
		return nil, nil, err
	}
	r := <-ch
	if r.err != nil {
		dc.Close()
		return nil, nil, r.err
	}
	c1, ok1 := dc.(*Conn)
	c2, ok2 := r.c.(*Conn)
	if !ok1 || !ok2 {
		dc.Close()
		r.c.Close()
		return nil, nil, fmt.Errorf("not shared memory: %T, %T", dc, r.c)
	}
	return c1, c2, nil
}

// newPair returns a connected pair or fails the test; both are closed at
// the end of the test.
func newPair(t testing.TB, network string, lc ListenConfig, d Dialer) (*Conn, *Conn) {
	t.Helper()
	ln, err := lc.Listen(context.Background(), network, listenAddr(t, network))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c1, c2, err := dialPair(ln, d)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c1.Close()
		c2.Close()
	})
	return c1, c2
}

// serveConns accepts on ln until Accept fails, running handle on each conn
// in a goroutine of its own (its error ignored) and closing the conn after;
// the error that ended the loop arrives on the returned channel.
func serveConns(ln net.Listener, handle func(net.Conn) error) <-chan error {
	done := make(chan error, 1)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				done <- err
				return
			}
			go func() {
				defer c.Close()
				handle(c)
			}()
		}
	}()
	return done
}

// serveUntilCleanup accepts on ln, running handle on each conn in a
// goroutine of its own and closing the conn after, until the test ends:
// then it closes ln and waits for every handler, so none outlives the test.
func serveUntilCleanup(t testing.TB, ln net.Listener, handle func(net.Conn)) {
	var wg sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				handle(c)
			})
		}
	})
}
