package main

import "fmt"

// startLoad starts the -load busy processes. They run until cleanup stops
// them with the other children (and die with this process if it is
// killed), so every part runs on a host whose CPUs all have other work.
func (b *bench) startLoad() error {
	for i := range b.cfg.load {
		// One thread each: a process per CPU, as the other work of a
		// shared host would be, not a runtime's worth of threads.
		if _, err := b.startChild(fmt.Sprintf("load %d", i+1), []string{envRole + "=load", "GOMAXPROCS=1"}); err != nil {
			return err
		}
	}
	return nil
}

// childLoad is a busy process: it spins at normal priority, never
// blocking, until the parent closes its stdin.
func childLoad() error {
	go spin()
	return control("load")
}

// spin never returns. The runtime preempts it (asynchronously) so that the
// control goroutine still gets the process's one P when stdin closes.
func spin() {
	for {
	}
}
