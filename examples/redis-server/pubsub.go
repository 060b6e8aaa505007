package main

import (
	"errors"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tidwall/redcon"
)

// Pub/Sub: SUBSCRIBE, PSUBSCRIBE, UNSUBSCRIBE, PUNSUBSCRIBE and PUBLISH,
// with Redis's replies and counts.
//
// A client that subscribes leaves redcon's request loop (it is detached)
// and is served by its own goroutine, because from then on other clients'
// PUBLISH write to it at any time. What goes to it, messages and the
// replies to its own commands, is queued in memory under subscriber.mu and
// written by a goroutine of its own (writeSubscriber), so that no
// publisher ever waits for a subscriber's socket: a subscriber that reads
// slowly, or pauses, is sent everything in time, as by Redis, and one
// whose queue passes Redis's Pub/Sub output limits (pubsubLimits) is
// dropped. (Writing synchronously, with deadlines, either stalled the
// publishers behind a slow reader or dropped readers that paused for a
// second.) Lock order: subscriber.mu, then
// Server.mu or pubsub.mu; PUBLISH takes pubsub.mu alone to list the
// receivers, and a subscriber's own PUBLISH lets go of its subscriber.mu
// before it takes another's.

// pubsub is the server's registry of subscriptions.
type pubsub struct {
	mu       sync.Mutex
	channels map[string]map[*subscriber]struct{}
	patterns map[string]map[*subscriber]struct{}
	subs     map[*subscriber]struct{} // every detached client, closed by Server.Close
	limits   pubsubLimits
}

// pubsubLimits bound what a subscriber may leave unread, as Redis's
// client-output-buffer-limit for pubsub clients does (its defaults: 32 MiB,
// or 8 MiB for a minute): past them it is dropped.
type pubsubLimits struct {
	hard      int           // queued bytes that drop it at once
	soft      int           // queued bytes that drop it when they last softFor
	softFor   time.Duration //
	leaveIdle time.Duration // how long a leaving subscriber may take nothing (see leaveChunk)
}

var defaultPubSubLimits = pubsubLimits{hard: 32 << 20, soft: 8 << 20, softFor: time.Minute, leaveIdle: 5 * time.Second}

// leaveIdle returns the limits' leaveIdle.
func (ps *pubsub) leaveIdle() time.Duration {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	return ps.limits.leaveIdle
}

// A leaving subscriber (it quit, or its read side ended) is sent what it
// is still owed (the reply to its QUIT, say) while it takes some of it at
// least every pubsubLimits.leaveIdle: one that stopped reading must not
// keep its goroutines, and one that reads, however slowly, gets it all (a
// deadline for the whole of it cut off a reader of 2.5 MB/s with 6 MB
// owed). The bound is generous because
// both transports hand space back in batches (a quarter ring; a quarter
// of a socket's buffer), so a reader of 40 KiB/s frees nothing for over a
// second (found by the next). A write under way when it starts to leave
// may take up to twice that.

// leaveChunk is what a leaving subscriber's writer writes with one
// leaveIdle deadline.
const leaveChunk = 16 << 10

// subscriber is a detached client.
type subscriber struct {
	mu        sync.Mutex // guards w, out and the rest below, and orders what is written to the client
	executing bool       // serveSubscriber holds mu to run one of its commands; only its goroutine reads it
	dc        redcon.DetachedConn
	w         *redcon.Writer // what commands and PUBLISH write, moved to out by queueOut
	sess      *session

	out       []byte        // queued for writeSubscriber
	inFlight  int           // bytes writeSubscriber is writing
	overSoft  time.Time     // when the queue went past the soft limit; zero if it is under
	done      bool          // nothing more is queued: it was dropped, or it quit (after the reply to its QUIT)
	wake      chan struct{} // capacity 1: out has bytes
	leaving   chan struct{} // closed by serveSubscriber: write what is queued, then stop
	writerEnd chan struct{} // closed by writeSubscriber when it returns

	// Guarded by pubsub.mu.
	channels map[string]struct{}
	patterns map[string]struct{}
}

func (s *subscriber) count() int { return len(s.channels) + len(s.patterns) }

// writePush writes the header of a Pub/Sub frame of n elements: a RESP3
// push to a client that said HELLO 3, an array otherwise.
func writePush(w *redcon.Writer, proto, n int) {
	if proto == 3 {
		w.WriteRaw([]byte(">" + strconv.Itoa(n) + "\r\n"))
	} else {
		w.WriteArray(n)
	}
}

// cmdSubscribe is SUBSCRIBE and PSUBSCRIBE channel|pattern [...].
func cmdSubscribe(r *request) {
	pattern := r.cmd.name == "psubscribe"
	sub, fresh := r.srv.subscriberOf(r)
	if fresh {
		// Detached just now: publishers may write to it from here on. A
		// detached client's commands already run under sub.mu.
		sub.mu.Lock()
		defer sub.mu.Unlock()
	}
	ps := &r.srv.pubsub
	ps.mu.Lock()
	defer ps.mu.Unlock()
	for _, a := range r.args[1:] {
		name := string(a)
		reg, own := ps.channels, sub.channels
		if pattern {
			reg, own = ps.patterns, sub.patterns
		}
		if _, ok := own[name]; !ok {
			own[name] = struct{}{}
			if reg[name] == nil {
				reg[name] = map[*subscriber]struct{}{}
			}
			reg[name][sub] = struct{}{}
		}
		writePush(r.w, r.sess.proto, 3)
		r.w.WriteBulkString(r.cmd.name)
		r.w.WriteBulkString(name)
		r.w.WriteInt(sub.count())
	}
}

// cmdUnsubscribe is UNSUBSCRIBE and PUNSUBSCRIBE [channel|pattern ...];
// without arguments it drops all of the client's channels (or patterns).
func cmdUnsubscribe(r *request) {
	pattern := r.cmd.name == "punsubscribe"
	ps := &r.srv.pubsub
	ps.mu.Lock()
	defer ps.mu.Unlock()
	sub := r.sess.sub
	var own map[string]struct{}
	if sub != nil {
		own = sub.channels
		if pattern {
			own = sub.patterns
		}
	}
	names := make([]string, 0, len(r.args)-1)
	for _, a := range r.args[1:] {
		names = append(names, string(a))
	}
	if len(names) == 0 {
		for name := range own {
			names = append(names, name)
		}
	}
	if len(names) == 0 { // nothing to drop: Redis still answers once, with what is left of the other kind
		writePush(r.w, r.sess.proto, 3)
		r.w.WriteBulkString(r.cmd.name)
		r.w.WriteNull()
		left := 0
		if sub != nil { // a client that never subscribed may unsubscribe too
			left = sub.count()
		}
		r.w.WriteInt(left)
		return
	}
	reg := ps.channels
	if pattern {
		reg = ps.patterns
	}
	for _, name := range names {
		if _, ok := own[name]; ok {
			delete(own, name)
			delete(reg[name], sub)
			if len(reg[name]) == 0 {
				delete(reg, name)
			}
		}
		n := 0
		if sub != nil {
			n = sub.count()
		}
		writePush(r.w, r.sess.proto, 3)
		r.w.WriteBulkString(r.cmd.name)
		r.w.WriteBulkString(name)
		r.w.WriteInt(n)
	}
}

// cmdPublish is PUBLISH channel message: it queues the message for every
// subscriber of the channel and of each matching pattern, and answers how
// many received it. It never waits for a subscriber's socket.
func cmdPublish(r *request) {
	channel, msg := string(r.args[1]), r.args[2]
	t := r.srv.pubsub.targets(channel)
	r.w.WriteInt(r.srv.deliver(r.sess, channel, msg, t))
}

// publishAfterExec is PUBLISH run by EXEC, which holds the server's
// mutex: the receivers are counted now, and the message is delivered
// once EXEC lets go of the mutex, because delivering takes subscribers'
// locks, which come before the server's.
func publishAfterExec(r *request) {
	channel, msg, sess, srv := string(r.args[1]), r.args[2], r.sess, r.srv
	t := srv.pubsub.targets(channel)
	n := 0
	for _, patterns := range t.frames {
		n += len(patterns)
	}
	r.w.WriteInt(n)
	sess.afterExec = append(sess.afterExec, func() { srv.deliver(sess, channel, msg, t) })
}

// publishTargets are the receivers of one PUBLISH.
type publishTargets struct {
	frames map[*subscriber][]string // per subscriber, its patterns that match; "" for the channel
	order  []*subscriber
}

// targets lists the subscribers of channel and of the patterns that
// match it.
func (ps *pubsub) targets(channel string) publishTargets {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	t := publishTargets{frames: map[*subscriber][]string{}}
	add := func(sub *subscriber, pattern string) {
		if _, ok := t.frames[sub]; !ok {
			t.order = append(t.order, sub)
		}
		t.frames[sub] = append(t.frames[sub], pattern)
	}
	for sub := range ps.channels[channel] {
		add(sub, "")
	}
	for pattern, subs := range ps.patterns {
		if globMatch(pattern, channel) {
			for sub := range subs {
				add(sub, pattern)
			}
		}
	}
	return t
}

// deliver queues msg for its targets and returns how many frames went
// out. sess is the publisher.
func (s *Server) deliver(sess *session, channel string, msg []byte, t publishTargets) int {
	ps := &s.pubsub
	// A subscriber's own PUBLISH runs in its serveSubscriber, which holds
	// its lock: it writes to itself without taking it, and lets go of it
	// while it writes to the others, any of which may be waiting for it
	// in a PUBLISH of its own.
	self := sess.sub
	if self == nil || !self.executing {
		self = nil
	}
	received := 0
	deliver := func(sub *subscriber) {
		if sub != self {
			sub.mu.Lock()
			defer sub.mu.Unlock()
		}
		received += sub.writeMessage(ps, channel, msg, t.frames[sub])
		sub.queueOut(ps)
	}
	if self != nil && t.frames[self] != nil {
		deliver(self)
	}
	if self != nil {
		self.mu.Unlock()
	}
	for _, sub := range t.order {
		if sub != self {
			deliver(sub)
		}
	}
	if self != nil {
		self.mu.Lock() // before the reply: the caller writes to self.w
	}
	return received
}

// writeMessage writes to sub.w, under sub.mu, the message's frames for
// the patterns given ("" for the channel itself), in Redis's order, of
// those subscriptions sub still holds, and returns how many it wrote. A
// subscription dropped since the PUBLISH listed it gets nothing: its
// UNSUBSCRIBE's reply may have gone out, and a message after it broke a
// RESP2 client's replies.
func (sub *subscriber) writeMessage(ps *pubsub, channel string, msg []byte, patterns []string) int {
	if sub.done {
		return 0
	}
	ps.mu.Lock()
	held := patterns[:0:0]
	for _, pattern := range patterns {
		var ok bool
		if pattern == "" {
			_, ok = sub.channels[channel]
		} else {
			_, ok = sub.patterns[pattern]
		}
		if ok {
			held = append(held, pattern)
		}
	}
	ps.mu.Unlock()
	for _, pattern := range held {
		if pattern == "" {
			writePush(sub.w, sub.sess.proto, 3)
			sub.w.WriteBulkString("message")
		} else {
			writePush(sub.w, sub.sess.proto, 4)
			sub.w.WriteBulkString("pmessage")
			sub.w.WriteBulkString(pattern)
		}
		sub.w.WriteBulkString(channel)
		sub.w.WriteBulk(msg)
	}
	return len(held)
}

// queueOut moves what sub.w holds to the queue writeSubscriber writes
// from, and drops the subscriber if the queue is past the limits, as
// Redis drops a Pub/Sub client past its output buffer limits: closing its
// conn ends its writeSubscriber's write and its serveSubscriber's read.
// Under sub.mu.
func (sub *subscriber) queueOut(ps *pubsub) {
	b := sub.w.Buffer()
	sub.w.SetBuffer(nil)
	if len(b) == 0 || sub.done {
		return
	}
	sub.out = append(sub.out, b...)
	ps.mu.Lock()
	lim, subscribed := ps.limits, sub.count() > 0
	ps.mu.Unlock()
	// The limits are a subscriber's: a client that has unsubscribed from
	// everything is an ordinary one again, without limits, as in Redis
	// (they would drop one that reads a large value after).
	queued := len(sub.out) + sub.inFlight
	switch {
	case !subscribed || queued <= lim.soft:
		sub.overSoft = time.Time{}
	case sub.overSoft.IsZero():
		sub.overSoft = time.Now()
	}
	if subscribed && (queued > lim.hard || !sub.overSoft.IsZero() && time.Since(sub.overSoft) > lim.softFor) {
		sub.done = true
		sub.out = nil
		sub.dc.NetConn().Close()
		return
	}
	select {
	case sub.wake <- struct{}{}:
	default:
	}
}

// writeChunk bounds what writeSubscriber takes from the queue for one
// write: what it has taken counts against the limits until the write
// returns, and taking the whole queue at once counted a backlog that was
// mostly sent as unsent.
const writeChunk = 64 << 10

// writeSubscriber writes what is queued for sub until its conn fails, or
// until serveSubscriber says it is leaving and nothing is left. While it
// leaves, each write has a leaveIdle deadline (serveSubscriber sets one
// for a write under way), and a write that times out having written
// nothing cuts it off. Any other failure ends the client: its output
// would pile up with nobody writing it.
func (s *Server) writeSubscriber(sub *subscriber) {
	defer s.handlers.Done()
	defer close(sub.writerEnd)
	nc := sub.dc.NetConn()
	fail := func() {
		sub.mu.Lock()
		sub.done, sub.out, sub.inFlight = true, nil, 0
		sub.mu.Unlock()
		nc.Close() // ends serveSubscriber's read too
	}
	for {
		leaving := isClosed(sub.leaving)
		chunk := writeChunk
		if leaving {
			chunk = leaveChunk
			nc.SetWriteDeadline(time.Now().Add(s.pubsub.leaveIdle()))
		}
		sub.mu.Lock()
		n := min(len(sub.out), chunk)
		b := sub.out[:n:n]
		sub.out = sub.out[n:]
		if len(sub.out) == 0 {
			sub.out = nil // let the backing array go
		}
		sub.inFlight = n
		sub.mu.Unlock()
		if n > 0 {
			k, err := nc.Write(b)
			sub.mu.Lock()
			sub.inFlight = 0
			if err != nil && k > 0 && errors.Is(err, os.ErrDeadlineExceeded) {
				// Leaving, and still reading: the rest goes first.
				sub.out = append(b[k:len(b):len(b)], sub.out...)
				err = nil
			}
			sub.mu.Unlock()
			if err != nil {
				fail()
				return
			}
			continue
		}
		if leaving {
			return
		}
		select {
		case <-sub.wake:
		case <-sub.leaving:
		}
	}
}

// isClosed reports whether ch is closed.
func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// cmdPubSub is PUBSUB CHANNELS [pattern] | NUMSUB [channel ...] | NUMPAT.
func cmdPubSub(r *request) {
	ps := &r.srv.pubsub
	ps.mu.Lock()
	defer ps.mu.Unlock()
	switch strings.ToUpper(string(r.args[1])) {
	case "CHANNELS":
		var names []string
		for name := range ps.channels {
			if len(r.args) < 3 || globMatch(string(r.args[2]), name) {
				names = append(names, name)
			}
		}
		r.w.WriteArray(len(names))
		for _, n := range names {
			r.w.WriteBulkString(n)
		}
	case "NUMSUB":
		r.w.WriteArray(2 * (len(r.args) - 2))
		for _, a := range r.args[2:] {
			r.w.WriteBulk(a)
			r.w.WriteInt(len(ps.channels[string(a)]))
		}
	case "NUMPAT":
		r.w.WriteInt(len(ps.patterns))
	default:
		unknownSubcommand(r)
	}
}

// subscriberOf returns the request's client as a subscriber, detaching it
// from redcon's loop the first time (fresh); Server.closed then hands it to
// serveSubscriber once redcon's handler has returned.
func (s *Server) subscriberOf(r *request) (sub *subscriber, fresh bool) {
	if r.sess.sub != nil {
		return r.sess.sub, false
	}
	// Its replies are queued from here on, and so is its protocol error.
	r.conn.NetConn().(*requestConn).answer = false
	sub = &subscriber{
		dc:        r.conn.Detach(),
		w:         r.w, // the detached conn's buffer: replies before the detach are in it
		sess:      r.sess,
		wake:      make(chan struct{}, 1),
		leaving:   make(chan struct{}),
		writerEnd: make(chan struct{}),
		channels:  map[string]struct{}{},
		patterns:  map[string]struct{}{},
	}
	s.pubsub.mu.Lock()
	r.sess.sub = sub
	s.pubsub.subs[sub] = struct{}{}
	s.pubsub.mu.Unlock()
	return sub, true
}

// inSubscribedMode reports whether a RESP2 client has subscriptions, in
// which Redis allows only the Pub/Sub commands, PING, QUIT and RESET.
func (s *Server) inSubscribedMode(sess *session) bool {
	if sess.sub == nil || sess.proto == 3 {
		return false
	}
	s.pubsub.mu.Lock()
	defer s.pubsub.mu.Unlock()
	return sess.sub.count() > 0
}

// serveSubscriber reads and runs a detached client's commands until it
// leaves or the server closes it; writeSubscriber, which it starts, writes
// what the client is sent.
func (s *Server) serveSubscriber(sub *subscriber) {
	defer s.handlers.Done()
	s.handlers.Add(1)
	go s.writeSubscriber(sub)
	defer func() {
		s.pubsub.mu.Lock()
		for name := range sub.channels {
			delete(s.pubsub.channels[name], sub)
			if len(s.pubsub.channels[name]) == 0 {
				delete(s.pubsub.channels, name)
			}
		}
		for name := range sub.patterns {
			delete(s.pubsub.patterns[name], sub)
			if len(s.pubsub.patterns[name]) == 0 {
				delete(s.pubsub.patterns, name)
			}
		}
		s.pubsub.mu.Unlock()
		// What it is owed (a QUIT's reply) goes out while it reads (see
		// writeSubscriber), then the conn closes. It stays in subs
		// meanwhile, so that Server.Close can cut it off. A PUBLISH that
		// listed sub before it left the registry queues nothing: done.
		sub.mu.Lock()
		sub.done = true
		sub.mu.Unlock()
		sub.dc.NetConn().SetWriteDeadline(time.Now().Add(s.pubsub.leaveIdle())) // also for a write under way
		close(sub.leaving)
		<-sub.writerEnd
		s.pubsub.mu.Lock()
		delete(s.pubsub.subs, sub)
		s.pubsub.mu.Unlock()
		sub.mu.Lock()
		sub.w.SetBuffer(nil) // redcon's Close would write it
		sub.dc.Close()
		sub.mu.Unlock()
		s.clientGone(sub.sess)
	}()
	// The replies to the commands before the detach are still buffered.
	sub.mu.Lock()
	sub.queueOut(&s.pubsub)
	sub.mu.Unlock()
	for !sub.sess.quit {
		cmd, err := sub.dc.ReadCommand()
		if err != nil {
			var pe protocolError
			if errors.As(err, &pe) {
				sub.mu.Lock()
				sub.w.WriteError(pe.reply())
				sub.queueOut(&s.pubsub)
				sub.done = true
				sub.mu.Unlock()
			}
			break
		}
		sub.mu.Lock()
		if sub.done {
			// Dropped: redcon may hold more of its pipeline, which must
			// not run.
			sub.mu.Unlock()
			break
		}
		sub.executing = true
		s.exec(sub.sess, nil, cmd.Args, sub.w)
		sub.executing = false
		sub.queueOut(&s.pubsub)
		// Nothing after the reply to QUIT, as in Redis: a message queued
		// between it and the subscriber leaving the registry would
		// follow the +OK.
		sub.done = sub.done || sub.sess.quit
		sub.mu.Unlock()
	}
}

// closeSubscribers closes every detached client's conn, which ends its
// serveSubscriber.
func (s *Server) closeSubscribers() {
	s.pubsub.mu.Lock()
	defer s.pubsub.mu.Unlock()
	for sub := range s.pubsub.subs {
		sub.dc.NetConn().Close()
	}
}

// globMatch reports whether s matches the Redis glob pattern: * and ?,
// [abc], [^abc] and [a-z] classes, and \ quoting the next character.
func globMatch(pattern, s string) bool {
	for len(pattern) > 0 {
		switch pattern[0] {
		case '*':
			for len(pattern) > 1 && pattern[1] == '*' {
				pattern = pattern[1:]
			}
			if len(pattern) == 1 {
				return true
			}
			for i := 0; i <= len(s); i++ {
				if globMatch(pattern[1:], s[i:]) {
					return true
				}
			}
			return false
		case '?':
			if len(s) == 0 {
				return false
			}
			s = s[1:]
			pattern = pattern[1:]
		case '[':
			if len(s) == 0 {
				return false
			}
			rest, ok := matchClass(pattern[1:], s[0])
			if !ok {
				return false
			}
			pattern, s = rest, s[1:]
		default:
			if pattern[0] == '\\' && len(pattern) > 1 {
				pattern = pattern[1:]
			}
			if len(s) == 0 || s[0] != pattern[0] {
				return false
			}
			s, pattern = s[1:], pattern[1:]
		}
	}
	return len(s) == 0
}

// matchClass matches c against the class at the start of p (just after
// '['), returning the pattern after the class's ']'.
func matchClass(p string, c byte) (rest string, ok bool) {
	not := len(p) > 0 && p[0] == '^'
	if not {
		p = p[1:]
	}
	match := false
	for len(p) > 0 && p[0] != ']' {
		switch {
		case p[0] == '\\' && len(p) > 1:
			match = match || p[1] == c
			p = p[2:]
		case len(p) > 2 && p[1] == '-' && p[2] != ']':
			lo, hi := p[0], p[2]
			if lo > hi {
				lo, hi = hi, lo
			}
			match = match || lo <= c && c <= hi
			p = p[3:]
		default:
			match = match || p[0] == c
			p = p[1:]
		}
	}
	if len(p) > 0 {
		p = p[1:] // the ']'; Redis treats a missing one as the end
	}
	return p, match != not
}
