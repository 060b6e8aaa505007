package main

import (
	"bytes"
	"image/png"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestDrawChart draws figures spanning four decades, as shared memory next
// to a loaded socket gives, and checks a PNG comes out: the log axis must
// cope with sub-microsecond bars.
func TestDrawChart(t *testing.T) {
	mk := func(name string, sparse50, sparse99, dense50, dense99 time.Duration) result {
		r := result{name: name, sparse: newHist(), dense: newHist()}
		for i := range 100 {
			s, d := sparse50, dense50
			if i >= 98 {
				s, d = sparse99, dense99
			}
			r.sparse.RecordValue(s.Nanoseconds())
			r.dense.RecordValue(d.Nanoseconds())
		}
		return r
	}
	results := []result{
		mk("tcp", 85*time.Microsecond, 300*time.Microsecond, 58*time.Microsecond, 90*time.Microsecond),
		mk("shared memory", 2500*time.Nanosecond, 3*time.Millisecond, 800*time.Nanosecond, 2*time.Microsecond),
	}
	path := filepath.Join(t.TempDir(), "chart.png")
	info := chartInfo{cmd: "PING", sparse: "1 request / 10ms", machine: machine(), setup: setup(config{wait: "spin"})}
	if err := drawChart(path, results, info); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("not a PNG: %v", err)
	}
	if w := img.Bounds().Dx(); w < 500 {
		t.Errorf("chart is %d pixels wide", w)
	}
}

func TestFormatMicros(t *testing.T) {
	for v, want := range map[float64]string{0.84: "0.84 us", 2.5: "2.50 us", 64.2: "64.2 us", 170: "170 us", 3100: "3.10 ms"} {
		if got := formatMicros(v); got != want {
			t.Errorf("formatMicros(%v) = %q, want %q", v, got, want)
		}
	}
}
