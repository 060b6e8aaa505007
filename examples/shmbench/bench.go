package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/shmconn/shmconn/conn"
	"github.com/shmconn/shmconn/segment"
)

// bench is one run: its settings, the processes and conns it has open,
// and the figures the targets are judged on.
type bench struct {
	cfg    config
	out    io.Writer
	stderr io.Writer
	dir    string // unix socket paths

	mu       sync.Mutex
	aborted  bool
	children map[*child]struct{}
	conns    map[net.Conn]struct{}
	seq      int

	res results
	fig figures // every row, for -json

	cFloorBin string // the C floor, compiled on first use; guarded by mu
	cFloorErr error  // why it is not there
}

// results are the figures the targets compare; a missing entry or a nil
// or zero field was not measured.
type results struct {
	latency          map[sample]*latency
	stream           map[transport]float64 // MB/s, the median round
	multiShm         float64               // round trips/s
	multiUnix        float64
	idlePair         *idleFigures
	idleMany         *idleFigures
	ringMBs, chanMBs float64
}

// sample names a latency row: the transport, and the interval between
// requests (0: back to back).
type sample struct {
	interval time.Duration
	t        transport
}

func newBench(cfg config, out, stderr io.Writer) (*bench, error) {
	dir, err := os.MkdirTemp("", "shmbench-")
	if err != nil {
		return nil, err
	}
	return &bench{
		cfg: cfg, out: out, stderr: &lockedWriter{w: stderr}, dir: dir,
		children: make(map[*child]struct{}),
		conns:    make(map[net.Conn]struct{}),
		res:      results{latency: make(map[sample]*latency), stream: make(map[transport]float64)},
	}, nil
}

// lockedWriter serializes writes: several children share the command's
// stderr, each copied by a goroutine of os/exec when it is not a file.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// abort is called when the run is cancelled: it closes every conn and
// tells every child to exit, which unblocks whatever is measuring.
func (b *bench) abort() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.aborted = true
	for c := range b.conns {
		c.Close()
	}
	for ch := range b.children {
		ch.stdin.Close()
	}
}

// cleanup stops and reaps the children left, and removes what the run
// put on disk. Segment files are unlinked as soon as both ends have mapped
// them, so only a child killed in the middle of a handshake can leave one;
// RemoveStale removes those of dead processes.
func (b *bench) cleanup() {
	b.mu.Lock()
	children := make([]*child, 0, len(b.children))
	for ch := range b.children {
		children = append(children, ch)
	}
	b.mu.Unlock()
	for _, ch := range children {
		b.stopChild(ch)
	}
	os.RemoveAll(b.dir)
	segment.RemoveStale(0) // our children are dead: their files are stale whatever their age
}

func (b *bench) logf(format string, args ...any) {
	if b.cfg.verbose {
		fmt.Fprintf(b.stderr, "shmbench: "+format+"\n", args...)
	}
}

// transport is one row of a comparison: a network ("floor", "shm",
// "unix" or "tcp"); for shm the wait policy of the server process (the
// client's is the -wait flag's); and the idle conns held open to the
// server besides the measured one.
type transport struct {
	network string
	wait    conn.WaitPolicy
	idle    int
}

var (
	floorT = transport{network: floorNetwork}
	unixT  = transport{network: "unix"}
	tcpT   = transport{network: "tcp"}
)

func shmT(server conn.WaitPolicy, idle int) transport {
	return transport{network: "shm", wait: server, idle: idle}
}

// label names the transport for a table, with the client's policy when it
// differs from the server's.
func (t transport) label(client conn.WaitPolicy) string {
	l := t.network
	switch {
	case t.network != "shm":
	case t.wait == client:
		l = "shm " + t.wait.String()
	default:
		l = fmt.Sprintf("shm server %s, client %s", t.wait, client)
	}
	if t.idle > 0 {
		l += fmt.Sprintf(", +%d idle conns", t.idle)
	}
	return l
}

func (t transport) env(addr string, ringSize int) []string {
	return []string{
		envNet + "=" + t.network,
		envWait + "=" + t.wait.String(),
		envAddr + "=" + addr,
		envRing + "=" + strconv.Itoa(ringSize),
	}
}

// startChild starts a child and registers it for abort and cleanup.
func (b *bench) startChild(name string, env []string, files ...*os.File) (*child, error) {
	b.mu.Lock()
	if b.aborted {
		b.mu.Unlock()
		return nil, context.Canceled
	}
	b.mu.Unlock()
	ch, err := startChild(name, env, files, b.stderr)
	if err != nil {
		return nil, err
	}
	b.mu.Lock()
	b.children[ch] = struct{}{}
	aborted := b.aborted
	b.mu.Unlock()
	b.logf("started %s, pid %d, at %s", name, ch.pid(), ch.addr)
	if aborted {
		b.stopChild(ch)
		return nil, context.Canceled
	}
	return ch, nil
}

func (b *bench) stopChild(ch *child) error {
	err := ch.stop()
	b.mu.Lock()
	delete(b.children, ch)
	b.mu.Unlock()
	b.logf("stopped %s, pid %d: %v", ch.name, ch.pid(), err)
	return err
}

// startServer starts a server child for t.
func (b *bench) startServer(t transport) (*child, error) {
	b.mu.Lock()
	b.seq++
	addr := filepath.Join(b.dir, fmt.Sprintf("s%d.sock", b.seq))
	b.mu.Unlock()
	if t.network == "tcp" {
		addr = "127.0.0.1:0"
	}
	return b.startChild("server "+t.label(t.wait), append(t.env(addr, b.cfg.ringSize), envRole+"=server"))
}

// withServer runs f against a fresh server child for t, then stops the
// child.
func (b *bench) withServer(t transport, f func(*child) error) error {
	srv, err := b.startServer(t)
	if err != nil {
		return err
	}
	return b.thenStop(srv, func() error { return f(srv) })
}

// thenStop runs f, then stops ch, and returns the first error.
func (b *bench) thenStop(ch *child, f func() error) error {
	err := f()
	if serr := b.stopChild(ch); err == nil {
		err = serr
	}
	return err
}

// dial connects to srv with the client's wait policy and registers the
// conn for abort. The caller closes it with b.closeConn.
func (b *bench) dial(ctx context.Context, t transport, srv *child) (net.Conn, error) {
	d := dialer{network: t.network, addr: srv.addr, shm: conn.Dialer{Wait: b.cfg.wait, RingSize: b.cfg.ringSize, NoFallback: true}}
	c, err := d.dial(ctx)
	if err != nil {
		return nil, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.aborted {
		c.Close()
		return nil, context.Canceled
	}
	b.conns[c] = struct{}{}
	return c, nil
}

func (b *bench) closeConn(c net.Conn) {
	b.mu.Lock()
	delete(b.conns, c)
	b.mu.Unlock()
	c.Close()
}

// dialEcho dials n conns to srv and asks the server to echo on each. It
// returns the conns it opened even on failure; the caller closes them
// with b.closeConns.
func (b *bench) dialEcho(ctx context.Context, t transport, srv *child, n int) ([]net.Conn, error) {
	conns := make([]net.Conn, 0, n)
	for range n {
		c, err := b.dial(ctx, t, srv)
		if err != nil {
			return conns, err
		}
		conns = append(conns, c)
		if _, err := c.Write([]byte{modeEcho}); err != nil {
			return conns, err
		}
	}
	return conns, nil
}

func (b *bench) closeConns(conns []net.Conn) {
	for _, c := range conns {
		b.closeConn(c)
	}
}

// sleep waits for d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// header describes the machine and the settings.
func (b *bench) header() {
	model := "unknown"
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.Lines(string(data)) {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
	}
	fmt.Fprintf(b.out, "shmbench: %d CPUs (%s), GOMAXPROCS %d, %s %s/%s\n",
		runtime.NumCPU(), model, runtime.GOMAXPROCS(0), runtime.Version(), runtime.GOOS, runtime.GOARCH)
	ring := "default"
	if b.cfg.ringSize > 0 {
		ring = strconv.Itoa(b.cfg.ringSize)
	}
	fmt.Fprintf(b.out, "shm conns: wait %s, ring size %s; every figure below is two processes unless it says otherwise\n", b.cfg.wait, ring)
	fmt.Fprintf(b.out, "load: %s\n", b.loadDescription())
	if b.cfg.nice != nil {
		fmt.Fprintf(b.out, "priority: nice %d for this process and every server and client it starts; the load keeps the command's own\n", *b.cfg.nice)
	}
}

// loadDescription says what else runs on the host during the run.
func (b *bench) loadDescription() string {
	switch n := b.cfg.load; {
	case n == 0:
		return "none started by shmbench (an idle host's targets apply)"
	case n == runtime.NumCPU():
		return fmt.Sprintf("%d busy processes, one per CPU, for the whole run (a contended host's targets apply)", n)
	default:
		return fmt.Sprintf("%d busy processes for the whole run (a contended host's targets apply)", n)
	}
}

// section prints a section's title.
func (b *bench) section(title, about string) {
	fmt.Fprintf(b.out, "\n== %s ==\n%s\n", title, about)
}

// table returns a writer for aligned columns; Flush prints it.
func (b *bench) table() *tabwriter.Writer {
	return tabwriter.NewWriter(b.out, 0, 8, 2, ' ', 0)
}

// times formats v as a multiple of base: "0.08x".
func times(v, base float64) string {
	if base == 0 {
		return "-"
	}
	r := v / base
	if r < 0.095 {
		return fmt.Sprintf("%.3fx", r)
	}
	return fmt.Sprintf("%.2fx", r)
}

func us(d time.Duration) string { return fmt.Sprintf("%.2f us", float64(d)/float64(time.Microsecond)) }
