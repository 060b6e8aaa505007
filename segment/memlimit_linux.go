package segment

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
)

// A memory cgroup at its limit does not fail a page fault: it runs the
// OOM killer, which picks the biggest process in the group (a listener
// serving many conns). So before committing shared memory we look at our
// cgroup's limit and usage, and refuse (ErrNoMemory) what would leave less
// than a reserve: a new segment falls back or fails its dial, a Write
// returns an error, and the process lives.

// cgroupMemory reads our memory cgroup's limit and usage.
type cgroupMemory struct {
	limit, usage string // file paths; "" when there is no limit to watch
}

var (
	memOnce sync.Once
	mem     cgroupMemory
)

// ourCgroupMemory finds the memory cgroup this process was in when shared
// memory was first committed. A process moved later keeps watching the
// old group; processes are put in their cgroup before they start working.
func ourCgroupMemory() cgroupMemory {
	memOnce.Do(func() { mem = findCgroupMemory("/proc/self/cgroup", "/sys/fs/cgroup") })
	return mem
}

// findCgroupMemory reads a /proc/<pid>/cgroup file and finds the memory
// controller's files under root: cgroup v2 (at root, or at root/unified on
// a hybrid system) or v1 (root/memory).
func findCgroupMemory(procFile, root string) cgroupMemory {
	b, err := os.ReadFile(procFile)
	if err != nil {
		return cgroupMemory{}
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		// "hierarchy-id:controllers:path"; v2 is "0::path".
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 {
			continue
		}
		var candidates []cgroupMemory
		switch {
		case parts[1] == "" && parts[0] == "0":
			for _, r := range []string{root, filepath.Join(root, "unified")} {
				d := filepath.Join(r, parts[2])
				candidates = append(candidates, cgroupMemory{filepath.Join(d, "memory.max"), filepath.Join(d, "memory.current")})
			}
		case strings.Contains(","+parts[1]+",", ",memory,"):
			d := filepath.Join(root, "memory", parts[2])
			candidates = append(candidates, cgroupMemory{filepath.Join(d, "memory.limit_in_bytes"), filepath.Join(d, "memory.usage_in_bytes")})
		}
		for _, c := range candidates {
			if _, err := os.Stat(c.limit); err == nil {
				if _, _, err := c.read(); err == nil {
					return c
				}
			}
		}
	}
	return cgroupMemory{}
}

// read returns the limit and usage in bytes; limit < 0 means none.
func (c cgroupMemory) read() (limit, usage int64, err error) {
	if c.limit == "" {
		return -1, 0, nil
	}
	l, err := os.ReadFile(c.limit)
	if err != nil {
		return 0, 0, err
	}
	u, err := os.ReadFile(c.usage)
	if err != nil {
		return 0, 0, err
	}
	ls := strings.TrimSpace(string(l))
	if ls == "max" {
		return -1, 0, nil
	}
	limit, err = strconv.ParseInt(ls, 10, 64)
	if err != nil {
		return 0, 0, err
	}
	usage, err = strconv.ParseInt(strings.TrimSpace(string(u)), 10, 64)
	if limit >= 1<<60 { // cgroup v1's "no limit"
		limit = -1
	}
	return limit, usage, err
}

// memReserve is what must stay free in a limited cgroup after a commit:
// room for the Go heap, stacks and socket buffers of the process that
// commits, which the OOM killer would otherwise be called for.
func memReserve(limit int64) int64 { return max(limit/16, 2<<20) }

// checkHeadroom returns an error wrapping ErrNoMemory if committing n more
// bytes would leave our memory cgroup with less than its reserve.
func checkHeadroom(n int) error { return ourCgroupMemory().checkHeadroom(n) }

func (c cgroupMemory) checkHeadroom(n int) error {
	limit, usage, err := c.read()
	if err != nil || limit < 0 {
		return nil // nothing to watch: the kernel's own limits apply
	}
	if usage+int64(n)+memReserve(limit) > limit {
		return fmt.Errorf("%w: memory cgroup at %d of %d bytes, %d more would leave less than %d", ErrNoMemory, usage, limit, n, memReserve(limit))
	}
	return nil
}
