package integration

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tidwall/redcon"

	"github.com/shmconn/shmconn/conn"
)

// TestRedis serves a small redcon server on a Listener and drives it with
// go-redis clients whose Dialer shares memory.
func TestRedis(t *testing.T) {
	for _, wait := range waitPolicies {
		t.Run("unix/"+wait.String(), func(t *testing.T) { testRedis(t, "unix", wait) })
	}
	// The side socket may be TCP; the bytes still travel through memory.
	t.Run("tcp/adaptive", func(t *testing.T) { testRedis(t, "tcp", conn.WaitAdaptive) })
}

func testRedis(t *testing.T, network string, wait conn.WaitPolicy) {
	ln := listen(t, network, wait)
	var (
		seen     connTypes
		store    redisStore
		handlers sync.WaitGroup // one per accepted conn, until redcon calls closed
	)
	served := make(chan error, 1)
	go func() {
		served <- redcon.Serve(ln, store.serve,
			func(c redcon.Conn) bool {
				seen.record(c.NetConn())
				handlers.Add(1)
				return true
			},
			func(redcon.Conn, error) { handlers.Done() },
		)
	}()
	t.Cleanup(func() {
		ln.Close()
		require.NoError(t, <-served)
		// redcon closes its conns as Serve returns but does not wait for
		// their goroutines.
		handlers.Wait()
	})

	d := newDialer(wait)
	newClient := func() *redis.Client {
		rdb := redis.NewClient(&redis.Options{
			Network: network,
			Addr:    ln.Addr().String(),
			Dialer:  d.DialContext,
			// No silent retries: a retried INCR would count twice and hide
			// the real failure. Generous timeouts: a loaded 2-core machine
			// running the race detector is slow, not broken.
			MaxRetries:   -1,
			ReadTimeout:  time.Minute,
			WriteTimeout: time.Minute,
		})
		t.Cleanup(func() { require.NoError(t, rdb.Close()) })
		return rdb
	}
	rdb := newClient()
	ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
	defer cancel()

	t.Run("commands", func(t *testing.T) {
		pong, err := rdb.Ping(ctx).Result()
		require.NoError(t, err)
		require.Equal(t, "PONG", pong)
		const keys = 200
		for i := range keys {
			require.NoError(t, rdb.Set(ctx, fmt.Sprintf("key:%d", i), fmt.Sprintf("value %d", i), 0).Err())
		}
		for i := range keys {
			v, err := rdb.Get(ctx, fmt.Sprintf("key:%d", i)).Result()
			require.NoError(t, err)
			require.Equal(t, fmt.Sprintf("value %d", i), v)
		}
		for i := range 100 {
			require.Equal(t, int64(i+1), rdb.Incr(ctx, "counter").Val())
		}
		require.ErrorContains(t, rdb.Incr(ctx, "key:0").Err(), "not an integer")
		require.Equal(t, int64(2), rdb.Del(ctx, "key:0", "key:1", "missing").Val())
		require.ErrorIs(t, rdb.Get(ctx, "key:0").Err(), redis.Nil)

		// A value four times a ring makes both rings wrap within one
		// command and one reply.
		big := bytes.Repeat([]byte("0123456789abcdef"), (1<<20)/16)
		require.NoError(t, rdb.Set(ctx, "big", big, 0).Err())
		got, err := rdb.Get(ctx, "big").Bytes()
		require.NoError(t, err)
		require.True(t, bytes.Equal(big, got), "the 1 MiB value came back different")
	})

	t.Run("pipeline", func(t *testing.T) {
		const n = 500
		var incrs []*redis.IntCmd
		_, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i := range n {
				p.Set(ctx, fmt.Sprintf("pipe:%d", i), i, 0)
				incrs = append(incrs, p.Incr(ctx, "pipe:counter"))
			}
			return nil
		})
		require.NoError(t, err)
		for i, c := range incrs {
			require.Equal(t, int64(i+1), c.Val())
		}
		cmds, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i := range n {
				p.Get(ctx, fmt.Sprintf("pipe:%d", i))
			}
			return nil
		})
		require.NoError(t, err)
		require.Len(t, cmds, n)
		for i, c := range cmds {
			require.Equal(t, strconv.Itoa(i), c.(*redis.StringCmd).Val())
		}
	})

	t.Run("concurrent", func(t *testing.T) {
		// Several clients, each with its own pool, and several goroutines
		// per client, so conns are used both side by side and in turn.
		const clients, goroutines, ops = 4, 2, 50
		var wg sync.WaitGroup
		for c := range clients {
			client := newClient()
			for g := range goroutines {
				wg.Go(func() {
					for i := range ops {
						key := fmt.Sprintf("conc:%d:%d:%d", c, g, i)
						if !assert.NoError(t, client.Set(ctx, key, key, 0).Err()) {
							return
						}
						assert.Equal(t, key, client.Get(ctx, key).Val())
						assert.NoError(t, client.Incr(ctx, "conc:counter").Err())
					}
				})
			}
		}
		wg.Wait()
		require.Equal(t, "400", rdb.Get(ctx, "conc:counter").Val())
	})

	require.Positive(t, d.dials.Load())
	seen.requireShared(t)
}

// redisStore is a tiny Redis: string values in a map, and the commands the
// test uses. Its serve method is a redcon handler, safe for concurrent use.
type redisStore struct {
	mu   sync.Mutex
	data map[string][]byte
}

// redisArity is the number of arguments, command name included, of each
// command redisStore knows; -n means at least n.
var redisArity = map[string]int{"PING": -1, "SET": 3, "GET": 2, "INCR": 2, "DEL": -2}

func (s *redisStore) serve(c redcon.Conn, cmd redcon.Command) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.data == nil {
		s.data = make(map[string][]byte)
	}
	name := strings.ToUpper(string(cmd.Args[0]))
	want, known := redisArity[name]
	switch {
	case !known:
		// go-redis probes with HELLO and CLIENT SETINFO; an error makes
		// it fall back to RESP2, as against an old Redis.
		c.WriteError(fmt.Sprintf("ERR unknown command '%s'", cmd.Args[0]))
		return
	case want >= 0 && len(cmd.Args) != want, want < 0 && len(cmd.Args) < -want:
		c.WriteError(fmt.Sprintf("ERR wrong number of arguments for '%s' command", cmd.Args[0]))
		return
	}
	switch name {
	case "PING":
		if len(cmd.Args) > 1 {
			c.WriteBulk(cmd.Args[1])
			return
		}
		c.WriteString("PONG")
	case "SET":
		s.data[string(cmd.Args[1])] = bytes.Clone(cmd.Args[2])
		c.WriteString("OK")
	case "GET":
		v, ok := s.data[string(cmd.Args[1])]
		if !ok {
			c.WriteNull()
			return
		}
		c.WriteBulk(v)
	case "INCR":
		n := int64(0)
		if v, ok := s.data[string(cmd.Args[1])]; ok {
			var err error
			if n, err = strconv.ParseInt(string(v), 10, 64); err != nil {
				c.WriteError("ERR value is not an integer or out of range")
				return
			}
		}
		n++
		s.data[string(cmd.Args[1])] = strconv.AppendInt(nil, n, 10)
		c.WriteInt64(n)
	case "DEL":
		n := 0
		for _, k := range cmd.Args[1:] {
			if _, ok := s.data[string(k)]; ok {
				delete(s.data, string(k))
				n++
			}
		}
		c.WriteInt(n)
	}
}
