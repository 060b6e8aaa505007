package main

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// progress reports how far the run is. On a terminal it redraws one bar
// in place, at most ten times a second so drawing never disturbs the
// measurement; otherwise (a log, a pipe) it prints one line of text as each
// phase starts and nothing in between.
//
// The bar advances by expected time, not by request count: a sparse
// request stands for the interval it waits, a back-to-back one for
// denseGuess, so the bar moves steadily through the long sparse phases
// instead of waiting in them.
type progress struct {
	w        io.Writer
	tty      bool
	total    time.Duration // expected length of the whole run
	done     time.Duration // expected length of the steps taken
	start    time.Time
	lastDraw time.Time
	label    string
}

// denseGuess is what one back-to-back request is counted as; the real
// figure (1-100 us) matters little next to the sparse phases' seconds.
const denseGuess = 50 * time.Microsecond

func newProgress(w io.Writer, tty bool, total time.Duration) *progress {
	return &progress{w: w, tty: tty, total: max(total, 1), start: time.Now()}
}

// phase starts a named phase of n requests.
func (p *progress) phase(label string, n int, every time.Duration) {
	p.label = label
	if !p.tty {
		what := "back to back"
		if every > 0 {
			what = "one every " + every.String()
		}
		fmt.Fprintf(p.w, "%s: %d requests, %s (%.0f%% done, %s elapsed)\n", label, n, what, 100*p.fraction(), time.Since(p.start).Round(time.Second))
		return
	}
	p.draw(time.Now())
}

// step records one request that stood for d of expected time.
func (p *progress) step(d time.Duration) {
	p.done += d
	if !p.tty {
		return
	}
	if now := time.Now(); now.Sub(p.lastDraw) >= 100*time.Millisecond {
		p.draw(now)
	}
}

func (p *progress) fraction() float64 { return min(1, float64(p.done)/float64(p.total)) }

func (p *progress) draw(now time.Time) {
	p.lastDraw = now
	const width = 40
	f := p.fraction()
	filled := int(width * f)
	fmt.Fprintf(p.w, "\r[%s%s] %3.0f%% %5s  %-36s", strings.Repeat("=", filled), strings.Repeat(" ", width-filled),
		100*f, now.Sub(p.start).Round(time.Second), p.label)
}

// finish ends the bar's line.
func (p *progress) finish() {
	if p.tty {
		p.done = p.total
		p.label = "done"
		p.draw(time.Now())
		fmt.Fprintln(p.w)
	}
}
