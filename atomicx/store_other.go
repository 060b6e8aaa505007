//go:build (!amd64 && !arm64) || race

package atomicx

import "sync/atomic"

// storeRelease falls back to sync/atomic's Store: on other architectures,
// and under the race detector, which must see the store to understand the
// happens-before edge it creates (its Store is a release store, too).
func storeRelease(a *atomic.Uint64, v uint64) { a.Store(v) }
