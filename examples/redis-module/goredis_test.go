package main

import (
	"context"
	"net"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/shmconn/shmconn/conn"
)

// TestGoRedis: go-redis over a shmconn Dialer, as the README shows, gets
// a 1 MiB value back and a pipeline of 1000 commands through.
func TestGoRedis(t *testing.T) {
	s := startServer(t, serverSpec{})
	d := &conn.Dialer{}
	rdb := redis.NewClient(&redis.Options{Network: "unix", Addr: s.shm,
		Dialer: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return d.DialContext(ctx, network, addr)
		}})
	defer rdb.Close()
	ctx := context.Background()
	big := strings.Repeat("x", 1<<20)
	if err := rdb.Set(ctx, "big", big, 0).Err(); err != nil {
		t.Fatal(err)
	}
	if v, err := rdb.Get(ctx, "big").Result(); err != nil || v != big {
		t.Fatalf("GET big: %d bytes, %v", len(v), err)
	}
	p := rdb.Pipeline()
	for range 1000 {
		p.Incr(ctx, "n")
	}
	if _, err := p.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	if n, err := rdb.Get(ctx, "n").Int(); err != nil || n != 1000 {
		t.Fatalf("n = %d, %v", n, err)
	}
	if info := s.plainConn().do("INFO", "shmconn"); !strings.Contains(info, "shmconn_shared_conns:") || strings.Contains(info, "shmconn_shared_conns:0\r\n") {
		t.Fatal("go-redis did not get shared memory")
	}
}
