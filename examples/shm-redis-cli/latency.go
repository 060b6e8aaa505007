package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// latencyStats accumulates PING round trips for --latency: exact min, max
// and mean, and percentiles from an HDR histogram (3 significant digits,
// nanoseconds up to a minute).
type latencyStats struct {
	min, max, sum time.Duration
	n             int64
	hist          *hdrhistogram.Histogram
}

const histMax = int64(time.Minute)

func newLatencyStats() *latencyStats {
	return &latencyStats{hist: hdrhistogram.New(1, histMax, 3)}
}

func (s *latencyStats) record(d time.Duration) {
	if s.n == 0 || d < s.min {
		s.min = d
	}
	s.max = max(s.max, d)
	s.sum += d
	s.n++
	s.hist.RecordValue(min(max(int64(d), 1), histMax))
}

func (s *latencyStats) reset() {
	s.min, s.max, s.sum, s.n = 0, 0, 0, 0
	s.hist.Reset()
}

// rawLine is redis-cli's line for --latency without a terminal (or with
// --raw), "min max avg samples": min and max in whole milliseconds, the
// average with two decimals, so that scripts written for redis-cli read
// it. redis-cli's figures are differences of millisecond clocks; these
// are the measured durations, truncated.
func (s *latencyStats) rawLine() string {
	avg := 0.0
	if s.n > 0 {
		avg = float64(s.sum) / float64(s.n) / 1e6
	}
	return fmt.Sprintf("%d %d %.2f %d", s.min.Milliseconds(), s.max.Milliseconds(), avg, s.n)
}

// String is the fork's line, latencies in milliseconds with 3 decimals,
// with p50 and p99 added.
func (s *latencyStats) String() string {
	ms := func(ns int64) float64 { return float64(ns) / 1e6 }
	avg := 0.0
	if s.n > 0 {
		avg = ms(int64(s.sum)) / float64(s.n)
	}
	return fmt.Sprintf("min: %.3f, max: %.3f, avg: %.3f, p50: %.3f, p99: %.3f (%d samples)",
		ms(int64(s.min)), ms(int64(s.max)), avg,
		ms(s.hist.ValueAtQuantile(50)), ms(s.hist.ValueAtQuantile(99)), s.n)
}

// latencyConfig is what --latency and --latency-history do.
type latencyConfig struct {
	history bool          // start a new line every interval
	every   time.Duration // between samples; 0 is back-to-back
	// interval is the --latency-history range, and without a terminal how
	// long --latency measures before it prints and exits.
	interval time.Duration
	tty      bool // update one line in place
}

// Defaults from redis-cli: a sample every 10 ms, a history line every
// 15 s, and one second of measuring when the output is not a terminal.
const (
	defaultSampleEvery     = 10 * time.Millisecond
	defaultHistoryInterval = 15 * time.Second
	defaultRawInterval     = time.Second
)

// latencyMode sends PING every cfg.every and reports round-trip times
// until ctx ends (Ctrl-C) or, without a terminal and without history,
// until cfg.interval has passed.
func latencyMode(ctx context.Context, c *client, out io.Writer, cfg latencyConfig) error {
	stats := newLatencyStats()
	rangeStart := time.Now()
	var ticker *time.Ticker
	if cfg.every > 0 {
		ticker = time.NewTicker(cfg.every)
		defer ticker.Stop()
	}
	for {
		start := time.Now()
		rep, err := c.do("PING")
		d := time.Since(start)
		if err != nil {
			if ctx.Err() != nil { // Ctrl-C closed the conn under the PING
				fmt.Fprintln(out)
				return nil
			}
			return fmt.Errorf("I/O error: %w", err)
		}
		if rep.Kind == Error {
			return fmt.Errorf("PING: %s", rep.Str)
		}
		stats.record(d)
		if cfg.tty {
			fmt.Fprintf(out, "\x1b[0G\x1b[2K%v", stats)
		}
		if elapsed := time.Since(rangeStart); elapsed > cfg.interval {
			switch {
			case cfg.history && cfg.tty:
				fmt.Fprintf(out, " -- %.2f seconds range\n", elapsed.Seconds())
			case cfg.history:
				fmt.Fprintf(out, "%s -- %.2f seconds range\n", stats.rawLine(), elapsed.Seconds())
			case !cfg.tty:
				fmt.Fprintf(out, "%s\n", stats.rawLine())
				return nil
			}
			if cfg.history {
				stats.reset()
				rangeStart = time.Now()
			}
		}
		if ticker != nil {
			select {
			case <-ticker.C:
			case <-ctx.Done():
			}
		}
		if ctx.Err() != nil {
			if cfg.tty {
				fmt.Fprintln(out)
			} else if stats.n > 0 {
				fmt.Fprintf(out, "%s\n", stats.rawLine())
			}
			return nil
		}
	}
}
