package main

import (
	"bufio"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// The parked floors: what a round trip costs when both processes block in
// the kernel between messages and no library is involved, the least the
// default wait policy's parked path can cost on this host. The sparse
// tables measure them beside the spinning floor:
//
//   - eventfd, C: a C client and a C server (floor/floor.c, compiled at
//     run time with the host's C compiler) blocking in read(2) on a pair
//     of eventfds, the cheapest parked exchange there is;
//   - eventfd, Go: the same pair of eventfds, each side reading its own
//     through the runtime's netpoller (os.File), as Go code that blocks
//     does;
//   - futex, Go: a word of shared memory each way, each side waiting in a
//     raw futex system call (no scheduler, its P held, so the wait is
//     bounded: futexDoze) and woken by the other's futex wake, the best a
//     Go program can do.
var (
	parkedC       = transport{network: "parked floor, eventfd, C"}
	parkedEventfd = transport{network: "parked floor, eventfd, Go"}
	parkedFutex   = transport{network: "parked floor, futex, Go"}
	parkedFloors  = []transport{parkedC, parkedEventfd, parkedFutex}
)

// futexDoze bounds one raw futex wait: while it lasts the goroutine keeps
// its P, and a stop-the-world (GC) waits for it.
const futexDoze = 200 * time.Microsecond

// skipError says why a row was not measured on this host; the table
// prints it instead of the row.
type skipError struct{ reason string }

func (e *skipError) Error() string { return e.reason }

//go:embed floor/floor.c
var floorC []byte

// cFloor returns the path of the C floor's binary, compiled into the
// run's temporary directory on first use, or a *skipError when the host
// has no C compiler.
func (b *bench) cFloor(ctx context.Context) (string, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cFloorBin != "" || b.cFloorErr != nil {
		return b.cFloorBin, b.cFloorErr
	}
	b.cFloorBin, b.cFloorErr = compileCFloor(ctx, b.dir)
	return b.cFloorBin, b.cFloorErr
}

func compileCFloor(ctx context.Context, dir string) (string, error) {
	if !linux {
		return "", &skipError{"the C floor uses eventfd, Linux only"}
	}
	var cc string
	for _, name := range []string{"cc", "gcc"} {
		if p, err := exec.LookPath(name); err == nil {
			cc = p
			break
		}
	}
	if cc == "" {
		return "", &skipError{"no C compiler (cc or gcc) on PATH"}
	}
	src, bin := filepath.Join(dir, "floor.c"), filepath.Join(dir, "floor")
	if err := os.WriteFile(src, floorC, 0o600); err != nil {
		return "", err
	}
	if out, err := exec.CommandContext(ctx, cc, "-O2", "-o", bin, src).CombinedOutput(); err != nil {
		return "", fmt.Errorf("%s floor.c: %v\n%s", cc, err, out)
	}
	return bin, nil
}

// cFloorLatency runs the C floor's n timed round trips after warmup, one
// every interval, and reads its figures into the histogram the other rows
// use.
func (b *bench) cFloorLatency(ctx context.Context, label string, n, warmup int, interval time.Duration) (*latency, error) {
	bin, err := b.cFloor(ctx)
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, bin, strconv.Itoa(n), strconv.Itoa(warmup), strconv.FormatInt(int64(interval), 10))
	cmd.Stderr = b.stderr
	dieWithParent(cmd) // its server dies with it in turn
	out, err := cmd.Output()
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("%s: %w", bin, err)
	}
	h := hdrhistogram.New(1, int64(histogramMax), 3)
	var elapsed time.Duration
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		line := sc.Text()
		if s, ok := strings.CutPrefix(line, "elapsed "); ok {
			ns, err := strconv.ParseInt(s, 10, 64)
			if err != nil {
				return nil, fmt.Errorf("C floor: line %q", line)
			}
			elapsed = time.Duration(ns)
			continue
		}
		ns, err := strconv.ParseInt(line, 10, 64)
		if err != nil || ns < 0 {
			return nil, fmt.Errorf("C floor: line %q", line)
		}
		h.RecordValue(min(time.Duration(ns), histogramMax).Nanoseconds())
	}
	if h.TotalCount() != int64(n) || elapsed <= 0 {
		return nil, fmt.Errorf("C floor: %d round trips and elapsed %v in its output, want %d and a time", h.TotalCount(), elapsed, n)
	}
	return newLatency(label, h, float64(n)/elapsed.Seconds()), nil
}

// parkedRatios says how the default policy's p50 compares with each parked
// floor's, under a sparse table.
func parkedRatios(def *latency, floors []*latency) string {
	if def == nil || len(floors) == 0 {
		return ""
	}
	var parts []string
	for _, f := range floors {
		parts = append(parts, fmt.Sprintf("%s %s", strings.TrimPrefix(f.label, "parked floor, "), times(float64(def.p50), float64(f.p50))))
	}
	return fmt.Sprintf("%s p50 / parked floor p50: %s\n", def.label, strings.Join(parts, ", "))
}

// isSkip reports whether err says a row cannot be measured on this host.
func isSkip(err error) (string, bool) {
	var s *skipError
	if errors.As(err, &s) {
		return s.reason, true
	}
	return "", false
}
