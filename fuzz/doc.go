// Package fuzz holds the fuzz targets for what parses bytes coming from
// the other process on the side socket: the handshake messages and the
// listener reading them. Run one with, for example:
//
//	go test ./fuzz -run '^$' -fuzz FuzzParseReply -fuzztime 1m
//
// The ring's target, a peer scribbling over the shared counters, lives in
// package ring (it needs the ring's unexported layout names):
//
//	go test ./ring -run '^$' -fuzz FuzzRingCorrupt -fuzztime 1m
//
// The examples parse RESP from their peers, and their targets live beside
// the parsers, in the examples module: the server's bound on a client's
// requests, checked against a simple model and against what redcon then
// parses, and redis-cli's reading of replies:
//
//	go test ./examples/shm-redis-server -run '^$' -fuzz FuzzRequestConn -fuzztime 1m
//	go test ./examples/shm-redis-cli -run '^$' -fuzz FuzzReadReply -fuzztime 1m
//
// Inputs that once found a bug stay in testdata/fuzz as regression tests,
// which `go test ./fuzz` without -fuzz runs.
package fuzz
