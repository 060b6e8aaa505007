// Command shm-redis-server is a small Redis-protocol server whose clients may
// talk to it over shared memory.
//
// Each address it listens on serves both kinds of client: one that opens
// with the shmconn handshake (shm-redis-cli --shm from this repository, or
// go-redis with a conn.Dialer) gets its bytes carried through shared
// memory; any other (the real redis-cli and redis-benchmark) is served as
// an ordinary socket client.
//
//	shm-redis-server [-addr host:port] [-unix path] [-wait spin|adaptive] [-proto-max-bulk-len bytes]
//
// It listens on TCP only when asked: on -addr if given, else on
// 127.0.0.1:6380 only when -unix is not given either.
//
// It keeps its data in memory only and supports the commands
// redis-benchmark's default tests send, the common key, string, list,
// set, hash and sorted-set commands (see commands.go), Pub/Sub, and
// transactions (MULTI, EXEC, DISCARD, WATCH; see multi.go). SIGINT or
// SIGTERM stop it cleanly.
//
// Requests have Redis's limits: at most 1,048,576 elements (Redis 6's
// limit; Redis 7 allows 2^31-1), bulk strings of at most
// -proto-max-bulk-len bytes (512 MiB), inline requests of at most 64 KiB,
// and at most 1 GiB in all (client-query-buffer-limit). A client that
// breaks one, or sends a length that is not a number, gets Redis's
// protocol error ("-ERR Protocol error: invalid bulk length", say) and is
// disconnected; one past 1 GiB is disconnected without a reply. Each
// request is checked before redcon, the protocol parser, sees it. A
// Pub/Sub subscriber is sent its messages from a queue of its own, so
// that no publisher waits for it, and is dropped when the queue passes
// Redis's default limits for such clients: 32 MiB, or 8 MiB for a minute.
// Other clients' replies are not limited.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/shmconn/shmconn/conn"
)

func main() {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	os.Exit(run(os.Args[1:], sigs, os.Stdout, os.Stderr))
}

// shutdownTimeout bounds the wait for client handlers at exit.
const shutdownTimeout = 2 * time.Second

// run serves until a signal arrives on sigs or a listener fails, and
// returns the exit code.
func run(args []string, sigs <-chan os.Signal, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("shm-redis-server", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", defaultAddr, "TCP `host:port` to listen on; port 0 picks a free port; without -addr, -unix turns TCP off")
	unixPath := fs.String("unix", "", "unix socket `path` to listen on")
	waitName := fs.String("wait", "spin", "how shared-memory clients wait: spin (lowest latency, one busy core) or adaptive")
	maxBulkLen := fs.Int64("proto-max-bulk-len", defaultMaxBulkLen, "the longest bulk string a request may carry, in `bytes`, from 1 MiB to 1 GiB")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0 // usage asked for, and shown
		}
		return 2
	}
	if *unixPath != "" && !flagSet(fs, "addr") {
		*addr = "" // TCP only when asked
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "redis-server: unexpected arguments %q\n", fs.Args())
		return 2
	}
	if *maxBulkLen < 1<<20 || *maxBulkLen > maxRequestLen {
		fmt.Fprintf(stderr, "redis-server: -proto-max-bulk-len %d is not between 1 MiB and 1 GiB\n", *maxBulkLen)
		return 2
	}
	wait, err := conn.ParseWaitPolicy(*waitName)
	if err != nil {
		fmt.Fprintln(stderr, "redis-server:", err)
		return 2
	}
	if *addr == "" && *unixPath == "" {
		fmt.Fprintln(stderr, "redis-server: nothing to listen on: give -addr or -unix")
		return 2
	}

	lc := conn.ListenConfig{
		Wait:        wait,
		AcceptPlain: true,
		OnHandshakeError: func(remote net.Addr, err error) {
			if !errors.Is(err, io.EOF) { // a probe that connected and left
				fmt.Fprintf(stderr, "redis-server: client %v: %v\n", remote, err)
			}
		},
	}
	// Closing a listener removes the socket file it created; nothing else
	// is removed here, so a failed start (the path is a regular file, or
	// another server's live socket) leaves the path as it found it.
	var lns []net.Listener
	closeAll := func() {
		for _, ln := range lns {
			ln.Close()
		}
	}
	if *addr != "" {
		ln, err := lc.Listen(context.Background(), "tcp", *addr)
		if err != nil {
			fmt.Fprintln(stderr, "redis-server:", err)
			return 1
		}
		lns = append(lns, ln)
	}
	if *unixPath != "" {
		ln, err := listenUnix(&lc, *unixPath)
		if err != nil {
			closeAll()
			fmt.Fprintln(stderr, "redis-server:", err)
			return 1
		}
		lns = append(lns, ln)
	}

	srv := NewServer(wait)
	srv.maxBulkLen = *maxBulkLen
	errc := make(chan error, len(lns))
	for _, ln := range lns {
		fmt.Fprintf(stdout, "listening on %s %s (RESP and shmconn clients, wait=%v)\n", ln.Addr().Network(), ln.Addr(), wait)
		go func() { errc <- srv.Serve(ln) }()
	}
	fmt.Fprintln(stdout, "Ready to accept connections")

	code, serving := 0, len(lns)
	select {
	case sig := <-sigs:
		fmt.Fprintf(stdout, "received %v, shutting down\n", sig)
	case err := <-errc:
		serving--
		fmt.Fprintln(stderr, "redis-server: serving stopped:", err)
		code = 1
	}
	closeAll()
	for range serving {
		<-errc // Serve has closed its clients' conns
	}
	srv.Close(shutdownTimeout)
	return code
}

// defaultAddr is where the server listens when given neither -addr nor
// -unix: beside a real Redis on its default port 6379.
const defaultAddr = "127.0.0.1:6380"

// flagSet reports whether the command line set the flag name.
func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// listenUnix listens on a unix socket at path, first removing a socket
// file left there by a server that is gone (as Redis does), but never one
// that still answers.
func listenUnix(lc *conn.ListenConfig, path string) (net.Listener, error) {
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode().Type() != os.ModeSocket {
			return nil, fmt.Errorf("%s exists and is not a socket", path)
		}
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("%s: another server is listening there", path)
		}
		os.Remove(path)
	}
	return lc.Listen(context.Background(), "unix", path)
}
