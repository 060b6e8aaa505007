package spin

import _ "unsafe" // for go:linkname

// goyield is the runtime's Gosched that keeps the goroutine on its P: it
// puts it at the end of its P's local run queue, where the same thread
// takes it back at once (after any goroutine queued there before it), and
// wakes no other thread. runtime.Gosched puts it on the global run queue
// and wakes another thread to look for work, which may take it: the move
// a spinning loop's scheduling point is there to avoid. The runtime keeps
// this name and signature for the packages that link to it (Go issue
// 67401).
//
//go:linkname goyield runtime.goyield
func goyield()
