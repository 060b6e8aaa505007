package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"

	"github.com/shmconn/shmconn/conn"
)

// latency summarises one transport's round trips.
type latency struct {
	label              string
	n                  int64
	p50, p99, p999, mx time.Duration
	rate               float64 // round trips per second while measuring
}

// histogramMax is the longest round trip the histogram tracks; longer ones
// are counted at this value.
const histogramMax = 10 * time.Second

// roundTrips sends warmup+n requests on c, each answered by an echo, and
// times the last n. With interval > 0 a request starts interval after the
// previous one started, the client sleeping in between.
func (b *bench) roundTrips(ctx context.Context, c net.Conn, label string, n, warmup int, interval time.Duration) (*latency, error) {
	msg := make([]byte, b.cfg.size)
	for i := range msg {
		msg[i] = byte(i)
	}
	resp := make([]byte, len(msg))
	if _, err := c.Write([]byte{modeEcho}); err != nil {
		return nil, err
	}
	h := hdrhistogram.New(1, int64(histogramMax), 3)
	var start, prev time.Time
	for i := range warmup + n {
		if interval > 0 || i%256 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		if interval > 0 && i > 0 {
			time.Sleep(time.Until(prev.Add(interval)))
		}
		t0 := time.Now()
		if i == warmup {
			start = t0
		}
		if _, err := c.Write(msg); err != nil {
			return nil, err
		}
		if _, err := io.ReadFull(c, resp); err != nil {
			return nil, err
		}
		d := time.Since(t0)
		prev = t0
		if i >= warmup {
			h.RecordValue(min(d, histogramMax).Nanoseconds())
		}
		if !bytes.Equal(resp, msg) {
			return nil, fmt.Errorf("echo %d differs from the request", i)
		}
	}
	return &latency{
		label: label,
		n:     h.TotalCount(),
		p50:   time.Duration(h.ValueAtQuantile(50)),
		p99:   time.Duration(h.ValueAtQuantile(99)),
		p999:  time.Duration(h.ValueAtQuantile(99.9)),
		mx:    time.Duration(h.Max()),
		rate:  float64(n) / time.Since(start).Seconds(),
	}, nil
}

// latencyTable measures each transport in turn with a fresh server and
// prints the table; it returns the rows in the order of ts.
func (b *bench) latencyTable(ctx context.Context, ts []transport, n, warmup int, interval time.Duration) ([]*latency, error) {
	var rows []*latency
	for _, t := range ts {
		err := b.withServer(t, func(srv *child) error {
			c, err := b.dial(ctx, t, srv)
			if err != nil {
				return err
			}
			defer b.closeConn(c)
			l, err := b.roundTrips(ctx, c, t.label(b.cfg.wait), n, warmup, interval)
			if err != nil {
				return fmt.Errorf("%s: %w", t.label(b.cfg.wait), err)
			}
			rows = append(rows, l)
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	var unix *latency
	for _, r := range rows {
		if r.label == "unix" {
			unix = r
		}
	}
	tw := b.table()
	fmt.Fprintln(tw, "transport\tp50\tp99\tp99.9\tmax\treq/s\tp50 vs unix\tp99 vs unix\t")
	for _, r := range rows {
		r50, r99 := "-", "-"
		if unix != nil && r != unix {
			r50 = ratio(short(r.label), float64(r.p50), float64(unix.p50))
			r99 = ratio(short(r.label), float64(r.p99), float64(unix.p99))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%.0f\t%s\t%s\t\n", r.label, us(r.p50), us(r.p99), us(r.p999), us(r.mx), r.rate, r50, r99)
	}
	tw.Flush()
	return rows, nil
}

// dense: back-to-back round trips.
func (b *bench) dense(ctx context.Context) error {
	b.section("1. Dense round trips",
		fmt.Sprintf("%d-byte request, echoed by the server process, back to back: %d round trips timed after %d of warm-up.", b.cfg.size, b.cfg.n, b.cfg.warmup))
	ts := []transport{{"shm", b.cfg.wait}}
	if b.cfg.wait != conn.WaitSpin {
		ts = append(ts, transport{"shm", conn.WaitSpin})
	}
	ts = append(ts, transport{network: "unix"}, transport{network: "tcp"})
	rows, err := b.latencyTable(ctx, ts, b.cfg.n, b.cfg.warmup, 0)
	if err != nil {
		return err
	}
	b.res.denseShm, b.res.denseUnix = rows[0], rows[len(rows)-2]
	return nil
}

// sparseWarmup is the requests sent before timing at the sparse rate.
const sparseWarmup = 20

// sparse: one request per interval, the client sleeping in between, so
// both processes go idle between requests.
func (b *bench) sparse(ctx context.Context) error {
	b.section("2. Sparse round trips",
		fmt.Sprintf("%d-byte request every %v (the client sleeps in between; req/s is the rate reached): %d round trips timed after %d.",
			b.cfg.size, b.cfg.interval, b.cfg.sparseN, sparseWarmup))
	ts := []transport{{"shm", conn.WaitSpin}, {"shm", conn.WaitAdaptive}, {network: "unix"}, {network: "tcp"}}
	rows, err := b.latencyTable(ctx, ts, b.cfg.sparseN, sparseWarmup, b.cfg.interval)
	if err != nil {
		return err
	}
	b.res.sparseSpin, b.res.sparseAd, b.res.sparseUnix = rows[0], rows[1], rows[2]
	return nil
}
