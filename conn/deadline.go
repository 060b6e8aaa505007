package conn

import (
	"sync"
	"time"
)

// deadline is one direction's deadline: a channel that is closed when the
// deadline passes, by a timer set with the deadline. A blocked call selects
// on the channel it got when it started; moving the deadline later keeps
// that channel open (the new timer will close it), moving it into the past
// closes it, and a new channel is made only once the old one is closed, so
// a blocked call always learns of the deadline that is in force.
type deadline struct {
	mu     sync.Mutex
	timer  *time.Timer   // guarded by mu; when not nil it closes cancel on firing
	armed  bool          // guarded by mu; timer is running
	cancel chan struct{} // guarded by mu; closed when the deadline passed
}

func newDeadline() *deadline { return &deadline{cancel: make(chan struct{})} }

// set installs t; the zero time means no deadline. Clients such as go-redis
// set a deadline before every call, so moving a pending deadline reuses the
// timer instead of allocating one.
func (d *deadline) set(t time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.armed {
		d.armed = false
		if !d.timer.Stop() {
			<-d.cancel // the timer fired: wait until it closed the channel
		}
	}
	if isClosed(d.cancel) {
		// A new channel for the calls to come; the old timer closed the
		// old one and is of no more use.
		d.cancel = make(chan struct{})
		d.timer = nil
	}
	if t.IsZero() {
		return
	}
	dur := time.Until(t)
	if dur <= 0 {
		close(d.cancel)
		return
	}
	if d.timer == nil {
		cancel := d.cancel
		d.timer = time.AfterFunc(dur, func() { close(cancel) })
	} else {
		d.timer.Reset(dur)
	}
	d.armed = true
}

// wait returns the channel closed when the current deadline passes.
func (d *deadline) wait() <-chan struct{} {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cancel
}

func isClosed(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}
