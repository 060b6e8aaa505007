package main

// The figures the tools print with -json; only the fields the report
// shows.

// shmbenchFigures are one run of examples/shmbench.
type shmbenchFigures struct {
	Latency []latencyRow  `json:"latency"`
	Stream  []namedValues `json:"stream"` // MB/s per round
	Multi   []namedValues `json:"multi"`  // round trips/s
	Idle    []struct {
		Transport     string  `json:"transport"`
		Conns         int     `json:"conns"`
		ClientCPU     float64 `json:"client_cpu"`
		ServerCPU     float64 `json:"server_cpu"`
		ClientThreads float64 `json:"client_threads"`
		ServerThreads float64 `json:"server_threads"`
	} `json:"idle"`
	Ring []namedValues `json:"ring"` // MB/s per run
}

type latencyRow struct {
	IntervalNs int64   `json:"interval_ns"` // 0: back to back
	Transport  string  `json:"transport"`
	P50Ns      float64 `json:"p50_ns"`
	P99Ns      float64 `json:"p99_ns"`
	P999Ns     float64 `json:"p999_ns"`
}

type namedValues struct {
	Transport string    `json:"transport"`
	Values    []float64 `json:"values"`
}

// demoFigures are one run of examples/redis-latency.
type demoFigures struct {
	Command    string `json:"command"`
	IntervalNs int64  `json:"interval_ns"`
	Rows       []struct {
		Transport string      `json:"transport"`
		Sparse    histFigures `json:"sparse"`
		Dense     histFigures `json:"dense"`
	} `json:"rows"`
	Shm []struct {
		Server      string `json:"server"`
		SharedConns uint64 `json:"shared_conns"`
		Fallbacks   uint64 `json:"fallbacks"`
	} `json:"shm"`
}

// moduleFigures are one run of examples/redis-latency -module-targets.
type moduleFigures struct {
	Rows []struct {
		Measure string      `json:"measure"`
		Socket  histFigures `json:"socket"`
		Shm     histFigures `json:"shm"`
	} `json:"rows"`
}

type histFigures struct {
	N     int64   `json:"n"`
	P50Ns float64 `json:"p50_ns"`
	P99Ns float64 `json:"p99_ns"`
}
