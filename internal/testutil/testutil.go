// Package testutil holds helpers the project's tests share: leak checks for
// segment files and goroutines, and child processes to start, wait for and
// stop (StartChild).
package testutil

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/shmconn/shmconn/internal/shmdir"
)

// SegmentFiles lists the shmconn segment files in the segment directory
// (shmdir.Path), except those of live processes that are not this one or
// its descendants: other test binaries on the machine share /dev/shm, and
// their files in flight are none of our business. A file whose creator is
// dead is listed.
func SegmentFiles() []string {
	dir := shmdir.Path()
	entries, _ := os.ReadDir(dir)
	var names []string
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), "shmconn-")
		if !ok {
			continue
		}
		pidText, _, _ := strings.Cut(rest, "-")
		if pid, err := strconv.Atoi(pidText); err == nil && alive(pid) && !descendant(pid) {
			continue
		}
		names = append(names, filepath.Join(dir, e.Name()))
	}
	return names
}

func alive(pid int) bool {
	_, err := os.Stat("/proc/" + strconv.Itoa(pid))
	return err == nil
}

// descendant reports whether pid is this process or one it started,
// directly or not.
func descendant(pid int) bool {
	for i := 0; pid > 1 && i < 64; i++ {
		if pid == os.Getpid() {
			return true
		}
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil {
			return false
		}
		// "pid (comm) state ppid ...": comm may hold spaces and parentheses.
		f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
		if len(f) < 2 {
			return false
		}
		if pid, err = strconv.Atoi(f[1]); err != nil {
			return false
		}
	}
	return false
}

// VerifyMain runs the tests, then fails the binary if segment files made by
// this process remain or goroutines leaked.
func VerifyMain(m *testing.M) {
	before := map[string]bool{}
	for _, f := range SegmentFiles() {
		before[f] = true
	}
	code := m.Run()
	if code == 0 {
		for _, f := range SegmentFiles() {
			if !before[f] {
				println("FAIL: segment file left behind:", f)
				code = 1
			}
		}
		if err := goleak.Find(); err != nil {
			println("FAIL: goroutine leak:", err.Error())
			code = 1
		}
	}
	os.Exit(code)
}
