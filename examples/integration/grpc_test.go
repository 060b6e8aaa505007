package integration

import (
	"context"
	"net"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/shmconn/shmconn/conn"
)

// TestGRPC serves gRPC's standard health service on a Listener and calls it
// through a ClientConn whose dialer shares memory.
func TestGRPC(t *testing.T) {
	for _, wait := range waitPolicies {
		t.Run(wait.String(), func(t *testing.T) { testGRPC(t, wait) })
	}
}

func testGRPC(t *testing.T, wait conn.WaitPolicy) {
	ln := listen(t, "unix", wait)
	var seen connTypes
	hs := health.NewServer()
	srv := grpc.NewServer()
	healthpb.RegisterHealthServer(srv, hs)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(typeRecordingListener{Listener: ln, types: &seen}) }()
	t.Cleanup(func() {
		srv.Stop()
		require.NoError(t, <-served)
	})

	d := newDialer(wait)
	path := ln.Addr().String()
	cc, err := grpc.NewClient("passthrough:///shm",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
			return d.DialContext(ctx, "unix", path)
		}),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
	)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, cc.Close()) })
	client := healthpb.NewHealthClient(cc)
	ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
	defer cancel()

	t.Run("check", func(t *testing.T) {
		for range 200 {
			resp, err := client.Check(ctx, &healthpb.HealthCheckRequest{})
			require.NoError(t, err)
			require.Equal(t, healthpb.HealthCheckResponse_SERVING, resp.GetStatus())
		}
		_, err := client.Check(ctx, &healthpb.HealthCheckRequest{Service: "unknown"})
		require.Equal(t, codes.NotFound, status.Code(err), "error %v", err)
	})

	t.Run("concurrent", func(t *testing.T) {
		// Streams of one HTTP/2 conn: concurrent Writes to one *conn.Conn.
		const goroutines, calls = 8, 25
		var wg sync.WaitGroup
		for range goroutines {
			wg.Go(func() {
				for range calls {
					resp, err := client.Check(ctx, &healthpb.HealthCheckRequest{})
					if !assert.NoError(t, err) {
						return
					}
					assert.Equal(t, healthpb.HealthCheckResponse_SERVING, resp.GetStatus())
				}
			})
		}
		wg.Wait()
	})

	t.Run("watch", func(t *testing.T) {
		hs.SetServingStatus("svc", healthpb.HealthCheckResponse_NOT_SERVING)
		wctx, wcancel := context.WithCancel(ctx)
		defer wcancel()
		stream, err := client.Watch(wctx, &healthpb.HealthCheckRequest{Service: "svc"})
		require.NoError(t, err)
		resp, err := stream.Recv()
		require.NoError(t, err)
		require.Equal(t, healthpb.HealthCheckResponse_NOT_SERVING, resp.GetStatus())
		hs.SetServingStatus("svc", healthpb.HealthCheckResponse_SERVING)
		resp, err = stream.Recv()
		require.NoError(t, err)
		require.Equal(t, healthpb.HealthCheckResponse_SERVING, resp.GetStatus())
		wcancel()
		_, err = stream.Recv()
		require.Equal(t, codes.Canceled, status.Code(err), "error %v", err)
	})

	// Every call shared the one conn the ClientConn dialed.
	require.Equal(t, int64(1), d.dials.Load())
	seen.requireShared(t)
}
