package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

// machine is where and when the figures were taken.
type machine struct {
	cpu, kernel, goVersion, redis string
	cpus                          int
	commit                        string // with a note when the tree had changes
	start                         time.Time
	loadAvg                       string // at the start
	took                          time.Duration
}

// describeMachine describes the machine, and the commit of the tree: with
// a note if it differs from the commit in anything but out, the file the
// report goes to.
func describeMachine(ctx context.Context, start time.Time, out string) machine {
	m := machine{cpus: runtime.NumCPU(), start: start.UTC(), cpu: "unknown", kernel: "unknown", loadAvg: "unknown", goVersion: "unknown"}
	if info, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		m.cpu = cpuModel(string(info))
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.kernel = "Linux " + strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		m.loadAvg = strings.Join(strings.Fields(string(b))[:3], " ")
	}
	if f := strings.Fields(output(ctx, "go", "env", "GOVERSION", "GOOS", "GOARCH")); len(f) == 3 {
		m.goVersion = f[0] + " " + f[1] + "/" + f[2]
	}
	m.redis = "not installed"
	if v := output(ctx, "redis-server", "--version"); v != "" {
		m.redis = v
		for f := range strings.FieldsSeq(v) {
			if s, ok := strings.CutPrefix(f, "v="); ok {
				m.redis = s
			}
		}
	}
	m.commit = output(ctx, "git", "rev-parse", "--short=12", "HEAD")
	if m.commit == "" {
		m.commit = "unknown (not a git checkout)"
	} else if status := output(ctx, "git", gitStatusArgs(out)...); status != "" {
		m.commit += ", with uncommitted changes"
	}
	return m
}

// gitStatusArgs are the arguments of a git status that lists the
// changes to the tree except to out, when out is in the tree.
func gitStatusArgs(out string) []string {
	args := []string{"status", "--porcelain"}
	wd, err := os.Getwd()
	if err != nil {
		return args
	}
	abs, err := filepath.Abs(out)
	if err != nil {
		return args
	}
	if rel, err := filepath.Rel(wd, abs); err == nil && filepath.IsLocal(rel) {
		args = append(args, "--", ".", ":(exclude)"+filepath.ToSlash(rel))
	}
	return args
}

// cpuModel describes the CPU from /proc/cpuinfo's text: its model name,
// and whether a hypervisor runs it.
func cpuModel(info string) string {
	model, vm := "unknown", false
	for line := range strings.Lines(info) {
		k, v, ok := strings.Cut(line, ":")
		switch k = strings.TrimSpace(k); {
		case !ok:
		case k == "model name" && model == "unknown":
			model = strings.TrimSpace(v)
		case k == "flags" && strings.Contains(" "+v+" ", " hypervisor "):
			vm = true
		}
	}
	if vm {
		model += " (virtual machine)"
	}
	return model
}

// output runs a command and returns its trimmed stdout, or "" if it fails.
func output(ctx context.Context, name string, args ...string) string {
	out, err := exec.CommandContext(ctx, name, args...).Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

func (m machine) table(cfg config) table {
	cmd := strings.TrimSpace("scripts/bench " + strings.Join(cfg.args, " "))
	runs := fmt.Sprintf("%d runs of each of the first four commands below, in turns; the figures are the median over the runs, the lowest and highest in brackets", cfg.runs)
	if cfg.runs == 1 {
		runs = "one run of each command: no spread shown"
	}
	if cfg.quick {
		runs += "; -quick: tiny counts, the figures mean nothing"
	}
	return table{
		head: []string{"", ""},
		rows: [][]string{
			{"CPU", fmt.Sprintf("%s, %d logical CPUs", m.cpu, m.cpus)},
			{"kernel", m.kernel},
			{"Go", m.goVersion},
			{"redis-server", m.redis},
			{"commit", m.commit},
			{"date", m.start.Format("2006-01-02 15:04 MST")},
			{"load average at the start", m.loadAvg},
			{"command", "`" + cmd + "`, " + m.took.Round(time.Second).String()},
			{"runs", runs},
		},
	}
}
