// Package integration runs unmodified net/http, gRPC and Redis libraries
// over shmconn, in tests.
package integration
