// Package spin decides how a waiting call spends the CPU: how it paces a
// polling loop, how long it may spin, when it must yield, and when
// spinning stops paying because the CPUs are contended.
//
// Everything here is measured in time, never in loop counts: the cost of
// the CPU's pause hint differs several-fold between CPU models (a few
// nanoseconds on some, over 40 on others), so a budget counted in
// iterations would mean different things on different machines. The loop
// reads the clock every CheckInterval or so; how many pauses that is, is
// calibrated once per process.
//
// Four costs of spinning are avoided on purpose:
//
//   - runtime.Gosched wakes an idle P (a futex wake of another thread,
//     often on another CPU) and may move the spinning goroutine to that
//     thread. On a two-CPU host that thread takes the CPU of the very peer
//     we wait for. A Loop yields only when some goroutine is actually
//     runnable and waiting for a P (runtime/metrics tells, in ~0.1 us),
//     or when its P is the only one, whose timers only it runs.
//   - The runtime preempts a goroutine that has run 10 ms without a
//     scheduling point, which does what runtime.Gosched does. A Loop
//     passes through the scheduler every SchedPointInterval with
//     runtime.goyield instead, which keeps it on its P and thread and
//     wakes nobody.
//   - The kernel often wakes a thread on the CPU of the thread that woke
//     it (a socket's wake-up says the waker is about to sleep). A peer
//     woken by our own wake-up, or by its timer, can land behind our
//     spinning thread and wait there for a whole time slice, milliseconds,
//     while the bytes we wait for are in it: measured, 1-2% of sparse
//     round trips took 1-5 ms until the two processes were pinned apart.
//     A Loop gives its CPU away (sched_yield) after FirstOSYield, then
//     every OSYieldInterval (every FirstOSYield while a yield shows that
//     another thread shares the CPU), which costs well under a microsecond
//     when nobody waits for that CPU.
//   - A spinner on a busy host burns its time slice, and the kernel then
//     no longer favours it when it is woken: it loses to a socket whose
//     reader slept. Loops account the time they lose in preemption gaps
//     of a time slice or more (a thread woken for a moment takes less,
//     and would delay a parked waiter as much); when the process's
//     spinners lose a quarter of their recent spinning time, the CPUs
//     count as contended, and callers spin only briefly. A process that
//     runs above the busy work's priority (nice -15) still counts them
//     contended beside a busy process on Linux 6.18: each yield forfeits
//     the rest of the yielder's time slice (EEVDF), even one that returns
//     at once (the busy process collects it later in one slice), and the
//     frequent yields a peer behind the spinner needs hand the busy
//     process most of the spinner's CPU. Measured with a nice -15
//     spinner, a busy nice-0 process and a nice -15 peer woken every
//     millisecond on one CPU, the spinner lost 95% of its time yielding
//     every 2 us, 71% every 20 us, 23% every 200 us and 7% never; the
//     peer's p99 wait for the CPU was 27-44 us, 54-458 us, 0.2-0.7 ms and
//     1.7-2.8 ms. No way out that was tried brought a WaitSpin server's
//     p50 at 1 ms under load near its idle 1-2 us and kept its p99
//     (-load cpu -nice=-15: p50 32-43 us, p99 0.1-1.3 ms as it is): no
//     yields (p50 98-110 us, p99 3-6 ms: the kernel woke the client on
//     the spinner's CPU, where neither end let the other run); a yield
//     every 2 or 20 ms once one took a slice (p50 36-46 us, p99 1.9-4.3
//     ms; the client, woken on the spinner's CPU, took 30-40 us a round
//     trip in context switches); a 100 us slice request for the spinning
//     thread (sched_setattr), which bounds a forfeit (lost 17-39%
//     yielding every 20 us) but makes a woken peer wait out the spinner's
//     deadlines (its p99 0.08-199 ms): alone p50 35-43 us, with the rarer
//     yields p50 1-37 us and p99 0.2-2 ms; a 1 ns sleep for a yield (lost
//     53-55%: the busy process runs its slice); moving to another CPU
//     when waits ended after time off the CPU (no change).
//     (Counting the host's runnable threads, or this process's threads'
//     waits for a CPU, was tried and dropped: on two CPUs a spinning peer
//     and our own runtime's threads make the host look contended when
//     nothing else runs.)
package spin

import (
	"runtime"
	"runtime/metrics"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shmconn/shmconn/atomicx"
	"github.com/shmconn/shmconn/internal/trace"
)

const (
	// CheckInterval is about how long a Loop spins between two looks at
	// the clock: short enough that budgets and deadlines are kept to
	// within a microsecond, long enough that reading the clock (20-60 ns)
	// stays a small part of the loop.
	CheckInterval = 500 * time.Nanosecond
	// YieldCheckInterval is how often a spinning loop asks the runtime
	// whether a goroutine waits for a P. Goroutines made runnable while
	// another P is idle are taken by that P at once; this is for the rest
	// (GOMAXPROCS 1, every P busy), which would otherwise wait for the
	// runtime's 10 ms preemption. With GOMAXPROCS 1 the loop lets the
	// scheduler run this often whatever it finds, so that timers fire.
	YieldCheckInterval = 20 * time.Microsecond
	// OSYieldInterval is how often a spinning loop gives its CPU to any
	// other thread waiting for it. The kernel often wakes a thread on
	// the CPU of the thread that woke it: a peer woken by our wake-up,
	// or by anything else, may sit behind our spinning thread for a whole
	// time slice (milliseconds) while the very bytes we wait for are in
	// it. A yield with nobody waiting costs well under a microsecond.
	OSYieldInterval = 20 * time.Microsecond
	// SchedPointInterval is how often a spinning loop passes through the
	// Go scheduler without leaving its P (see goyield), so that the
	// runtime never preempts it: it preempts a goroutine that has run
	// 10 ms without a scheduling point, puts it on the global run queue
	// and wakes another thread to look for work, and either thread may
	// take it. A spinner preempted that way moved between threads, and
	// CPUs, every 10-20 ms, and each move slowed the round trips after
	// it: measured with roundtrace at 1 req/ms on a 2-vCPU VM, 30-45% of
	// round trips were slowed by a gap of the server's spinner, against
	// 7-15% for a spinner that keeps its thread.
	SchedPointInterval = 2 * time.Millisecond
	// FirstOSYield is when a Loop first gives its CPU away, and how often
	// it does while its CPU is shared. The kernel wakes a thread on a CPU
	// that is running, rather than on a halted virtual CPU: a peer woken
	// by our wake-up, or a peer whose timer fired, lands behind our
	// spinning thread, and the bytes we wait for are in it. Giving the CPU
	// away after 2 us instead of 20 us lets it run at once: measured on a
	// 2-vCPU VM, round trips with both ends parking took 0.45-0.5x a unix
	// socket's instead of 0.7x, and a spinner sharing a CPU answered in
	// about 10 us instead of 25. Back-to-back waits end long before it. Not
	// on a contended host: there the thread behind us is a stranger that
	// keeps the CPU for a whole slice. Linux only: elsewhere the yield is
	// runtime.Gosched, which wakes another thread, and the first comes
	// after OSYieldInterval.
	FirstOSYield = 2 * time.Microsecond
	// SharedYield is the least time a yield must take to show that
	// another thread ran meanwhile: with nobody waiting it returns within
	// a microsecond here (0.6 us). Where a system call costs more
	// (gVisor, heavy mitigations) the threshold is four times the
	// cheapest yield measured at start-up, so that the yield's own cost
	// does not read as a shared CPU.
	SharedYield = 3 * time.Microsecond
	// SliceGap is the least gap between two clock reads of a spinning
	// loop that counts as time lost to another thread: a time slice given
	// to a thread of our priority (Linux's are 0.75-3 ms, by CPU count).
	// Interrupts take a few microseconds. Gaps in between are the kernel
	// running a thread it woke, briefly (the peer with our bytes, a
	// kernel worker, a short job), which happens to a spinner all the
	// time on a host busy with other work and which a parked waiter
	// would wait out as well. Measured on a 2-vCPU VM, a WaitSpin server
	// lost 30% of its spinning time in gaps of 100-300 us (its own
	// client among others, run on its CPU); on a host busy with builds,
	// counting such gaps switched spinning off, and p50 at one request
	// per ms was 3.5-34 us instead of 1-2 us.
	SliceGap = 500 * time.Microsecond
	// ContendedHold is how long the CPUs count as contended after a sign
	// of it. Load comes and goes in seconds, not microseconds; holding the
	// verdict this long bounds how often a spinner tests it the hard way
	// (by being preempted) to a few times a second.
	ContendedHold = 500 * time.Millisecond
	// LostShare is the share of the process's recent spinning time lost
	// to other threads (gaps of SliceGap or more) that means the CPUs are
	// contended. A low-priority batch job also takes a slice (a
	// millisecond or two) from a spinner now and then, which costs a
	// percent or two over time and is no reason to stop; a peer at our
	// priority takes half.
	LostShare = 0.25
	// spinHorizon is how much spinning time the share is judged over (at
	// least, and about): long enough that one slice given to a batch job
	// is a small part of it.
	spinHorizon = 50 * time.Millisecond
)

var (
	calibrateOnce  sync.Once
	pausesPerCheck int // pauses between clock reads, ~CheckInterval
	pauseCost      time.Duration
	sharedYield    = SharedYield // SharedYield, or more where a yield costs more
)

// calibrate measures the pause hint's cost on this CPU, and the cost of
// a yield that gives nothing away.
func calibrate() {
	const n = 2000
	best := time.Duration(1<<63 - 1)
	for range 5 {
		t := time.Now()
		atomicx.Pause(n)
		best = min(best, time.Since(t))
	}
	pauseCost = max(best/n, time.Nanosecond)
	pausesPerCheck = int(min(max(CheckInterval/pauseCost, 1), 4096))
	sharedYield = max(SharedYield, 4*cheapestYield())
}

// cheapestYield times a few yields and returns the quickest: the cost of
// the call itself, when no other thread took the CPU meanwhile.
func cheapestYield() time.Duration {
	best := time.Duration(1<<63 - 1)
	for range 20 {
		t := time.Now()
		yieldCPU()
		best = min(best, time.Since(t))
	}
	return best
}

// PauseCost returns the measured cost of one pause hint on this CPU.
func PauseCost() time.Duration {
	calibrateOnce.Do(calibrate)
	return pauseCost
}

// epoch anchors now: nanoseconds on the monotonic clock.
var epoch = time.Now()

// epochUnix is epoch in Unix nanoseconds, for trace stamps.
var epochUnix = epoch.UnixNano()

func now() int64 { return clock() }

// The clock and the yield, replaced by tests that check the schedule.
var (
	clock    = func() int64 { return int64(time.Since(epoch)) }
	yieldCPU = osYield
)

// lastSchedPoint is when a spinning loop last passed through the Go
// scheduler (see SchedPointInterval). It is the process's, not a loop's:
// a WaitSpin leader spins through one wait after another, each shorter
// than the interval, with no scheduling point between them, and it is
// the goroutine's running time that the runtime judges.
var lastSchedPoint atomic.Int64

// contendedUntil is the monotonic time until which the CPUs count as
// contended.
var contendedUntil atomic.Int64

// MarkContended records a sign that the CPUs are contended.
func MarkContended() { contendedUntil.Store(now() + int64(ContendedHold)) }

// Contended reports whether the CPUs count as contended: the process's
// spinners lost much of their recent spinning time to other threads (see
// LostShare). It is two loads.
func Contended() bool {
	u := contendedUntil.Load()
	if u == 0 {
		return false // the common case reads no clock
	}
	if now() < u {
		return true
	}
	contendedUntil.CompareAndSwap(u, 0)
	return false
}

// schedSamples are the runtime's goroutines waiting for a P and its
// number of Ps, read together under schedMu.
var (
	schedSamples = []metrics.Sample{
		{Name: "/sched/goroutines/runnable:goroutines"},
		{Name: "/sched/gomaxprocs:threads"},
	}
	schedMu sync.Mutex
)

// SchedPoint passes through the Go scheduler without leaving the thread
// (goyield: the P runs its due timers and the goroutines queued on it
// first) unless a spinning Loop or a SchedPoint did within d. A call that
// blocks its thread while holding its P (package conn's doze) calls it
// before each such wait: back-to-back waits, each ended before its bound,
// would otherwise never let the P schedule until the runtime preempts the
// goroutine, 10 ms or more later. Like the Loop's, the last point is the
// process's, not the P's.
func SchedPoint(d time.Duration) {
	if now()-lastSchedPoint.Load() < int64(d) {
		return
	}
	goyield()
	lastSchedPoint.Store(now())
}

// Runnable reports whether goroutines of the process wait for a P.
func Runnable() bool {
	schedMu.Lock()
	defer schedMu.Unlock()
	metrics.Read(schedSamples)
	runnable := schedSamples[0].Value
	return runnable.Kind() == metrics.KindUint64 && runnable.Uint64() > 0
}

// mustGosched reports whether a spinning goroutine should let the Go
// scheduler run: goroutines wait for a P, or this is the only P. Timers
// (a Sleep, a deadline's AfterFunc) are run by the scheduler of the P that
// holds them, or by an idle P; with one P, spinning on it, their
// goroutines are not even runnable until the runtime preempts the spinner
// (10-20 ms). With one P a Gosched wakes no other thread: there is no
// idle P to start.
func mustGosched() bool {
	schedMu.Lock()
	defer schedMu.Unlock()
	metrics.Read(schedSamples)
	runnable, procs := schedSamples[0].Value, schedSamples[1].Value
	return runnable.Kind() == metrics.KindUint64 && runnable.Uint64() > 0 ||
		procs.Kind() == metrics.KindUint64 && procs.Uint64() == 1
}

// Loop paces one spinning wait. The zero value is not ready: call Start.
// A Loop is for one goroutine.
type Loop struct {
	budget           int64 // ns
	started          bool  // the clock was read: start, last, end are set
	start, last, end int64 // monotonic ns: first clock read, last one, budget end
	nextYield        int64
	nextOSYield      int64
	lost             int64 // ns lost in preemption gaps since flushed
	flushed          int64 // when spinning time was last added to spinAccount
	n                int
	preempted        bool
}

// Start begins a spin of at most budget. It reads no clock: the first
// look at it comes after CheckInterval of spinning, so a wait that ends
// sooner (back-to-back traffic) costs no clock read at all, and the budget
// counts from there.
func (l *Loop) Start(budget time.Duration) {
	calibrateOnce.Do(calibrate)
	// The end is the clock plus the budget: a budget near the largest
	// Duration (Until's) must not wrap it into the past, which would end
	// every look at once, before the loop yields to anybody.
	*l = Loop{budget: int64(min(budget, maxBudget))}
}

// maxBudget is a spin of over a century: any longer budget means the same.
const maxBudget = time.Duration(1 << 62)

// Next waits a little before the caller's next look. It returns true when
// it read the clock (the caller may then check its slower conditions:
// close, deadline), and stop true when the spin should end: its budget is
// spent or the thread was preempted (see Preempted).
func (l *Loop) Next() (tick, stop bool) {
	l.n++
	if l.n < pausesPerCheck {
		atomicx.Pause(1)
		return false, false
	}
	l.n = 0
	t := now()
	if !l.started {
		l.started = true
		l.start, l.last, l.flushed = t, t, t
		l.end, l.nextYield = t+l.budget, t+int64(YieldCheckInterval)
		l.nextOSYield = t + int64(OSYieldInterval)
		if !Contended() {
			l.nextOSYield = t + int64(firstOSYield)
		}
		return true, false
	}
	if l.lostGap(t) {
		return true, true
	}
	if t >= l.end {
		l.flush(t)
		return true, true
	}
	if t >= l.nextOSYield {
		// A slice given to another thread here shows as a gap at the
		// next look, as a preemption would: it is time lost to others.
		yieldCPU()
		l.nextOSYield = t + int64(OSYieldInterval)
		if t2 := now(); t2-t > int64(sharedYield) && !Contended() {
			// Somebody shares this CPU: it may be the peer, with our
			// bytes. Let it run often while it is there.
			l.nextOSYield = t2 + int64(firstOSYield)
		}
	}
	if t >= l.nextYield {
		l.nextYield = t + int64(YieldCheckInterval)
		switch {
		case mustGosched():
			runtime.Gosched()
		case t-lastSchedPoint.Load() >= int64(SchedPointInterval):
			goyield()
		default:
			return true, false
		}
		l.last = now() // time given away on purpose is not preemption
		lastSchedPoint.Store(l.last)
	}
	return true, false
}

// Finish ends the spin's accounting; callers call it when they stop
// spinning for any reason, so that the share of time lost is judged
// against all the time spun.
func (l *Loop) Finish() {
	if !l.started {
		return
	}
	// The gap before the caller's last look counts too: on a busy host
	// a waiter is mostly preempted while its bytes arrive, and finds them
	// when it runs again, before any further look at the clock. Counting
	// only the gaps between two looks, a waiter whose peer answered
	// within its spin never learned that the CPUs were contended, and
	// kept spinning where a socket's reader is woken first.
	t := now()
	if !l.lostGap(t) {
		l.flush(t)
	}
}

// lostGap accounts the time since the loop's last look at the clock as
// lost to other threads if it is a time slice given away (SliceGap), and
// then reports whether that made the CPUs count as contended (marking
// them so). t becomes the last look, so that a gap is counted once even
// when it ends the spin and the caller then calls Finish, or spins on.
func (l *Loop) lostGap(t int64) bool {
	gap := t - l.last
	l.last = t
	if trace.Enabled && gap >= trace.GapMin {
		trace.Gap(epochUnix+t-gap, epochUnix+t)
	}
	if gap < int64(SliceGap) {
		return false
	}
	l.lost += gap
	if !l.flush(t) {
		return false
	}
	l.preempted = true
	MarkContended()
	return true
}

// flush adds the loop's spinning and lost time since the last flush to the
// process's account and reports whether the CPUs are contended by it.
func (l *Loop) flush(t int64) bool {
	spun, lost := t-l.flushed, l.lost
	l.flushed, l.lost = t, 0
	return spinAccount.add(spun, lost)
}

// spinAccount is the process's recent spinning: time spun and time lost
// in preemption gaps, halved whenever it spans twice spinHorizon.
type account struct {
	mu         sync.Mutex
	spun, lost int64
}

var spinAccount account

func (a *account) add(spun, lost int64) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.spun += spun
	a.lost += lost
	for a.spun > 2*int64(spinHorizon) {
		a.spun /= 2
		a.lost /= 2
	}
	return a.spun >= int64(spinHorizon) && float64(a.lost) > LostShare*float64(a.spun)
}

// Preempted reports whether the spin ended because the thread lost much of
// its time to other threads (LostShare) in the middle of it.
func (l *Loop) Preempted() bool { return l.preempted }

// Window chooses how long a conn's direction spins before it dozes or parks,
// from how long its recent waits lasted. A wait that usually ends within a
// few hundred microseconds (a response the peer computes after its own
// kernel wake-up) is worth spinning through: it saves our kernel wake-up,
// half of such a round trip. A wait that lasts longer (the next request of
// a sparse client, an idle conn) gets only the base spin. The zero value
// is ready; a Window is used under its direction's mutex.
//
// When the direction's last OutlastedWaits waits all outlasted the spin
// they would get (each ended by a kernel wake-up), the spin shrinks to
// ShortSpin: such waits end by a wake-up anyway, and a spinner only keeps
// its CPU busy, so that the kernel runs the peer it wakes on another,
// idle CPU (tens of microseconds on a VM) instead of on the waker's. One
// wait that ends within the spin's budget brings it back.
type Window struct {
	typical   time.Duration // smoothed wait length, capped at windowCap
	lastShort bool          // the last wait ended within ContendedSpin
	outlasted int           // waits in a row, up to OutlastedWaits, that outlasted their budget
	long      time.Duration // smoothed wait length, capped at 2*MaxDoze
}

const (
	// BaseSpin is the spin every wait gets on an uncontended host: longer
	// than a round trip through a peer that answers at once, much
	// shorter than the tens of microseconds a kernel wake-up costs.
	BaseSpin = 50 * time.Microsecond
	// MaxSpin bounds a learned window: a wait longer than this costs less
	// CPU parked, whatever the wake-up costs.
	MaxSpin = 250 * time.Microsecond
	// ContendedSpin is the spin on a contended host: it still catches a
	// peer that is running and answers at once, and is too short to cost
	// the waiter its wake-up preference with the kernel's scheduler.
	ContendedSpin = 5 * time.Microsecond
	// ContendedBurstSpin is the spin on a contended host right after a
	// wait that ended within ContendedSpin: back-to-back traffic whose
	// peer is running. Parking there would put a kernel wake-up on every
	// message whenever the peer is briefly preempted: measured under
	// load, back-to-back round trips took 21-38 us with ContendedSpin
	// alone (a socket's 25-29 us), and 0.3-1.2 us or 13-33 us with this,
	// by run (where the host placed the two processes and the load).
	ContendedBurstSpin = 50 * time.Microsecond
	// ShortSpin is the spin of a direction whose recent waits all
	// outlasted theirs: long enough to catch a peer that is running and
	// answers at once.
	ShortSpin = 5 * time.Microsecond
	// OutlastedWaits is how many waits in a row must outlast their spin
	// before it shrinks to ShortSpin.
	OutlastedWaits = 4
	windowCap      = 4 * MaxSpin
	// DozeSlice is the doze every wait may take after its spin, and the
	// slice a longer doze is taken in (see Doze).
	DozeSlice = 200 * time.Microsecond
	// MaxDoze bounds a learned doze: a wait of about this length or more
	// (an idle conn, a request every few tens of milliseconds) parks
	// after one DozeSlice. A request every 10 ms still dozes through its
	// gap: woken from a futex rather than the netpoller, its round trip
	// took half as long here (shmbench, 1 request per 10 ms).
	MaxDoze = 20 * time.Millisecond
)

// Budget returns how long the next wait may spin.
func (w *Window) Budget() time.Duration {
	if Contended() {
		if w.lastShort {
			return ContendedBurstSpin
		}
		return ContendedSpin
	}
	if w.outlasted >= OutlastedWaits {
		return ShortSpin
	}
	return w.learned()
}

// learned is the budget on an uncontended host from the waits' length.
func (w *Window) learned() time.Duration {
	if w.typical > MaxSpin {
		return BaseSpin // waits usually outlast any spin worth paying for
	}
	return min(max(2*w.typical, BaseSpin), MaxSpin)
}

// Observe records how long a wait lasted, spin, doze and park together.
func (w *Window) Observe(d time.Duration) {
	w.lastShort = d <= ContendedSpin
	if d > w.learned() {
		w.outlasted = min(w.outlasted+1, OutlastedWaits)
	} else {
		w.outlasted = 0
	}
	w.long += (min(d, 2*MaxDoze) - w.long) / 4
	d = min(d, windowCap)
	w.typical += (d - w.typical) / 4
}

// Doze returns how long the next wait may doze (block its thread on a
// futex, holding its P) before it parks: DozeSlice, or, when recent waits
// lasted up to MaxDoze (a request every few milliseconds: the next one comes
// within a doze, and its wake-up takes the fast path), half as long again
// as they did. The caller takes a doze longer than DozeSlice in slices,
// and parks at the end of a slice after which goroutines wait for a P
// (Runnable), so that the doze holds a P from them for one slice at most.
func (w *Window) Doze() time.Duration {
	if w.long > MaxDoze {
		return DozeSlice
	}
	return min(max(w.long*3/2, DozeSlice), MaxDoze)
}

// Since returns the time since Start, read now.
func (l *Loop) Since() time.Duration {
	if !l.started {
		return 0 // ended before the first look at the clock
	}
	return time.Duration(now() - l.start)
}

// Until spins, paced as every Loop is, until ready() holds, however long
// that takes. It is for benchmarks and tests that must wait the way conn's
// spinning calls do, without their budget.
func Until(ready func() bool) {
	var l Loop
	l.Start(time.Duration(1<<63 - 1))
	for !ready() {
		l.Next()
	}
	l.Finish()
}
