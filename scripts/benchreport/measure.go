package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
)

// command is one benchmark command as a user runs it from the repository
// root; the runner adds only what makes its output machine-readable.
type command struct {
	tool string   // examples/<tool>, or "" for go test
	env  []string // NAME=value
	args []string
}

func (c command) String() string {
	s := strings.Join(c.env, " ")
	if c.tool != "" {
		s += " go run ./examples/" + c.tool
	} else {
		s += " go test"
	}
	for _, a := range c.args {
		if a == "" {
			a = `""`
		}
		s += " " + a
	}
	return strings.TrimSpace(s)
}

// commands are the benchmark commands of one report.
type commands struct {
	idle, loaded     command // shmbench without and with one busy process per CPU
	niced            command // shmbench's sparse part at 1 ms with one busy process per CPU, the pair at nice -15
	demo, module     command // redis-latency: the demo, and the real redis-server through the module
	callPath, memory command // go test
}

// commandsFor returns the full run's commands, or with quick tiny counts.
func commandsFor(quick bool, runs int) commands {
	loaded := []string{"-load", "cpu", "-parts", "dense,sparse,stream", "-intervals", "1ms"}
	niced := []string{"-load", "cpu", "-nice=-15", "-parts", "sparse", "-intervals", "1ms"}
	c := commands{
		idle:     command{tool: "shmbench"},
		loaded:   command{tool: "shmbench", args: append(loaded, "-sparse-n", "1000", "-n", "50000")},
		niced:    command{tool: "shmbench", args: append(niced, "-sparse-n", "1000")},
		demo:     command{tool: "redis-latency"},
		module:   command{tool: "redis-latency", args: []string{"-module-targets"}},
		callPath: command{args: []string{"-run", "X", "-bench", "CallPath", "-count", strconv.Itoa(runs), "./conn"}},
		memory:   command{env: []string{"SHMCONN_MEMORY_REPORT=1"}, args: []string{"-count=1", "-run", "TestMemoryReport", "-v", "./conn"}},
	}
	if quick {
		c.idle.args = []string{"-quick", "-sparse-n", "20,5"}
		c.loaded.args = append([]string{"-quick"}, append(loaded, "-sparse-n", "20")...)
		c.niced.args = append([]string{"-quick"}, append(niced, "-sparse-n", "20")...)
		c.demo.args = []string{"-samples", "10", "-interval", "2ms", "-dense", "200"}
		c.module.args = append(c.module.args, "-samples", "10", "-dense", "100")
		c.callPath.args = []string{"-run", "X", "-bench", "CallPath", "-benchtime", "1000x", "-count", strconv.Itoa(runs), "./conn"}
		c.memory.args = append([]string{"-short"}, c.memory.args...)
	}
	return c
}

// results are every run's figures.
type results struct {
	cmds         commands
	idle, loaded []shmbenchFigures
	niced        []shmbenchFigures
	noNiced      string // why the pair at nice -15 was not measured, if it was not
	demo         []demoFigures
	module       []moduleFigures
	noModule     string // why the module was not measured, if it was not
	callPath     []benchResult
	memory       string // the report's table, as it printed it
}

// measure runs the commands: the four example commands in turns, runs
// times, then the two go test commands once.
func (r *runner) measure(ctx context.Context) (*results, error) {
	if _, err := os.Stat("examples/shmbench"); err != nil {
		return nil, errors.New("run from the repository root (scripts/bench does)")
	}
	res := &results{cmds: commandsFor(r.cfg.quick, r.cfg.runs)}
	if _, err := exec.LookPath("redis-server"); err != nil {
		res.noModule = "redis-server is not installed"
	}
	if os.Geteuid() != 0 {
		res.noNiced = "a nice value of -15 needs root (or CAP_SYS_NICE)"
	}
	server, err := r.tool(ctx, "shm-redis-server")
	if err != nil {
		return nil, err
	}
	for i := range r.cfg.runs {
		fmt.Fprintf(r.log, "scripts/bench: run %d of %d\n", i+1, r.cfg.runs)
		var idle, loaded shmbenchFigures
		var demo demoFigures
		if err := r.runJSON(ctx, res.cmds.idle, &idle); err != nil {
			return nil, err
		}
		if err := r.runJSON(ctx, res.cmds.loaded, &loaded); err != nil {
			return nil, err
		}
		if err := r.runJSON(ctx, res.cmds.demo, &demo, "-png", "", "-server", server); err != nil {
			return nil, err
		}
		res.idle, res.loaded, res.demo = append(res.idle, idle), append(res.loaded, loaded), append(res.demo, demo)
		if res.noNiced == "" {
			var niced shmbenchFigures
			if err := r.runJSON(ctx, res.cmds.niced, &niced); err != nil {
				// A container's root may lack CAP_SYS_NICE; the rest
				// of the report stands without it.
				if ctx.Err() != nil {
					return nil, ctx.Err()
				}
				res.noNiced, res.niced = "it failed: "+firstLine(err.Error()), nil
			} else {
				res.niced = append(res.niced, niced)
			}
		}
		if res.noModule == "" {
			var m moduleFigures
			if err := r.runJSON(ctx, res.cmds.module, &m); err != nil {
				// The module needs cgo and a C compiler; the rest of the
				// report stands without it.
				if ctx.Err() != nil {
					return nil, ctx.Err()
				}
				res.noModule, res.module = "it failed: "+firstLine(err.Error()), nil
				continue
			}
			res.module = append(res.module, m)
		}
	}
	if res.callPath, err = r.callPath(ctx, res.cmds.callPath); err != nil {
		return nil, err
	}
	res.memory, err = r.memoryReport(ctx, res.cmds.memory)
	return res, err
}

// runJSON runs c with -json and extra (flags a user would not need)
// before c's own flags, and decodes its output into v.
func (r *runner) runJSON(ctx context.Context, c command, v any, extra ...string) error {
	bin, err := r.tool(ctx, c.tool)
	if err != nil {
		return err
	}
	out, err := r.exec(ctx, c.env, bin, append(append([]string{"-json"}, extra...), c.args...)...)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(out, v); err != nil {
		return fmt.Errorf("%s: output is not its figures' JSON: %w", c, err)
	}
	return nil
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// benchResult is one line of go test -bench output.
type benchResult struct {
	name                   string // without the GOMAXPROCS suffix
	nsPerOp, bytes, allocs float64
}

var benchLine = regexp.MustCompile(`^Benchmark(\S+?)(?:-\d+)?\s+\d+\s+([\d.]+) ns/op(?:\s+([\d.]+) B/op\s+([\d.]+) allocs/op)?`)

func (r *runner) callPath(ctx context.Context, c command) ([]benchResult, error) {
	out, err := r.exec(ctx, c.env, "go", append([]string{"test"}, c.args...)...)
	if err != nil {
		return nil, err
	}
	var res []benchResult
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		m := benchLine.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		b := benchResult{name: m[1]}
		b.nsPerOp, _ = strconv.ParseFloat(m[2], 64)
		b.bytes, _ = strconv.ParseFloat(m[3], 64)
		b.allocs, _ = strconv.ParseFloat(m[4], 64)
		res = append(res, b)
	}
	if len(res) == 0 {
		return nil, fmt.Errorf("%s: no benchmark results in its output:\n%s", c, out)
	}
	return res, nil
}

// memoryReport runs the memory report and returns its table with the line
// that says what it counts.
func (r *runner) memoryReport(ctx context.Context, c command) (string, error) {
	out, err := r.exec(ctx, c.env, "go", append([]string{"test"}, c.args...)...)
	if err != nil {
		return "", err
	}
	var about string
	var table []string
	for line := range strings.Lines(string(out)) {
		switch {
		case strings.Contains(line, "conns, listener and dialer"):
			about = line
		case strings.HasPrefix(line, "|"):
			table = append(table, line)
		}
	}
	if about == "" || len(table) < 3 {
		return "", fmt.Errorf("%s: no memory table in its output:\n%s", c, out)
	}
	return about + "\n" + strings.Join(table, ""), nil
}
