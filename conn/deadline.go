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
	timer  *time.Timer   // guarded by mu; closes cancel
	cancel chan struct{} // guarded by mu; closed when the deadline passed
}

func newDeadline() *deadline { return &deadline{cancel: make(chan struct{})} }

// set installs t; the zero time means no deadline.
func (d *deadline) set(t time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.timer != nil && !d.timer.Stop() {
		<-d.cancel // the timer fired: wait until it closed the channel
	}
	d.timer = nil
	closed := isClosed(d.cancel)
	if t.IsZero() {
		if closed {
			d.cancel = make(chan struct{})
		}
		return
	}
	if dur := time.Until(t); dur > 0 {
		if closed {
			d.cancel = make(chan struct{})
		}
		cancel := d.cancel
		d.timer = time.AfterFunc(dur, func() { close(cancel) })
		return
	}
	if !closed {
		close(d.cancel)
	}
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
