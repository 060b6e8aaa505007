// Package examples holds the runnable programs and the integration tests
// that run unmodified net/http, gRPC and Redis libraries over shmconn. It
// is a module of its own so that library users never download these heavy
// dependencies.
package examples
