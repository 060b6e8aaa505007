package main

import (
	"context"
	"net"

	"github.com/redis/go-redis/v9"

	"github.com/shmconn/shmconn/conn"
)

// A go-redis client of a redis-server that loaded the module: the README's
// snippet, kept compiling here.
func Example_goRedis() {
	d := &conn.Dialer{}
	rdb := redis.NewClient(&redis.Options{
		Network: "unix",
		Addr:    "/run/redis/redis-shm.sock",
		Dialer: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return d.DialContext(ctx, network, addr)
		},
	})
	defer rdb.Close()
}
