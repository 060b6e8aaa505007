// Command roundtrace times sparse round trips between two processes over
// shmconn and breaks each one into its legs, from stamps both processes
// take at the same points of package conn (see internal/trace). It needs
// a build with the trace points compiled in:
//
//	go run -tags shmconntrace ./examples/roundtrace                       # 1 req/ms, 2000 round trips
//	go run -tags shmconntrace ./examples/roundtrace -interval 10ms -n 300
//	go run -tags shmconntrace ./examples/roundtrace -server-wait adaptive
//
// The command is the client; it re-executes itself as the echo server. A
// round trip is a 64-byte Write and the ReadFull of its echo, the client
// sleeping between round trips as shmbench's sparse rows do. The legs:
//
//	up      the client's bytes published -> the server's Read sees them
//	server  the server's Read sees them -> its echo is published
//	down    the echo published -> the client's Read sees it
//
// and within them, each process's own steps, which compare stamps of one
// process only:
//
//	c-write  the client's Write entered -> its bytes published
//	s-read   the server's Read sees the bytes -> it returns them
//	s-app    the server's Read returned -> its Write entered (the echo loop)
//	s-write  the server's Write entered -> the echo published
//	c-read   the client's Read sees the echo -> it returns it
//
// Steps that take a few times longer at 10 ms than at 1 ms, although no
// shared memory is touched in them (s-app), are the code running cold.
//
// Up and down compare stamps of two processes: they include any offset
// between the two CPUs' clocks (their sum does not). For the slow round
// trips it counts how many had a spinner off its CPU meanwhile (a stretch
// of more than 4 us between two looks of its loop) or a parked call: on a
// small machine those, not the copy or the ring, make the slow ones.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/shmconn/shmconn/conn"
	"github.com/shmconn/shmconn/internal/trace"
)

// The server child's role and settings come in its environment.
const (
	envRole = "ROUNDTRACE_ROLE" // "server" in the child
	envSock = "ROUNDTRACE_SOCK" // the unix socket to listen on
	envWait = "ROUNDTRACE_WAIT" // the server's wait policy
	envOut  = "ROUNDTRACE_OUT"  // where the child writes its stamps, as JSON
)

func main() {
	if os.Getenv(envRole) == "server" {
		if err := serve(); err != nil {
			// Most often the client died (an orderly close is io.EOF):
			// what it would have removed is ours to remove.
			os.RemoveAll(filepath.Dir(os.Getenv(envSock)))
			fmt.Fprintln(os.Stderr, "roundtrace server:", err)
			os.Exit(1)
		}
		return
	}
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

type config struct {
	n, warmup, size int
	interval        time.Duration
	serverWait      conn.WaitPolicy
	clientWait      conn.WaitPolicy
}

// run is the client: it returns the exit code (2 for a build without the
// trace points or bad flags).
func run(args []string, stdout, stderr io.Writer) int {
	var cfg config
	fs := flag.NewFlagSet("roundtrace", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&cfg.n, "n", 2000, "round trips timed")
	fs.IntVar(&cfg.warmup, "warmup", 20, "round trips before timing")
	fs.IntVar(&cfg.size, "size", 64, "request size in bytes")
	fs.DurationVar(&cfg.interval, "interval", time.Millisecond, "time from one request's start to the next")
	fs.TextVar(&cfg.serverWait, "server-wait", conn.WaitSpin, "the server's wait policy (spin or adaptive)")
	fs.TextVar(&cfg.clientWait, "client-wait", conn.WaitAdaptive, "the client's wait policy")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if cfg.n < 2 || cfg.warmup < 0 || cfg.size < 1 || cfg.interval <= 0 {
		fmt.Fprintln(stderr, "roundtrace: -n must be at least 2, -size at least 1, -interval positive")
		return 2
	}
	if !trace.Enabled {
		fmt.Fprintln(stderr, "roundtrace: this binary has no trace points: build or run it with -tags shmconntrace")
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	client, server, err := measure(ctx, cfg)
	if err != nil {
		if ctx.Err() != nil {
			fmt.Fprintln(stderr, "roundtrace: interrupted")
			return 130 // the child and the temp dir are gone
		}
		fmt.Fprintln(stderr, "roundtrace:", err)
		return 1
	}
	if d := client.Dropped + server.Dropped; d > 0 {
		fmt.Fprintf(stderr, "roundtrace: %d stamps past the %d kept per point were dropped: the last round trips are not counted (use a smaller -n)\n", d, trace.Capacity)
	}
	report(stdout, cfg, analyze(client, server))
	return 0
}

// measure runs the server child and the round trips, and returns both
// processes' stamps.
func measure(ctx context.Context, cfg config) (client, server *trace.Log, err error) {
	dir, err := os.MkdirTemp("", "roundtrace")
	if err != nil {
		return nil, nil, err
	}
	defer os.RemoveAll(dir)
	exe, err := os.Executable()
	if err != nil {
		return nil, nil, err
	}
	sock, out := filepath.Join(dir, "s"), filepath.Join(dir, "server.json")
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), envRole+"=server", envSock+"="+sock, envWait+"="+cfg.serverWait.String(), envOut+"="+out)
	cmd.Stderr = os.Stderr
	ready, err := cmd.StdoutPipe()
	if err != nil {
		return nil, nil, err
	}
	// The child ends when this pipe does: when we exit, however we die.
	if _, err := cmd.StdinPipe(); err != nil {
		return nil, nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, nil, err
	}
	exited := false
	defer func() {
		if !exited {
			cmd.Process.Kill()
			cmd.Wait()
		}
	}()
	if _, err := bufio.NewReader(ready).ReadString('\n'); err != nil {
		return nil, nil, fmt.Errorf("the server did not start: %w", err)
	}
	if err := roundTrips(ctx, cfg, sock); err != nil {
		return nil, nil, err
	}
	exited = true
	if err := cmd.Wait(); err != nil {
		return nil, nil, fmt.Errorf("server: %w", err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		return nil, nil, err
	}
	server = new(trace.Log)
	if err := json.Unmarshal(b, server); err != nil {
		return nil, nil, fmt.Errorf("the server's stamps: %w", err)
	}
	return trace.Collect(), server, nil
}

// roundTrips dials the server and makes the warm-up and timed round trips,
// stamping only the timed ones; closing the conn ends the server.
func roundTrips(ctx context.Context, cfg config, sock string) error {
	d := conn.Dialer{Wait: cfg.clientWait}
	nc, err := d.Dial("unix", sock)
	if err != nil {
		return err
	}
	defer nc.Close()
	if _, ok := nc.(*conn.Conn); !ok {
		return fmt.Errorf("dialed %T, not shared memory", nc)
	}
	msg, resp := make([]byte, cfg.size), make([]byte, cfg.size)
	next := time.Now()
	for i := range cfg.warmup + cfg.n {
		if i == cfg.warmup {
			trace.Start()
		}
		time.Sleep(time.Until(next))
		if err := ctx.Err(); err != nil {
			return err
		}
		next = time.Now().Add(cfg.interval)
		if _, err := nc.Write(msg); err != nil {
			return err
		}
		if _, err := io.ReadFull(nc, resp); err != nil {
			return err
		}
	}
	trace.Stop()
	return nil
}

// serve is the child: it echoes one conn until the client closes it, then
// writes its stamps to the file named in its environment.
func serve() error {
	// The parent holds our stdin open while it runs: when it ends, so do
	// we, even while we wait in Accept for a client that never comes.
	go func() {
		io.Copy(io.Discard, os.Stdin)
		os.RemoveAll(filepath.Dir(os.Getenv(envSock))) // the parent could not
		os.Exit(1)
	}()
	var lc conn.ListenConfig
	if err := lc.Wait.UnmarshalText([]byte(os.Getenv(envWait))); err != nil {
		return err
	}
	ln, err := lc.Listen(context.Background(), "unix", os.Getenv(envSock))
	if err != nil {
		return err
	}
	defer ln.Close()
	fmt.Println("ready")
	c, err := ln.Accept()
	if err != nil {
		return err
	}
	trace.Start()
	buf := make([]byte, 64<<10)
	for {
		n, err := c.Read(buf)
		if err == nil {
			_, err = c.Write(buf[:n])
		}
		if err != nil {
			trace.Stop()
			c.Close()
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				return err
			}
			break
		}
	}
	b, err := json.Marshal(trace.Collect())
	if err != nil {
		return err
	}
	return os.WriteFile(os.Getenv(envOut), b, 0o600)
}
