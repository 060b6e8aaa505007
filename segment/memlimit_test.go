//go:build linux

package segment

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestCgroupHeadroom finds a memory cgroup's files from a /proc cgroup
// file, v1 and v2, and refuses a commit that would leave less than the
// reserve.
func TestCgroupHeadroom(t *testing.T) {
	const mib = 1 << 20
	root := t.TempDir()
	write := func(path, content string) {
		require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
		require.NoError(t, os.WriteFile(path, []byte(content), 0o644))
	}
	for _, tc := range []struct {
		name, proc, limitFile, usageFile string
	}{
		{"v1", "4:memory:/a/b\n0::/\n", "memory/a/b/memory.limit_in_bytes", "memory/a/b/memory.usage_in_bytes"},
		{"v2", "0::/c\n", "c/memory.max", "c/memory.current"},
		{"hybrid", "4:cpu:/\n0::/d\n", "unified/d/memory.max", "unified/d/memory.current"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			proc := filepath.Join(t.TempDir(), "cgroup")
			write(proc, tc.proc)
			write(filepath.Join(root, tc.limitFile), "67108864\n")
			write(filepath.Join(root, tc.usageFile), "58720256\n") // 56 MiB
			c := findCgroupMemory(proc, root)
			require.Equal(t, filepath.Join(root, tc.limitFile), c.limit)
			// Reserve: 4 MiB of 64. 4 MiB more fits, 4 MiB and a page not.
			require.NoError(t, c.checkHeadroom(4*mib))
			require.ErrorIs(t, c.checkHeadroom(4*mib+PageSize), ErrNoMemory)
		})
	}
	// No limit: v2's "max", v1's huge number, no memory controller.
	proc := filepath.Join(t.TempDir(), "cgroup")
	write(proc, "0::/e\n")
	write(filepath.Join(root, "e/memory.max"), "max\n")
	write(filepath.Join(root, "e/memory.current"), "1\n")
	require.NoError(t, findCgroupMemory(proc, root).checkHeadroom(1<<40))
	write(proc, "4:memory:/f\n")
	write(filepath.Join(root, "memory/f/memory.limit_in_bytes"), "9223372036854771712\n")
	write(filepath.Join(root, "memory/f/memory.usage_in_bytes"), "1\n")
	require.NoError(t, findCgroupMemory(proc, root).checkHeadroom(1<<40))
	write(proc, "4:cpu:/\n")
	require.Equal(t, cgroupMemory{}, findCgroupMemory(proc, root))
	require.NoError(t, cgroupMemory{}.checkHeadroom(1<<40))
}
