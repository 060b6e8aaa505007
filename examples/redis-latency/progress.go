package main

import (
	"fmt"
	"os"
	"strings"
	"time"
)

// progress draws a one-line progress bar on standard error, at most ten
// times a second so drawing never disturbs the measurement.
type progress struct {
	total, n int
	last     time.Time
}

func newProgress(total int) *progress { return &progress{total: total} }

func (p *progress) step(label string) {
	p.n++
	if now := time.Now(); now.Sub(p.last) >= 100*time.Millisecond || p.n == p.total {
		p.last = now
		const width = 40
		filled := width * p.n / max(p.total, 1)
		fmt.Fprintf(os.Stderr, "\r[%s%s] %3d%% %-40s", strings.Repeat("=", filled), strings.Repeat(" ", width-filled), 100*p.n/max(p.total, 1), label)
	}
}

func (p *progress) done() { fmt.Fprintln(os.Stderr) }
