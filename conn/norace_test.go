//go:build !race

package conn

// raceEnabled: see race_test.go.
const raceEnabled = false
