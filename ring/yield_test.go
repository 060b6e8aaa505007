package ring

import "runtime"

// yieldSome lets the other side of an in-process test run: on a 2-core
// machine a tight loop must not starve the goroutine it waits for.
func yieldSome() { runtime.Gosched() }
