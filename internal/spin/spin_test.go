package spin

import (
	"testing"
	"time"
)

// TestLoopBudget checks a spin ends when its budget, counted in time, is
// spent, and not long after: the budget must not depend on how fast this
// CPU's pause hint is.
func TestLoopBudget(t *testing.T) {
	for _, budget := range []time.Duration{5 * time.Microsecond, 200 * time.Microsecond, 2 * time.Millisecond} {
		var l Loop
		start := time.Now()
		l.Start(budget)
		ticks := 0
		for {
			tick, stop := l.Next()
			if tick {
				ticks++
			}
			if stop {
				break
			}
		}
		took := time.Since(start)
		if took < budget {
			t.Errorf("budget %v: stopped after %v", budget, took)
		}
		// Generous: the host is shared, and a preempted loop stops late.
		if took > budget+50*time.Millisecond {
			t.Errorf("budget %v: stopped only after %v", budget, took)
		}
		if ticks == 0 {
			t.Errorf("budget %v: the loop never read the clock", budget)
		}
	}
	if c := PauseCost(); c <= 0 || c > 10*time.Microsecond {
		t.Errorf("pause cost %v", c)
	}
}

// TestWindow checks the learned spin: short waits stretch it up to
// MaxSpin, long ones bring it back to BaseSpin, and a contended host cuts
// it to ContendedSpin.
func TestWindow(t *testing.T) {
	old := contendedUntil.Load()
	defer contendedUntil.Store(old)
	contendedUntil.Store(0)

	var w Window
	if b := w.Budget(); b != BaseSpin {
		t.Fatalf("fresh window: %v, want %v", b, BaseSpin)
	}
	for range 20 {
		w.Observe(100 * time.Microsecond)
	}
	if b := w.Budget(); b <= BaseSpin || b > MaxSpin {
		t.Fatalf("after 100 us waits: %v, want in (%v, %v]", b, BaseSpin, MaxSpin)
	}
	for range 20 {
		w.Observe(time.Second)
	}
	if b := w.Budget(); b != BaseSpin {
		t.Fatalf("after 1 s waits (an idle conn): %v, want %v", b, BaseSpin)
	}
	for range 20 {
		w.Observe(time.Microsecond)
	}
	if b := w.Budget(); b != BaseSpin {
		t.Fatalf("after 1 us waits: %v, want %v", b, BaseSpin)
	}
	MarkContended()
	if !Contended() {
		t.Fatal("MarkContended did not take")
	}
	if b := w.Budget(); b != ContendedSpin {
		t.Fatalf("contended: %v, want %v", b, ContendedSpin)
	}
}
