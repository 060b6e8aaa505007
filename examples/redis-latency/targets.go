package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/redis/go-redis/v9"

	"github.com/shmconn/shmconn/conn"
)

// The module's targets, measured with go-redis GETs of a 100-byte value
// against one real redis-server, over its unix socket and over shared
// memory through the module (wait spin), in one run.
const (
	sparseRatio   = 10.0 // one request per ms: the socket's p50 over shm's, at least
	denseRatio    = 5.0  // back to back
	pipelineRatio = 1.5  // a pipeline of 1000 GETs: shm's time over the socket's, at most
	pipelineLen   = 1000
	pipelines     = 20
	loadClients   = "10" // redis-benchmark -c on the socket, for the loaded target
	targetSamples = 3000 // sparse samples per transport unless -samples says otherwise
)

// verdict is one target's outcome and the figures behind it: what was
// measured over the socket and over the module (nil when it could not be).
type verdict struct {
	pass      bool
	text      string
	measure   string
	sock, shm *hdrhistogram.Histogram
}

// runModuleTargets measures the targets and prints a PASS or FAIL line for
// each (with -json, the figures instead); failed is true when any fails.
func runModuleTargets(ctx context.Context, cfg config) (failed bool, err error) {
	dir, err := os.MkdirTemp("", "redis-latency-")
	if err != nil {
		return false, err
	}
	defer os.RemoveAll(dir)
	so, err := buildModule(ctx, dir)
	if err != nil {
		return false, err
	}
	r, err := startRealRedis(ctx, dir, so, "spin")
	if err != nil {
		return false, err
	}
	defer r.child.stop()
	if !cfg.json {
		fmt.Printf("module targets: go-redis GET of a 100-byte value, one redis-server beside the module (wait spin); %s\n", machine())
	}
	verdicts, err := measureTargets(ctx, r, cfg)
	if cfg.json {
		if err != nil {
			return false, err
		}
		return false, writeJSON(os.Stdout, newModuleFigures(verdicts))
	}
	for _, v := range verdicts {
		status := "PASS"
		if !v.pass {
			status, failed = "FAIL", true
		}
		fmt.Printf("%s  %s\n", status, v.text)
	}
	return failed, err
}

// measureTargets measures each target in turn.
func measureTargets(ctx context.Context, r *realRedis, cfg config) ([]verdict, error) {
	cfg.cmd, cfg.value, cfg.interval = "get", strings.Repeat("v", 100), time.Millisecond
	bar := newProgress(io.Discard, false, 0)
	d := &conn.Dialer{}
	sock := &redis.Options{Network: "unix", Addr: r.sock, PoolSize: 1, Protocol: 2}
	shm := &redis.Options{Network: "unix", Addr: r.shm, PoolSize: 1, Protocol: 2, Dialer: d.DialContext}
	var out []verdict
	s, err := measure(ctx, "unix socket", sock, cfg, bar)
	if err != nil {
		return out, err
	}
	m, err := measure(ctx, "shared memory", shm, cfg, bar)
	if err != nil {
		return out, err
	}
	out = append(out, sparseVerdict(s.sparse, m.sparse), denseVerdict(s.dense, m.dense))
	v, err := pipelineVerdict(ctx, sock, shm)
	if err != nil {
		return out, err
	}
	out = append(out, v)
	v, err = loadedVerdict(ctx, r, sock, shm, cfg, bar)
	return append(out, v), err
}

func p50(h *hdrhistogram.Histogram) float64 { return us(h.ValueAtQuantile(50)) }
func p99(h *hdrhistogram.Histogram) float64 { return us(h.ValueAtQuantile(99)) }

func sparseVerdict(sock, shm *hdrhistogram.Histogram) verdict {
	ratio := p50(sock) / p50(shm)
	return verdict{ratio >= sparseRatio && p99(shm) <= p99(sock), fmt.Sprintf(
		"one request per ms: p50 %.0fx lower (socket %.1f us, shm %.1f us: %.1fx), p99 no higher (socket %.1f us, shm %.1f us)",
		sparseRatio, p50(sock), p50(shm), ratio, p99(sock), p99(shm)), "GET, one per ms", sock, shm}
}

func denseVerdict(sock, shm *hdrhistogram.Histogram) verdict {
	ratio := p50(sock) / p50(shm)
	return verdict{ratio >= denseRatio, fmt.Sprintf("back to back: p50 %.0fx lower (socket %.1f us, shm %.1f us: %.1fx)",
		denseRatio, p50(sock), p50(shm), ratio), "GET, back to back", sock, shm}
}

// pipelineVerdict times pipelines of 1000 GETs over each transport and
// compares their medians.
func pipelineVerdict(ctx context.Context, sock, shm *redis.Options) (verdict, error) {
	s, err := pipelineTimes(ctx, sock)
	if err != nil {
		return verdict{}, err
	}
	m, err := pipelineTimes(ctx, shm)
	if err != nil {
		return verdict{}, err
	}
	ratio := p50(m) / p50(s)
	return verdict{ratio <= pipelineRatio, fmt.Sprintf("a pipeline of %d GETs: no slower than %.1fx the socket (median of %d: socket %.0f us, shm %.0f us: %.2fx)",
		pipelineLen, pipelineRatio, pipelines, p50(s), p50(m), ratio), fmt.Sprintf("pipeline of %d GETs", pipelineLen), s, m}, nil
}

func pipelineTimes(ctx context.Context, opts *redis.Options) (*hdrhistogram.Histogram, error) {
	rdb := redis.NewClient(opts)
	defer rdb.Close()
	h := newHist()
	for i := range pipelines + 2 { // two unrecorded, to warm up
		p := rdb.Pipeline()
		for range pipelineLen {
			p.Get(ctx, "shmconn:latency")
		}
		start := time.Now()
		if _, err := p.Exec(ctx); err != nil {
			return nil, err
		}
		if i >= 2 {
			h.RecordValue(time.Since(start).Nanoseconds())
		}
	}
	return h, nil
}

// loadedVerdict compares sparse GETs over each transport while
// redis-benchmark loads the socket with GETs from 10 clients.
func loadedVerdict(ctx context.Context, r *realRedis, sock, shm *redis.Options, cfg config, bar *progress) (verdict, error) {
	const what = "with redis-benchmark -c " + loadClients + " on the socket: shm GET p50 no higher than the socket's"
	bench, err := exec.LookPath("redis-benchmark")
	if err != nil {
		return verdict{pass: false, text: what + ": redis-benchmark is not installed"}, nil
	}
	load := exec.Command(bench, "-s", r.sock, "-c", loadClients, "-t", "get", "-d", "100", "-l", "-q")
	dieWithParent(load)
	if err := load.Start(); err != nil {
		return verdict{}, err
	}
	defer func() { load.Process.Kill(); load.Wait() }()
	cfg.dense = 0
	s, err := measure(ctx, "unix socket", sock, cfg, bar)
	if err != nil {
		return verdict{}, err
	}
	m, err := measure(ctx, "shared memory", shm, cfg, bar)
	if err != nil {
		return verdict{}, err
	}
	return verdict{p50(m.sparse) <= p50(s.sparse), fmt.Sprintf("%s (socket %.1f us, shm %.1f us)", what, p50(s.sparse), p50(m.sparse)),
		"GET, one per ms, redis-benchmark -c " + loadClients + " on the socket", s.sparse, m.sparse}, nil
}
