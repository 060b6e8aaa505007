// Command redis-latency is shmconn's main demonstration, after the one
// redis-module-shm made: it starts the example Redis server as a child
// process and measures PING round trips from a go-redis client over TCP,
// over a unix socket and over shared memory, sparse (one request every
// 10 ms, like redis-cli --latency) and back-to-back. It prints a table of
// p50, p99 and max, and writes a bar chart of p50 and p99.
//
//	go run ./examples/redis-latency [-samples 300] [-png path] [-load N]
//
// The chart goes to the temp directory unless -png names a path; the
// README's chart is made with -png docs/latency_barchart.png. -load N runs
// N busy processes (one per CPU is the shared-host case) while measuring.
//
// If a real redis-server is on the PATH it is measured too, over TCP, its
// unix socket and shared memory through examples/redis-module, which the
// demo builds into its temp directory (cgo: a C compiler; without one the
// real server is measured over its sockets only). Ctrl-C stops the run and
// leaves no process, no socket and no shared-memory file behind.
//
//	go run ./examples/redis-latency -module-targets
//
// checks the module's targets instead, against one real redis-server with
// the module (wait spin) beside its unix socket: it prints each PASS or
// FAIL with its figures and exits 1 if any fails.
//
// -json prints the figures as one JSON object on stdout instead of the
// table or the verdicts (no target is judged then), for scripts/bench.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/redis/go-redis/v9"

	"github.com/shmconn/shmconn/conn"
)

func main() {
	var (
		samples = flag.Int("samples", 300, "sparse samples per transport (one every -interval)")
		dense   = flag.Int("dense", 20000, "back-to-back round trips per transport")
		every   = flag.Duration("interval", 10*time.Millisecond, "time between sparse requests")
		pngPath = flag.String("png", filepath.Join(os.TempDir(), "shmconn-latency.png"), "where to write the bar chart (empty: none)")
		wait    = flag.String("wait", "spin", "server wait policy: spin or adaptive")
		server  = flag.String("server", "", "path of a built examples/shm-redis-server (default: build it)")
		command = flag.String("cmd", "ping", "command to time: ping, or get (of a small key set first)")
		load    = flag.Int("load", 0, "busy `processes` to run while measuring, e.g. $(nproc) for one per CPU")
		targets = flag.Bool("module-targets", false, "check the Redis module's targets against a real redis-server instead; exit 1 if any fails")
		asJSON  = flag.Bool("json", false, "print the figures as JSON on stdout instead of the table or the verdicts; judge no target")
	)
	flag.Parse()
	if os.Getenv(busyEnv) == "1" {
		busyLoop()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cfg := config{samples: *samples, dense: *dense, interval: *every, png: *pngPath, wait: *wait, server: *server, cmd: *command, load: *load, json: *asJSON}
	var err error
	failed := false
	if *targets {
		if !flagSet("samples") {
			cfg.samples = targetSamples
		}
		failed, err = runModuleTargets(ctx, cfg)
	} else {
		err = run(ctx, cfg)
	}
	if errors.Is(err, context.Canceled) {
		fmt.Fprintln(os.Stderr, "\ninterrupted; cleaned up")
		os.Exit(130)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "redis-latency:", err)
		os.Exit(1)
	}
	if failed {
		os.Exit(1)
	}
}

// flagSet says whether the command line set the named flag.
func flagSet(name string) bool {
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

type config struct {
	samples, dense int
	interval       time.Duration
	png, wait      string
	server         string
	cmd            string
	value          string // what GET reads; "" is "bar"
	load           int
	json           bool // figures as JSON on stdout, no table, no verdicts
}

// result is one transport's measurements, in nanoseconds.
type result struct {
	name          string
	sparse, dense *hdrhistogram.Histogram
}

func run(ctx context.Context, cfg config) error {
	if _, err := conn.ParseWaitPolicy(cfg.wait); err != nil {
		return err
	}
	if cfg.cmd != "ping" && cfg.cmd != "get" {
		return fmt.Errorf("-cmd %q: want ping or get", cfg.cmd)
	}
	if cfg.load < 0 {
		return fmt.Errorf("-load %d: must not be negative", cfg.load)
	}
	dir, err := os.MkdirTemp("", "redis-latency-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	bin := cfg.server
	if bin == "" {
		bin = filepath.Join(dir, "redis-server")
		fmt.Fprintln(os.Stderr, "building examples/shm-redis-server ...")
		build := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/shmconn/shmconn/examples/shm-redis-server")
		build.Stderr = os.Stderr
		if err := build.Run(); err != nil {
			return fmt.Errorf("building the example server: %w", err)
		}
	}
	port, err := freePort()
	if err != nil {
		return err
	}
	tcpAddr := "127.0.0.1:" + strconv.Itoa(port)
	sock := filepath.Join(dir, "redis.sock")
	srv, err := startChild(ctx, bin, "-addr", tcpAddr, "-unix", sock, "-wait", cfg.wait)
	if err != nil {
		return err
	}
	defer srv.stop()
	if err := waitReady(ctx, "unix", sock); err != nil {
		return fmt.Errorf("example server: %w", err)
	}

	shm := &conn.Dialer{Counters: new(conn.Counters)}
	targets := []target{
		{"tcp", &redis.Options{Network: "tcp", Addr: tcpAddr}},
		{"unix socket", &redis.Options{Network: "unix", Addr: sock}},
		{"shared memory", &redis.Options{Network: "unix", Addr: sock, Dialer: shm.DialContext}},
	}
	realShm := &conn.Dialer{Counters: new(conn.Counters)}
	if r := startRealIfInstalled(ctx, dir, cfg.wait); r != nil {
		defer r.child.stop()
		targets = append(targets, r.options(realShm)...)
	}

	if cfg.load > 0 {
		stopLoad, err := startLoad(cfg.load)
		if err != nil {
			return err
		}
		defer stopLoad()
	}
	perTarget := time.Duration(sparseWarmUp(cfg)+cfg.samples)*cfg.interval + time.Duration(cfg.dense)*denseGuess
	bar := newProgress(os.Stderr, isTerminal(os.Stderr), time.Duration(len(targets))*perTarget)
	var results []result
	for _, tg := range targets {
		tg.opts.PoolSize = 1
		tg.opts.Protocol = 2
		res, err := measure(ctx, tg.name, tg.opts, cfg, bar)
		if err != nil {
			return fmt.Errorf("%s: %w", tg.name, err)
		}
		results = append(results, res)
	}
	bar.finish()
	stats := map[string]conn.Stats{"example server": shm.Stats()}
	if len(targets) == 6 {
		stats["real redis-server"] = realShm.Stats()
	}
	return report(cfg, results, stats)
}

// report prints the table and each shared-memory client's counters (or,
// with -json, the figures) and draws the chart.
func report(cfg config, results []result, stats map[string]conn.Stats) error {
	if cfg.json {
		if err := writeJSON(os.Stdout, newDemoFigures(cfg, results, stats)); err != nil {
			return err
		}
	} else {
		printTable(os.Stdout, results, cfg)
		for _, server := range []string{"example server", "real redis-server"} {
			if st, ok := stats[server]; ok {
				printDialerStats(os.Stdout, server, st)
			}
		}
	}
	if cfg.png != "" {
		info := chartInfo{
			cmd:     strings.ToUpper(cfg.cmd),
			sparse:  fmt.Sprintf("1 request / %v", cfg.interval),
			machine: machine(),
			setup:   setup(cfg),
		}
		if err := drawChart(cfg.png, results, info); err != nil {
			return err
		}
		w := os.Stdout
		if cfg.json {
			w = os.Stderr // stdout holds the JSON alone
		}
		fmt.Fprintf(w, "\nchart written to %s\n", cfg.png)
	}
	return nil
}

// setup says how the example server and the module waited and what else ran.
func setup(cfg config) string {
	s := "servers -wait " + cfg.wait
	if cfg.wait == "spin" {
		s += " (spins a core while shm clients are connected)"
	}
	if cfg.load > 0 {
		s += fmt.Sprintf("; %d busy processes", cfg.load)
	} else {
		s += "; no added load"
	}
	return s
}

// sparseWarmUp is the number of unrecorded sparse requests per transport.
func sparseWarmUp(cfg config) int { return min(100, max(20, cfg.samples/20)) }

func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

func measure(ctx context.Context, name string, opts *redis.Options, cfg config, bar *progress) (result, error) {
	rdb := redis.NewClient(opts)
	defer rdb.Close()
	res := result{name: name, sparse: newHist(), dense: newHist()}
	do := func() error { return rdb.Ping(ctx).Err() }
	if cfg.cmd == "get" {
		val := cfg.value
		if val == "" {
			val = "bar"
		}
		if err := rdb.Set(ctx, "shmconn:latency", val, 0).Err(); err != nil {
			return res, err
		}
		do = func() error { return rdb.Get(ctx, "shmconn:latency").Err() }
	}
	// Warm up: the first requests pay for dialing and page faults, and the
	// first sparse ones for waking whatever the kernel and the CPU let go
	// idle; a few of each go unrecorded.
	for range 100 {
		if err := do(); err != nil {
			return res, err
		}
	}
	bar.phase(name+" sparse", sparseWarmUp(cfg)+cfg.samples, cfg.interval)
	for range sparseWarmUp(cfg) {
		bar.step(cfg.interval)
		if err := do(); err != nil {
			return res, err
		}
		select {
		case <-ctx.Done():
			return res, ctx.Err()
		case <-time.After(cfg.interval):
		}
	}
	for i := range cfg.samples {
		bar.step(cfg.interval)
		next := time.Now().Add(cfg.interval)
		start := time.Now()
		if err := do(); err != nil {
			return res, err
		}
		res.sparse.RecordValue(time.Since(start).Nanoseconds())
		if i < cfg.samples-1 {
			select {
			case <-ctx.Done():
				return res, ctx.Err()
			case <-time.After(time.Until(next)):
			}
		}
	}
	bar.phase(name+" back-to-back", cfg.dense, 0)
	for i := range cfg.dense {
		if i%1000 == 0 && ctx.Err() != nil {
			return res, ctx.Err()
		}
		bar.step(denseGuess)
		start := time.Now()
		if err := do(); err != nil {
			return res, err
		}
		res.dense.RecordValue(time.Since(start).Nanoseconds())
	}
	return res, nil
}

func newHist() *hdrhistogram.Histogram { return hdrhistogram.New(1, int64(10*time.Second), 3) }

func us(ns int64) float64 { return float64(ns) / 1e3 }

func printTable(w *os.File, results []result, cfg config) {
	fmt.Fprintf(w, "\n%s round trips through go-redis, %s\n", strings.ToUpper(cfg.cmd), machine())
	fmt.Fprintf(w, "sparse: one request every %v (%d samples); back-to-back: %d requests; %s\n\n", cfg.interval, cfg.samples, cfg.dense, setup(cfg))
	fmt.Fprintf(w, "%-32s %12s %12s %12s %14s %14s\n", "transport", "sparse p50", "sparse p99", "sparse max", "b2b p50", "b2b p99")
	for _, r := range results {
		fmt.Fprintf(w, "%-32s %9.1f us %9.1f us %9.1f us %11.1f us %11.1f us\n", r.name,
			us(r.sparse.ValueAtQuantile(50)), us(r.sparse.ValueAtQuantile(99)), us(r.sparse.Max()),
			us(r.dense.ValueAtQuantile(50)), us(r.dense.ValueAtQuantile(99)))
	}
	fmt.Fprintln(w)
	// Each server's shared memory against its own sockets.
	for i := 0; i+2 < len(results); i += 3 {
		shm := results[i+2]
		for _, other := range results[i : i+2] {
			fmt.Fprintf(w, "%s vs %s, p50: %.1fx lower sparse, %.1fx lower back-to-back\n", shm.name, other.name,
				float64(other.sparse.ValueAtQuantile(50))/float64(shm.sparse.ValueAtQuantile(50)),
				float64(other.dense.ValueAtQuantile(50))/float64(shm.dense.ValueAtQuantile(50)))
		}
	}
}

// printDialerStats shows whether the shared-memory client really got
// shared memory, and how often it had to sleep and be woken.
func printDialerStats(w *os.File, server string, st conn.Stats) {
	fb := st.Fallbacks.NoSegment + st.Fallbacks.OpenFailed
	fmt.Fprintf(w, "\n%s, shared-memory client: %d conns over shared memory, %d fell back to the socket; %d KiB written, %d KiB read; %d parks, %d wake-ups sent, %d received\n",
		server, st.SharedConns, fb, st.BytesWritten>>10, st.BytesRead>>10, st.Parks, st.WakeupsSent, st.WakeupsReceived)
}

// machine describes where the figures came from.
func machine() string {
	model := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
	}
	return fmt.Sprintf("%s, %d CPUs, %s", model, runtime.NumCPU(), runtime.Version())
}

// child is a server process we started; stop ends it and waits.
type child struct{ cmd *exec.Cmd }

func startChild(ctx context.Context, bin string, args ...string) (*child, error) {
	cmd := exec.Command(bin, args...)
	cmd.Stdout = nil
	cmd.Stderr = os.Stderr
	dieWithParent(cmd) // if we die without cleaning up, the server goes too
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	return &child{cmd}, nil
}

func (c *child) stop() {
	c.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		c.cmd.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		c.cmd.Process.Kill()
		<-done
	}
}

func waitReady(ctx context.Context, network, addr string) error {
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.Dial(network, addr)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not listening on %s after 20s: %w", addr, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
