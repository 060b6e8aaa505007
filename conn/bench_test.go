package conn

import (
	"errors"
	"io"
	"net"
	"testing"

	"github.com/shmconn/shmconn/ring"
)

// The benchmarks compare, in one process and one run, a shmconn pair with
// the plain sockets it replaces. Both ends live in this process, so they
// show the cost of the transport itself, not of waking another process:
// examples/shmbench measures two processes.

// benchTransports are the pairs compared: shmconn with each wait policy on
// both ends, then a plain unix socket and TCP loopback.
var benchTransports = []struct {
	name string
	pair func(b *testing.B) (net.Conn, net.Conn)
}{
	{"shm-adaptive", func(b *testing.B) (net.Conn, net.Conn) {
		return newPair(b, "unix", ListenConfig{}, Dialer{})
	}},
	{"shm-spin", func(b *testing.B) (net.Conn, net.Conn) {
		return newPair(b, "unix", ListenConfig{Wait: WaitSpin}, Dialer{Wait: WaitSpin})
	}},
	{"unix", func(b *testing.B) (net.Conn, net.Conn) { return netPair(b, "unix") }},
	{"tcp", func(b *testing.B) (net.Conn, net.Conn) { return netPair(b, "tcp") }},
}

// netPair returns a connected pair of plain sockets, closed at the end of
// the benchmark.
func netPair(b *testing.B, network string) (net.Conn, net.Conn) {
	b.Helper()
	ln, err := net.Listen(network, listenAddr(b, network))
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept() // nil on error: the dial below fails too
		accepted <- c
	}()
	c1, err := net.Dial(network, ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	c2 := <-accepted
	if c2 == nil {
		c1.Close()
		b.Fatal("accept failed")
	}
	b.Cleanup(func() {
		c1.Close()
		c2.Close()
	})
	return c1, c2
}

// serve runs f on the server end in a goroutine and returns a function that
// closes both ends and waits for f to return.
func serve(b *testing.B, client, server net.Conn, f func(net.Conn) error) (stop func()) {
	done := make(chan error, 1)
	go func() { done <- f(server) }()
	return func() {
		client.Close()
		server.Close()
		if err := <-done; err != nil && !errors.Is(err, net.ErrClosed) && !errors.Is(err, io.EOF) {
			b.Error(err)
		}
	}
}

func echo(c net.Conn) error {
	buf := make([]byte, 64<<10)
	for {
		n, err := c.Read(buf)
		if err != nil {
			return err
		}
		if _, err := c.Write(buf[:n]); err != nil {
			return err
		}
	}
}

// BenchmarkRoundTrip64 measures one 64-byte request and its echo, back to
// back, on one conn.
func BenchmarkRoundTrip64(b *testing.B) {
	for _, tr := range benchTransports {
		b.Run(tr.name, func(b *testing.B) {
			client, server := tr.pair(b)
			stop := serve(b, client, server, echo)
			defer stop()
			msg := make([]byte, 64)
			resp := make([]byte, 64)
			b.SetBytes(int64(len(msg)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := client.Write(msg); err != nil {
					b.Fatal(err)
				}
				if _, err := io.ReadFull(client, resp); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkStream64KiB measures one-way throughput: the client writes
// 64 KiB buffers, the server reads and discards them. The clock stops when
// the server has read every byte.
func BenchmarkStream64KiB(b *testing.B) {
	const size = 64 << 10
	for _, tr := range benchTransports {
		b.Run(tr.name, func(b *testing.B) {
			client, server := tr.pair(b)
			want := int64(b.N) * size
			got := make(chan int64, 1)
			stop := serve(b, client, server, func(c net.Conn) error {
				n, err := io.CopyBuffer(io.Discard, io.LimitReader(c, want), make([]byte, size))
				got <- n
				return err
			})
			defer stop()
			buf := make([]byte, size)
			b.SetBytes(size)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := client.Write(buf); err != nil {
					b.Fatal(err)
				}
			}
			if n := <-got; n != want {
				b.Fatalf("server read %d bytes, want %d", n, want)
			}
			b.StopTimer()
		})
	}
}

// BenchmarkStreamCopy measures one-way throughput through io.Copy at both
// ends, the path a proxy takes: the client copies from a reader into the
// conn (ReadFrom), the server copies from the conn into io.Discard
// (WriteTo). The clock stops when the server has taken every byte.
func BenchmarkStreamCopy(b *testing.B) {
	const size = 64 << 10
	for _, tr := range benchTransports {
		b.Run(tr.name, func(b *testing.B) {
			client, server := tr.pair(b)
			got := make(chan int64, 1)
			stop := serve(b, client, server, func(c net.Conn) error {
				n, err := io.Copy(io.Discard, c)
				got <- n
				return err
			})
			defer stop()
			b.SetBytes(size)
			b.ReportAllocs()
			b.ResetTimer()
			want := int64(b.N) * size
			if _, err := io.Copy(client, io.LimitReader(zeros{}, want)); err != nil {
				b.Fatal(err)
			}
			if err := client.(interface{ CloseWrite() error }).CloseWrite(); err != nil {
				b.Fatal(err)
			}
			if n := <-got; n != want {
				b.Fatalf("server took %d bytes, want %d", n, want)
			}
			b.StopTimer()
		})
	}
}

// zeros is an endless source of zero bytes.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// BenchmarkCallPath measures what conn's own code costs: one goroutine
// makes a whole 64-byte round trip's four calls (client Write, server
// Read, server Write, client Read) on a pair, each call finding its bytes
// or its room there, so nothing waits and no cache line crosses cores.
// "rings" does the same with two bare rings; the difference is conn's
// share of a back-to-back round trip (the fault guard, the mutexes, the
// state checks and counters), which otherwise hides among the transfers.
func BenchmarkCallPath(b *testing.B) {
	msg := make([]byte, 64)
	b.Run("conn", func(b *testing.B) {
		client, server := newPair(b, "unix", ListenConfig{}, Dialer{})
		b.ReportAllocs()
		for b.Loop() {
			if _, err := client.Write(msg); err != nil {
				b.Fatal(err)
			}
			if n, err := server.Read(msg); n != len(msg) || err != nil {
				b.Fatalf("server read %d, %v", n, err)
			}
			if _, err := server.Write(msg); err != nil {
				b.Fatal(err)
			}
			if n, err := client.Read(msg); n != len(msg) || err != nil {
				b.Fatalf("client read %d, %v", n, err)
			}
		}
	})
	b.Run("rings", func(b *testing.B) {
		var ps [2]*ring.Producer
		var cs [2]*ring.Consumer
		for i := range ps {
			size, err := ring.Size(DefaultRingSize)
			if err != nil {
				b.Fatal(err)
			}
			mem := make([]byte, size)
			if err := ring.Init(mem); err != nil {
				b.Fatal(err)
			}
			if ps[i], err = ring.NewProducer(mem); err != nil {
				b.Fatal(err)
			}
			if cs[i], err = ring.NewConsumer(mem); err != nil {
				b.Fatal(err)
			}
			cs[i].SetConsumeBatch(cs[i].Cap() / 4) // as conn sets it
		}
		b.ReportAllocs()
		for b.Loop() {
			for i := range ps {
				if n, err := ps[i].Write(msg); n != len(msg) || err != nil {
					b.Fatalf("ring write %d, %v", n, err)
				}
				ps[i].WakeReader()
				if n, err := cs[i].Read(msg); n != len(msg) || err != nil {
					b.Fatalf("ring read %d, %v", n, err)
				}
				cs[i].WakeWriter()
			}
		}
	})
}
