package main

import (
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"
)

// gen makes a seeded random workload over a small key space, so that
// types collide (WRONGTYPE) and keys are reused. It avoids commands whose
// replies depend on a hash seed or the clock (SMEMBERS of a hashtable
// set, TTL).
type gen struct{ rnd *rand.Rand }

func (g *gen) key() string             { return "k" + strconv.Itoa(g.rnd.IntN(24)) }
func (g *gen) val() string             { return "v" + strconv.Itoa(g.rnd.IntN(50)) }
func (g *gen) num() string             { return strconv.Itoa(g.rnd.IntN(200) - 100) }
func (g *gen) pick(s ...string) string { return s[g.rnd.IntN(len(s))] }

func (g *gen) command() []string {
	k := g.key()
	switch g.rnd.IntN(36) {
	case 0:
		return []string{"SET", k, g.val()}
	case 1:
		return []string{"GET", k}
	case 2:
		return []string{"APPEND", k, g.val()}
	case 3:
		return []string{"INCRBY", k, g.num()}
	case 4:
		return []string{"MSET", k, g.val(), g.key(), g.val()}
	case 5:
		return []string{"MGET", k, g.key(), g.key()}
	case 6:
		return []string{"DEL", k}
	case 7:
		return []string{"EXISTS", k, g.key()}
	case 8:
		return []string{"TYPE", k}
	case 9:
		return []string{"STRLEN", k}
	case 10:
		return []string{"GETRANGE", k, "0", g.num()}
	case 11:
		return []string{g.pick("LPUSH", "RPUSH"), k, g.val(), g.val()}
	case 12:
		return []string{g.pick("LPOP", "RPOP"), k}
	case 13:
		return []string{"LRANGE", k, "0", "-1"}
	case 14:
		return []string{"LLEN", k}
	case 15:
		return []string{"LINDEX", k, g.num()}
	case 16:
		return []string{"LREM", k, "0", g.val()}
	case 17:
		return []string{"HSET", k, g.val(), g.val()}
	case 18:
		return []string{"HGET", k, g.val()}
	case 19:
		return []string{"HDEL", k, g.val()}
	case 20:
		return []string{"HGETALL", k}
	case 21:
		return []string{"HINCRBY", k, g.val(), g.num()}
	case 22:
		return []string{"HLEN", k}
	case 23:
		return []string{"SADD", k, g.val(), g.val()}
	case 24:
		return []string{"SREM", k, g.val()}
	case 25:
		return []string{"SISMEMBER", k, g.val()}
	case 26:
		return []string{"SCARD", k}
	case 27:
		return []string{"SMISMEMBER", k, g.val(), g.val()}
	case 28:
		return []string{"ZADD", k, g.num(), g.val()}
	case 29:
		return []string{"ZINCRBY", k, g.num(), g.val()}
	case 30:
		return []string{"ZRANGE", k, "0", "-1", "WITHSCORES"}
	case 31:
		return []string{"ZSCORE", k, g.val()}
	case 32:
		return []string{"ZREM", k, g.val()}
	case 33:
		return []string{"ZCARD", k}
	case 34:
		return []string{"SELECT", strconv.Itoa(g.rnd.IntN(3))}
	default:
		return []string{"INCR", k}
	}
}

// step is one unit of the workload: a command, a pipeline of 100, or a
// MULTI/EXEC of 10.
func (g *gen) step() [][]string {
	switch g.rnd.IntN(20) {
	case 0:
		p := make([][]string, 100)
		for i := range p {
			p[i] = g.command()
		}
		return p
	case 1:
		p := [][]string{{"MULTI"}}
		for range 10 {
			p = append(p, g.command())
		}
		return append(p, []string{"EXEC"})
	}
	return [][]string{g.command()}
}

// runStep sends a step's commands at once (a pipeline) and reads their
// replies.
func runStep(c *rawConn, cmds [][]string) []string {
	var b []byte
	for _, cmd := range cmds {
		b = encode(b, cmd...)
	}
	c.send(b)
	out := make([]string, len(cmds))
	for i := range out {
		out[i] = c.read()
	}
	return out
}

// TestDifferential sends the same 3000 random commands to a redis-server
// through the module over shm and to a twin over its unix socket: the
// replies and DEBUG DIGEST must match; the shm server's AOF, replayed by
// a restart, and its replica must have the same digest.
func TestDifferential(t *testing.T) {
	shmSrv := startServer(t, serverSpec{tcp: true, args: []string{"--appendonly", "yes"}})
	replica := startServer(t, serverSpec{noModule: true,
		args: []string{"--replicaof", "127.0.0.1", strconv.Itoa(shmSrv.port)}})
	twin := startServer(t, serverSpec{noModule: true})
	waitFor(t, "replica link up", func() bool {
		return strings.Contains(replica.plainConn().do("INFO", "replication"), "master_link_status:up")
	})

	shm, plain := shmSrv.shmConn(), twin.plainConn()
	g := &gen{rnd: rand.New(rand.NewPCG(20, 3000))}
	for n := 0; n < 3000; {
		cmds := g.step()
		n += len(cmds)
		got, want := runStep(shm, cmds), runStep(plain, cmds)
		for i := range cmds {
			if got[i] != want[i] {
				t.Fatalf("after %d commands, %q: shm %q, socket %q", n, cmds[i], got[i], want[i])
			}
		}
	}
	digest := twin.plainConn().do("DEBUG", "DIGEST")
	if d := shmSrv.plainConn().do("DEBUG", "DIGEST"); d != digest {
		t.Fatalf("digest over shm %q, over the socket %q", d, digest)
	}
	if strings.Contains(digest, "0000000000000000000000000000000000000000") {
		t.Fatal("empty dataset: the workload wrote nothing")
	}
	waitFor(t, "replica digest", func() bool { return replica.plainConn().do("DEBUG", "DIGEST") == digest })

	shmSrv.stop()
	restarted := startServer(t, serverSpec{dir: shmSrv.dir, args: []string{"--appendonly", "yes"}})
	if d := restarted.plainConn().do("DEBUG", "DIGEST"); d != digest {
		t.Fatalf("digest after replaying the AOF %q, want %q", d, digest)
	}
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
