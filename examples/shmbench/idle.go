package main

import (
	"context"
	"fmt"
	"strconv"
	"time"
)

// idleFigures are both processes' CPU, in percent of one core, and OS
// threads while conns sit idle.
type idleFigures struct {
	label                    string
	conns                    int
	clientCPU, serverCPU     float64
	clientThreads, srvThread int
}

// idle: what idle conns cost. Both ends are fresh children, so the
// figures hold nothing of the parts before.
func (b *bench) idle(ctx context.Context) error {
	b.section("5. Idle conns",
		fmt.Sprintf("A client process opens the conns to a server process, each end with a goroutine blocked in Read; after %v to settle, "+
			"CPU is both processes' user+system time over %v in percent of one core, threads are each process's OS threads.",
			b.cfg.settle, b.cfg.idleFor))
	var rows []*idleFigures
	for _, n := range []int{1, b.cfg.idleConns} {
		for _, t := range []transport{shmT(b.cfg.wait, 0), unixT} {
			f, err := b.idleOnce(ctx, t, n)
			if err != nil {
				return fmt.Errorf("%s, %d conns: %w", t.label(b.cfg.wait), n, err)
			}
			rows = append(rows, f)
			b.fig.Idle = append(b.fig.Idle, newIdleRow(f))
			if t.network == "shm" {
				if n == 1 {
					b.res.idlePair = f
				} else {
					b.res.idleMany = f
				}
			}
		}
	}
	tw := b.table()
	fmt.Fprintln(tw, "transport\tconns\tclient CPU\tserver CPU\ttogether\tclient threads\tserver threads\t")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%d\t%.2f%%\t%.2f%%\t%.2f%%\t%d\t%d\t\n", r.label, r.conns, r.clientCPU, r.serverCPU, r.clientCPU+r.serverCPU, r.clientThreads, r.srvThread)
	}
	tw.Flush()
	return nil
}

func (b *bench) idleOnce(ctx context.Context, t transport, n int) (*idleFigures, error) {
	f := &idleFigures{label: t.label(b.cfg.wait), conns: n}
	err := b.withServer(t, func(srv *child) error {
		env := append(transport{network: t.network, wait: b.cfg.wait}.env(srv.addr, b.cfg.ringSize),
			envRole+"=idle-client", envConns+"="+strconv.Itoa(n))
		cli, err := b.startChild(fmt.Sprintf("idle client %s x%d", t.label(b.cfg.wait), n), env)
		if err != nil {
			return err
		}
		defer b.stopChild(cli)
		if err := sleep(ctx, b.cfg.settle); err != nil {
			return err
		}
		s0, err := srv.stats()
		if err != nil {
			return err
		}
		c0, err := cli.stats()
		if err != nil {
			return err
		}
		start := time.Now()
		if err := sleep(ctx, b.cfg.idleFor); err != nil {
			return err
		}
		s1, err := srv.stats()
		if err != nil {
			return err
		}
		c1, err := cli.stats()
		if err != nil {
			return err
		}
		el := time.Since(start)
		f.clientCPU = 100 * float64(c1.cpu-c0.cpu) / float64(el)
		f.serverCPU = 100 * float64(s1.cpu-s0.cpu) / float64(el)
		f.clientThreads, f.srvThread = c1.threads, s1.threads
		return nil
	})
	return f, err
}
