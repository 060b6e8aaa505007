package main

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/shmconn/shmconn/conn"
)

// errTargetsFailed is what run returns when a judged target failed, after
// printing the table that says which.
var errTargetsFailed = errors.New("a target failed")

// Verdicts.
const (
	pass      = "PASS"
	fail      = "FAIL"
	notJudged = "n/a"
	info      = "info" // printed for information, never fails the run
)

// verdict is one target's line in the table.
type verdict struct {
	result   string
	target   string
	measured string // the figures, or why the target was not judged
}

// host says on which host a target holds: the performance targets differ
// between an idle host and one where every CPU has other work (-load).
type host int

const (
	anyHost    host = iota
	idleHost        // judged only without -load
	loadedHost      // judged only with -load
)

// target is one line of the table, before judging.
type target struct {
	name string
	host host
	info bool // information only: never fails the run
	// check returns the figures and whether they meet the target;
	// measured is false when the run lacks a figure it needs.
	check func() (figures string, ok, measured bool)
}

// targets judges the run's figures and prints the table. It returns
// errTargetsFailed if a judged target failed.
func (b *bench) targets() error {
	if b.cfg.quick {
		b.section("Targets", "Targets are judged only in a full run: a -quick run's counts are too small to judge on.")
		return nil
	}
	b.section("Targets", "Judged on the figures above, from this run; a FAIL makes the command exit with status 1.")
	if b.cfg.wait != conn.WaitAdaptive {
		fmt.Fprintf(b.out, "note: the targets name the default policy (adaptive); this run used %s\n", b.cfg.wait)
	}
	if b.cfg.size != 64 || b.cfg.streamBuf != 64<<10 || b.cfg.idleConns != 1000 || b.cfg.conns != 32 {
		fmt.Fprintln(b.out, "note: the targets assume 64-byte messages, 64 KiB writes, 32 conns and 1000 idle conns; this run changed some of them")
	}
	vs := judge(b.cfg, &b.res)
	tw := b.table()
	fmt.Fprintln(tw, "result\ttarget\tmeasured\t")
	for _, v := range vs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t\n", v.result, v.target, v.measured)
	}
	tw.Flush()
	if slices.ContainsFunc(vs, func(v verdict) bool { return v.result == fail }) {
		return errTargetsFailed
	}
	return nil
}

// judge returns a verdict for every target, in the order they print.
func judge(cfg config, r *results) []verdict {
	var vs []verdict
	for _, t := range targetList(cfg, r) {
		vs = append(vs, t.judge(cfg.load))
	}
	return vs
}

// judge gives t's verdict on a run with load busy processes.
func (t target) judge(load int) verdict {
	v := verdict{result: notJudged, target: t.name}
	switch {
	case t.host == idleHost && load > 0:
		v.measured = fmt.Sprintf("an idle host's target; this run had -load %d", load)
		return v
	case t.host == loadedHost && load == 0:
		v.measured = "a contended host's target; run with -load cpu"
		return v
	}
	figures, ok, measured := t.check()
	switch {
	case !measured:
		v.measured = "not measured (part or rate not run)"
	case t.info:
		v.result, v.measured = info, figures
	case ok:
		v.result, v.measured = pass, figures
	default:
		v.result, v.measured = fail, figures
	}
	return v
}

// targetList is every target: those of the waiting path for an idle and a
// contended host, then throughput and idle cost.
func targetList(cfg config, r *results) []target {
	def, spin := shmT(cfg.wait, 0), shmT(conn.WaitSpin, 0)
	ts := []target{{
		name: "idle host, back to back, default policy: p50 <= 2x floor and >= 10x lower than unix", host: idleHost,
		check: func() (string, bool, bool) {
			shm, floor, unix, ok := r.rows(0, def, floorT, unixT)
			return p50Figures(shm, floor, unix), ok && shm.p50 <= 2*floor.p50 && unix.p50 >= 10*shm.p50, ok
		},
	}}
	for _, d := range []time.Duration{time.Millisecond, 10 * time.Millisecond} {
		for _, t := range []transport{spin, shmT(conn.WaitSpin, idleHeld)} {
			ts = append(ts, target{
				name: fmt.Sprintf("idle host, one request per %v, %s: p50 <= 3x floor and >= 30x lower than unix, p99 <= unix", d, t.label(cfg.wait)), host: idleHost,
				check: func() (string, bool, bool) {
					shm, floor, unix, ok := r.rows(d, t, floorT, unixT)
					return p50Figures(shm, floor, unix) + "; " + p99Figures(shm, unix),
						ok && shm.p50 <= 3*floor.p50 && unix.p50 >= 30*shm.p50 && shm.p99 <= unix.p99, ok
				},
			})
		}
	}
	ts = append(ts, target{
		name: fmt.Sprintf("idle host, one request per 1ms, %s both ends: p50 <= 0.7x unix, p99 <= unix", cfg.wait), host: idleHost,
		check: func() (string, bool, bool) {
			shm, _, unix, ok := r.rows(time.Millisecond, def, floorT, unixT)
			return p50Figures(shm, nil, unix) + "; " + p99Figures(shm, unix),
				ok && float64(shm.p50) <= 0.7*float64(unix.p50) && shm.p99 <= unix.p99, ok
		},
	})
	for _, t := range []transport{spin, def} {
		ts = append(ts, target{
			name: fmt.Sprintf("under load, one request per 1ms, %s: p50 and p99 <= 1.1x unix", t.label(cfg.wait)), host: loadedHost,
			check: func() (string, bool, bool) {
				shm, _, unix, ok := r.rows(time.Millisecond, t, floorT, unixT)
				return p50Figures(shm, nil, unix) + "; " + p99Figures(shm, unix),
					ok && float64(shm.p50) <= 1.1*float64(unix.p50) && float64(shm.p99) <= 1.1*float64(unix.p99), ok
			},
		})
	}
	ts = append(ts, target{
		name: "under load, back to back, default policy: p50 <= unix", host: loadedHost,
		check: func() (string, bool, bool) {
			shm, _, unix, ok := r.rows(0, def, floorT, unixT)
			return p50Figures(shm, nil, unix), ok && shm.p50 <= unix.p50, ok
		},
	})
	return append(ts, throughputTargets(cfg, r)...)
}

// throughputTargets are the targets of the throughput and idle parts,
// which hold on any host.
func throughputTargets(cfg config, r *results) []target {
	return []target{{
		name: "streaming 64 KiB writes: >= 0.7x the stream floor and >= 2x unix",
		check: func() (string, bool, bool) {
			shm, floor, unix := r.stream[shmT(cfg.wait, 0)], r.stream[floorT], r.stream[unixT]
			return fmt.Sprintf("shm %.0f MB/s: %s floor (%.0f MB/s), %s unix (%.0f MB/s)", shm, times(shm, floor), floor, times(shm, unix), unix),
				shm >= 0.7*floor && shm >= 2*unix, shm > 0
		},
	}, {
		name: fmt.Sprintf("%d conns at once: round trips >= unix", cfg.conns),
		check: func() (string, bool, bool) {
			return fmt.Sprintf("shm %.0f/s, unix %.0f/s: %s", r.multiShm, r.multiUnix, times(r.multiShm, r.multiUnix)),
				r.multiShm >= r.multiUnix, r.multiShm > 0
		},
	}, {
		name: "one idle pair: <= 1% of a core, both processes together",
		check: func() (string, bool, bool) {
			p := r.idlePair
			if p == nil {
				return "", false, false
			}
			return fmt.Sprintf("%.2f%% (client %.2f%%, server %.2f%%)", p.clientCPU+p.serverCPU, p.clientCPU, p.serverCPU),
				p.clientCPU+p.serverCPU <= 1, true
		},
	}, {
		name: fmt.Sprintf("%d idle conns: <= 5%% CPU and <= 64 OS threads per process", cfg.idleConns),
		check: func() (string, bool, bool) {
			m := r.idleMany
			if m == nil {
				return "", false, false
			}
			return fmt.Sprintf("client %.2f%% and %d threads, server %.2f%% and %d threads", m.clientCPU, m.clientThreads, m.serverCPU, m.srvThread),
				m.clientCPU <= 5 && m.serverCPU <= 5 && m.clientThreads <= 64 && m.srvThread <= 64, true
		},
	}, {
		name: fmt.Sprintf("ring alone, %d-byte messages: >= 3x a buffered chan []byte", cfg.size), info: true,
		check: func() (string, bool, bool) {
			return fmt.Sprintf("ring %.0f MB/s, chan %.0f MB/s: %s", r.ringMBs, r.chanMBs, times(r.ringMBs, r.chanMBs)),
				r.ringMBs >= 3*r.chanMBs, r.ringMBs > 0
		},
	}}
}

// rows returns the latency rows of shm, floor and unix at interval, and
// whether all three were measured.
func (r *results) rows(interval time.Duration, shm, floor, unix transport) (s, f, u *latency, ok bool) {
	s, f, u = r.latency[sample{interval, shm}], r.latency[sample{interval, floor}], r.latency[sample{interval, unix}]
	return s, f, u, s != nil && f != nil && u != nil
}

// p50Figures says how shm's p50 compares with the floor's (when floor is
// not nil) and unix's.
func p50Figures(shm, floor, unix *latency) string {
	if shm == nil || unix == nil {
		return ""
	}
	s := fmt.Sprintf("p50 %s", us(shm.p50))
	if floor != nil {
		s += fmt.Sprintf(" = %s floor (%s)", times(float64(shm.p50), float64(floor.p50)), us(floor.p50))
	}
	return s + fmt.Sprintf(", %s unix (%s)", times(float64(shm.p50), float64(unix.p50)), us(unix.p50))
}

// p99Figures compares shm's p99 with unix's.
func p99Figures(shm, unix *latency) string {
	if shm == nil || unix == nil {
		return ""
	}
	return fmt.Sprintf("p99 %s, unix %s", us(shm.p99), us(unix.p99))
}
