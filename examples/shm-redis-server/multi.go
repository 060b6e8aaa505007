package main

// Transactions: MULTI, EXEC, DISCARD, WATCH and UNWATCH, as in Redis.
//
// Between MULTI and EXEC a client's commands are checked (name, arity)
// and queued; one that fails the check is refused and makes EXEC answer
// EXECABORT. EXEC runs the queue under the server's mutex, so no other
// client's command runs between its commands. WATCH registers keys in
// the store; any write to one of them (by any client, this one too), its
// expiry, or a FLUSHDB/FLUSHALL that removes it marks the watcher dirty,
// and a dirty EXEC answers a null array and runs nothing. A write command
// marks its keys even when it changes nothing (a SET NX on an existing
// key, a WRONGTYPE error), where Redis marks only the keys it changed: an
// EXEC here may abort where Redis's would not, never the other way.

// transaction is a client's state between MULTI and EXEC or DISCARD.
type transaction struct {
	queued [][][]byte // each command's arguments, copied out of redcon's buffer
	failed bool       // a command was refused while queuing: EXEC aborts
}

// watchKey names a key in one database.
type watchKey struct {
	d   *db
	key string
}

// watchState is one client's WATCH: the keys it watches and whether one of
// them changed since. Guarded by Server.mu.
type watchState struct {
	keys  []watchKey
	dirty bool
}

// txControl are the commands that run at once between MULTI and EXEC
// instead of being queued, as in Redis.
var txControl = map[string]bool{"multi": true, "exec": true, "discard": true, "watch": true, "quit": true}

// queue adds a command to the client's transaction and answers QUEUED.
func (tx *transaction) queue(args [][]byte, w interface{ WriteString(string) }) {
	cp := make([][]byte, len(args))
	for i, a := range args {
		cp[i] = append([]byte(nil), a...)
	}
	tx.queued = append(tx.queued, cp)
	w.WriteString("QUEUED")
}

func cmdMulti(r *request) {
	if r.sess.tx != nil {
		r.w.WriteError("ERR MULTI calls can not be nested")
		return
	}
	r.sess.tx = &transaction{}
	r.w.WriteString("OK")
}

func cmdDiscard(r *request) {
	if r.sess.tx == nil {
		r.w.WriteError("ERR DISCARD without MULTI")
		return
	}
	r.sess.tx = nil
	r.srv.store.unwatch(r.sess)
	r.w.WriteString("OK")
}

// cmdExec runs the queued commands, in order, under the server's mutex,
// which the caller holds; their replies form EXEC's array.
func cmdExec(r *request) {
	tx, sess, srv := r.sess.tx, r.sess, r.srv
	if tx == nil {
		r.w.WriteError("ERR EXEC without MULTI")
		return
	}
	sess.tx = nil
	srv.store.expireWatched(sess) // a watched key that expired is a change
	dirty := sess.watch != nil && sess.watch.dirty
	srv.store.unwatch(sess)
	w := r.w
	switch {
	case tx.failed:
		w.WriteError("EXECABORT Transaction discarded because of previous errors.")
	case dirty && sess.proto == 3:
		w.WriteRaw([]byte("_\r\n"))
	case dirty:
		w.WriteRaw(nullArray)
	default:
		w.WriteArray(len(tx.queued))
		for _, args := range tx.queued {
			srv.runCommand(sess, nil, lookupCommand(args[0]), args, w, true)
		}
	}
}

func cmdWatch(r *request) {
	if r.sess.tx != nil {
		r.w.WriteError("ERR WATCH inside MULTI is not allowed")
		return
	}
	st := r.srv.store
	if r.sess.watch == nil {
		r.sess.watch = &watchState{}
	}
	for _, key := range r.args[1:] {
		st.lookup(r.db(), key) // an expired key is gone before it is watched
		st.watch(r.sess.watch, watchKey{r.db(), string(key)})
	}
	r.w.WriteString("OK")
}

func cmdUnwatch(r *request) {
	r.srv.store.unwatch(r.sess)
	r.w.WriteString("OK")
}

// watch registers w as a watcher of k.
func (s *Store) watch(w *watchState, k watchKey) {
	if s.watchers[k] == nil {
		s.watchers[k] = map[*watchState]struct{}{}
	}
	if _, ok := s.watchers[k][w]; !ok {
		s.watchers[k][w] = struct{}{}
		w.keys = append(w.keys, k)
	}
}

// unwatch forgets the client's watched keys.
func (s *Store) unwatch(sess *session) {
	w := sess.watch
	if w == nil {
		return
	}
	for _, k := range w.keys {
		delete(s.watchers[k], w)
		if len(s.watchers[k]) == 0 {
			delete(s.watchers, k)
		}
	}
	sess.watch = nil
}

// touch marks the watchers of key in d dirty: the key changed.
func (s *Store) touch(d *db, key string) {
	if len(s.watchers) == 0 {
		return
	}
	for w := range s.watchers[watchKey{d, key}] {
		w.dirty = true
	}
}

// touchAll marks dirty the watchers of every key of d that exists, before
// a flush removes them all.
func (s *Store) touchAll(d *db) {
	for k, ws := range s.watchers {
		if k.d != d {
			continue
		}
		if _, ok := s.lookup(d, []byte(k.key)); ok {
			for w := range ws {
				w.dirty = true
			}
		}
	}
}

// expireWatched deletes the client's watched keys that have expired,
// which marks it dirty.
func (s *Store) expireWatched(sess *session) {
	if sess.watch == nil {
		return
	}
	for _, k := range sess.watch.keys {
		s.lookup(k.d, []byte(k.key))
	}
}

// touchKeys marks the keys a write command names as changed, located as
// COMMAND INFO says (first key, last key, step).
func (r *request) touchKeys() {
	c := r.cmd
	if c.firstKey == 0 {
		return
	}
	last := c.lastKey
	if last < 0 {
		last += len(r.args)
	}
	for i := c.firstKey; i <= last && i < len(r.args); i += c.step {
		r.srv.store.touch(r.db(), string(r.args[i]))
	}
}
