package atomicx

import "sync/atomic"

// StoreRelease stores v into a with release ordering only: every memory
// write before it becomes visible to another core no later than v does,
// but a load after it may complete before v is visible. On x86 that is an
// ordinary MOV, where sync/atomic's Store is an XCHG, a full barrier that
// stalls the core until all its earlier writes are visible: about half the
// cost of a small ring write. Use it only where the protocol tolerates the
// reordering (package ring explains how it does).
func StoreRelease(a *atomic.Uint64, v uint64) { storeRelease(a, v) }
