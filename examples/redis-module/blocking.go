//go:build cgo

package main

import (
	"bytes"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Blocking commands run on a client that may not block (RM_Call's), where
// Redis answers at once as if the keys were empty. So the module runs the
// command, and while the answer is empty and the timeout has not passed,
// runs it again, outside the lock, as soon as a list, sorted set or stream
// anywhere in the server changed (a keyspace event), or else after a
// pause (1 ms, doubling to maxPoll), which catches what raises no such
// event (SWAPDB, a replica's full sync) and a client that went away.
// The cost: while shm clients block, each burst of such changes anywhere
// makes every one of them run its command once more (one RM_Call under
// the lock each); the keyspace callback itself costs a load and, at most
// once per burst, a pipe write, and nothing while no one blocks.

// maxPoll is the longest a blocked client waits without a keyspace event.
const maxPoll = 100 * time.Millisecond

// keyChanges wakes blocked clients when keys change: the keyspace callback
// writes a byte to a pipe, and its reader closes the current channel.
type keyChanges struct {
	r, w *os.File // w stays open while the module is loaded

	mu sync.Mutex
	ch chan struct{} // closed at the next change
}

func newKeyChanges() (*keyChanges, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	fd := w.Fd() // Fd makes it blocking; the callback must never block
	if err := syscall.SetNonblock(int(fd), true); err != nil {
		return nil, err
	}
	k := &keyChanges{r: r, w: w, ch: make(chan struct{})}
	setKeyPipe(fd)
	go k.relay()
	return k, nil
}

func (k *keyChanges) relay() {
	buf := make([]byte, 16)
	for {
		if _, err := k.r.Read(buf); err != nil {
			return
		}
		clearKeyEventPending()
		k.mu.Lock()
		close(k.ch)
		k.ch = make(chan struct{})
		k.mu.Unlock()
	}
}

// next is closed at the first change after the call.
func (k *keyChanges) next() <-chan struct{} {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.ch
}

// blocking describes a blocking call in progress.
type blocking struct {
	deadline time.Time // zero: wait for ever
}

// blockingCommands are the commands blockingTimeout looks at.
var blockingCommands = map[string]bool{"blpop": true, "brpop": true, "brpoplpush": true, "blmove": true,
	"bzpopmin": true, "bzpopmax": true, "blmpop": true, "bzmpop": true, "xread": true, "xreadgroup": true}

// blockingTimeout says whether cmd blocks, and for how long; nil when it
// does not block or its timeout is malformed (the command itself then
// answers with Redis's error).
func (c *client) blockingTimeout(cmd *command) *blocking {
	name := lower(cmd.arg(0))
	var arg []byte
	var unit time.Duration = time.Second
	switch name {
	case "blpop", "brpop", "brpoplpush", "blmove", "bzpopmin", "bzpopmax":
		arg = cmd.arg(cmd.argc() - 1)
	case "blmpop", "bzmpop":
		if cmd.argc() > 1 {
			arg = cmd.arg(1)
		}
	case "xread", "xreadgroup":
		arg, unit = xreadBlock(cmd), time.Millisecond
	}
	if arg == nil {
		return nil
	}
	secs, err := strconv.ParseFloat(string(arg), 64)
	if err != nil || secs < 0 || secs > 1e12 {
		return nil
	}
	b := &blocking{}
	if secs > 0 {
		b.deadline = time.Now().Add(time.Duration(secs * float64(unit)))
	}
	return b
}

// xreadBlock is XREAD's or XREADGROUP's BLOCK argument, or nil.
func xreadBlock(cmd *command) []byte {
	for i := 1; i+1 < cmd.argc(); i++ {
		switch lower(cmd.arg(i)) {
		case "block":
			return cmd.arg(i + 1)
		case "streams":
			return nil
		}
	}
	return nil
}

func (c *client) runBlocking(cmd *command, b *blocking) bool {
	cmd = c.resolveLastIDs(cmd)
	addKeyWaiters(1)
	defer addKeyWaiters(-1)
	sleep := time.Millisecond
	for {
		changed := c.m.keys.next() // before the run: a change during it counts
		reply, ok := c.runPaused([]*command{cmd}, false)
		if !ok || !isEmpty(reply) {
			c.reply(string(reply))
			return ok
		}
		if !b.deadline.IsZero() && time.Now().After(b.deadline) {
			// Redis answers every timed-out blocking command with a null
			// array (BLMOVE too, whose non-blocking run gives a null bulk).
			c.reply(string(nullArray(c.resp)))
			return ok
		}
		if !c.alive() {
			return false
		}
		b.wait(changed, sleep)
		sleep = min(2*sleep, maxPoll)
	}
}

// wait waits for a change, the pause or the deadline, whichever is first.
func (b *blocking) wait(changed <-chan struct{}, pause time.Duration) {
	if !b.deadline.IsZero() {
		pause = min(pause, time.Until(b.deadline))
	}
	t := time.NewTimer(max(pause, 0))
	defer t.Stop()
	select {
	case <-changed:
	case <-t.C:
	}
}

func nullArray(resp int) []byte {
	if resp == 3 {
		return []byte("_\r\n")
	}
	return []byte("*-1\r\n")
}

// isEmpty: the null a blocking command answers with when it times out.
func isEmpty(reply []byte) bool {
	s := string(reply)
	return s == "*-1\r\n" || s == "$-1\r\n" || s == "_\r\n"
}

// alive says whether the client is still there: a closed conn ends the
// wait (Redis unblocks a client that disconnects).
func (c *client) alive() bool {
	if c.r.Buffered() > 0 {
		return true
	}
	c.nc.SetReadDeadline(time.Now())
	_, err := c.r.Peek(1)
	c.nc.SetReadDeadline(time.Time{})
	return err == nil || isTimeout(err)
}

func isTimeout(err error) bool {
	t, ok := err.(interface{ Timeout() bool })
	return ok && t.Timeout()
}

// resolveLastIDs replaces XREAD's "$" IDs (the stream's last ID at the
// time of the call) with the IDs they stand for now, so that a run again
// later still returns entries added since the first.
func (c *client) resolveLastIDs(cmd *command) *command {
	if lower(cmd.arg(0)) != "xread" {
		return cmd
	}
	streams := -1
	for i := 1; i < cmd.argc(); i++ {
		if lower(cmd.arg(i)) == "streams" {
			streams = i
			break
		}
	}
	n := (cmd.argc() - streams - 1) / 2
	if streams < 0 || n == 0 || !bytes.Contains(cmd.data, []byte("$")) {
		return cmd
	}
	out := &command{}
	for i := 0; i < cmd.argc(); i++ {
		arg := cmd.arg(i)
		if i > streams+n && string(arg) == "$" {
			arg = []byte(c.lastID(cmd.arg(i - n)))
		}
		out.push(arg)
	}
	return out
}

// lastID is a stream's last generated ID, "0-0" for a missing key, or "$"
// when it cannot tell (the command then answers as Redis would).
func (c *client) lastID(key []byte) string {
	lockServer()
	res := rmCall(c.ctx, c.userStr, "C", newCommand("XINFO", "STREAM", string(key)))
	unlockServer()
	v, _, err := parseValue(res.reply)
	if err != nil {
		return "$"
	}
	if v.kind == '-' {
		if strings.Contains(string(v.str), "no such key") {
			return "0-0"
		}
		return "$"
	}
	for i := 0; i+1 < len(v.arr); i += 2 {
		if string(v.arr[i].str) == "last-generated-id" {
			return string(v.arr[i+1].str)
		}
	}
	return "$"
}
