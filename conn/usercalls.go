package conn

import "sync"

// userCalls keeps Close from unmapping the shared memory while a ReadFrom
// or WriteTo runs the user's Read or Write, without making Close wait for
// that code, which may block for ever (internal/poll's fdMutex plays this
// part for a netFD). The rest of Close's ordering needs no more than the
// direction locks: a call that copies into or out of the ring holds its
// direction's lock, and finishClose takes both before it unmaps.
//
// Who calls what: ReadFrom and WriteTo bracket the user's code with enter
// and leave, holding their direction's lock; Close calls beginClose, marks
// the rings closed, then endClose. Exactly one of them unmaps, calling
// finishClose once it holds no direction lock: Close itself if no call
// was inside the user's code at endClose, else the last such call out
// (leave reports it).
type userCalls struct {
	mu       sync.Mutex
	inside   int  // calls inside the user's code, and Close from beginClose to endClose
	writing  bool // one of them is a ReadFrom, holding the write lock
	closing  bool // beginClose ran: enter refuses
	deferred bool // endClose left the unmapping to the last call out
}

// enter admits a call into the user's code, unless Close has begun.
// writing says the call is a ReadFrom, holding the write lock.
func (u *userCalls) enter(writing bool) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.closing {
		return false
	}
	u.inside++
	u.writing = u.writing || writing
	return true
}

// leave ends what enter began. It reports whether the caller must call
// finishClose (once it has released its direction's lock): Close ran
// meanwhile and this was the last call out.
func (u *userCalls) leave(writing bool) (finish bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.inside--
	if writing {
		u.writing = false
	}
	if u.inside == 0 && u.deferred {
		u.deferred = false
		return true
	}
	return false
}

// beginClose refuses further calls and counts Close among the calls
// inside, so that none of them unmaps before Close has marked the rings.
// It reports whether a ReadFrom is inside the user's code, holding the
// write lock (which Close then must not wait for).
func (u *userCalls) beginClose() (writeHeld bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.closing = true
	u.inside++
	return u.writing
}

// endClose ends Close's part. It reports whether Close must call
// finishClose itself; if not, the last call out of the user's code does.
func (u *userCalls) endClose() (last bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.inside--
	last = u.inside == 0
	u.deferred = !last
	return last
}
