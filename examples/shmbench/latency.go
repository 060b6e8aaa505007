package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
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

// roundTripper makes one request and waits for its answer.
type roundTripper interface{ roundTrip() error }

// connRoundTripper sends a request on a conn in echo mode and reads the
// echo.
type connRoundTripper struct {
	c         net.Conn
	msg, resp []byte
}

func newConnRoundTripper(c net.Conn, size int) *connRoundTripper {
	msg := make([]byte, size)
	for i := range msg {
		msg[i] = byte(i)
	}
	return &connRoundTripper{c: c, msg: msg, resp: make([]byte, size)}
}

func (r *connRoundTripper) roundTrip() error {
	if _, err := r.c.Write(r.msg); err != nil {
		return err
	}
	if _, err := io.ReadFull(r.c, r.resp); err != nil {
		return err
	}
	if !bytes.Equal(r.resp, r.msg) {
		return errors.New("the echo differs from the request")
	}
	return nil
}

// roundTrips makes warmup+n round trips and times the last n. With
// interval > 0 a request starts interval after the previous one started,
// the client sleeping in between.
func roundTrips(ctx context.Context, rt roundTripper, label string, n, warmup int, interval time.Duration) (*latency, error) {
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
		if err := rt.roundTrip(); err != nil {
			return nil, fmt.Errorf("round trip %d: %w", i, err)
		}
		d := time.Since(t0)
		prev = t0
		if i >= warmup {
			h.RecordValue(min(d, histogramMax).Nanoseconds())
		}
	}
	return newLatency(label, h, float64(n)/time.Since(start).Seconds()), nil
}

// newLatency summarises the round trips of h, made at rate a second.
func newLatency(label string, h *hdrhistogram.Histogram, rate float64) *latency {
	return &latency{
		label: label,
		n:     h.TotalCount(),
		p50:   time.Duration(h.ValueAtQuantile(50)),
		p99:   time.Duration(h.ValueAtQuantile(99)),
		p999:  time.Duration(h.ValueAtQuantile(99.9)),
		mx:    time.Duration(h.Max()),
		rate:  rate,
	}
}

// withRoundTripper runs f with a round tripper of transport t, against a
// fresh server child: the floor's, or a server with t.idle idle conns
// open to it besides the one f uses.
func (b *bench) withRoundTripper(ctx context.Context, t transport, f func(roundTripper) error) error {
	switch t {
	case parkedEventfd:
		return b.withParkedEventfd(ctx, f)
	case parkedFutex:
		return b.withParkedFutex(ctx, f)
	}
	if t.network == floorNetwork {
		return b.withFloor(modeEcho, func(m *floorMem) error {
			return f(&floorRoundTripper{ctx: ctx, m: m})
		})
	}
	return b.withServer(t, func(srv *child) error {
		// The idle conns first, as a server's pool of clients would be.
		conns, err := b.dialEcho(ctx, t, srv, t.idle+1)
		defer b.closeConns(conns)
		if err != nil {
			return err
		}
		return f(newConnRoundTripper(conns[t.idle], b.cfg.size))
	})
}

// measureLatency times n round trips of t after warmup, one every
// interval (0: back to back).
func (b *bench) measureLatency(ctx context.Context, t transport, label string, n, warmup int, interval time.Duration) (*latency, error) {
	if t == parkedC {
		return b.cFloorLatency(ctx, label, n, warmup, interval)
	}
	var l *latency
	err := b.withRoundTripper(ctx, t, func(rt roundTripper) error {
		var err error
		l, err = roundTrips(ctx, rt, label, n, warmup, interval)
		return err
	})
	return l, err
}

// latencyTable measures each transport in turn with a fresh server,
// records the rows in b.res under interval, and prints the table. A row
// this host cannot measure (a parked floor without its compiler or OS) is
// left out, and the table says why.
func (b *bench) latencyTable(ctx context.Context, ts []transport, n, warmup int, interval time.Duration) error {
	var rows, parked []*latency
	var skipped []string
	for _, t := range ts {
		label := t.label(b.cfg.wait)
		l, err := b.measureLatency(ctx, t, label, n, warmup, interval)
		if reason, ok := isSkip(err); ok {
			skipped = append(skipped, fmt.Sprintf("%s: not measured: %s\n", label, reason))
			continue
		}
		if err != nil {
			return fmt.Errorf("%s: %w", label, err)
		}
		rows = append(rows, l)
		if slices.Contains(parkedFloors, t) {
			parked = append(parked, l)
		}
		b.res.latency[sample{interval, t}] = l
		b.fig.Latency = append(b.fig.Latency, newLatencyRow(interval, l))
	}
	floor, unix := b.res.latency[sample{interval, floorT}], b.res.latency[sample{interval, unixT}]
	p50 := func(l *latency) time.Duration { return l.p50 }
	p99 := func(l *latency) time.Duration { return l.p99 }
	tw := b.table()
	fmt.Fprintln(tw, "transport\tp50\tp99\tp99.9\tmax\treq/s\tp50 x floor\tp50 x unix\tp99 x unix\t")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%.0f\t%s\t%s\t%s\t\n", r.label, us(r.p50), us(r.p99), us(r.p999), us(r.mx), r.rate,
			vs(r, floor, p50), vs(r, unix, p50), vs(r, unix, p99))
	}
	tw.Flush()
	for _, s := range skipped {
		fmt.Fprint(b.out, s)
	}
	fmt.Fprint(b.out, parkedRatios(b.res.latency[sample{interval, shmT(b.cfg.wait, 0)}], parked))
	return nil
}

// vs formats r's figure q as a multiple of base's; "-" on the base row
// itself or without a base.
func vs(r, base *latency, q func(*latency) time.Duration) string {
	if base == nil || base == r {
		return "-"
	}
	return times(float64(q(r)), float64(q(base)))
}

// dense: back-to-back round trips.
func (b *bench) dense(ctx context.Context) error {
	b.section("1. Dense round trips",
		fmt.Sprintf("%d-byte request, echoed by the server process, back to back: %d round trips timed after %d of warm-up. "+
			"The floor passes a sequence number on one cache line, no library.", b.cfg.size, b.cfg.n, b.cfg.warmup))
	ts := []transport{floorT, shmT(b.cfg.wait, 0)}
	if b.cfg.wait != conn.WaitSpin {
		ts = append(ts, shmT(conn.WaitSpin, 0))
	}
	ts = append(ts, unixT, tcpT)
	return b.latencyTable(ctx, ts, b.cfg.n, b.cfg.warmup, 0)
}

// sparseWarmup is the requests sent before timing at a sparse rate.
const sparseWarmup = 20

// idleHeld is the idle conns a sparse row holds open to its spinning
// server: a server with a pool of clients, which one conn alone does not
// show.
const idleHeld = 8

// sparse: one request per interval, the client sleeping in between, so
// both processes go idle between requests.
func (b *bench) sparse(ctx context.Context) error {
	b.section("2. Sparse round trips",
		fmt.Sprintf("%d-byte request at a fixed interval, the client sleeping in between (req/s is the rate reached), timed after %d of warm-up. "+
			"\"+%d idle conns\" holds %d more conns open to that server, unused, a goroutine of the server blocked in Read on each. "+
			"The parked floors block in the kernel between messages, no library: a C pair on eventfds, a Go pair on eventfds through the netpoller, "+
			"a Go pair in raw futex waits (at most %v each) on shared memory; the default policy's parked path is judged against them.",
			b.cfg.size, sparseWarmup, idleHeld, idleHeld, futexDoze))
	for _, r := range b.cfg.sparse {
		fmt.Fprintf(b.out, "\n-- one request every %v: %d round trips --\n", r.interval, r.n)
		ts := append([]transport{floorT}, parkedFloors...)
		ts = append(ts, shmT(conn.WaitSpin, 0), shmT(conn.WaitSpin, idleHeld))
		if b.cfg.wait != conn.WaitSpin {
			ts = append(ts, shmT(b.cfg.wait, 0))
		}
		ts = append(ts, unixT, tcpT)
		if err := b.latencyTable(ctx, ts, r.n, sparseWarmup, r.interval); err != nil {
			return err
		}
	}
	return nil
}
