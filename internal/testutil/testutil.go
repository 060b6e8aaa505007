// Package testutil holds helpers the project's tests share: leak checks for
// segment files and goroutines.
package testutil

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/shmconn/shmconn/segment"
)

// SegmentFiles lists the shmconn segment files in segment.Dir.
func SegmentFiles() []string {
	entries, _ := os.ReadDir(segment.Dir)
	var names []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "shmconn-") {
			names = append(names, filepath.Join(segment.Dir, e.Name()))
		}
	}
	return names
}

// IgnoredGoroutines are the goroutines that may legitimately outlive a
// test. None of ours do.
var IgnoredGoroutines []goleak.Option

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
		if err := goleak.Find(IgnoredGoroutines...); err != nil {
			println("FAIL: goroutine leak:", err.Error())
			code = 1
		}
	}
	os.Exit(code)
}
