// Command shmbench measures shmconn against a plain unix socket and TCP
// loopback between two processes, in one run, and prints the figures side
// by side with their ratios and the targets of issue 3 marked PASS or
// FAIL.
//
//	go run ./examples/shmbench                      # everything, about a minute
//	go run ./examples/shmbench -quick               # a few seconds, as the tests run it
//	go run ./examples/shmbench -parts dense,sparse -n 500000
//
// The command is the client. It re-executes itself as the server process
// (and, to measure idle CPU, as an idle client as well), one per transport
// and measurement, and stops and reaps every such child before it moves
// on, when it is interrupted, and when it fails. Parts:
//
//	dense   64-byte request, echo, back to back: p50/p99/p99.9 round trip
//	sparse  the same at about one request per millisecond, server spinning
//	        (WaitSpin) and adaptive
//	stream  one-way 64 KiB writes, read and discarded: MB/s
//	multi   32 conns ping-ponging at once: round trips per second
//	idle    CPU and OS threads of both processes with one idle pair, then
//	        1000 idle conns
//	ring    the ring alone in one process against a buffered chan []byte
//
// Percentiles come from an HDR histogram of nanoseconds. CPU is each
// process's user+system time (getrusage) over the idle window, in percent
// of one core. The machine is noisy: compare figures of one run, and run
// again before believing a surprise.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/shmconn/shmconn/conn"
)

func main() {
	if isChild() {
		os.Exit(runChild())
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	interrupted := ctx.Err() != nil
	stop()
	switch {
	case errors.Is(err, flag.ErrHelp):
		os.Exit(0) // usage asked for: no error, as go's own flag.Parse has it
	case interrupted:
		fmt.Fprintln(os.Stderr, "shmbench: interrupted")
		os.Exit(130)
	case err != nil:
		fmt.Fprintln(os.Stderr, "shmbench:", err)
		os.Exit(1)
	}
}

// allParts are the measurements, in the order they run and print.
var allParts = []string{"dense", "sparse", "stream", "multi", "idle", "ring"}

type config struct {
	parts        []string
	wait         conn.WaitPolicy
	ringSize     int
	size         int           // request size, bytes
	n            int           // dense round trips measured
	warmup       int           // dense round trips before measuring
	sparseN      int           // sparse round trips measured
	interval     time.Duration // sparse: time from one request to the next
	streamFor    time.Duration // per round and transport
	streamBuf    int
	streamRounds int
	conns        int // multi
	multiFor     time.Duration
	idleFor      time.Duration
	idleConns    int
	settle       time.Duration // idle: wait after setup before measuring
	ringN        int           // ring: messages per run
	verbose      bool
}

func (c *config) has(part string) bool { return slices.Contains(c.parts, part) }

// parseFlags reads the command line. -quick shortens every measurement
// the user did not size explicitly.
func parseFlags(args []string, stderr io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("shmbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	quick := fs.Bool("quick", false, "a short run (a few seconds) with small counts, for tests")
	parts := fs.String("parts", strings.Join(allParts, ","), "comma-separated parts to run: "+strings.Join(allParts, ", ")+" (or all)")
	wait := fs.String("wait", "adaptive", "wait policy of the shm conns in every part (adaptive or spin); the sparse part adds a spinning server")
	fs.IntVar(&c.ringSize, "ringsize", 0, "shm ring size per direction in bytes (0: the library's default)")
	fs.IntVar(&c.size, "size", 64, "request and response size in bytes (dense, sparse, multi)")
	fs.IntVar(&c.n, "n", 200000, "dense: round trips measured per transport")
	fs.IntVar(&c.warmup, "warmup", 10000, "dense: round trips before measuring")
	fs.IntVar(&c.sparseN, "sparse-n", 2000, "sparse: round trips measured per transport")
	fs.DurationVar(&c.interval, "interval", time.Millisecond, "sparse: time from one request to the next")
	fs.DurationVar(&c.streamFor, "stream-for", time.Second, "stream: duration of one transport's turn")
	fs.IntVar(&c.streamRounds, "stream-rounds", 3, "stream: turns each transport takes")
	fs.IntVar(&c.streamBuf, "stream-buf", 64<<10, "stream: bytes per write")
	fs.IntVar(&c.conns, "conns", 32, "multi: conns ping-ponging at once")
	fs.DurationVar(&c.multiFor, "multi-for", 2*time.Second, "multi: duration per transport")
	fs.DurationVar(&c.idleFor, "idle-for", 3*time.Second, "idle: CPU measuring window")
	fs.IntVar(&c.idleConns, "idle-conns", 1000, "idle: conns to one server in the many-conns case")
	fs.DurationVar(&c.settle, "settle", 500*time.Millisecond, "idle: wait after setup before measuring")
	fs.IntVar(&c.ringN, "ring-n", 2000000, "ring: messages per run")
	fs.BoolVar(&c.verbose, "v", false, "log child processes to stderr")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if *quick {
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		for name, v := range map[string]string{
			"n": "2000", "warmup": "200", "sparse-n": "100",
			"stream-for": "100ms", "stream-rounds": "1", "multi-for": "200ms",
			"idle-for": "300ms", "settle": "100ms", "ring-n": "100000",
		} {
			if !set[name] {
				fs.Set(name, v)
			}
		}
	}
	var err error
	if c.wait, err = conn.ParseWaitPolicy(*wait); err != nil {
		return c, err
	}
	for p := range strings.SplitSeq(*parts, ",") {
		switch p = strings.TrimSpace(p); {
		case p == "all":
			c.parts = append(c.parts, allParts...)
		case slices.Contains(allParts, p):
			c.parts = append(c.parts, p)
		case p != "":
			return c, fmt.Errorf("unknown part %q (want %s)", p, strings.Join(allParts, ", "))
		}
	}
	switch {
	case c.size < 1 || c.streamBuf < 1:
		return c, errors.New("-size and -stream-buf must be positive")
	case c.n < 1 || c.sparseN < 1 || c.streamRounds < 1 || c.conns < 1 || c.idleConns < 1 || c.ringN < 1:
		return c, errors.New("-n, -sparse-n, -stream-rounds, -conns, -idle-conns and -ring-n must be positive")
	case c.warmup < 0 || c.interval < 0 || c.streamFor <= 0 || c.multiFor <= 0 || c.idleFor <= 0 || c.settle < 0:
		return c, errors.New("durations and -warmup must not be negative")
	}
	return c, nil
}

// run parses args, runs the parts and prints to stdout. Children and
// temporary files are gone when it returns, whatever happened; when ctx
// is cancelled it stops as soon as it can and returns ctx.Err().
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	raiseFileLimit()
	b, err := newBench(cfg, stdout, stderr)
	if err != nil {
		return err
	}
	defer b.cleanup()
	stopAbort := context.AfterFunc(ctx, b.abort)
	defer stopAbort()

	b.header()
	sections := map[string]func(context.Context) error{
		"dense": b.dense, "sparse": b.sparse, "stream": b.stream,
		"multi": b.multi, "idle": b.idle, "ring": b.ring,
	}
	for _, p := range allParts {
		if !cfg.has(p) {
			continue
		}
		if err := sections[p](ctx); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("%s: %w", p, err)
		}
	}
	b.targets()
	return nil
}
