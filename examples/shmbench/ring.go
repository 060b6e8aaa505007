package main

import (
	"context"
	"fmt"
	"slices"
	"time"

	// Named pace: load.go's spin is the load generator.
	pace "github.com/shmconn/shmconn/internal/spin"
	"github.com/shmconn/shmconn/ring"
)

// ringCapacity is the ring's data area, and the bytes the channel holds in
// flight: the size conn gives each direction by default.
const ringCapacity = 256 << 10

// ringRuns is how many times each of ring and channel runs; the table
// shows the median, since on two cores a run's figure depends on where the
// scheduler puts the two goroutines.
const ringRuns = 5

// ring: the ring alone, in this process, against a buffered chan []byte
// (the same measurement as the ring package's go test -bench).
func (b *bench) ring(ctx context.Context) error {
	size := b.cfg.size
	b.section("6. Ring alone (in one process)",
		fmt.Sprintf("A producer goroutine streams %d %d-byte messages to a consumer: through a %d KiB ring (both spinning when full or empty, "+
			"paced as conn's spinning waits are: the pause hint, yielding to whoever waits for the CPU), and through a buffered chan []byte holding as many bytes (blocking sends and receives). Both copy each message in and out. Median of %d runs.",
			b.cfg.ringN, size, ringCapacity>>10, ringRuns))
	var ringMBs, chanMBs []float64
	for range ringRuns {
		if err := ctx.Err(); err != nil {
			return err
		}
		d, err := ringStream(b.cfg.ringN, size)
		if err != nil {
			return err
		}
		ringMBs = append(ringMBs, mbs(b.cfg.ringN, size, d))
		chanMBs = append(chanMBs, mbs(b.cfg.ringN, size, chanStream(b.cfg.ringN, size)))
	}
	b.res.ringMBs, b.res.chanMBs = median(ringMBs), median(chanMBs)
	b.fig.Ring = []throughputRow{{"ring", ringMBs}, {"chan []byte", chanMBs}}
	tw := b.table()
	fmt.Fprintln(tw, "queue\tMB/s (median)\tmin\tmax\tns/message\tvs chan\t")
	for _, r := range []struct {
		label string
		v     []float64
	}{{"ring", ringMBs}, {"chan []byte", chanMBs}} {
		m := median(r.v)
		vs := "-"
		if r.label == "ring" {
			vs = fmt.Sprintf("ring/chan %.2fx", m/b.res.chanMBs)
		}
		fmt.Fprintf(tw, "%s\t%.0f\t%.0f\t%.0f\t%.1f\t%s\t\n", r.label, m, slices.Min(r.v), slices.Max(r.v), float64(size)*1e3/m, vs)
	}
	tw.Flush()
	return nil
}

func mbs(n, size int, d time.Duration) float64 { return float64(n) * float64(size) / d.Seconds() / 1e6 }

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

func ringStream(n, size int) (time.Duration, error) {
	memSize, err := ring.Size(ringCapacity)
	if err != nil {
		return 0, err
	}
	mem := make([]byte, memSize)
	if err := ring.Init(mem); err != nil {
		return 0, err
	}
	p, err := ring.NewProducer(mem)
	if err != nil {
		return 0, err
	}
	c, err := ring.NewConsumer(mem)
	if err != nil {
		return 0, err
	}
	msg := make([]byte, size)
	done := make(chan error, 1)
	start := time.Now()
	go func() {
		for range n {
			for m := msg; len(m) > 0; {
				k, err := p.Write(m)
				if err != nil {
					done <- err
					return
				}
				if k == 0 {
					pace.Until(func() bool { return p.HasSpace(1) })
				}
				m = m[k:]
			}
		}
		done <- nil
	}()
	buf := make([]byte, size)
	for left := n * size; left > 0; {
		k, err := c.Read(buf[:min(len(buf), left)])
		if err != nil {
			return 0, err
		}
		if k == 0 {
			pace.Until(c.Pending)
		}
		left -= k
	}
	d := time.Since(start)
	return d, <-done
}

func chanStream(n, size int) time.Duration {
	slots := max(ringCapacity/size, 1)
	ch := make(chan []byte, slots)
	// slots+2 buffers: when the producer reuses one, the consumer has
	// received the message sent after it, so it is done copying this one.
	bufs := make([][]byte, slots+2)
	for i := range bufs {
		bufs[i] = make([]byte, size)
	}
	msg := make([]byte, size)
	start := time.Now()
	go func() {
		for i := range n {
			m := bufs[i%len(bufs)]
			copy(m, msg)
			ch <- m
		}
	}()
	out := make([]byte, size)
	for range n {
		copy(out, <-ch)
	}
	return time.Since(start)
}
