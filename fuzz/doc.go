// Package fuzz holds the fuzz targets for everything that parses bytes
// coming from the other process: the handshake messages on the side
// socket, the listener reading them, and a ring whose shared counters the
// peer scribbles over. Run one with, for example:
//
//	go test ./fuzz -run '^$' -fuzz FuzzParseReply -fuzztime 1m
//
// Inputs that once found a bug stay in testdata/fuzz as regression tests,
// which plain `go test ./fuzz` runs.
package fuzz
