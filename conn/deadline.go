package conn

import (
	"sync"
	"sync/atomic"
	"time"
)

// epoch anchors deadlines to the monotonic clock: a deadline is kept as
// nanoseconds since epoch, so wall-clock jumps do not move it.
var epoch = time.Now()

// deadline is one direction's deadline. Clients such as go-redis set a
// deadline before every call, and most calls never block (the bytes are
// there, or arrive while the call spins), so setting one is an atomic
// store, and a timer is armed only when a call actually blocks (parks, or
// waits for the direction's lock). A blocked call also waits on changed,
// which set closes, so moving the deadline wakes it to re-evaluate; a
// spinning or dozing call reads the deadline as it goes.
type deadline struct {
	at      atomic.Int64 // nanoseconds since epoch; 0: none; publishes the deadline
	waiting atomic.Int32 // calls waiting on changed; set reads it after storing at

	mu      sync.Mutex
	changed chan struct{} // guarded by mu; closed and replaced by set while waiting > 0

	timer *time.Timer // fires at the deadline for a blocked call; owned by the direction's mutex holder
}

func newDeadline() *deadline { return &deadline{changed: make(chan struct{})} }

// set installs t; the zero time means no deadline.
func (d *deadline) set(t time.Time) {
	var v int64
	if !t.IsZero() {
		v = max(int64(t.Sub(epoch)), 1) // a time before epoch has passed too
	}
	// Swap, a full barrier, then load waiting; register increments
	// waiting, then loads at: one of the two sees the other.
	d.at.Swap(v)
	if d.waiting.Load() > 0 {
		d.mu.Lock()
		close(d.changed)
		d.changed = make(chan struct{})
		d.mu.Unlock()
	}
}

// expired reports whether the deadline has passed.
func (d *deadline) expired() bool {
	v := d.at.Load()
	return v != 0 && int64(time.Since(epoch)) >= v
}

// arm prepares a call to block: timeout fires at the deadline (nil if
// none) and changed is closed if the deadline moves. The caller must call
// disarm when it stops waiting. Only the holder of the direction's lock
// may call it: the timer is the holder's.
func (d *deadline) arm() (timeout <-chan time.Time, changed <-chan struct{}) {
	changed, left, ok := d.register()
	if !ok {
		return nil, changed
	}
	if d.timer == nil {
		d.timer = time.NewTimer(left)
	} else {
		d.timer.Reset(left)
	}
	return d.timer.C, changed
}

// disarm ends what arm began.
func (d *deadline) disarm() {
	d.waiting.Add(-1)
	if d.timer != nil {
		d.timer.Stop()
	}
}

// watch is arm for a call queued for the direction's lock, with a timer
// of its own; stop ends the watch.
func (d *deadline) watch() (timeout <-chan time.Time, changed <-chan struct{}, stop func()) {
	changed, left, ok := d.register()
	if !ok {
		return nil, changed, func() { d.waiting.Add(-1) }
	}
	t := time.NewTimer(left)
	return t.C, changed, func() {
		d.waiting.Add(-1)
		t.Stop()
	}
}

// register counts a call waiting on changed and returns changed and the
// time left until the deadline (ok false: there is none).
func (d *deadline) register() (changed <-chan struct{}, left time.Duration, ok bool) {
	d.waiting.Add(1)
	d.mu.Lock()
	changed = d.changed
	d.mu.Unlock()
	v := d.at.Load()
	if v == 0 {
		return changed, 0, false
	}
	return changed, time.Duration(v - int64(time.Since(epoch))), true
}
