package main

import (
	"fmt"
	"time"

	"github.com/shmconn/shmconn/conn"
)

// targets prints each target of issue 3 with PASS, FAIL, or n/a when its
// part did not run.
func (b *bench) targets() {
	r := &b.res
	b.section("Targets (issue 3)", "Judged on the figures above, from this run.")
	if b.cfg.wait != conn.WaitAdaptive {
		fmt.Fprintf(b.out, "note: the targets name the default policy (adaptive); this run used %s\n", b.cfg.wait)
	}
	tw := b.table()
	fmt.Fprintln(tw, "result\ttarget\tmeasured\t")
	row := func(measured bool, ok bool, target, figures string) {
		verdict := "n/a"
		switch {
		case !measured:
			figures = "not measured (part not run)"
		case ok:
			verdict = "PASS"
		default:
			verdict = "FAIL"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t\n", verdict, target, figures)
	}
	lower := func(shm, unix *latency) float64 { return float64(unix.p50) / float64(shm.p50) }

	if m := r.denseShm != nil; m {
		x := lower(r.denseShm, r.denseUnix)
		row(m, r.denseShm.p50 <= time.Microsecond && x >= 10, "back-to-back p50 <= 1 us and >= 10x lower than unix",
			fmt.Sprintf("%s %s, unix %s: %.1fx lower", r.denseShm.label, us(r.denseShm.p50), us(r.denseUnix.p50), x))
	} else {
		row(false, false, "back-to-back p50 <= 1 us and >= 10x lower than unix", "")
	}
	if m := r.sparseSpin != nil; m {
		x := lower(r.sparseSpin, r.sparseUnix)
		row(m, r.sparseSpin.p50 <= 2*time.Microsecond && x >= 30, "1 req/ms, server WaitSpin: p50 <= 2 us and >= 30x lower than unix",
			fmt.Sprintf("%s %s, unix %s: %.1fx lower (server adaptive: %s)", r.sparseSpin.label, us(r.sparseSpin.p50), us(r.sparseUnix.p50), x, us(r.sparseAd.p50)))
	} else {
		row(false, false, "1 req/ms, server WaitSpin: p50 <= 2 us and >= 30x lower than unix", "")
	}
	row(r.streamShm > 0, r.streamShm >= 2*r.streamUnix, "streaming 64 KiB writes >= 2x unix bytes/s",
		fmt.Sprintf("shm %.0f MB/s, unix %.0f MB/s: %.2fx", r.streamShm, r.streamUnix, r.streamShm/r.streamUnix))
	row(r.multiShm > 0, r.multiShm >= r.multiUnix, fmt.Sprintf("%d conns at once: round trips >= unix", b.cfg.conns),
		fmt.Sprintf("shm %.0f/s, unix %.0f/s: %.2fx", r.multiShm, r.multiUnix, r.multiShm/r.multiUnix))
	if p := r.idlePair; p != nil {
		row(true, p.clientCPU+p.serverCPU <= 1, "one idle pair: <= 1% of a core, both processes together",
			fmt.Sprintf("%.2f%% (client %.2f%%, server %.2f%%)", p.clientCPU+p.serverCPU, p.clientCPU, p.serverCPU))
	} else {
		row(false, false, "one idle pair: <= 1% of a core, both processes together", "")
	}
	manyTarget := fmt.Sprintf("%d idle conns: <= 5%% CPU and <= 64 OS threads per process", b.cfg.idleConns)
	if m := r.idleMany; m != nil {
		ok := m.clientCPU <= 5 && m.serverCPU <= 5 && m.clientThreads <= 64 && m.srvThread <= 64
		row(true, ok, manyTarget, fmt.Sprintf("client %.2f%% and %d threads, server %.2f%% and %d threads",
			m.clientCPU, m.clientThreads, m.serverCPU, m.srvThread))
	} else {
		row(false, false, manyTarget, "")
	}
	row(r.ringMBs > 0, r.ringMBs >= 3*r.chanMBs, fmt.Sprintf("ring alone, %d-byte messages: >= 3x a buffered chan []byte", b.cfg.size),
		fmt.Sprintf("ring %.0f MB/s, chan %.0f MB/s: %.2fx", r.ringMBs, r.chanMBs, r.ringMBs/r.chanMBs))
	tw.Flush()
	if b.cfg.size != 64 || b.cfg.streamBuf != 64<<10 || b.cfg.idleConns != 1000 || b.cfg.conns != 32 || b.cfg.interval != time.Millisecond {
		fmt.Fprintln(b.out, "note: the targets assume 64-byte messages, 64 KiB writes, 32 conns, 1000 idle conns and 1 request per ms; this run changed some of them")
	}
}
