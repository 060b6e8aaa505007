// Command shmbench measures shmconn against a plain unix socket, TCP
// loopback and the floor (what two processes on this machine do with no
// library at all), between two processes, in one run. It prints the
// figures side by side with their ratios to the floor and to unix, then
// judges the performance targets and exits with status 1 if one fails.
//
//	go run ./examples/shmbench                      # everything, a few minutes
//	go run ./examples/shmbench -load cpu            # the same with one busy process per CPU
//	go run ./examples/shmbench -quick               # a few seconds, as the tests run it; no targets
//	go run ./examples/shmbench -parts dense,sparse -intervals 1ms -sparse-n 5000
//	go run ./examples/shmbench -json                # the figures as JSON, for scripts/bench; no targets
//
// The command is the client. It re-executes itself as the server process
// (and, to measure idle CPU, as an idle client as well), one per transport
// and measurement, and stops and reaps every such child before it moves
// on, when it is interrupted, and when it fails. Parts:
//
//	dense   64-byte request, echo, back to back: p50/p99/p99.9 round trip
//	sparse  the same at one request per interval (-intervals, default 1ms
//	        and 10ms; -sparse-n 2000 and 300 round trips), the client
//	        sleeping in between: the parked floors, server spinning
//	        (WaitSpin), the same with 8 more idle conns held open to that
//	        server, and the client's policy on both ends
//	stream  one-way 64 KiB writes, read and discarded: MB/s
//	multi   32 conns ping-ponging at once: round trips per second
//	idle    CPU and OS threads of both processes with one idle pair, then
//	        1000 idle conns
//	ring    the ring alone in one process against a buffered chan []byte
//
// The floor rows use no library: the server child maps memory the client
// created and busy-spins, with the pause hint and never sleeping, on one
// cache line that the client writes a sequence number to; the client
// spins until the server's line echoes it. The stream floor is a bare ring
// (package ring) over such memory, both ends spinning when it is full or
// empty. The floor is the best two processes can do on this CPU at that
// rate: a ratio to it says how much the library adds.
//
// The parked floors use no library either, but both processes block in
// the kernel between messages: a C pair on eventfds (floor/floor.c,
// compiled at run time with cc or gcc; the row is left out, with the
// reason, without one), a Go pair on eventfds through the netpoller, and
// a Go pair in raw futex waits on shared memory. They are what the
// default policy's parked path is judged against: each sparse table ends
// with its p50 over theirs.
//
// -load N runs N busy processes (one per CPU with -load cpu) from start
// to end, the case of a shared host; the targets of an idle host are not
// judged then, and those of a contended one are. -nice N sets the nice
// value of the command and of every child it starts after the busy
// processes: with -load cpu -nice -15 (as root) the measured pair runs
// above the busy work, as a latency-critical pair on a busy host can.
//
// Percentiles come from an HDR histogram of nanoseconds. CPU is each
// process's user+system time (getrusage) over the idle window, in percent
// of one core. The machine is noisy: compare figures of one run, and run
// again before believing a surprise.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"slices"
	"strconv"
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
		os.Exit(0) // asked for
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
	sparse       []sparseRate  // sparse: the rates measured, in order
	streamFor    time.Duration // per round and transport
	streamBuf    int
	streamRounds int
	conns        int // multi
	multiFor     time.Duration
	idleFor      time.Duration
	idleConns    int
	settle       time.Duration // idle: wait after setup before measuring
	ringN        int           // ring: messages per run
	load         int           // busy processes running for the whole run
	nice         *int          // nice value of this process and its servers and clients; nil: unchanged
	quick        bool          // a short run: figures too few to judge targets on
	json         bool          // print the figures as JSON instead of the tables; no targets
	verbose      bool
}

func (c *config) has(part string) bool { return slices.Contains(c.parts, part) }

// parseFlags reads the command line. -quick shortens every measurement
// the user did not size explicitly.
func parseFlags(args []string, stderr io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("shmbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.BoolVar(&c.quick, "quick", false, "a short run (a few seconds) with small counts, for tests; targets are not judged")
	parts := fs.String("parts", strings.Join(allParts, ","), "comma-separated parts to run: "+strings.Join(allParts, ", ")+" (or all)")
	wait := fs.String("wait", "adaptive", "wait policy of the shm clients, and of both ends in the rows that say so (adaptive or spin); dense and sparse add a spinning server")
	load := fs.String("load", "0", "busy processes to run for the whole run, the contended case: a number, or cpu for one per CPU")
	nice := fs.Int("nice", 0, "nice value (-20 to 19) for this process and the servers and clients it starts, not the -load processes; "+
		"with -load cpu and a negative value, the case of a latency-critical pair on a busy host (below the current value needs root or CAP_SYS_NICE)")
	fs.IntVar(&c.ringSize, "ringsize", 0, "shm ring size per direction in bytes (0: the library's default)")
	fs.IntVar(&c.size, "size", 64, "request and response size in bytes (dense, sparse, multi)")
	fs.IntVar(&c.n, "n", 200000, "dense: round trips measured per transport")
	fs.IntVar(&c.warmup, "warmup", 10000, "dense: round trips before measuring")
	intervals := fs.String("intervals", "1ms,10ms", "sparse: comma-separated times from one request to the next, one table each")
	sparseN := fs.String("sparse-n", "2000,300", "sparse: round trips measured per transport at each interval, in the order of -intervals (the last count serves the intervals beyond the list)")
	fs.DurationVar(&c.streamFor, "stream-for", time.Second, "stream: duration of one transport's turn")
	fs.IntVar(&c.streamRounds, "stream-rounds", 3, "stream: turns each transport takes")
	fs.IntVar(&c.streamBuf, "stream-buf", 64<<10, "stream: bytes per write")
	fs.IntVar(&c.conns, "conns", 32, "multi: conns ping-ponging at once")
	fs.DurationVar(&c.multiFor, "multi-for", 2*time.Second, "multi: duration per transport")
	fs.DurationVar(&c.idleFor, "idle-for", 3*time.Second, "idle: CPU measuring window")
	fs.IntVar(&c.idleConns, "idle-conns", 1000, "idle: conns to one server in the many-conns case")
	fs.DurationVar(&c.settle, "settle", 500*time.Millisecond, "idle: wait after setup before measuring")
	fs.IntVar(&c.ringN, "ring-n", 2000000, "ring: messages per run")
	fs.BoolVar(&c.json, "json", false, "print the figures as one JSON object on stdout instead of the tables; targets are not judged")
	fs.BoolVar(&c.verbose, "v", false, "log child processes to stderr")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if c.quick {
		setQuickDefaults(fs)
	}
	if flagSet(fs, "nice") {
		if *nice < -20 || *nice > 19 {
			return c, fmt.Errorf("-nice %d: want -20 to 19", *nice)
		}
		c.nice = nice
	}
	var err error
	if c.wait, err = conn.ParseWaitPolicy(*wait); err != nil {
		return c, err
	}
	if c.parts, err = parseParts(*parts); err != nil {
		return c, err
	}
	if c.load, err = parseLoad(*load); err != nil {
		return c, err
	}
	if c.sparse, err = parseSparse(*intervals, *sparseN); err != nil {
		return c, err
	}
	switch {
	case c.size < 1 || c.streamBuf < 1:
		return c, errors.New("-size and -stream-buf must be positive")
	case c.n < 1 || c.streamRounds < 1 || c.conns < 1 || c.idleConns < 1 || c.ringN < 1:
		return c, errors.New("-n, -stream-rounds, -conns, -idle-conns and -ring-n must be positive")
	case c.warmup < 0 || c.streamFor <= 0 || c.multiFor <= 0 || c.idleFor <= 0 || c.settle < 0:
		return c, errors.New("durations and -warmup must not be negative")
	}
	return c, nil
}

// setQuickDefaults shrinks the counts and durations the user left alone.
func setQuickDefaults(fs *flag.FlagSet) {
	for name, v := range map[string]string{
		"n": "2000", "warmup": "200", "sparse-n": "100,20",
		"stream-for": "100ms", "stream-rounds": "1", "multi-for": "200ms",
		"idle-for": "300ms", "settle": "100ms", "ring-n": "100000",
	} {
		if !flagSet(fs, name) {
			fs.Set(name, v)
		}
	}
}

// flagSet reports whether the command line set the flag name.
func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

func parseParts(s string) ([]string, error) {
	var parts []string
	for p := range strings.SplitSeq(s, ",") {
		switch p = strings.TrimSpace(p); {
		case p == "all":
			parts = append(parts, allParts...)
		case slices.Contains(allParts, p):
			parts = append(parts, p)
		case p != "":
			return nil, fmt.Errorf("unknown part %q (want %s)", p, strings.Join(allParts, ", "))
		}
	}
	return parts, nil
}

// parseLoad reads -load: a count of busy processes, or "cpu" for one per
// CPU.
func parseLoad(s string) (int, error) {
	if s == "cpu" {
		return runtime.NumCPU(), nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("-load %q: want a count >= 0 or cpu", s)
	}
	return n, nil
}

// sparseRate is one rate of the sparse part.
type sparseRate struct {
	interval time.Duration // from one request to the next
	n        int           // round trips measured per transport
}

// parseSparse pairs -intervals with -sparse-n: the i-th count goes with
// the i-th interval, the last count with the intervals beyond the list (a
// slower rate wants fewer samples for a run of reasonable length).
func parseSparse(intervals, counts string) ([]sparseRate, error) {
	var ns []int
	for s := range strings.SplitSeq(counts, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("-sparse-n %q: want positive counts separated by commas", counts)
		}
		ns = append(ns, n)
	}
	var rates []sparseRate
	for s := range strings.SplitSeq(intervals, ",") {
		d, err := time.ParseDuration(strings.TrimSpace(s))
		if err != nil || d <= 0 {
			return nil, fmt.Errorf("-intervals %q: want positive durations separated by commas", intervals)
		}
		rates = append(rates, sparseRate{d, ns[min(len(rates), len(ns)-1)]})
	}
	return rates, nil
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
	tables := stdout
	if cfg.json {
		tables = io.Discard
	}
	b, err := newBench(cfg, tables, stderr)
	if err != nil {
		return err
	}
	defer b.cleanup()
	stopAbort := context.AfterFunc(ctx, b.abort)
	defer stopAbort()
	if err := b.startLoad(); err != nil {
		return fmt.Errorf("load: %w", err)
	}
	// After the load has started: it keeps the nice value the command
	// was started with, and every child started from now on inherits ours.
	if cfg.nice != nil {
		if err := setNice(*cfg.nice); err != nil {
			return err
		}
	}

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
	if cfg.json {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(&b.fig)
	}
	return b.targets()
}
