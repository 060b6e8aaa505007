package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/shmconn/shmconn/conn"
)

// A Go program talks to the server over shared memory with go-redis: the
// only change from a plain client is Options.Dialer, set to a shmconn
// Dialer. The server listens through a conn.Listener, which also takes
// plain clients on the same socket.
func Example_goRedis() {
	dir, _ := os.MkdirTemp("", "redis-example")
	defer os.RemoveAll(dir)
	sock := filepath.Join(dir, "redis.sock")

	lc := conn.ListenConfig{AcceptPlain: true}
	ln, err := lc.Listen(context.Background(), "unix", sock)
	if err != nil {
		fmt.Println(err)
		return
	}
	srv := NewServer(conn.WaitAdaptive)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	defer func() {
		ln.Close()
		<-served
		srv.Close(time.Second)
	}()

	d := &conn.Dialer{}
	rdb := redis.NewClient(&redis.Options{Network: "unix", Addr: sock, Dialer: d.DialContext})
	defer rdb.Close()

	ctx := context.Background()
	rdb.Set(ctx, "greeting", "hello over shared memory", 0)
	fmt.Println(rdb.Get(ctx, "greeting").Val())
	fmt.Println(rdb.Incr(ctx, "visits").Val())
	// Output:
	// hello over shared memory
	// 1
}
