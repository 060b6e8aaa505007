package main

import (
	"errors"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tidwall/redcon"
)

// Pub/Sub: SUBSCRIBE, PSUBSCRIBE, UNSUBSCRIBE, PUNSUBSCRIBE and PUBLISH,
// with Redis's replies and counts.
//
// A client that subscribes leaves redcon's request loop (it is detached)
// and is served by its own goroutine, because from then on other clients'
// PUBLISH write to it at any time. Its writes are serialized by
// subscriber.mu. Lock order: subscriber.mu, then Server.mu or pubsub.mu;
// PUBLISH takes pubsub.mu only to list the receivers and releases it
// before it takes any subscriber.mu.

// pubsub is the server's registry of subscriptions.
type pubsub struct {
	mu       sync.Mutex
	channels map[string]map[*subscriber]struct{}
	patterns map[string]map[*subscriber]struct{}
	subs     map[*subscriber]struct{} // every detached client, closed by Server.Close
}

// subscriber is a detached client.
// slowSubscriber is how long a subscriber may leave what the server
// writes to it untaken before it is dropped (see subscriber.flush; Redis
// drops one whose unread messages pass 32 MiB, or 8 MiB for a minute;
// here a publisher waits while the subscriber's ring and socket are full).
const slowSubscriber = time.Second

type subscriber struct {
	mu        sync.Mutex // serializes writes to w and their Flush
	executing bool       // serveSubscriber holds mu to run one of its commands; only its goroutine reads it
	dc        redcon.DetachedConn
	w         *redcon.Writer
	sess      *session

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
	if len(names) == 0 { // nothing to drop: Redis still answers once
		writePush(r.w, r.sess.proto, 3)
		r.w.WriteBulkString(r.cmd.name)
		r.w.WriteNull()
		r.w.WriteInt(0)
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

// cmdPublish is PUBLISH channel message: it writes the message to every
// subscriber of the channel and of each matching pattern, and answers how
// many received it. Subscribers are written to at once, each by a
// goroutine of its own when there are several, so that one that stopped
// reading costs the publisher slowSubscriber once, not once per such
// subscriber (found by an adversarial review).
func cmdPublish(r *request) {
	channel, msg := string(r.args[1]), r.args[2]
	ps := &r.srv.pubsub
	ps.mu.Lock()
	frames := map[*subscriber][]string{} // per subscriber, its patterns that match; "" for the channel
	var order []*subscriber
	add := func(sub *subscriber, pattern string) {
		if _, ok := frames[sub]; !ok {
			order = append(order, sub)
		}
		frames[sub] = append(frames[sub], pattern)
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
	ps.mu.Unlock()

	// A subscriber's own PUBLISH runs in its serveSubscriber, which holds
	// its lock: it writes to itself without taking it, and lets go of it
	// while it writes to the others, any of which may be waiting for it
	// in a PUBLISH of its own. Taking it waited forever (found by an
	// adversarial review).
	self := r.sess.sub
	if self == nil || !self.executing {
		self = nil
	}
	var received atomic.Int64
	deliver := func(sub *subscriber) {
		if sub != self {
			sub.mu.Lock()
			defer sub.mu.Unlock()
		}
		n := sub.writeMessage(ps, channel, msg, frames[sub])
		received.Add(int64(n))
		if n > 0 && sub != self { // self's reply flushes it
			sub.flush()
		}
	}
	if self != nil && frames[self] != nil {
		deliver(self)
	}
	var others []*subscriber
	for _, sub := range order {
		if sub != self {
			others = append(others, sub)
		}
	}
	if self != nil && len(others) > 0 {
		self.mu.Unlock()
	}
	if len(others) == 1 {
		deliver(others[0])
	} else {
		var wg sync.WaitGroup
		for _, sub := range others {
			wg.Go(func() { deliver(sub) })
		}
		wg.Wait()
	}
	if self != nil && len(others) > 0 {
		self.mu.Lock() // before the reply: r.w is self.w
	}
	r.w.WriteInt(int(received.Load()))
}

// writeMessage writes to sub.w, under sub.mu, the message's frames for
// the patterns given ("" for the channel itself), in Redis's order, of
// those subscriptions sub still holds, and returns how many it wrote. A
// subscription dropped since the PUBLISH listed it gets nothing: its
// UNSUBSCRIBE's reply may have gone out, and a message after it broke a
// RESP2 client's replies (found by an adversarial review).
func (sub *subscriber) writeMessage(ps *pubsub, channel string, msg []byte, patterns []string) int {
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

// flushChunk is what flush writes with one deadline.
const flushChunk = 64 << 10

// flush writes what sub.w holds to the subscriber, under sub.mu. A
// subscriber that takes nothing for slowSubscriber, whether it leaves its
// messages or the replies to its own commands unread, would hold up every
// publisher to its channels (each waits for sub.mu): flush drops it,
// closing its conn, as Redis drops one past its Pub/Sub output buffer
// limit. Its next read fails, which ends its serveSubscriber. A subscriber
// that reads, however slowly, is not dropped: each write that times out
// having written something is followed by another (dropping one that took
// less than flushChunk a second, or one whose one large message took more
// than a second, found by adversarial reviews).
func (sub *subscriber) flush() error {
	b := sub.w.Buffer()
	sub.w.SetBuffer(nil)
	nc := sub.dc.NetConn()
	defer nc.SetWriteDeadline(time.Time{})
	for len(b) > 0 {
		nc.SetWriteDeadline(time.Now().Add(slowSubscriber))
		n, err := nc.Write(b[:min(len(b), flushChunk)])
		b = b[n:]
		if err != nil && (n == 0 || !errors.Is(err, os.ErrDeadlineExceeded)) {
			nc.Close()
			return err
		}
	}
	return nil
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
	sub = &subscriber{
		dc:       r.conn.Detach(),
		w:        r.w, // the detached conn writes through the same buffer
		sess:     r.sess,
		channels: map[string]struct{}{},
		patterns: map[string]struct{}{},
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
// leaves or the server closes it.
func (s *Server) serveSubscriber(sub *subscriber) {
	defer s.handlers.Done()
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
		delete(s.pubsub.subs, sub)
		s.pubsub.mu.Unlock()
		// Close flushes sub.w, which a PUBLISH that found sub before it
		// left the registry may be writing to: under sub.mu, as every
		// use of sub.w.
		sub.mu.Lock()
		sub.dc.Close()
		sub.mu.Unlock()
		s.clientGone(sub.sess)
	}()
	// The replies to the commands before the detach are still buffered.
	sub.mu.Lock()
	err := sub.flush()
	sub.mu.Unlock()
	for err == nil && !sub.sess.quit {
		var cmd redcon.Command
		cmd, err = sub.dc.ReadCommand()
		if err != nil {
			break
		}
		sub.mu.Lock()
		sub.executing = true
		s.exec(sub.sess, nil, cmd.Args, sub.w)
		sub.executing = false
		err = sub.flush()
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
