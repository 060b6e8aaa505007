package main

import (
	"fmt"
	"io"
	"math"
	"slices"
	"sort"
	"text/tabwriter"
	"time"

	"github.com/shmconn/shmconn/internal/trace"
)

// leg is one round trip's time between two stamps; ok is false when a
// stamp it needs is missing (the call took another path).
type leg struct {
	d  time.Duration
	ok bool
}

// round is one round trip, broken down: legs across the processes, and
// each process's own steps (see the command's doc).
type round struct {
	total, up, server, down            leg
	cWrite, sRead, sApp, sWrite, cRead leg
	serverGap, clientGap               bool // a spinner of that side was off its CPU in the round trip
	parked                             bool // a call of either side parked
}

// after returns the first stamp in ts at or after from and before to.
func after(ts []int64, from, to int64) (int64, bool) {
	i := sort.Search(len(ts), func(i int) bool { return ts[i] >= from })
	if i < len(ts) && ts[i] < to {
		return ts[i], true
	}
	return 0, false
}

// gapIn reports whether one of gaps overlaps [from, to).
func gapIn(gaps [][2]int64, from, to int64) bool {
	for _, g := range gaps {
		if g[0] < to && g[1] > from {
			return true
		}
	}
	return false
}

// saw returns when a process first found bytes published at from: its
// waiting Read's condition came true, or its parked call was woken, or
// (the bytes were there before it looked) its Read returned them.
func saw(l *trace.Log, from, to int64) (int64, bool) {
	first, found := int64(0), false
	for _, p := range []trace.Point{trace.Ready, trace.Unpark, trace.ReadDone} {
		if t, ok := after(l.Points[p], from, to); ok && (!found || t < first) {
			first, found = t, true
		}
	}
	return first, found
}

func span(from, to int64, ok bool) leg {
	if !ok || to < from {
		return leg{}
	}
	return leg{time.Duration(to - from), true}
}

// analyze joins the two processes' stamps round trip by round trip: a
// round trip is the client's stamps from one WriteEnter to the next, and
// the server's stamps after the client published within that time.
func analyze(c, s *trace.Log) []round {
	starts := c.Points[trace.WriteEnter]
	slices.Sort(starts)
	for p := range trace.NumPoints {
		slices.Sort(c.Points[p])
		slices.Sort(s.Points[p])
	}
	var rounds []round
	for i, t0 := range starts {
		t1 := int64(math.MaxInt64)
		if i+1 < len(starts) {
			t1 = starts[i+1]
		}
		cPub, ok1 := after(c.Points[trace.Published], t0, t1)
		cDone, ok2 := after(c.Points[trace.ReadDone], t0, t1)
		if !ok1 || !ok2 {
			continue
		}
		sSaw, ok3 := saw(s, cPub, t1)
		sPub, ok4 := after(s.Points[trace.Published], cPub, t1)
		cSaw, ok5 := saw(c, sPub, t1)
		sDone, ok6 := after(s.Points[trace.ReadDone], sSaw, t1)
		sWrite, ok7 := after(s.Points[trace.WriteEnter], sSaw, t1)
		_, cParked := after(c.Points[trace.Park], t0, t1)
		_, sParked := after(s.Points[trace.Park], cPub, t1)
		rounds = append(rounds, round{
			total:     span(t0, cDone, true),
			up:        span(cPub, sSaw, ok3),
			server:    span(sSaw, sPub, ok3 && ok4),
			down:      span(sPub, cSaw, ok4 && ok5 && cSaw <= cDone),
			cWrite:    span(t0, cPub, true),
			sRead:     span(sSaw, sDone, ok3 && ok6),
			sApp:      span(sDone, sWrite, ok6 && ok7),
			sWrite:    span(sWrite, sPub, ok7 && ok4),
			cRead:     span(cSaw, cDone, ok5),
			serverGap: ok3 && gapIn(s.Gaps, cPub, sSaw),
			clientGap: ok4 && gapIn(c.Gaps, sPub, cDone),
			parked:    cParked || sParked,
		})
	}
	return rounds
}

// quantiles are the ones report prints.
var quantiles = []float64{0.10, 0.25, 0.50, 0.75, 0.90, 0.99}

func report(w io.Writer, cfg config, rounds []round) {
	fmt.Fprintf(w, "%d round trips of %d bytes, one every %v; server %v, client %v\n\n", len(rounds), cfg.size, cfg.interval, cfg.serverWait, cfg.clientWait)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprint(tw, "leg\tround trips\t")
	for _, q := range quantiles {
		fmt.Fprintf(tw, "p%g\t", q*100)
	}
	fmt.Fprintln(tw)
	for _, l := range []struct {
		name string
		get  func(round) leg
	}{
		{"total", func(r round) leg { return r.total }},
		{"up", func(r round) leg { return r.up }},
		{"server", func(r round) leg { return r.server }},
		{"down", func(r round) leg { return r.down }},
		{"c-write", func(r round) leg { return r.cWrite }},
		{"s-read", func(r round) leg { return r.sRead }},
		{"s-app", func(r round) leg { return r.sApp }},
		{"s-write", func(r round) leg { return r.sWrite }},
		{"c-read", func(r round) leg { return r.cRead }},
	} {
		var ds []time.Duration
		for _, r := range rounds {
			if v := l.get(r); v.ok {
				ds = append(ds, v.d)
			}
		}
		slices.Sort(ds)
		fmt.Fprintf(tw, "%s\t%d\t", l.name, len(ds))
		for _, q := range quantiles {
			if len(ds) == 0 {
				fmt.Fprint(tw, "-\t")
				continue
			}
			fmt.Fprintf(tw, "%.1f us\t", float64(ds[int(q*float64(len(ds)-1))])/1e3)
		}
		fmt.Fprintln(tw)
	}
	tw.Flush()
	slow, sg, cg, pk, none := slowRounds(rounds)
	fmt.Fprintf(w, "\nslow round trips (total over 3x the p10): %d of %d; each counted once, by the first that holds: a server spinner off its CPU %d, a client spinner off its CPU %d, a call parked %d, none of these %d\n",
		slow, len(rounds), sg, cg, pk, none)
}

// slowRounds counts the round trips over three times the fastest tenth's
// time, and what happened in them.
func slowRounds(rounds []round) (slow, serverGap, clientGap, parked, none int) {
	if len(rounds) == 0 {
		return
	}
	totals := make([]time.Duration, len(rounds))
	for i, r := range rounds {
		totals[i] = r.total.d
	}
	slices.Sort(totals)
	limit := 3 * totals[len(totals)/10]
	for _, r := range rounds {
		if r.total.d <= limit {
			continue
		}
		slow++
		switch {
		case r.serverGap:
			serverGap++
		case r.clientGap:
			clientGap++
		case r.parked:
			parked++
		default:
			none++
		}
	}
	return
}
