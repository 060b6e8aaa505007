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
	return []transport{{"shm", b.cfg.wait}, {network: "unix"}, {network: "tcp"}}
}

// stream: one-way throughput of large writes. The transports take turns,
// round after round, and the table shows each one's median: on a VM the
// bandwidth between the two vCPUs changes from minute to minute (where
// the host runs them), and taking turns spreads that over all of them.
func (b *bench) stream(ctx context.Context) error {
	b.section("3. Streaming",
		fmt.Sprintf("The client writes %d-byte buffers for %v; the server process reads and discards them and reports the bytes it read. "+
			"The transports take turns, %d rounds; MB/s is the median round (MB is 10^6 bytes).",
			b.cfg.streamBuf, b.cfg.streamFor, b.cfg.streamRounds))
	ts := b.compared()
	mbs := make([][]float64, len(ts))
	for range b.cfg.streamRounds {
		for i, t := range ts {
			err := b.withServer(t, func(srv *child) error {
				c, err := b.dial(ctx, t, srv)
				if err != nil {
					return err
				}
				defer b.closeConn(c)
				n, el, err := streamFor(ctx, c, b.cfg.streamBuf, b.cfg.streamFor)
				if err != nil {
					return fmt.Errorf("%s: %w", t.label(b.cfg.wait), err)
				}
				mbs[i] = append(mbs[i], float64(n)/el.Seconds()/1e6)
				return nil
			})
			if err != nil {
				return err
			}
		}
	}
	unix := median(mbs[1])
	tw := b.table()
	fmt.Fprintln(tw, "transport	MB/s	min	max	vs unix	")
	for i, t := range ts {
		m := median(mbs[i])
		fmt.Fprintf(tw, "%s\t%.0f\t%.0f\t%.0f\t%s\t\n", t.label(b.cfg.wait), m, slices.Min(mbs[i]), slices.Max(mbs[i]), vsUnix(t.label(b.cfg.wait), m, unix))
	}
	tw.Flush()
	b.res.streamShm, b.res.streamUnix = median(mbs[0]), unix
	return nil
}

func vsUnix(label string, v, unix float64) string {
	if label == "unix" {
		return "-"
	}
	return ratio(short(label), v, unix)
}

// streamFor writes bufSize-byte buffers to c for d, then half-closes it
// and waits for the server's count of bytes read. The time runs until the
// count arrives, so every byte counted has been read by the server.
func streamFor(ctx context.Context, c net.Conn, bufSize int, d time.Duration) (int64, time.Duration, error) {
	cw, ok := c.(interface{ CloseWrite() error })
	if !ok {
		return 0, 0, fmt.Errorf("%T has no CloseWrite", c)
	}
	if _, err := c.Write([]byte{modeDiscard}); err != nil {
		return 0, 0, err
	}
	buf := bytes.Repeat([]byte{'x'}, bufSize)
	start := time.Now()
	deadline := start.Add(d)
	var sent int64
	for time.Now().Before(deadline) {
		n, err := c.Write(buf)
		sent += int64(n)
		if err != nil {
			return 0, 0, err
		}
		if err := ctx.Err(); err != nil {
			return 0, 0, err
		}
	}
	if err := cw.CloseWrite(); err != nil {
		return 0, 0, err
	}
	var count [8]byte
	if _, err := io.ReadFull(c, count[:]); err != nil {
		return 0, 0, fmt.Errorf("reading the server's count: %w", err)
	}
	el := time.Since(start)
	if got := int64(binary.LittleEndian.Uint64(count[:])); got != sent {
		return 0, 0, fmt.Errorf("server read %d bytes, client wrote %d", got, sent)
	}
	return sent, el, nil
}

// multi: many conns ping-ponging at once.
func (b *bench) multi(ctx context.Context) error {
	b.section("4. Concurrent conns",
		fmt.Sprintf("%d conns to one server process, each with a goroutine doing %d-byte round trips back to back, for %v.",
			b.cfg.conns, b.cfg.size, b.cfg.multiFor))
	type row struct {
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
			rows = append(rows, row{t.label(b.cfg.wait), rate})
			return nil
		})
		if err != nil {
			return err
		}
	}
	tw := b.table()
	fmt.Fprintln(tw, "transport\tround trips/s\tper conn\tvs unix\t")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%.0f\t%.0f\t%s\t\n", r.label, r.rate, r.rate/float64(b.cfg.conns), vsUnix(r.label, r.rate, rows[1].rate))
	}
	tw.Flush()
	b.res.multiShm, b.res.multiUnix = rows[0].rate, rows[1].rate
	return nil
}

// pingPongAll opens the conns, runs them all for the configured time and
// returns the total round trips per second.
func (b *bench) pingPongAll(ctx context.Context, t transport, srv *child) (float64, error) {
	conns := make([]net.Conn, 0, b.cfg.conns)
	defer func() {
		for _, c := range conns {
			b.closeConn(c)
		}
	}()
	for range b.cfg.conns {
		c, err := b.dial(ctx, t, srv)
		if err != nil {
			return 0, err
		}
		conns = append(conns, c)
		if _, err := c.Write([]byte{modeEcho}); err != nil {
			return 0, err
		}
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
	err := sleep(ctx, b.cfg.multiFor)
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
