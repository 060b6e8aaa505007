package main

import "time"

// figures are every row of every table of a run, in the order they print:
// what -json writes, for scripts/bench to gather over several runs.
type figures struct {
	Latency []latencyRow    `json:"latency,omitempty"`
	Stream  []throughputRow `json:"stream,omitempty"` // MB/s, one value per round
	Multi   []throughputRow `json:"multi,omitempty"`  // round trips/s, one value
	Idle    []idleRow       `json:"idle,omitempty"`
	Ring    []throughputRow `json:"ring,omitempty"` // MB/s, one value per run
}

// latencyRow is one row of a dense or sparse table.
type latencyRow struct {
	IntervalNs int64   `json:"interval_ns"` // between requests; 0: back to back
	Transport  string  `json:"transport"`
	N          int64   `json:"n"`
	P50Ns      int64   `json:"p50_ns"`
	P99Ns      int64   `json:"p99_ns"`
	P999Ns     int64   `json:"p999_ns"`
	MaxNs      int64   `json:"max_ns"`
	Rate       float64 `json:"rate"` // round trips per second reached
}

// throughputRow is one transport's (or queue's) figures of a throughput
// table.
type throughputRow struct {
	Transport string    `json:"transport"`
	Values    []float64 `json:"values"`
}

// idleRow is one row of the idle table: CPU in percent of one core.
type idleRow struct {
	Transport     string  `json:"transport"`
	Conns         int     `json:"conns"`
	ClientCPU     float64 `json:"client_cpu"`
	ServerCPU     float64 `json:"server_cpu"`
	ClientThreads int     `json:"client_threads"`
	ServerThreads int     `json:"server_threads"`
}

func newLatencyRow(interval time.Duration, l *latency) latencyRow {
	return latencyRow{
		IntervalNs: int64(interval), Transport: l.label, N: l.n,
		P50Ns: int64(l.p50), P99Ns: int64(l.p99), P999Ns: int64(l.p999), MaxNs: int64(l.mx), Rate: l.rate,
	}
}

func newIdleRow(f *idleFigures) idleRow {
	return idleRow{
		Transport: f.label, Conns: f.conns, ClientCPU: f.clientCPU, ServerCPU: f.serverCPU,
		ClientThreads: f.clientThreads, ServerThreads: f.srvThread,
	}
}
