package conn

// runAsPeer is replaced by the cross-process tests.
func runAsPeer() bool { return false }
