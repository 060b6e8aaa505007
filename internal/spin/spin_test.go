package spin

import (
	"runtime"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shmconn/shmconn/internal/trace"
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
		// A loop that lost a share of its time to preemption stops early
		// on purpose (see Next); a loaded host does that to it.
		if took < budget && !l.Preempted() {
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
// MaxSpin, OutlastedWaits waits in a row that outlast it shrink it to
// ShortSpin, one that ends within it brings back BaseSpin, and a
// contended host cuts it to ContendedSpin.
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
	for range OutlastedWaits - 1 {
		w.Observe(time.Second)
	}
	if b := w.Budget(); b == ShortSpin {
		t.Fatalf("shrunk after %d waits that outlasted the spin, want %d", OutlastedWaits-1, OutlastedWaits)
	}
	for range 20 {
		w.Observe(time.Second)
	}
	if b := w.Budget(); b != ShortSpin {
		t.Fatalf("after 1 s waits (an idle conn, sparse requests): %v, want %v", b, ShortSpin)
	}
	w.Observe(30 * time.Microsecond) // within the spin it would have had
	if b := w.Budget(); b != BaseSpin {
		t.Fatalf("after a wait within the spin: %v, want %v", b, BaseSpin)
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
	if b := w.Budget(); b != ContendedBurstSpin {
		t.Fatalf("contended, after 1 us waits: %v, want %v", b, ContendedBurstSpin)
	}
	w.Observe(100 * time.Microsecond)
	if b := w.Budget(); b != ContendedSpin {
		t.Fatalf("contended, after a 100 us wait: %v, want %v", b, ContendedSpin)
	}
	w.Observe(ContendedSpin)
	if b := w.Budget(); b != ContendedBurstSpin {
		t.Fatalf("contended, after a wait of ContendedSpin: %v, want %v", b, ContendedBurstSpin)
	}
}

// TestWindowDoze checks the learned doze: DozeSlice for a fresh window
// and for waits longer than MaxDoze, half as long again as waits of a
// millisecond, never more than MaxDoze.
func TestWindowDoze(t *testing.T) {
	var w Window
	if d := w.Doze(); d != DozeSlice {
		t.Fatalf("fresh window: doze %v, want %v", d, DozeSlice)
	}
	for range 30 {
		w.Observe(time.Millisecond)
	}
	if d := w.Doze(); d < 1400*time.Microsecond || d > 1500*time.Microsecond {
		t.Fatalf("after 1 ms waits: doze %v, want about 1.5 ms", d)
	}
	for range 30 {
		w.Observe(MaxDoze * 95 / 100)
	}
	if d := w.Doze(); d != MaxDoze {
		t.Fatalf("after waits of 0.95 MaxDoze: doze %v, want %v", d, MaxDoze)
	}
	for range 30 {
		w.Observe(time.Second)
	}
	if d := w.Doze(); d != DozeSlice {
		t.Fatalf("after 1 s waits (an idle conn): doze %v, want %v", d, DozeSlice)
	}
	for range 30 {
		w.Observe(10 * time.Microsecond)
	}
	if d := w.Doze(); d != DozeSlice {
		t.Fatalf("after 10 us waits: doze %v, want %v", d, DozeSlice)
	}
}

// TestContentionSeenAtFinish checks that a spin preempted just before its
// condition came true counts the preemption: on a busy host the bytes a
// waiter waits for arrive while it is off the CPU, and it finds them when
// it runs again, before its next look at the clock.
func TestContentionSeenAtFinish(t *testing.T) {
	fake := fakeClock(t)
	setAccount(0, 0)

	// Waits of 10 us of spinning, each then preempted for 1 ms, after
	// which the caller finds its condition and finishes.
	for i := 0; i < 1000 && !Contended(); i++ {
		var l Loop
		l.Start(time.Second)
		for spun := false; !spun; {
			tick, _ := l.Next()
			spun = tick && time.Duration(*fake-l.start) >= 10*time.Microsecond
		}
		*fake += int64(time.Millisecond)
		l.Finish()
	}
	if !Contended() {
		t.Fatal("1000 waits preempted for 1 ms each did not make the CPUs count as contended")
	}
}

// TestYieldSchedule checks when a Loop gives its CPU away, on a fake
// clock: first after FirstOSYield, then every OSYieldInterval while the
// yields return at once, every FirstOSYield while they show another
// thread on the CPU, and never early on a contended host, nor where a
// yield is runtime.Gosched (not Linux).
func TestYieldSchedule(t *testing.T) {
	calibrateOnce.Do(calibrate)
	oldClock, oldYield, oldContended, oldShared := clock, yieldCPU, contendedUntil.Load(), sharedYield
	defer func() {
		clock, yieldCPU, sharedYield = oldClock, oldYield, oldShared
		contendedUntil.Store(oldContended)
	}()
	sharedYield = SharedYield // whatever a yield costs on this machine
	const budget = 200 * time.Microsecond
	run := func(yieldTakes time.Duration, contended bool) (yields []time.Duration) {
		var fake int64 = 1 << 40
		clock = func() int64 { fake += 100; return fake }
		if contended {
			contendedUntil.Store(fake + int64(time.Hour))
		} else {
			contendedUntil.Store(0)
		}
		var start int64
		yieldCPU = func() {
			yields = append(yields, time.Duration(fake-start))
			fake += int64(yieldTakes)
		}
		var l Loop
		l.Start(budget)
		for {
			tick, stop := l.Next()
			if tick && start == 0 {
				start = fake
			}
			if stop {
				return yields
			}
		}
	}

	alone := run(0, false)
	if len(alone) == 0 || alone[0] > firstOSYield+time.Microsecond {
		t.Fatalf("alone: yields at %v, want the first by %v", alone, firstOSYield)
	}
	if runtime.GOOS != "linux" && alone[0] < OSYieldInterval-time.Microsecond {
		t.Fatalf("alone: yields (runtime.Gosched) at %v, want the first after %v", alone, OSYieldInterval)
	}
	for i := 1; i < len(alone); i++ {
		if gap := alone[i] - alone[i-1]; gap < OSYieldInterval-time.Microsecond {
			t.Fatalf("alone: yields at %v: %v apart, want %v", alone, gap, OSYieldInterval)
		}
	}
	if want := int(budget / OSYieldInterval); len(alone) < want-1 || len(alone) > want+2 {
		t.Errorf("alone: %d yields in %v, want about %d", len(alone), budget, want)
	}

	const shared = 5 * time.Microsecond
	sharing := run(shared, false)
	if want := int(budget / (shared + firstOSYield + time.Microsecond)); len(sharing) < want {
		t.Errorf("sharing the CPU: %d yields in %v (%v), want at least %d", len(sharing), budget, sharing, want)
	}

	busy := run(shared, true)
	if len(busy) == 0 || busy[0] < OSYieldInterval-time.Microsecond {
		t.Fatalf("contended: yields at %v, want the first after %v", busy, OSYieldInterval)
	}
	if want := int(budget / OSYieldInterval); len(busy) > want+1 {
		t.Errorf("contended: %d yields in %v (%v), want at most %d", len(busy), budget, busy, want+1)
	}
}

// TestPreemptionCountedOnce checks that a preemption gap that ends a spin
// is accounted once: neither the Finish that follows nor a caller that
// keeps spinning (spinpoll's spinAlways) counts the same gap again.
func TestPreemptionCountedOnce(t *testing.T) {
	fake := fakeClock(t)
	lost := func() time.Duration {
		spinAccount.mu.Lock()
		defer spinAccount.mu.Unlock()
		return time.Duration(spinAccount.lost)
	}
	for _, keepSpinning := range []bool{false, true} {
		contendedUntil.Store(0)
		// Just under LostShare: one more 2 ms gap tips it.
		setAccount(60*time.Millisecond, 14*time.Millisecond)

		var l Loop
		l.Start(time.Second)
		for tick := false; !tick; {
			tick, _ = l.Next()
		}
		*fake += int64(2 * time.Millisecond)
		for {
			if _, stop := l.Next(); stop {
				break
			}
		}
		if !l.Preempted() {
			t.Fatal("a 2 ms gap that tips the share did not end the spin as preempted")
		}
		if keepSpinning {
			for i := 0; i < 10*pausesPerCheck; i++ {
				if _, stop := l.Next(); stop {
					t.Fatalf("Next stopped again after %d calls with no further gap (lost %v)", i, lost())
				}
			}
		}
		l.Finish()
		if got := lost(); got > 16*time.Millisecond+time.Microsecond {
			t.Errorf("keep spinning %v: lost %v after one 2 ms gap on 14 ms, want 16 ms", keepSpinning, got)
		}
	}
}

// TestGapTraced checks that a build with -tags shmconntrace records a
// spinner's gap from the look before it to the look after it.
func TestGapTraced(t *testing.T) {
	if !trace.Enabled {
		t.Skip("needs -tags shmconntrace")
	}
	fake := fakeClock(t)
	trace.Start()
	var l Loop
	l.Start(time.Second)
	for tick := false; !tick; {
		tick, _ = l.Next()
	}
	*fake += int64(time.Millisecond)
	for tick := false; !tick; {
		tick, _ = l.Next()
	}
	trace.Stop()
	for _, g := range trace.Collect().Gaps {
		if d := time.Duration(g[1] - g[0]); d >= time.Millisecond && d < time.Millisecond+time.Microsecond {
			return
		}
	}
	t.Errorf("no gap of 1 ms among %v", trace.Collect().Gaps)
}

// fakeClock makes the package's clock a counter that moves 100 ns a read
// (tests move it further through the pointer returned) and the CPUs
// uncontended, and puts back the clock, the verdict and the process's
// spin account when t ends.
func fakeClock(t *testing.T) *int64 {
	oldClock, oldContended := clock, contendedUntil.Load()
	spinAccount.mu.Lock()
	oldSpun, oldLost := spinAccount.spun, spinAccount.lost
	spinAccount.mu.Unlock()
	t.Cleanup(func() {
		clock = oldClock
		contendedUntil.Store(oldContended)
		setAccount(time.Duration(oldSpun), time.Duration(oldLost))
	})
	contendedUntil.Store(0)
	fake := new(int64)
	*fake = 1 << 40
	clock = func() int64 { *fake += 100; return *fake }
	return fake
}

// setAccount sets the process's recent spinning time and time lost.
func setAccount(spun, lost time.Duration) {
	spinAccount.mu.Lock()
	defer spinAccount.mu.Unlock()
	spinAccount.spun, spinAccount.lost = int64(spun), int64(lost)
}

// TestUntilYields checks that Until, whose budget is the largest Duration,
// paces its spin as any Loop does: it gives its CPU away as the schedule
// says rather than ending every look at once as if out of budget.
func TestUntilYields(t *testing.T) {
	fakeClock(t)
	oldYield := yieldCPU
	t.Cleanup(func() { yieldCPU = oldYield })
	yielded := false
	yieldCPU = func() { yielded = true }
	calls := 0
	Until(func() bool {
		calls++
		return yielded || calls > 100*pausesPerCheck
	})
	if !yielded {
		t.Fatalf("Until spun %d looks (%v on the fake clock) without giving its CPU away", calls/pausesPerCheck, time.Duration(calls/pausesPerCheck*100))
	}
}

// TestLoopLetsTimersFire checks that a loop spinning on the only P lets
// the scheduler run now and then: a timer (a Sleep, a deadline's
// AfterFunc) is run by the scheduler of the P that holds it, so its
// goroutine is not runnable, and not seen as such, until then.
func TestLoopLetsTimersFire(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	took := make([]time.Duration, 7)
	for i := range took {
		var fired atomic.Bool
		start := time.Now()
		time.AfterFunc(100*time.Microsecond, func() { fired.Store(true) })
		Until(fired.Load)
		took[i] = time.Since(start)
	}
	// Without a look at the timers they wait for the runtime to preempt
	// the spinner: 10-20 ms.
	slices.Sort(took)
	if median := took[len(took)/2]; median > 5*time.Millisecond {
		t.Errorf("100 us timers fired after %v while a loop spun on the only P (median %v)", took, median)
	}
}

// TestSharedYieldCalibrated checks that a yield's own cost, where it is
// high, does not read as a shared CPU: the threshold is calibrated above
// it, and never below SharedYield.
func TestSharedYieldCalibrated(t *testing.T) {
	calibrateOnce.Do(calibrate)
	oldYield, oldShared := yieldCPU, sharedYield
	defer func() { yieldCPU, sharedYield = oldYield, oldShared }()

	const slow = 10 * time.Microsecond // a system call under gVisor, say
	yieldCPU = func() {
		for t := time.Now(); time.Since(t) < slow; {
		}
	}
	calibrate()
	if sharedYield < 4*slow {
		t.Errorf("yields of %v: threshold %v, want at least %v", slow, sharedYield, 4*slow)
	}
	yieldCPU = oldYield
	calibrate()
	if sharedYield < SharedYield || sharedYield > time.Millisecond {
		t.Errorf("this machine's yield: threshold %v, want in [%v, 1ms]", sharedYield, SharedYield)
	}
	t.Logf("threshold %v (pause %v)", sharedYield, pauseCost)
}

// eevdf models how Linux (EEVDF, kernel 6.18) shares one CPU between a
// spinning thread and a busy stranger, on the fake clock. Each thread's
// virtual runtime advances by its running time times 1024 over its
// weight (29154 at nice -15, 1024 at nice 0). The kernel runs the eligible
// thread (virtual runtime not past the weighted average) with the earliest
// virtual deadline, a slice past its virtual runtime; the stranger, once
// picked, runs its whole slice. sched_yield forfeits the rest of the
// yielder's slice: its virtual runtime jumps to its deadline.
type eevdf struct {
	wall, ran      int64 // the fake clock; where the spinner's runtime was last updated
	wS, wL         int64 // weights: spinner, stranger
	vS, dS, vL, dL int64 // virtual runtimes and deadlines
	slice          int64 // a slice in wall time at nice 0
	noStranger     bool  // nothing busy shares the CPU
	lost           int64 // wall time the stranger and woken threads ran
	// A thread the kernel wakes takes the CPU for brief every
	// briefEvery (0: never), and sleeps again.
	brief, briefEvery, nextBrief int64
}

func newEEVDF(spinnerWeight int64) *eevdf {
	e := &eevdf{wall: 1 << 40, wS: spinnerWeight, wL: 1024, slice: int64(1500 * time.Microsecond)}
	e.ran = e.wall
	e.dS, e.dL = e.slice*1024/e.wS, e.slice
	return e
}

// update charges the spinner for its running time since the last update
// and gives it a new deadline once it reached the old one.
func (e *eevdf) update() {
	e.vS += (e.wall - e.ran) * 1024 / e.wS
	e.ran = e.wall
	if e.vS >= e.dS {
		e.dS = e.vS + e.slice*1024/e.wS
	}
}

func (e *eevdf) avg() int64 { return (e.wS*e.vS + e.wL*e.vL) / (e.wS + e.wL) }

// pick runs the stranger for its slice if the kernel picks it.
func (e *eevdf) pick() {
	avg := e.avg()
	if !e.noStranger && e.vL <= avg && (e.vS > avg || e.dL < e.dS) {
		e.wall += e.slice
		e.lost += e.slice
		e.vL += e.slice
		e.dL = e.vL + e.slice
		e.ran = e.wall
	}
}

// clock is a read of the fake clock: 100 ns pass, at the end of which
// the kernel may preempt the spinner.
func (e *eevdf) clock() int64 {
	e.wall += 100
	if e.briefEvery > 0 && e.wall >= e.nextBrief {
		e.update()
		e.wall += e.brief
		e.lost += e.brief
		e.ran = e.wall
		e.nextBrief = e.wall + e.briefEvery
	}
	e.update()
	e.pick()
	return e.wall
}

// yield is sched_yield.
func (e *eevdf) yield() {
	e.update()
	if e.vS <= e.avg() {
		e.vS = e.dS
		e.dS += e.slice * 1024 / e.wS
	}
	e.pick()
}

// TestBriefGapsUncontended runs a WaitSpin leader's waits for one
// request a millisecond on a CPU that the kernel shares as it does (see
// eevdf). Threads it wakes take the CPU briefly and often, as on a host
// busy with builds: the spinner must not count the CPUs as contended,
// since a parked waiter would wait those moments out as well (measured,
// a spinner lost 30% of its time in gaps of 100-300 us, was marked
// contended, and answered in 13-34 us instead of 1-2). A spinner that
// loses whole time slices to a busy process at its own priority must
// count them as contended.
func TestBriefGapsUncontended(t *testing.T) {
	calibrateOnce.Do(calibrate)
	fakeClock(t) // puts back the clock, the verdicts and the account
	oldYield, oldPauses := yieldCPU, pausesPerCheck
	t.Cleanup(func() { yieldCPU, pausesPerCheck = oldYield, oldPauses })
	pausesPerCheck = 1 // one clock read a Next: the fake clock is the pace

	for _, c := range []struct {
		name              string
		busy              bool // a busy process at nice 0 shares the CPU
		brief, briefEvery time.Duration
		wantContended     bool
		maxShareLost      float64 // of the wall time, when not contended
	}{
		{"woken threads taking 250 us every 500 us", false, 250 * time.Microsecond, 500 * time.Microsecond, false, 0.4},
		{"woken threads taking 150 us every 300 us", false, 150 * time.Microsecond, 300 * time.Microsecond, false, 0.4},
		{"beside a busy process", true, 0, 0, true, 1},
		{"beside a busy process, woken threads taking 100 us every 1 ms", true, 100 * time.Microsecond, time.Millisecond, true, 1},
	} {
		e := newEEVDF(1024) // nice 0
		e.noStranger = !c.busy
		e.brief, e.briefEvery = int64(c.brief), int64(c.briefEvery)
		e.nextBrief = e.wall + e.briefEvery
		clock, yieldCPU = e.clock, e.yield
		start := e.wall
		contended, waits := waitEachMillisecond(e)
		share := float64(e.lost) / float64(e.wall-start)
		switch {
		case contended != c.wantContended:
			t.Errorf("%s: contended %v after %d waits (%v), want %v; the stranger ran %.0f%% of the time",
				c.name, contended, waits, time.Duration(e.wall-start), c.wantContended, 100*share)
		case !contended && share > c.maxShareLost:
			t.Errorf("%s: the stranger ran %.0f%% of the time, want at most %.0f%%", c.name, 100*share, 100*c.maxShareLost)
		}
		t.Logf("%s: contended %v after %d waits, the stranger ran %.1f%% of the time", c.name, contended, waits, 100*share)
	}
}

// TestRunnable: a goroutine started while the only P is busy waits for
// it, and Runnable says so; once it ran, nothing waits.
func TestRunnable(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	ran := make(chan struct{})
	go close(ran)
	if !Runnable() {
		t.Fatal("a goroutine waits for the only P, Runnable says none does")
	}
	<-ran
	deadline := time.Now().Add(5 * time.Second)
	for Runnable() && time.Now().Before(deadline) {
		runtime.Gosched()
	}
	if Runnable() {
		t.Fatal("Runnable still true with nothing to run")
	}
}

// TestFavouredSpinnerForfeits checks, on the EEVDF model, why a spinner
// at nice -15 beside a busy process at nice 0 counts the CPUs as
// contended and parks (see the package doc): by weight the busy process
// would take about 3% of the CPU, but each yield forfeits the rest of the
// spinner's slice, and the yields a peer behind the spinner needs hand
// the busy process most of the CPU. Measured on Linux 6.18, a nice -15
// spinner lost 71-95% of its time beside a busy nice-0 process with
// yields every 2-20 us, and 7% without yields.
func TestFavouredSpinnerForfeits(t *testing.T) {
	calibrateOnce.Do(calibrate)
	fakeClock(t) // puts back the clock, the verdicts and the account
	oldYield, oldPauses := yieldCPU, pausesPerCheck
	t.Cleanup(func() { yieldCPU, pausesPerCheck = oldYield, oldPauses })
	pausesPerCheck = 1

	run := func(yields bool) (contended bool, share float64) {
		e := newEEVDF(29154) // nice -15
		clock, yieldCPU = e.clock, e.yield
		if !yields {
			yieldCPU = func() { e.update(); e.pick() }
		}
		start := e.wall
		contended, _ = waitEachMillisecond(e)
		return contended, float64(e.lost) / float64(e.wall-start)
	}
	contended, share := run(false)
	if contended || share > 0.1 {
		t.Fatalf("without yields: contended %v, the busy process ran %.0f%% of the time; want not contended, about 3%%", contended, 100*share)
	}
	t.Logf("without yields: the busy process ran %.1f%% of the time", 100*share)
	contended, share = run(true)
	if !contended {
		t.Errorf("yielding as a Loop does: not contended, the busy process ran %.0f%% of the time", 100*share)
	}
	t.Logf("yielding as a Loop does: contended %v, the busy process ran %.0f%% of the time", contended, 100*share)
}

// waitEachMillisecond runs a WaitSpin leader's waits for one request a
// millisecond on e's fake clock, from a fresh verdict and account, for
// 300 ms or until the CPUs count as contended.
func waitEachMillisecond(e *eevdf) (contended bool, waits int) {
	contendedUntil.Store(0)
	setAccount(0, 0)
	for start := e.wall; e.wall-start < int64(300*time.Millisecond) && !contended; waits++ {
		var l Loop
		l.Start(time.Second)
		for begin := e.wall; e.wall-begin < int64(time.Millisecond); {
			if _, stop := l.Next(); stop {
				break
			}
		}
		l.Finish()
		contended = Contended()
	}
	return contended, waits
}
