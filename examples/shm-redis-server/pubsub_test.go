package main

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/shmconn/shmconn/conn"
	"github.com/shmconn/shmconn/internal/testutil"
)

// realServer is a real redis-server the test started on a unix socket in
// a temp directory; it is stopped when the test ends.
type realServer struct{ sock string }

// startRealServer starts redis-server, or skips the test when it is not
// installed.
func startRealServer(t *testing.T) *realServer {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Skip("redis-server not installed; CI installs it (apt-get install redis-server)")
	}
	dir, err := os.MkdirTemp("", "real-redis") // short: a socket path has a length limit
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "redis.sock")
	testutil.StartChild(t, exec.Command(bin, "--port", "0", "--unixsocket", sock, "--save", "", "--appendonly", "no", "--dir", dir),
		"Ready to accept connections")
	return &realServer{sock: sock}
}

// pubSubRun publishes n messages from one go-redis client and receives
// them on another's Subscribe, checking that all arrive in order, and
// returns the publish-to-receive latencies. Each message carries its
// sequence number and send time. The publisher waits for each message to
// arrive before it sends the next, so the latency is a message's own, not
// time spent queued behind the ones before it.
func pubSubRun(t *testing.T, pub, sub *redis.Client, n int) *hdrhistogram.Histogram {
	ctx := context.Background()
	ps := sub.Subscribe(ctx, "events")
	defer ps.Close()
	_, err := ps.Receive(ctx) // the subscription confirmation
	require.NoError(t, err)
	ch := ps.Channel(redis.WithChannelSize(1024))

	hist := hdrhistogram.New(1, int64(10*time.Second), 3)
	start := time.Now()
	errc := make(chan error, 1)
	received := make(chan struct{}, 1)
	go func() {
		for i := range n {
			if i > 0 {
				<-received
			}
			msg := strconv.Itoa(i) + " " + strconv.FormatInt(int64(time.Since(start)), 10)
			if err := pub.Publish(ctx, "events", msg).Err(); err != nil {
				errc <- err
				return
			}
		}
		errc <- nil
	}()
	for i := range n {
		select {
		case m := <-ch:
			var seq int
			var sent int64
			_, err := fmt.Sscanf(m.Payload, "%d %d", &seq, &sent)
			require.NoError(t, err)
			require.Equal(t, i, seq, "message out of order or lost")
			hist.RecordValue(max(1, int64(time.Since(start))-sent))
			received <- struct{}{}
		case err := <-errc:
			require.NoError(t, err)
			errc <- nil // keep the publisher's result for the next turn
		case <-time.After(10 * time.Second):
			t.Fatalf("message %d of %d never arrived", i, n)
		}
	}
	require.NoError(t, <-errc)
	return hist
}

// TestPubSubGoRedis sends 100,000 messages through the example server's
// Pub/Sub over shared memory (RESP3, go-redis's default; the server in
// another process, -wait adaptive unless SHMCONN_PUBSUB_WAIT says spin,
// so that the suite does not hold a core busy for the whole run) and checks
// every one arrives, in order; with a real redis-server installed it runs
// 20,000 the same way over its unix socket and logs both publish-to-receive
// latencies.
func TestPubSubGoRedis(t *testing.T) {
	n := 100_000
	if testing.Short() {
		n = 5_000
	}
	sock := socketPath(t)
	wait := cmp.Or(os.Getenv("SHMCONN_PUBSUB_WAIT"), "adaptive")
	startChild(t, "-addr", "", "-unix", sock, "-wait", wait)
	pub := newClient(t, "unix", sock, true, 3)
	sub := newClient(t, "unix", sock, true, 3)
	shm := pubSubRun(t, pub, sub, n)
	t.Logf("example server (-wait %s) over shared memory: %d messages, publish-to-receive p50 %v p99 %v",
		wait, shm.TotalCount(), time.Duration(shm.ValueAtQuantile(50)), time.Duration(shm.ValueAtQuantile(99)))

	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Log("redis-server not installed: no comparison")
		return
	}
	real := startRealServer(t)
	pub = newClient(t, "unix", real.sock, false, 3)
	sub = newClient(t, "unix", real.sock, false, 3)
	rh := pubSubRun(t, pub, sub, min(n, 20_000))
	t.Logf("real redis-server over its unix socket: %d messages, publish-to-receive p50 %v p99 %v",
		rh.TotalCount(), time.Duration(rh.ValueAtQuantile(50)), time.Duration(rh.ValueAtQuantile(99)))
}

// TestPubSubModes checks patterns, counts and the subscribed-mode rules
// with RESP2 clients, over shared memory and a plain socket.
func TestPubSubModes(t *testing.T) {
	_, sock := startInProcess(t)
	ctx := context.Background()
	for _, shm := range []bool{true, false} {
		pub := newClient(t, "unix", sock, shm, 2)
		sub := newClient(t, "unix", sock, shm, 2)
		ps := sub.PSubscribe(ctx, "news.*")
		_, err := ps.Receive(ctx)
		require.NoError(t, err)
		require.NoError(t, ps.Subscribe(ctx, "news.tech"))
		_, err = ps.Receive(ctx)
		require.NoError(t, err)
		require.Equal(t, int64(2), pub.Publish(ctx, "news.tech", "x").Val(), "a channel and a pattern subscriber")
		var got []string
		for range 2 {
			m, err := ps.ReceiveMessage(ctx)
			require.NoError(t, err)
			got = append(got, m.Pattern+"|"+m.Channel+"|"+m.Payload)
		}
		slices.Sort(got)
		require.Equal(t, []string{"news.*|news.tech|x", "|news.tech|x"}[1:], got[1:])
		require.Equal(t, int64(1), pub.PubSubNumPat(ctx).Val())
		require.NoError(t, ps.Ping(ctx))
		require.NoError(t, ps.Close())
		require.Eventually(t, func() bool { return pub.PubSubNumPat(ctx).Val() == 0 }, 5*time.Second, time.Millisecond)
	}
}

// TestGlobMatch checks the patterns of KEYS, SCAN MATCH and PSUBSCRIBE
// against Redis's stringmatch rules.
func TestGlobMatch(t *testing.T) {
	for _, tc := range []struct {
		pattern, s string
		want       bool
	}{
		{"*", "", true}, {"*", "anything", true}, {"h?llo", "hello", true}, {"h?llo", "hllo", false},
		{"h*llo", "heeeello", true}, {"h[ae]llo", "hallo", true}, {"h[ae]llo", "hillo", false},
		{"h[^e]llo", "hallo", true}, {"h[^e]llo", "hello", false}, {"h[a-b]llo", "hbllo", true},
		{"h[b-a]llo", "hallo", true}, {`h\*llo`, "h*llo", true}, {`h\*llo`, "hello", false},
		{"news.*", "news.tech", true}, {"news.*", "news", false}, {"a*b*c", "aXbYc", true}, {"a*b*c", "aXbY", false},
		{"key:?", "key:1", true}, {"key:?", "key:10", false}, {"[", "x", false},
	} {
		if got := globMatch(tc.pattern, tc.s); got != tc.want {
			t.Errorf("globMatch(%q, %q) = %v, want %v", tc.pattern, tc.s, got, tc.want)
		}
	}
}

// TestShutdownWithSubscriber stops the server with SIGTERM while a client
// is subscribed (detached from redcon's loop): it must exit cleanly and
// the subscriber see its conn end.
func TestShutdownWithSubscriber(t *testing.T) {
	sock := socketPath(t)
	c := startChild(t, "-addr", "", "-unix", sock, "-wait", "adaptive")
	ctx := context.Background()
	sub := newClient(t, "unix", sock, true, 2)
	ps := sub.Subscribe(ctx, "events")
	defer ps.Close()
	_, err := ps.Receive(ctx)
	require.NoError(t, err)
	start := time.Now()
	require.Equal(t, 0, c.Stop(t, syscall.SIGTERM), "exit status; output:\n%s", c.Output())
	require.Less(t, time.Since(start), shutdownTimeout, "the server waited for the subscriber")
	require.Empty(t, testutil.SegmentFilesOf(c.Cmd.Process.Pid))
}

// Subscribers that stop reading must not hold up publishers, one that
// reads slowly or pauses must not be dropped, and one that leaves too
// much unread is dropped at Redis's limits:
//
//   - TestPubSubPublishersNeverWait: a subscriber that never reads its
//     messages, one that reads none of its own replies, and several stuck
//     ones stalled PUBLISH (for good, or a second each);
//   - TestPubSubSteadyReader, TestPubSubPause: one reading 40 KiB/s, or
//     pausing 1.5 s, was dropped;
//   - TestPubSubOutputLimits: the limits that do drop one.
//
// Each runs over shared memory and over the plain socket.

// pubSubDial dials the example server, over shared memory or not, with a
// deadline for the whole test.
func pubSubDial(t *testing.T, sock string, shm bool) net.Conn {
	t.Helper()
	var c net.Conn
	var err error
	if shm {
		c, err = (&conn.Dialer{NoFallback: true, Wait: conn.WaitAdaptive}).Dial("unix", sock)
	} else {
		c, err = net.Dial("unix", sock)
	}
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	require.NoError(t, c.SetDeadline(time.Now().Add(30*time.Second)))
	return c
}

// subscribe subscribes c to "ch" and reads the confirmation.
func subscribe(t *testing.T, c net.Conn) *bufio.Reader {
	t.Helper()
	_, err := c.Write([]byte("SUBSCRIBE ch\r\n"))
	require.NoError(t, err)
	r := bufio.NewReader(c)
	reply, err := readReply(r)
	require.NoError(t, err)
	require.Equal(t, "*[subscribe ch :1]", reply)
	return r
}

// publish sends one PUBLISH of msg to "ch" on pub and returns its answer
// and how long it took.
func publish(t *testing.T, pub net.Conn, msg string) (string, time.Duration) {
	t.Helper()
	start := time.Now()
	_, err := fmt.Fprintf(pub, "*3\r\n$7\r\nPUBLISH\r\n$2\r\nch\r\n$%d\r\n%s\r\n", len(msg), msg)
	require.NoError(t, err)
	line, err := bufio.NewReader(pub).ReadString('\n')
	require.NoError(t, err, "the PUBLISH's answer")
	return line, time.Since(start)
}

// numsub asks, on a new client, how many subscribe to "ch".
func numsub(t *testing.T, sock string, shm bool) string {
	t.Helper()
	c := pubSubDial(t, sock, shm)
	_, err := c.Write([]byte("PUBSUB NUMSUB ch\r\n"))
	require.NoError(t, err)
	reply, err := readReply(bufio.NewReader(c))
	require.NoError(t, err)
	return reply
}

func forBothTransports(t *testing.T, f func(t *testing.T, srv *Server, sock string, shm bool)) {
	for _, shm := range []bool{true, false} {
		t.Run(fmt.Sprint("shm=", shm), func(t *testing.T) {
			srv, sock := startInProcess(t)
			f(t, srv, sock, shm)
		})
	}
}

func TestPubSubPublishersNeverWait(t *testing.T) {
	forBothTransports(t, func(t *testing.T, _ *Server, sock string, shm bool) {
		// Three that never read their messages, one that floods PINGs and
		// reads none of the replies.
		for range 3 {
			subscribe(t, pubSubDial(t, sock, shm))
		}
		pinger := pubSubDial(t, sock, shm)
		subscribe(t, pinger)
		go func() {
			ping := []byte(strings.Repeat("PING\r\n", 10000))
			for range 20 { // some 3 MB of replies, never read
				if _, err := pinger.Write(ping); err != nil {
					return
				}
			}
		}()
		pub := pubSubDial(t, sock, shm)
		msg := strings.Repeat("x", 1000)
		go func() {
			w := bufio.NewWriter(pub)
			for range 2000 { // 2 MB to each subscriber: far more than a ring and a socket hold
				w.WriteString("PUBLISH ch " + msg + "\r\n")
			}
			w.Flush()
		}()
		replies := bufio.NewReader(pub)
		start := time.Now()
		for i := range 2000 {
			line, err := replies.ReadString('\n')
			require.NoError(t, err, "reply %d of 2000 to the publisher", i)
			require.Equal(t, ":4\r\n", line)
		}
		took := time.Since(start)
		t.Logf("2000 PUBLISH to 4 subscribers that read nothing answered in %v", took)
		require.Less(t, took, 5*time.Second)
		require.Equal(t, "*[ch :4]", numsub(t, sock, shm), "under the limits, nobody is dropped")
	})
}

func TestPubSubSteadyReader(t *testing.T) {
	forBothTransports(t, func(t *testing.T, _ *Server, sock string, shm bool) {
		r := subscribe(t, pubSubDial(t, sock, shm))
		pub := pubSubDial(t, sock, shm)
		msg := strings.Repeat("x", 4<<20)
		go fmt.Fprintf(pub, "*3\r\n$7\r\nPUBLISH\r\n$2\r\nch\r\n$%d\r\n%s\r\n", len(msg), msg)
		// 4 KiB every 100 ms (40 KiB/s): the message takes minutes, and
		// the subscriber must not be dropped in the 3 s watched. A drop
		// shows to the server at once (PUBSUB NUMSUB), to the subscriber
		// only once it has read what the ring and the socket hold.
		buf := make([]byte, 4<<10)
		var total int
		for start := time.Now(); time.Since(start) < 3*time.Second; {
			n, err := r.Read(buf)
			total += n
			require.NoError(t, err, "a subscriber reading 40 KiB/s dropped after %d bytes", total)
			time.Sleep(100 * time.Millisecond)
		}
		require.Equal(t, "*[ch :1]", numsub(t, sock, shm), "the subscriber reading 40 KiB/s is still subscribed")
	})
}

func TestPubSubPause(t *testing.T) {
	forBothTransports(t, func(t *testing.T, _ *Server, sock string, shm bool) {
		r := subscribe(t, pubSubDial(t, sock, shm))
		pub := pubSubDial(t, sock, shm)
		msg := strings.Repeat("x", 1000)
		for i := range 1000 { // 1 MB while the subscriber reads nothing
			line, _ := publish(t, pub, fmt.Sprintf("%d %s", i, msg))
			require.Equal(t, ":1\r\n", line)
		}
		time.Sleep(1500 * time.Millisecond)
		for i := range 1000 {
			reply, err := readReply(r)
			require.NoError(t, err, "message %d after the pause", i)
			require.True(t, strings.HasPrefix(reply, fmt.Sprintf("*[message ch %d ", i)), "message %d: %.40q", i, reply)
		}
	})
}

func TestPubSubOutputLimits(t *testing.T) {
	limits := pubsubLimits{hard: 1 << 20, soft: 256 << 10, softFor: 500 * time.Millisecond}
	forBothTransports(t, func(t *testing.T, srv *Server, sock string, shm bool) {
		srv.pubsub.mu.Lock()
		srv.pubsub.limits = limits
		srv.pubsub.mu.Unlock()
		r := subscribe(t, pubSubDial(t, sock, shm))
		pub := pubSubDial(t, sock, shm)
		// Past the soft limit, not the hard one: dropped once that has
		// lasted softFor, at the next message.
		for range 3 {
			publish(t, pub, strings.Repeat("x", 200<<10))
		}
		require.Equal(t, "*[ch :1]", numsub(t, sock, shm), "over the soft limit for less than softFor")
		time.Sleep(2 * limits.softFor)
		publish(t, pub, "last")
		require.Eventually(t, func() bool { return numsub(t, sock, shm) == "*[ch :0]" }, 5*time.Second, 10*time.Millisecond,
			"over the soft limit for longer than softFor")
		_, err := io.Copy(io.Discard, r)
		require.NoError(t, err, "the dropped subscriber's stream ends (io.EOF)")

		// Past the hard limit (with what the ring or the socket took):
		// dropped at once.
		r = subscribe(t, pubSubDial(t, sock, shm))
		for range 10 {
			publish(t, pub, strings.Repeat("x", 200<<10))
		}
		require.Eventually(t, func() bool { return numsub(t, sock, shm) == "*[ch :0]" }, 5*time.Second, 10*time.Millisecond,
			"over the hard limit")
		_, err = io.Copy(io.Discard, r)
		require.NoError(t, err)
	})
}

// TestPubSubResp3SelfPublish: a RESP3 client may PUBLISH while subscribed,
// also to a channel it is subscribed to: it gets the message, then the
// answer, as from Redis, and its PUBLISH does not wait for its own lock.
func TestPubSubResp3SelfPublish(t *testing.T) {
	forBothTransports(t, func(t *testing.T, _ *Server, sock string, shm bool) {
		c := pubSubDial(t, sock, shm)
		r := bufio.NewReader(c)
		_, err := c.Write([]byte("HELLO 3\r\nSUBSCRIBE ch\r\nPUBLISH ch hi\r\n"))
		require.NoError(t, err)
		var got []string
		for range 4 {
			reply, err := readReply(r)
			require.NoError(t, err, "after %q", got)
			got = append(got, reply)
		}
		require.Equal(t, []string{">[subscribe ch :1]", ">[message ch hi]", ":1"}, got[1:])
	})
}

// TestPubSubResp3CrossPublish: two RESP3 subscribers of a channel publish
// to it at once. Neither may wait for the other's lock while holding its
// own, or both hang, and every later PUBLISH to the channel with them.
func TestPubSubResp3CrossPublish(t *testing.T) {
	forBothTransports(t, func(t *testing.T, _ *Server, sock string, shm bool) {
		var wg sync.WaitGroup
		for range 2 {
			c := pubSubDial(t, sock, shm)
			r := bufio.NewReader(c)
			_, err := c.Write([]byte("HELLO 3\r\nSUBSCRIBE ch\r\n"))
			require.NoError(t, err)
			for range 2 {
				_, err := readReply(r)
				require.NoError(t, err)
			}
			wg.Go(func() {
				for range 200 {
					if _, err := c.Write([]byte("PUBLISH ch hi\r\n")); err != nil {
						return
					}
				}
			})
			go io.Copy(io.Discard, r)
		}
		wg.Wait()
		line, took := publish(t, pubSubDial(t, sock, shm), "x")
		require.Equal(t, ":2\r\n", line, "a PUBLISH after the crossed ones (took %v)", took)
	})
}

// TestPubSubNoMessageAfterUnsubscribe: once its UNSUBSCRIBE is answered a
// client gets no more messages of the channel, however busy it is: a
// PUBLISH that listed the subscription before must not write its message
// after the answer, where a RESP2 client back in normal mode expects its
// next reply.
func TestPubSubNoMessageAfterUnsubscribe(t *testing.T) {
	forBothTransports(t, func(t *testing.T, _ *Server, sock string, shm bool) {
		for range 3 {
			floodChannel(t, pubSubDial(t, sock, shm))
		}
		c := pubSubDial(t, sock, shm)
		r := bufio.NewReader(c)
		skipTo := func(prefix string) {
			t.Helper()
			for {
				reply, err := readReply(r)
				require.NoError(t, err)
				if strings.HasPrefix(reply, prefix) {
					return
				}
			}
		}
		for round := range 200 {
			_, err := c.Write([]byte("SUBSCRIBE ch\r\n"))
			require.NoError(t, err)
			skipTo("*[subscribe")
			_, err = c.Write([]byte("UNSUBSCRIBE ch\r\nPING\r\n"))
			require.NoError(t, err)
			skipTo("*[unsubscribe") // messages before it are fine
			reply, err := readReply(r)
			require.NoError(t, err)
			require.Equal(t, "+PONG", reply, "round %d: the reply after UNSUBSCRIBE's", round)
		}
	})
}

// readReply reads one RESP2 or RESP3 reply and renders it: aggregates as
// their type byte and their elements in brackets, bulk strings as their
// text, others as their line.
func readReply(r *bufio.Reader) (string, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return "", err
	}
	body := strings.TrimSuffix(line[1:], "\r\n")
	switch line[0] {
	case '%', '>', '*', '~':
		n, err := strconv.Atoi(body)
		if err != nil {
			return "", fmt.Errorf("aggregate length %q: %w", body, err)
		}
		if line[0] == '%' {
			n *= 2
		}
		parts := make([]string, max(n, 0))
		for i := range parts {
			if parts[i], err = readReply(r); err != nil {
				return "", err
			}
		}
		return string(line[0]) + "[" + strings.Join(parts, " ") + "]", nil
	case '$':
		n, err := strconv.Atoi(body)
		if err != nil || n < 0 {
			return "nil", err
		}
		b := make([]byte, n+2)
		if _, err := io.ReadFull(r, b); err != nil {
			return "", err
		}
		return string(b[:n]), nil
	}
	return line[:1] + body, nil
}

// TestPubSubQuitWithBacklog: a subscriber that quits with a backlog it
// does not read is let go within twice leaveIdle, whether its
// writer is idle or blocked in a write, so Server.Close does not wait its
// whole timeout for it.
func TestPubSubQuitWithBacklog(t *testing.T) {
	const leaveIdle = 500 * time.Millisecond
	forBothTransports(t, func(t *testing.T, srv *Server, sock string, shm bool) {
		srv.pubsub.mu.Lock()
		srv.pubsub.limits.leaveIdle = leaveIdle
		srv.pubsub.mu.Unlock()
		s := pubSubDial(t, sock, shm)
		subscribe(t, s)
		pub := pubSubDial(t, sock, shm)
		msg := strings.Repeat("x", 64<<10)
		for range 64 { // 4 MiB: under the limits, more than a ring and a socket hold
			line, _ := publish(t, pub, msg)
			require.Equal(t, ":1\r\n", line)
		}
		_, err := s.Write([]byte("QUIT\r\n"))
		require.NoError(t, err)
		require.Eventually(t, func() bool { return srv.clients.Load() == 1 }, 2*leaveIdle+time.Second, 10*time.Millisecond,
			"the subscriber that quit is still held (clients %d)", srv.clients.Load())
	})
}

// TestPubSubLimitsOnlyWhileSubscribed: a client that has unsubscribed from
// everything is an ordinary client again, which the subscribers' output
// limits do not drop, as in Redis: a large GET after unsubscribing is
// answered whole.
func TestPubSubLimitsOnlyWhileSubscribed(t *testing.T) {
	forBothTransports(t, func(t *testing.T, srv *Server, sock string, shm bool) {
		srv.pubsub.mu.Lock()
		srv.pubsub.limits = pubsubLimits{hard: 64 << 10, soft: 64 << 10, softFor: time.Minute}
		srv.pubsub.mu.Unlock()
		c := pubSubDial(t, sock, shm)
		r := bufio.NewReader(c)
		val := strings.Repeat("v", 256<<10)
		fmt.Fprintf(c, "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$%d\r\n%s\r\n", len(val), val)
		reply, err := readReply(r)
		require.NoError(t, err)
		require.Equal(t, "+OK", reply)
		_, err = c.Write([]byte("SUBSCRIBE ch\r\nUNSUBSCRIBE ch\r\nGET k\r\n"))
		require.NoError(t, err)
		for _, want := range []string{"*[subscribe ch :1]", "*[unsubscribe ch :0]"} {
			reply, err = readReply(r)
			require.NoError(t, err)
			require.Equal(t, want, reply)
		}
		reply, err = readReply(r)
		require.NoError(t, err, "a GET of 256 KiB after unsubscribing, limits of 64 KiB")
		require.Equal(t, val, reply)
	})
}

// TestPubSubInFlightCounted: bytes already sent do not count against the
// limits: a writer that took the whole queue at once would count a mostly
// sent backlog as unsent until the last of it went, and drop a subscriber
// at half its limit.
func TestPubSubInFlightCounted(t *testing.T) {
	forBothTransports(t, func(t *testing.T, srv *Server, sock string, shm bool) {
		srv.pubsub.mu.Lock()
		srv.pubsub.limits = pubsubLimits{hard: 4 << 20, soft: 4 << 20, softFor: time.Minute}
		srv.pubsub.mu.Unlock()
		r := subscribe(t, pubSubDial(t, sock, shm))
		pub := pubSubDial(t, sock, shm)
		msg := strings.Repeat("x", 32<<10)
		for range 96 { // 3 MiB while the subscriber reads nothing
			publish(t, pub, msg)
		}
		_, err := io.CopyN(io.Discard, r, 11<<18) // 2.75 MiB read: some 0.25 MiB left unsent
		require.NoError(t, err)
		for range 40 { // 1.25 MiB more: some 1.5 MiB unsent, under 4 MiB
			publish(t, pub, msg)
		}
		require.Equal(t, "*[ch :1]", numsub(t, sock, shm), "dropped with some 1.5 MiB unsent, the limit 4 MiB")
	})
}

// TestPubSubNothingAfterQuit: after the reply to its QUIT a subscriber is
// sent nothing more, as by Redis, however busy its channel: no message
// published meanwhile follows the +OK.
func TestPubSubNothingAfterQuit(t *testing.T) {
	forBothTransports(t, func(t *testing.T, _ *Server, sock string, shm bool) {
		floodChannel(t, pubSubDial(t, sock, shm))
		for round := range 100 {
			s := pubSubDial(t, sock, shm)
			r := subscribe(t, s)
			_, err := s.Write([]byte("QUIT\r\n"))
			require.NoError(t, err)
			for {
				reply, err := readReply(r)
				require.NoError(t, err, "round %d: before +OK", round)
				if reply == "+OK" {
					break
				}
			}
			reply, err := readReply(r)
			require.ErrorIs(t, err, io.EOF, "round %d: %.40q after +OK", round, reply)
			s.Close()
		}
	})
}

// floodChannel publishes to "ch" on pub, discarding the answers, until the
// test ends.
func floodChannel(t *testing.T, pub net.Conn) {
	stop := make(chan struct{})
	t.Cleanup(func() { close(stop) })
	go io.Copy(io.Discard, pub)
	go func() {
		flood := []byte(strings.Repeat("PUBLISH ch m\r\n", 50))
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := pub.Write(flood); err != nil {
				return
			}
		}
	}()
}

// TestPubSubDropStopsPipeline: a subscriber dropped at its limits runs
// none of the commands it had pipelined after the one that dropped it, as
// in Redis (rather than run them and throw their replies away).
func TestPubSubDropStopsPipeline(t *testing.T) {
	forBothTransports(t, func(t *testing.T, srv *Server, sock string, shm bool) {
		srv.pubsub.mu.Lock()
		srv.pubsub.limits = pubsubLimits{hard: 1000, soft: 1000, softFor: time.Hour}
		srv.pubsub.mu.Unlock()
		other := pubSubDial(t, sock, shm)
		ro := bufio.NewReader(other)
		val := strings.Repeat("v", 200<<10)
		fmt.Fprintf(other, "*3\r\n$3\r\nSET\r\n$3\r\nbig\r\n$%d\r\n%s\r\n", len(val), val)
		reply, err := readReply(ro)
		require.NoError(t, err)
		require.Equal(t, "+OK", reply)
		c := pubSubDial(t, sock, shm)
		r := bufio.NewReader(c)
		_, err = c.Write([]byte("HELLO 3\r\nSUBSCRIBE ch\r\n"))
		require.NoError(t, err)
		for range 2 {
			_, err := readReply(r)
			require.NoError(t, err)
		}
		_, err = c.Write([]byte("GET big\r\n" + strings.Repeat("INCR n\r\n", 5)))
		require.NoError(t, err)
		_, err = io.Copy(io.Discard, r)
		require.NoError(t, err, "the dropped client's stream ends")
		_, err = other.Write([]byte("GET n\r\n"))
		require.NoError(t, err)
		reply, err = readReply(ro)
		require.NoError(t, err)
		require.Equal(t, "nil", reply, "INCRs pipelined after the GET that dropped the client ran")
	})
}

// TestPubSubWriteErrorEndsClient: a client whose replies cannot be written
// (it shut its reading side) is ended, not kept with its output piling up.
func TestPubSubWriteErrorEndsClient(t *testing.T) {
	srv, sock := startInProcess(t)
	c := pubSubDial(t, sock, false)
	r := subscribe(t, c)
	_, err := c.Write([]byte("UNSUBSCRIBE\r\n"))
	require.NoError(t, err)
	reply, err := readReply(r)
	require.NoError(t, err)
	require.Equal(t, "*[unsubscribe ch :0]", reply)
	require.NoError(t, c.(*net.UnixConn).CloseRead())
	for range 50 {
		if _, err := c.Write([]byte("PING " + strings.Repeat("x", 100<<10) + "\r\n")); err != nil {
			break // ended
		}
	}
	require.Eventually(t, func() bool { return srv.clients.Load() == 0 }, 5*time.Second, 10*time.Millisecond,
		"the client whose replies fail is still served")
}

// TestPubSubQuitSlowReader: a subscriber that quits with a backlog and
// reads it steadily gets all of it, then the +OK, as from Redis: no
// deadline for the whole drain cuts it off mid-message.
func TestPubSubQuitSlowReader(t *testing.T) {
	forBothTransports(t, func(t *testing.T, _ *Server, sock string, shm bool) {
		c := pubSubDial(t, sock, shm)
		r := subscribe(t, c)
		pub := pubSubDial(t, sock, shm)
		msg := strings.Repeat("x", 200<<10)
		for range 15 { // 3 MB, under the soft limit
			line, _ := publish(t, pub, msg)
			require.Equal(t, ":1\r\n", line)
		}
		_, err := c.Write([]byte("QUIT\r\n"))
		require.NoError(t, err)
		buf := make([]byte, 32<<10)
		var got []byte
		for {
			n, err := r.Read(buf) // some 1.3 MB/s: the drain takes over 2 s
			got = append(got, buf[:n]...)
			if err != nil {
				require.ErrorIs(t, err, io.EOF)
				break
			}
			time.Sleep(25 * time.Millisecond)
		}
		require.True(t, bytes.HasSuffix(got, []byte("+OK\r\n")), "the stream ends %.40q, %d bytes", got[max(0, len(got)-40):], len(got))
		require.Equal(t, 15, bytes.Count(got, []byte("message")))
	})
}

// TestPubSubUnsubscribeAllCount: UNSUBSCRIBE (or PUNSUBSCRIBE) without
// arguments, with nothing of its kind left, answers the count of the other
// kind, as Redis does; 0 would make a client think it left subscribed
// mode.
func TestPubSubUnsubscribeAllCount(t *testing.T) {
	forBothTransports(t, func(t *testing.T, _ *Server, sock string, shm bool) {
		c := pubSubDial(t, sock, shm)
		r := bufio.NewReader(c)
		_, err := c.Write([]byte("PSUBSCRIBE p*\r\nUNSUBSCRIBE\r\nPUNSUBSCRIBE\r\nSUBSCRIBE ch\r\nPUNSUBSCRIBE\r\n"))
		require.NoError(t, err)
		var got []string
		for range 5 {
			reply, err := readReply(r)
			require.NoError(t, err)
			got = append(got, reply)
		}
		require.Equal(t, []string{"*[psubscribe p* :1]", "*[unsubscribe nil :1]", "*[punsubscribe p* :0]", "*[subscribe ch :1]", "*[punsubscribe nil :1]"}, got)
	})
}

// TestPubSubUnsubscribeNeverSubscribed: UNSUBSCRIBE and PUNSUBSCRIBE from a
// client that never subscribed answer as Redis does, and the server lives
// on.
func TestPubSubUnsubscribeNeverSubscribed(t *testing.T) {
	forBothTransports(t, func(t *testing.T, _ *Server, sock string, shm bool) {
		c := pubSubDial(t, sock, shm)
		r := bufio.NewReader(c)
		_, err := c.Write([]byte("UNSUBSCRIBE\r\nPUNSUBSCRIBE\r\nPING\r\n"))
		require.NoError(t, err)
		var got []string
		for range 3 {
			reply, err := readReply(r)
			require.NoError(t, err)
			got = append(got, reply)
		}
		require.Equal(t, []string{"*[unsubscribe nil :0]", "*[punsubscribe nil :0]", "+PONG"}, got)
	})
}

// TestPubSubQuitSteadySlowReader: a subscriber that quits with a backlog
// and reads it at 40 KiB/s, slower than either transport hands space back
// within a second, gets all of it and the +OK.
func TestPubSubQuitSteadySlowReader(t *testing.T) {
	forBothTransports(t, func(t *testing.T, _ *Server, sock string, shm bool) {
		c := pubSubDial(t, sock, shm)
		r := subscribe(t, c)
		pub := pubSubDial(t, sock, shm)
		for range 3 { // 600 KB: more than a ring and a socket hold
			line, _ := publish(t, pub, strings.Repeat("x", 200<<10))
			require.Equal(t, ":1\r\n", line)
		}
		_, err := c.Write([]byte("QUIT\r\n"))
		require.NoError(t, err)
		buf := make([]byte, 4<<10)
		var got []byte
		for {
			n, err := r.Read(buf)
			got = append(got, buf[:n]...)
			if err != nil {
				require.ErrorIs(t, err, io.EOF)
				break
			}
			if len(got) < 150<<10 { // 40 KiB/s for the first 150 KB, then at once
				time.Sleep(100 * time.Millisecond)
			}
		}
		require.True(t, bytes.HasSuffix(got, []byte("+OK\r\n")), "the stream ends %.40q, %d bytes", got[max(0, len(got)-40):], len(got))
	})
}
