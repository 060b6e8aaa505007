package ring

import (
	"fmt"
	"runtime"
	"testing"

	"github.com/shmconn/shmconn/internal/spin"
)

// benchCapacity is the ring's data area in the benchmarks: the size conn
// gives each direction by default. The channels hold the same number of
// bytes in flight (benchCapacity/size slices).
const benchCapacity = 256 << 10

var benchSizes = []int{64, 1024, 16384}

// BenchmarkRing streams b.N messages of each size from a producer
// goroutine to a consumer through a ring, both copying (in and out) and
// both spinning when the ring is full or empty as conn's waiters do before
// they park (spinLikeConn). Compare with BenchmarkChan.
//
// "reader=msg" reads one message per call, as a channel receives;
// "reader=64KiB" reads whatever is there, up to 64 KiB per call, as a
// stream reader does (the messages are still written one per call).
func BenchmarkRing(b *testing.B) {
	for _, size := range benchSizes {
		for _, drain := range []bool{false, true} {
			name := fmt.Sprintf("size=%d/reader=msg", size)
			if drain {
				name = fmt.Sprintf("size=%d/reader=64KiB", size)
			}
			b.Run(name, func(b *testing.B) { benchRing(b, size, drain) })
		}
	}
}

func benchRing(b *testing.B, size int, drain bool) {
	p, c, _ := newPair(b, benchCapacity, 0)
	msg := make([]byte, size)
	n := b.N
	b.SetBytes(int64(size))
	b.ReportAllocs()
	b.ResetTimer()
	done := make(chan error, 1)
	go func() {
		for range n {
			for m := msg; len(m) > 0; {
				k, err := p.Write(m)
				if err != nil {
					done <- err
					return
				}
				if k == 0 {
					spin.Until(func() bool { return p.HasSpace(1) })
				}
				m = m[k:]
			}
		}
		done <- nil
	}()
	buf := make([]byte, size)
	if drain {
		buf = make([]byte, max(size, 64<<10))
	}
	for left := n * size; left > 0; {
		k, err := c.Read(buf[:min(len(buf), left)])
		if err != nil {
			b.Fatal(err)
		}
		if k == 0 {
			spin.Until(c.Pending)
		}
		left -= k
	}
	if err := <-done; err != nil {
		b.Fatal(err)
	}
}

// BenchmarkChan is BenchmarkRing's baseline: a buffered chan []byte
// holding the same bytes in flight. The producer copies each message into
// one of a fixed set of buffers and sends it, the consumer copies it out,
// so both sides move the bytes as the ring's do and nothing is allocated.
// "blocking" uses plain channel operations (parking when full or empty);
// "gosched" polls with select/default and runtime.Gosched, the ring's own
// waiting strategy.
func BenchmarkChan(b *testing.B) {
	for _, mode := range []string{"blocking", "gosched"} {
		for _, size := range benchSizes {
			b.Run(fmt.Sprintf("%s/size=%d", mode, size), func(b *testing.B) {
				benchChan(b, size, mode == "gosched")
			})
		}
	}
}

func benchChan(b *testing.B, size int, poll bool) {
	slots := benchCapacity / size
	ch := make(chan []byte, slots)
	// slots+2 buffers: when the producer reuses one, the consumer has
	// received the message after it (the channel holds at most slots), so
	// it has finished copying this one; the channel orders the two.
	bufs := make([][]byte, slots+2)
	for i := range bufs {
		bufs[i] = make([]byte, size)
	}
	msg := make([]byte, size)
	n := b.N
	done := make(chan struct{})
	b.SetBytes(int64(size))
	b.ReportAllocs()
	b.ResetTimer()
	go func() {
		defer close(done)
		for i := 0; i < n; i++ {
			m := bufs[i%len(bufs)]
			copy(m, msg)
			if !poll {
				ch <- m
				continue
			}
			for sent := false; !sent; {
				select {
				case ch <- m:
					sent = true
				default:
					runtime.Gosched()
				}
			}
		}
	}()
	out := make([]byte, size)
	for i := 0; i < n; i++ {
		var m []byte
		if poll {
			for m == nil {
				select {
				case m = <-ch:
				default:
					runtime.Gosched()
				}
			}
		} else {
			m = <-ch
		}
		copy(out, m)
	}
	<-done
}
