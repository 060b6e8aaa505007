// Command benchreport runs the project's benchmarks and writes their
// tables into BENCHMARKS.md, between the lines
//
//	<!-- BEGIN scripts/bench -->
//	<!-- END scripts/bench -->
//
// replacing what was there and nothing else. scripts/bench runs it from
// the repository root:
//
//	scripts/bench                    # everything, 3 runs of each: about 15-20 minutes on an idle host
//	scripts/bench -runs 5            # more runs, a better idea of the spread
//	scripts/bench -quick -o x.md     # tiny counts, one run, well under a minute: tests this program, not the code
//
// It builds examples/shmbench, examples/redis-latency and
// examples/shm-redis-server once, then runs, in turns so that a slow spell of
// the host spreads over all of them: shmbench on the idle host, shmbench
// with one busy process per CPU (and, as root, its sparse part with the
// measured pair at nice -15), the Redis demo, and the real redis-server
// through the Redis module against its unix socket (when redis-server is
// installed). Then conn's CallPath benchmark and the memory report. Each
// figure is the median over the runs with the lowest and highest beside
// it; a ratio is taken within each run first, since the host changes
// more between runs than within one.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stderr)
	interrupted := ctx.Err() != nil
	stop()
	switch {
	case errors.Is(err, flag.ErrHelp):
	case interrupted:
		fmt.Fprintln(os.Stderr, "scripts/bench: interrupted; the file is unchanged")
		os.Exit(130)
	case err != nil:
		fmt.Fprintln(os.Stderr, "scripts/bench:", err)
		os.Exit(1)
	}
}

// Markers around the generated part of the file.
const (
	beginMarker = "<!-- BEGIN scripts/bench -->"
	endMarker   = "<!-- END scripts/bench -->"
)

type config struct {
	quick   bool
	runs    int
	out     string // the file to write into
	verbose bool   // pass the tools' stderr through
	args    []string
}

func parseFlags(args []string, stderr io.Writer) (config, error) {
	c := config{args: args}
	fs := flag.NewFlagSet("scripts/bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.BoolVar(&c.quick, "quick", false, "tiny counts and one run of each: checks this program; the figures mean nothing")
	fs.IntVar(&c.runs, "runs", 3, "runs of each benchmark command (the spread is over these)")
	fs.StringVar(&c.out, "o", "BENCHMARKS.md", "the file whose generated part is replaced")
	fs.BoolVar(&c.verbose, "v", false, "show the benchmarks' progress and logs")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if c.quick && !flagSet(fs, "runs") {
		c.runs = 1
	}
	if c.runs < 1 {
		return c, errors.New("-runs must be at least 1")
	}
	return c, nil
}

func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// run measures everything, then writes the tables into cfg.out. The file
// is read (and its markers checked) before the long measurement, and left
// as it was if anything fails.
func run(ctx context.Context, args []string, log io.Writer) error {
	cfg, err := parseFlags(args, log)
	if err != nil {
		return err
	}
	old, err := os.ReadFile(cfg.out)
	if err != nil {
		return err
	}
	if _, err := splice(string(old), ""); err != nil {
		return fmt.Errorf("%s: %w", cfg.out, err)
	}
	start := time.Now()
	m := describeMachine(ctx, start, cfg.out)
	dir, err := os.MkdirTemp("", "shmconn-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	r := &runner{cfg: cfg, dir: dir, log: log}
	res, err := r.measure(ctx)
	if err != nil {
		return err
	}
	m.took = time.Since(start)
	section := render(cfg, m, res)
	updated, err := splice(string(old), section)
	if err != nil {
		return err
	}
	return os.WriteFile(cfg.out, []byte(updated), 0o644)
}

// splice replaces the lines between the markers of doc with section.
func splice(doc, section string) (string, error) {
	if strings.Count(doc, beginMarker) != 1 || strings.Count(doc, endMarker) != 1 {
		return "", fmt.Errorf("want one line %q and one line %q", beginMarker, endMarker)
	}
	i := strings.Index(doc, beginMarker) + len(beginMarker)
	j := strings.Index(doc, endMarker)
	if j < i || !strings.HasPrefix(doc[i:], "\n") || (j > 0 && doc[j-1] != '\n') {
		return "", fmt.Errorf("%q must be on a line of its own, before %q", beginMarker, endMarker)
	}
	return doc[:i] + "\n" + section + doc[j:], nil
}

// runner runs the benchmark commands and collects their figures.
type runner struct {
	cfg  config
	dir  string // built binaries
	log  io.Writer
	bins map[string]string
}

// tool builds ./examples/<name> into r.dir once and returns its path.
func (r *runner) tool(ctx context.Context, name string) (string, error) {
	if p, ok := r.bins[name]; ok {
		return p, nil
	}
	p := filepath.Join(r.dir, name)
	fmt.Fprintf(r.log, "scripts/bench: building ./examples/%s\n", name)
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", p, "./examples/"+name).CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./examples/%s: %v\n%s", name, err, out)
	}
	if r.bins == nil {
		r.bins = map[string]string{}
	}
	r.bins[name] = p
	return p, nil
}

// exec runs a command to its end and returns its stdout. Interrupted, the
// command gets SIGINT, which every benchmark command answers by stopping
// its children and cleaning up, and some seconds to do it.
func (r *runner) exec(ctx context.Context, env []string, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 20 * time.Second
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if r.cfg.verbose {
		cmd.Stderr = io.MultiWriter(&stderr, r.log)
	}
	start := time.Now()
	err := cmd.Run()
	fmt.Fprintf(r.log, "scripts/bench: %s %s: %v\n", filepath.Base(name), strings.Join(args, " "), time.Since(start).Round(time.Second/10))
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, lastLines(stderr.String(), 20))
	}
	return []byte(stdout.String()), nil
}

// lastLines returns the last n lines of s.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
