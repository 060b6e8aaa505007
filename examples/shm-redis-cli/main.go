// Command shm-redis-cli is a small redis-cli that can talk to a server over
// shared memory.
//
//	shm-redis-cli [-h host] [-p port] [-s socket] [--shm] [-n db] [-3] [-x] [cmd [arg ...]]
//	shm-redis-cli [--shm] --latency | --latency-history [-i seconds] [--latency-sample-rate ms]
//	shm-redis-cli --pipe < commands.resp
//
// With a command it runs it and prints the reply; without one it reads
// commands from a prompt (or from standard input). Replies print as
// redis-cli prints them: quoted strings, "(integer) n", "(nil)", numbered
// arrays on a terminal, bare values otherwise (--raw and --no-raw force
// either); INFO and CLIENT LIST print verbatim either way. -x takes the
// last argument from standard input; -3 speaks RESP3 (HELLO 3 first);
// --pipe sends standard input as raw protocol and counts the replies.
// When the server goes away the prompt stays, shows "not connected>" and
// reconnects on the next command, as redis-cli's does. At the prompt,
// help and clear are answered without the server (help on a command
// comes from the server's COMMAND DOCS). SUBSCRIBE and PSUBSCRIBE print
// "Reading messages..." (unless the output is raw) and then every message
// as it comes, until Ctrl-C, as the real redis-cli does. -h without a
// host, like --help, prints the usage.
//
// --shm connects through a shmconn Dialer, so the bytes travel through
// shared memory; the server must listen with a shmconn Listener, as
// examples/shm-redis-server does and a redis-server with
// examples/redis-module loaded does on the module's socket (-s). Without
// --shm it is an ordinary TCP or unix socket client, usable against any
// Redis.
//
// --latency sends PING every 10 ms (--latency-sample-rate, 0 for back to
// back) and shows min, max and average round trips in milliseconds, plus
// p50 and p99, as the redis-module-shm fork of redis-cli did; Ctrl-C stops
// it. Without a terminal (or with --raw) it prints redis-cli's own line,
// "min max avg samples" in milliseconds, after -i seconds (default 1).
// --latency-history starts a new line every 15 s (-i).
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/shmconn/shmconn/conn"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], stdio{
		in: os.Stdin, out: os.Stdout, err: os.Stderr,
		inTTY: isTerminal(os.Stdin), outTTY: isTerminal(os.Stdout),
	})
	stop()
	os.Exit(code)
}

// stdio is the program's standard files, and whether they are terminals.
type stdio struct {
	in            io.Reader
	out, err      io.Writer
	inTTY, outTTY bool
}

func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// options are the parsed flags.
type options struct {
	host       string
	port       int
	socket     string
	shm        bool
	wait       conn.WaitPolicy
	db         int
	repeat     int
	interval   float64 // seconds
	raw, noRaw bool
	latency    bool
	history    bool
	sampleMS   int
	stdinArg   bool // -x
	pipe       bool
	resp3      bool
	version    bool
	args       []string
}

// version is what --version prints: the Redis version whose redis-cli
// this one follows, and what it is.
const version = "redis-cli 7.0.0 (shmconn examples/shm-redis-cli)"

// errUsageShown is parseFlags's answer to --help, or to -h without a
// host, which are no error.
var errUsageShown = errors.New("usage shown")

// usage is what --help prints, in the real redis-cli's layout: one-letter
// flags with one dash, the others with two, as it spells them (Go's flag
// package takes either).
const usage = `Usage: redis-cli [OPTIONS] [cmd [arg [arg ...]]]
  -h <hostname>      Server hostname (default: 127.0.0.1).
  -p <port>          Server port (default: 6380).
  -s <socket>        Server socket (overrides hostname and port).
  -r <repeat>        Execute specified command N times.
  -i <interval>      When -r is used, waits <interval> seconds per command.
                     It is possible to specify sub-second times like -i 0.1.
                     This interval is also used in --latency-history.
  -n <db>            Database number.
  -3                 Start session in RESP3 protocol mode.
  -x                 Read last argument from STDIN.
  --shm              Talk to the server over shared memory (a shmconn Dialer);
                     the server must listen with a shmconn Listener.
  --wait <policy>    With --shm, how to wait for replies: adaptive (default)
                     or spin.
  --raw              Use raw formatting for replies (default when STDOUT is
                     not a tty).
  --no-raw           Force formatted output even when STDOUT is not a tty.
  --latency          Enter a special mode continuously sampling latency.
                     If you use this mode in an interactive session it runs
                     forever displaying real-time stats. Otherwise if --raw is
                     specified, or if you redirect the output to a non
                     TTY, it samples the latency for 1 second (you can use
                     -i to change the interval), then produces a single output
                     and exits.
  --latency-history  Like --latency but tracking latency changes over time.
                     Default time interval is 15 sec. Change it using -i.
  --latency-sample-rate <ms> Milliseconds between latency samples (default: 10);
                     0 sends PINGs back to back.
  --pipe             Transfer raw Redis protocol from stdin to server.
  --help             Output this help and exit.
  --version          Output version and exit.

When no command is given, redis-cli starts in interactive mode.
Type "help" in interactive mode for information on available commands
and settings.
`

// newFlagSet defines the flags into o; wait receives --wait.
func newFlagSet(o *options, wait *string) *flag.FlagSet {
	fs := flag.NewFlagSet("redis-cli", flag.ContinueOnError)
	fs.SetOutput(io.Discard) // parseFlags reports errors itself
	fs.StringVar(&o.host, "h", "127.0.0.1", "")
	fs.IntVar(&o.port, "p", 6380, "")
	fs.StringVar(&o.socket, "s", "", "")
	fs.BoolVar(&o.shm, "shm", false, "")
	// Adaptive by default: a spinning client beside a spinning server
	// makes two spinners, which on a two-CPU host share a CPU with
	// everything else (measured: --latency average 1.1-1.8 ms with spin,
	// 0.37-0.45 ms adaptive, against a spinning example server).
	fs.StringVar(wait, "wait", "adaptive", "")
	fs.IntVar(&o.db, "n", 0, "")
	fs.IntVar(&o.repeat, "r", 1, "")
	fs.Float64Var(&o.interval, "i", 0, "")
	fs.BoolVar(&o.raw, "raw", false, "")
	fs.BoolVar(&o.noRaw, "no-raw", false, "")
	fs.BoolVar(&o.latency, "latency", false, "")
	fs.BoolVar(&o.history, "latency-history", false, "")
	fs.IntVar(&o.sampleMS, "latency-sample-rate", int(defaultSampleEvery/time.Millisecond), "")
	fs.BoolVar(&o.stdinArg, "x", false, "")
	fs.BoolVar(&o.pipe, "pipe", false, "")
	fs.BoolVar(&o.resp3, "3", false, "")
	fs.BoolVar(&o.version, "version", false, "")
	return fs
}

func parseFlags(args []string, stdout, stderr io.Writer) (*options, error) {
	var o options
	var wait string
	fs := newFlagSet(&o, &wait)
	err := fs.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp) || err != nil && err.Error() == "flag needs an argument: -h":
		// As the real redis-cli: --help, and -h as the last option, print
		// the usage to standard output and exit 0.
		fmt.Fprintf(stdout, "%s\n\n%s", version, usage)
		return nil, errUsageShown
	case err != nil:
		fmt.Fprintf(stderr, "redis-cli: %v\n\n%s", err, usage)
		return nil, err
	case o.sampleMS < 0:
		err = fmt.Errorf("--latency-sample-rate %d: must not be negative", o.sampleMS)
	case o.interval < 0:
		err = fmt.Errorf("-i %v: must not be negative", o.interval)
	case o.repeat < 1:
		err = fmt.Errorf("-r %d: must be at least 1", o.repeat)
	default:
		o.wait, err = conn.ParseWaitPolicy(wait)
	}
	if err != nil {
		fmt.Fprintln(stderr, "redis-cli:", err)
		return nil, err
	}
	o.args = fs.Args()
	return &o, nil
}

// run is the program, returning its exit code.
func run(ctx context.Context, args []string, std stdio) int {
	o, err := parseFlags(args, std.out, std.err)
	switch {
	case err == errUsageShown:
		return 0
	case err != nil:
		return 2
	case o.version:
		fmt.Fprintln(std.out, version)
		return 0
	}
	if o.stdinArg {
		last, err := io.ReadAll(std.in)
		if err != nil {
			fmt.Fprintln(std.err, "redis-cli: reading standard input for -x:", err)
			return 1
		}
		o.args = append(o.args, string(last))
		std.in = strings.NewReader("")
	}
	c, err := connect(ctx, o)
	if err != nil {
		fmt.Fprintf(std.err, "Could not connect to Redis at %s: %v\n", o.addr(), err)
		if len(o.args) > 0 || o.pipe || o.latency || o.history {
			return 1
		}
		c = &client{} // the prompt starts "not connected", as redis-cli's
	}
	// Ctrl-C closes the connection, which ends a call waiting on it.
	defer context.AfterFunc(ctx, func() { c.close() })()
	defer c.close()
	format, raw := FormatRaw, !(std.outTTY && !o.raw || o.noRaw)
	if !raw {
		format = FormatTTY
	}

	switch {
	case o.latency || o.history:
		if err := latencyMode(ctx, c, std.out, o.latencyConfig(!raw)); err != nil {
			fmt.Fprintln(std.err, err)
			return 1
		}
		return 0
	case o.pipe:
		return pipeMode(ctx, c, std)
	case len(o.args) > 0:
		return commandMode(ctx, c, o, std, format, raw)
	default:
		return prompt(ctx, c, o, std, format, raw)
	}
}

// commandMode runs the command given on the command line, -r times.
func commandMode(ctx context.Context, c *client, o *options, std stdio, format func(Reply) string, raw bool) int {
	for i := range o.repeat {
		if i > 0 && o.interval > 0 {
			time.Sleep(time.Duration(o.interval * float64(time.Second)))
		}
		rep, err := c.do(o.args...)
		if err != nil {
			return ioError(ctx, std, err)
		}
		if isSubscribe(o.args) {
			code, _ := readMessages(ctx, c, std, format, raw, rep)
			return code
		}
		io.WriteString(std.out, formatFor(o.args, rep, format))
	}
	return 0
}

// latencyConfig is the flags' configuration of --latency and
// --latency-history.
func (o *options) latencyConfig(tty bool) latencyConfig {
	cfg := latencyConfig{
		history:  o.history,
		every:    time.Duration(o.sampleMS) * time.Millisecond,
		interval: time.Duration(o.interval * float64(time.Second)),
		tty:      tty,
	}
	if cfg.interval == 0 {
		cfg.interval = defaultRawInterval
		if cfg.history {
			cfg.interval = defaultHistoryInterval
		}
	}
	return cfg
}

// connect dials and then, as redis-cli does, says HELLO 3 for -3 and
// selects the -n database.
func connect(ctx context.Context, o *options) (*client, error) {
	c, err := dial(ctx, o)
	if err != nil {
		return nil, err
	}
	var setup [][]string
	if o.resp3 {
		setup = append(setup, []string{"HELLO", "3"})
	}
	if o.db != 0 {
		setup = append(setup, []string{"SELECT", strconv.Itoa(o.db)})
	}
	for _, cmd := range setup {
		rep, err := c.do(cmd...)
		if err == nil && rep.Kind == Error {
			err = errors.New(rep.Str)
		}
		if err != nil {
			c.close()
			return nil, fmt.Errorf("%s: %w", strings.Join(cmd, " "), err)
		}
	}
	return c, nil
}

// formatFor renders the reply to args. The replies redis-cli prints
// verbatim in every mode (INFO, CLIENT LIST, CLIENT INFO: text meant to be
// read as is) come out bare, with no newline added.
func formatFor(args []string, rep Reply, format func(Reply) string) string {
	if len(args) > 0 && rep.Kind != Error && verbatimCommand(args) {
		var b strings.Builder
		formatRaw(&b, rep)
		return b.String()
	}
	return format(rep)
}

func verbatimCommand(args []string) bool {
	cmd := strings.ToLower(args[0])
	sub := ""
	if len(args) > 1 {
		sub = strings.ToLower(args[1])
	}
	switch {
	case cmd == "info", cmd == "lolwut":
		return true
	case cmd == "client" && (sub == "list" || sub == "info"):
		return true
	case cmd == "cluster" && len(args) == 2 && (sub == "nodes" || sub == "info"):
		return true
	case cmd == "memory" && sub == "doctor", cmd == "latency" && (sub == "doctor" || sub == "graph"):
		return true
	}
	return false
}

// prompt reads commands line by line, showing a prompt on a terminal,
// until end of input, "quit", "exit" or Ctrl-C.
func prompt(ctx context.Context, c *client, o *options, std stdio, format func(Reply) string, raw bool) int {
	defer func() { c.close() }() // the last conn, after reconnects
	lines, stop := readLines(std.in)
	defer stop()
	db := o.db
	for {
		if std.inTTY {
			fmt.Fprint(std.out, o.prompt(db, c.connected()))
		}
		var line string
		var ok bool
		select {
		case line, ok = <-lines:
		case <-ctx.Done():
		}
		if !ok {
			if std.inTTY {
				fmt.Fprintln(std.out)
			}
			return 0
		}
		args, err := SplitArgs(line)
		switch {
		case err != nil:
			fmt.Fprintln(std.out, err)
			continue
		case len(args) == 0:
			continue
		case strings.EqualFold(args[0], "quit") || strings.EqualFold(args[0], "exit"):
			return 0
		case localCommand(c, args, std.out):
			continue
		}
		rep, err := c.doOrReconnect(ctx, o, db, args)
		if err != nil {
			if ctx.Err() != nil {
				return ioError(ctx, std, err)
			}
			// As redis-cli: report, stay at the prompt, reconnect on the
			// next command.
			fmt.Fprintln(std.err, err)
			continue
		}
		if strings.EqualFold(args[0], "select") && len(args) == 2 && rep.Kind == Status {
			db, _ = strconv.Atoi(args[1])
		}
		if isSubscribe(args) {
			if code, back := readMessages(ctx, c, std, format, raw, rep); !back {
				if ctx.Err() != nil {
					return 0 // Ctrl-C leaves the real redis-cli's prompt with status 0
				}
				return code
			}
			continue
		}
		io.WriteString(std.out, formatFor(args, rep, format))
	}
}

// readLines reads lines from in in a goroutine of its own, so that Ctrl-C
// ends the prompt without waiting for a line; stop ends it.
func readLines(in io.Reader) (lines <-chan string, stop func()) {
	ch := make(chan string)
	done := make(chan struct{})
	go func() {
		defer close(ch)
		sc := bufio.NewScanner(in)
		sc.Buffer(nil, 64<<20)
		for sc.Scan() {
			select {
			case ch <- sc.Text():
			case <-done:
				return
			}
		}
	}()
	return ch, func() { close(done) }
}

// prompt is the prompt redis-cli shows: the address, the database if not
// 0, or "not connected".
func (o *options) prompt(db int, connected bool) string {
	if !connected {
		return "not connected> "
	}
	p := o.addr()
	if o.socket != "" {
		p = "redis " + p // as redis-cli shows a socket
	}
	if db != 0 {
		p += fmt.Sprintf("[%d]", db)
	}
	return p + "> "
}

// ioError reports a failed exchange with the server and returns the exit
// code: 1, or 130 (as a shell reports SIGINT) when Ctrl-C caused it.
func ioError(ctx context.Context, std stdio, err error) int {
	if ctx.Err() != nil {
		fmt.Fprintln(std.err)
		return 130
	}
	fmt.Fprintln(std.err, "Error:", err)
	return 1
}

func (o *options) addr() string {
	if o.socket != "" {
		return o.socket
	}
	return net.JoinHostPort(o.host, strconv.Itoa(o.port))
}

// client is one connection to the server, used by one goroutine. After a
// failed exchange at the prompt it is disconnected (c is nil) until a
// command reconnects it.
type client struct {
	mu   sync.Mutex // guards c against Ctrl-C's close
	c    net.Conn
	r    *bufio.Reader
	wbuf []byte
}

// dialTimeout bounds connecting, and with --shm the handshake.
const dialTimeout = 5 * time.Second

func dial(ctx context.Context, o *options) (*client, error) {
	network, addr := "tcp", o.addr()
	if o.socket != "" {
		network = "unix"
	}
	var c net.Conn
	var err error
	if o.shm {
		// No fallback: asking for shared memory and silently getting a
		// socket would make --latency lie.
		d := conn.Dialer{Wait: o.wait, Timeout: dialTimeout, NoFallback: true}
		c, err = d.DialContext(ctx, network, addr)
	} else {
		d := net.Dialer{Timeout: dialTimeout}
		c, err = d.DialContext(ctx, network, addr)
	}
	if err != nil {
		var oe *net.OpError
		if errors.As(err, &oe) && oe.Err != nil {
			err = oe.Err // "connection refused", not the whole chain of addresses
		}
		return nil, err
	}
	return &client{c: c, r: bufio.NewReaderSize(c, 64<<10)}, nil
}

// do sends one command and reads its reply.
func (c *client) do(args ...string) (Reply, error) {
	c.wbuf = AppendCommand(c.wbuf[:0], args...)
	return c.exchange(c.wbuf)
}

// exchange writes req and reads one reply.
func (c *client) exchange(req []byte) (Reply, error) {
	c.mu.Lock()
	nc := c.c
	c.mu.Unlock()
	if nc == nil {
		return Reply{}, errNotConnected
	}
	if _, err := nc.Write(req); err != nil {
		return Reply{}, err
	}
	return c.read()
}

// read reads one reply.
func (c *client) read() (Reply, error) {
	rep, err := ReadReply(c.r)
	if err == io.EOF {
		err = errors.New("Server closed the connection")
	}
	return rep, err
}

var errNotConnected = errors.New("not connected")

// doOrReconnect runs a prompt command as redis-cli's REPL does: when the
// exchange fails it reconnects (saying HELLO and SELECT again) and tries
// once more; if that fails too, the client stays disconnected and the
// error says why.
func (c *client) doOrReconnect(ctx context.Context, o *options, db int, args []string) (Reply, error) {
	if c.connected() {
		rep, err := c.do(args...)
		if err == nil || ctx.Err() != nil {
			return rep, err
		}
		c.close()
	}
	reo := *o
	reo.db = db
	nc, err := connect(ctx, &reo)
	if err != nil {
		return Reply{}, fmt.Errorf("Could not connect to Redis at %s: %v", o.addr(), err)
	}
	c.mu.Lock()
	c.c, c.r = nc.c, nc.r
	c.mu.Unlock()
	rep, err := c.do(args...)
	if err != nil {
		c.close()
		err = fmt.Errorf("Error: %v", err)
	}
	return rep, err
}

func (c *client) connected() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.c != nil
}

// close closes the conn, if any, leaving the client disconnected.
func (c *client) close() error {
	c.mu.Lock()
	nc := c.c
	c.c = nil
	c.mu.Unlock()
	if nc == nil {
		return nil
	}
	return nc.Close()
}
