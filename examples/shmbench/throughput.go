package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// compared are the transports of the throughput parts: shm with the
// configured policy on both ends, then the plain sockets.
func (b *bench) compared() []transport {
	return []transport{shmT(b.cfg.wait, 0), unixT, tcpT}
}

// stream: one-way throughput of large writes. The transports take turns,
// round after round, and the table shows each one's median: on a VM the
// bandwidth between the two vCPUs changes from minute to minute (where
// the host runs them), and taking turns spreads that over all of them.
func (b *bench) stream(ctx context.Context) error {
	b.section("3. Streaming",
		fmt.Sprintf("The client writes %d-byte buffers for %v; the server process reads and discards them and reports the bytes it read. "+
			"The floor is a bare %d KiB ring in shared memory, both ends spinning when it is full or empty. "+
			"The transports take turns, %d rounds; MB/s is the median round (MB is 10^6 bytes).",
			b.cfg.streamBuf, b.cfg.streamFor, ringCapacity>>10, b.cfg.streamRounds))
	ts := append([]transport{floorT}, b.compared()...)
	mbs := make([][]float64, len(ts))
	for range b.cfg.streamRounds {
		for i, t := range ts {
			err := b.withStreamSink(ctx, t, func(s streamSink) error {
				n, el, err := streamFor(ctx, s, b.cfg.streamBuf, b.cfg.streamFor)
				mbs[i] = append(mbs[i], float64(n)/el.Seconds()/1e6)
				return err
			})
			if err != nil {
				return fmt.Errorf("%s: %w", t.label(b.cfg.wait), err)
			}
		}
	}
	for i, t := range ts {
		b.res.stream[t] = median(mbs[i])
		b.fig.Stream = append(b.fig.Stream, throughputRow{t.label(b.cfg.wait), mbs[i]})
	}
	floor, unix := b.res.stream[floorT], b.res.stream[unixT]
	tw := b.table()
	fmt.Fprintln(tw, "transport\tMB/s\tmin\tmax\tx floor\tx unix\t")
	for i, t := range ts {
		m := b.res.stream[t]
		fmt.Fprintf(tw, "%s\t%.0f\t%.0f\t%.0f\t%s\t%s\t\n", t.label(b.cfg.wait), m, slices.Min(mbs[i]), slices.Max(mbs[i]),
			timesOther(t, floorT, m, floor), timesOther(t, unixT, m, unix))
	}
	tw.Flush()
	return nil
}

// timesOther formats v as a multiple of base, the figure of transport
// baseT; "-" on base's own row.
func timesOther(t, baseT transport, v, base float64) string {
	if t == baseT {
		return "-"
	}
	return times(v, base)
}

// streamSink is the client's end of one stream turn.
type streamSink interface {
	io.Writer
	// finish says no more bytes will come and returns the count the
	// server read.
	finish() (int64, error)
}

// connSink streams over a conn whose server is in discard mode.
type connSink struct{ net.Conn }

func (s connSink) finish() (int64, error) {
	cw, ok := s.Conn.(interface{ CloseWrite() error })
	if !ok {
		return 0, fmt.Errorf("%T has no CloseWrite", s.Conn)
	}
	if err := cw.CloseWrite(); err != nil {
		return 0, err
	}
	var count [8]byte
	if _, err := io.ReadFull(s.Conn, count[:]); err != nil {
		return 0, fmt.Errorf("reading the server's count: %w", err)
	}
	return int64(binary.LittleEndian.Uint64(count[:])), nil
}

// withStreamSink runs f with a stream sink of transport t, against a
// fresh server child.
func (b *bench) withStreamSink(ctx context.Context, t transport, f func(streamSink) error) error {
	if t.network == floorNetwork {
		return b.withFloor(modeDiscard, func(m *floorMem) error {
			s, err := newFloorSink(ctx, m)
			if err != nil {
				return err
			}
			return f(s)
		})
	}
	return b.withServer(t, func(srv *child) error {
		c, err := b.dial(ctx, t, srv)
		if err != nil {
			return err
		}
		defer b.closeConn(c)
		if _, err := c.Write([]byte{modeDiscard}); err != nil {
			return err
		}
		return f(connSink{c})
	})
}

// streamFor writes bufSize-byte buffers to s for d, then finishes it. The
// time runs until the server's count arrives, so every byte counted has
// been read by the server.
func streamFor(ctx context.Context, s streamSink, bufSize int, d time.Duration) (int64, time.Duration, error) {
	buf := bytes.Repeat([]byte{'x'}, bufSize)
	start := time.Now()
	deadline := start.Add(d)
	var sent int64
	for time.Now().Before(deadline) {
		n, err := s.Write(buf)
		sent += int64(n)
		if err != nil {
			return 0, 0, err
		}
		if err := ctx.Err(); err != nil {
			return 0, 0, err
		}
	}
	got, err := s.finish()
	el := time.Since(start)
	if err == nil && got != sent {
		err = fmt.Errorf("server read %d bytes, client wrote %d", got, sent)
	}
	return sent, el, err
}

// multi: many conns ping-ponging at once.
func (b *bench) multi(ctx context.Context) error {
	b.section("4. Concurrent conns",
		fmt.Sprintf("%d conns to one server process, each with a goroutine doing %d-byte round trips back to back, for %v.",
			b.cfg.conns, b.cfg.size, b.cfg.multiFor))
	type row struct {
		t     transport
		label string
		rate  float64
	}
	var rows []row
	for _, t := range b.compared() {
		err := b.withServer(t, func(srv *child) error {
			rate, err := b.pingPongAll(ctx, t, srv)
			if err != nil {
				return fmt.Errorf("%s: %w", t.label(b.cfg.wait), err)
			}
			rows = append(rows, row{t, t.label(b.cfg.wait), rate})
			b.fig.Multi = append(b.fig.Multi, throughputRow{t.label(b.cfg.wait), []float64{rate}})
			return nil
		})
		if err != nil {
			return err
		}
	}
	tw := b.table()
	fmt.Fprintln(tw, "transport\tround trips/s\tper conn\tx unix\t")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%.0f\t%.0f\t%s\t\n", r.label, r.rate, r.rate/float64(b.cfg.conns), timesOther(r.t, unixT, r.rate, rows[1].rate))
	}
	tw.Flush()
	b.res.multiShm, b.res.multiUnix = rows[0].rate, rows[1].rate
	return nil
}

// pingPongAll opens the conns, runs them all for the configured time and
// returns the total round trips per second.
func (b *bench) pingPongAll(ctx context.Context, t transport, srv *child) (float64, error) {
	conns, err := b.dialEcho(ctx, t, srv, b.cfg.conns)
	defer b.closeConns(conns)
	if err != nil {
		return 0, err
	}
	var (
		stop  atomic.Bool
		total atomic.Int64
		wg    sync.WaitGroup
		errs  = make(chan error, len(conns))
	)
	start := time.Now()
	for _, c := range conns {
		wg.Go(func() {
			msg := make([]byte, b.cfg.size)
			resp := make([]byte, len(msg))
			var n int64
			for !stop.Load() {
				if _, err := c.Write(msg); err != nil {
					errs <- err
					return
				}
				if _, err := io.ReadFull(c, resp); err != nil {
					errs <- err
					return
				}
				n++
			}
			total.Add(n)
		})
	}
	err = sleep(ctx, b.cfg.multiFor)
	stop.Store(true)
	el := time.Since(start)
	wg.Wait()
	close(errs)
	if err != nil {
		return 0, err
	}
	if err := <-errs; err != nil {
		return 0, err
	}
	return float64(total.Load()) / el.Seconds(), nil
}
