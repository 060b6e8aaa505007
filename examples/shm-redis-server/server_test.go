package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/shmconn/shmconn/conn"
)

// socketPath returns a unix socket path in a fresh directory, short enough
// for the 108-byte limit whatever the test's name.
func socketPath(t *testing.T) string {
	dir, err := os.MkdirTemp("", "redis-server-test")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	return filepath.Join(dir, "redis.sock")
}

// startInProcess serves a new Server on a unix socket in this process
// until the test ends.
func startInProcess(t *testing.T) (srv *Server, sock string) {
	sock = socketPath(t)
	lc := conn.ListenConfig{AcceptPlain: true, Wait: conn.WaitAdaptive}
	ln, err := lc.Listen(context.Background(), "unix", sock)
	require.NoError(t, err)
	srv = NewServer(conn.WaitAdaptive)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		ln.Close()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
		srv.Close(5 * time.Second)
	})
	return srv, sock
}

// newClient returns a go-redis client for sock: over shared memory
// (refusing the fallback, so that a success proves memory was shared)
// when shm is set, else over the plain socket.
func newClient(t *testing.T, network, addr string, shm bool, protocol int) *redis.Client {
	opts := &redis.Options{Network: network, Addr: addr, Protocol: protocol, PoolSize: 4}
	if shm {
		d := &conn.Dialer{NoFallback: true, Wait: conn.WaitAdaptive}
		opts.Dialer = d.DialContext
	}
	rdb := redis.NewClient(opts)
	t.Cleanup(func() { rdb.Close() })
	return rdb
}

func TestGoRedis(t *testing.T) {
	_, sock := startInProcess(t)
	ctx := context.Background()
	for _, tc := range []struct {
		name     string
		shm      bool
		protocol int
	}{
		{"shm resp3 fallback", true, 3}, // HELLO 3 fails, go-redis carries on in RESP2
		{"shm resp2", true, 2},
		{"plain", false, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rdb := newClient(t, "unix", sock, tc.shm, tc.protocol)
			key := func(k string) string { return tc.name + ":" + k }

			require.NoError(t, rdb.Ping(ctx).Err())
			require.NoError(t, rdb.Set(ctx, key("s"), "v", 0).Err())
			require.Equal(t, "v", rdb.Get(ctx, key("s")).Val())
			require.ErrorIs(t, rdb.Get(ctx, key("missing")).Err(), redis.Nil)
			require.Equal(t, int64(1), rdb.Incr(ctx, key("n")).Val())
			require.Equal(t, int64(11), rdb.IncrBy(ctx, key("n"), 10).Val())

			ok, err := rdb.SetNX(ctx, key("s"), "w", 0).Result()
			require.NoError(t, err)
			require.False(t, ok)

			require.NoError(t, rdb.Set(ctx, key("ttl"), "v", 2*time.Second).Err())
			ttl := rdb.TTL(ctx, key("ttl")).Val()
			require.True(t, ttl > time.Second && ttl <= 2*time.Second, "TTL %v", ttl)
			require.NoError(t, rdb.Set(ctx, key("short"), "v", 20*time.Millisecond).Err())
			time.Sleep(30 * time.Millisecond)
			require.ErrorIs(t, rdb.Get(ctx, key("short")).Err(), redis.Nil)

			require.NoError(t, rdb.RPush(ctx, key("l"), "a", "b", "c").Err())
			require.Equal(t, []string{"a", "b", "c"}, rdb.LRange(ctx, key("l"), 0, -1).Val())
			err = rdb.Incr(ctx, key("l")).Err()
			require.EqualError(t, err, "WRONGTYPE Operation against a key holding the wrong kind of value")

			require.NoError(t, rdb.HSet(ctx, key("h"), "f", "v", "g", "w").Err())
			require.Equal(t, map[string]string{"f": "v", "g": "w"}, rdb.HGetAll(ctx, key("h")).Val())
			require.NoError(t, rdb.ZAdd(ctx, key("z"), redis.Z{Score: 2, Member: "b"}, redis.Z{Score: 1, Member: "a"}).Err())
			require.Equal(t, []redis.Z{{Score: 1, Member: "a"}}, rdb.ZPopMin(ctx, key("z")).Val())
			require.Equal(t, []any{"v", nil, nil}, rdb.MGet(ctx, key("s"), key("z"), key("nope")).Val())

			// A pipeline: many commands in one write, the replies in order.
			cmds, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
				for range 100 {
					p.Incr(ctx, key("p"))
				}
				return nil
			})
			require.NoError(t, err)
			require.Equal(t, int64(100), cmds[99].(*redis.IntCmd).Val())

			// A large value crosses the ring several times over.
			big := strings.Repeat("0123456789abcdef", 64<<10)
			require.NoError(t, rdb.Set(ctx, key("big"), big, 0).Err())
			require.Equal(t, big, rdb.Get(ctx, key("big")).Val())

			info := rdb.Info(ctx, "clients").Val()
			require.Contains(t, info, "connected_clients:")
		})
	}
}

// TestSharedAndPlainClients runs shared-memory and plain clients against
// one socket at once: every INCR counts exactly once, and INFO tells the
// kinds apart.
func TestSharedAndPlainClients(t *testing.T) {
	srv, sock := startInProcess(t)
	ctx := context.Background()
	shm := newClient(t, "unix", sock, true, 2)
	plain := newClient(t, "unix", sock, false, 2)
	const workers, each = 4, 200
	var wg sync.WaitGroup
	errs := make(chan error, 2*workers)
	for _, rdb := range []*redis.Client{shm, plain} {
		for range workers {
			wg.Go(func() {
				for range each {
					if err := rdb.Incr(ctx, "counter").Err(); err != nil {
						errs <- err
						return
					}
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	require.Equal(t, "1600", shm.Get(ctx, "counter").Val())
	require.Positive(t, srv.shmClients.Load())
	require.Greater(t, srv.clients.Load(), srv.shmClients.Load())

	// Each client, over its own conn, sees its own kind in INFO.
	c, err := (&conn.Dialer{NoFallback: true}).Dial("unix", sock)
	require.NoError(t, err)
	defer c.Close()
	_, isShm := c.(*conn.Conn)
	require.True(t, isShm)
	require.Equal(t, "+PONG\r\n", roundTrip(t, c, "*1\r\n$4\r\nPING\r\n"))
	require.Equal(t, "+PONG\r\n", roundTrip(t, c, "PING\r\n")) // inline
}

// roundTrip writes req and reads what comes back in one read.
func roundTrip(t *testing.T, c net.Conn, req string) string {
	t.Helper()
	_, err := c.Write([]byte(req))
	require.NoError(t, err)
	require.NoError(t, c.SetReadDeadline(time.Now().Add(5*time.Second)))
	buf := make([]byte, 4096)
	n, err := c.Read(buf)
	require.NoError(t, err)
	return string(buf[:n])
}

// TestQuitClosesConn checks QUIT replies and then closes, over shared
// memory.
func TestQuitClosesConn(t *testing.T) {
	srv, sock := startInProcess(t)
	c, err := (&conn.Dialer{NoFallback: true}).Dial("unix", sock)
	require.NoError(t, err)
	defer c.Close()
	require.Equal(t, "+OK\r\n", roundTrip(t, c, "*1\r\n$4\r\nQUIT\r\n"))
	require.NoError(t, c.SetReadDeadline(time.Now().Add(5*time.Second)))
	_, err = c.Read(make([]byte, 1))
	require.ErrorIs(t, err, io.EOF, "read after QUIT")
	require.Eventually(t, func() bool { return srv.clients.Load() == 0 }, 5*time.Second, 5*time.Millisecond)
}

// TestGoRedisTransactions runs go-redis's TxPipeline (MULTI ... EXEC) and
// its optimistic-locking Watch over shared memory and a plain socket:
// clients that each read a counter, and write it back plus one in a
// transaction under WATCH, retrying when EXEC aborts, count every
// increment exactly once, which needs EXEC to be atomic and WATCH to see
// every change in between.
func TestGoRedisTransactions(t *testing.T) {
	_, sock := startInProcess(t)
	ctx := context.Background()
	for _, shm := range []bool{true, false} {
		rdb := newClient(t, "unix", sock, shm, 2)
		key := fmt.Sprintf("tx:%v:", shm)
		cmds, err := rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.Set(ctx, key+"a", "1", 0)
			p.Incr(ctx, key+"a")
			p.Get(ctx, key+"a")
			return nil
		})
		require.NoError(t, err)
		require.Len(t, cmds, 3)
		require.Equal(t, "2", cmds[2].(*redis.StringCmd).Val())

		const workers, each = 4, 25
		var wg sync.WaitGroup
		var aborts atomic.Int64
		for range workers {
			wg.Go(func() {
				for range each {
					if err := incrWatched(ctx, rdb, key+"n", &aborts); err != nil {
						t.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
		n, err := rdb.Get(ctx, key+"n").Int()
		require.NoError(t, err)
		require.Equal(t, workers*each, n, "increments lost (%d aborted EXECs)", aborts.Load())
	}
}

// incrWatched adds one to the integer at key by a read, then a write in
// MULTI/EXEC under WATCH, retrying while EXEC aborts.
func incrWatched(ctx context.Context, rdb *redis.Client, key string, aborts *atomic.Int64) error {
	for {
		err := rdb.Watch(ctx, func(tx *redis.Tx) error {
			n, err := tx.Get(ctx, key).Int()
			if err != nil && err != redis.Nil {
				return err
			}
			_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
				p.Set(ctx, key, n+1, 0)
				return nil
			})
			return err
		}, key)
		if err != redis.TxFailedErr {
			return err
		}
		aborts.Add(1)
	}
}
