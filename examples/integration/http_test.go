package integration

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shmconn/shmconn/conn"
)

// TestHTTP serves net/http on a Listener and calls it with an http.Client
// whose Transport dials through shared memory.
func TestHTTP(t *testing.T) {
	for _, wait := range waitPolicies {
		t.Run(wait.String(), func(t *testing.T) { testHTTP(t, wait) })
	}
}

func testHTTP(t *testing.T, wait conn.WaitPolicy) {
	ln := listen(t, "unix", wait)
	var seen connTypes
	mux := http.NewServeMux()
	mux.HandleFunc("GET /hello/{name}", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello, %s", r.PathValue("name"))
	})
	mux.HandleFunc("POST /invert", func(w http.ResponseWriter, r *http.Request) {
		// HTTP/1 forbids reading the body after the response starts, so
		// take it whole first.
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		invert(body)
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Write(body)
	})
	srv := &http.Server{
		Handler: mux,
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			seen.record(c)
			return ctx
		},
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	t.Cleanup(func() {
		require.NoError(t, srv.Close())
		require.ErrorIs(t, <-served, http.ErrServerClosed)
	})

	d := newDialer(wait)
	path := ln.Addr().String()
	tr := &http.Transport{
		// The URL's host means nothing here: every conn goes to the
		// Listener.
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return d.DialContext(ctx, "unix", path)
		},
		MaxIdleConnsPerHost: 8,
	}
	t.Cleanup(tr.CloseIdleConnections)
	client := &http.Client{Transport: tr, Timeout: testTimeout}

	get := func(url string) (int, string, error) {
		resp, err := client.Get(url)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body), err
	}

	t.Run("sequential", func(t *testing.T) {
		for i := range 50 {
			code, body, err := get(fmt.Sprintf("http://shm/hello/%d", i))
			require.NoError(t, err)
			require.Equal(t, http.StatusOK, code)
			require.Equal(t, fmt.Sprintf("hello, %d", i), body)
		}
		code, _, err := get("http://shm/nowhere")
		require.NoError(t, err)
		require.Equal(t, http.StatusNotFound, code)
	})

	t.Run("large", func(t *testing.T) {
		// 4 MiB each way: sixteen times a ring, so both rings fill and
		// wrap many times.
		sent := make([]byte, 4<<20)
		rand.NewChaCha8([32]byte{1}).Read(sent)
		resp, err := client.Post("http://shm/invert", "application/octet-stream", bytes.NewReader(sent))
		require.NoError(t, err)
		defer resp.Body.Close()
		got, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		invert(sent)
		require.Len(t, got, len(sent))
		require.True(t, bytes.Equal(sent, got), "the inverted body differs")
	})

	t.Run("concurrent", func(t *testing.T) {
		const goroutines, requests = 8, 20
		var wg sync.WaitGroup
		for g := range goroutines {
			wg.Go(func() {
				for i := range requests {
					name := fmt.Sprintf("g%d-r%d", g, i)
					code, body, err := get("http://shm/hello/" + name)
					if !assert.NoError(t, err) {
						return
					}
					assert.Equal(t, http.StatusOK, code)
					assert.Equal(t, "hello, "+name, body)
				}
			})
		}
		wg.Wait()
	})

	require.Positive(t, d.dials.Load())
	seen.requireShared(t)
}

// invert flips every bit of b, so an echo that returned its input unchanged
// would not pass.
func invert(b []byte) {
	for i := range b {
		b[i] = ^b[i]
	}
}
