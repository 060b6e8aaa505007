package main

import (
	"slices"
	"strconv"
	"strings"
)

// More key and string commands: KEYS, SCAN, SETNX, GETSET, GETDEL,
// APPEND and STRLEN. Like the others they run under the server's mutex.

// liveKeys lists the selected database's keys that have not expired,
// deleting those that have.
func liveKeys(r *request) []string {
	d := r.db()
	keys := make([]string, 0, len(d.data))
	for k := range d.data {
		keys = append(keys, k)
	}
	live := keys[:0]
	for _, k := range keys {
		if _, ok := r.srv.store.lookup(d, []byte(k)); ok {
			live = append(live, k)
		}
	}
	return live
}

// cmdKeys is KEYS pattern. The order is unspecified, as in Redis.
func cmdKeys(r *request) {
	pattern := string(r.args[1])
	var match []string
	for _, k := range liveKeys(r) {
		if globMatch(pattern, k) {
			match = append(match, k)
		}
	}
	r.w.WriteArray(len(match))
	for _, k := range match {
		r.w.WriteBulkString(k)
	}
}

// cmdScan is SCAN cursor [MATCH pattern] [COUNT count] [TYPE type]. The
// cursor is a position in the sorted key list, so a full iteration returns
// every key present from start to end at least once, as Redis promises;
// like Redis, MATCH and TYPE filter after COUNT keys were taken, so a call
// may return fewer than COUNT keys, or none, before the cursor reaches 0.
func cmdScan(r *request) {
	cursor, err := strconv.ParseUint(string(r.args[1]), 10, 64)
	if err != nil {
		r.w.WriteError("ERR invalid cursor")
		return
	}
	count, pattern, typ := int64(10), "", ""
	for i := 2; i < len(r.args); i += 2 {
		if i+1 >= len(r.args) {
			r.w.WriteError(errSyntax)
			return
		}
		switch strings.ToUpper(string(r.args[i])) {
		case "MATCH":
			pattern = string(r.args[i+1])
		case "COUNT":
			n, ok := parseCount(r, r.args[i+1], 1, errSyntax)
			if !ok {
				return
			}
			count = n
		case "TYPE":
			typ = strings.ToLower(string(r.args[i+1]))
		default:
			r.w.WriteError(errSyntax)
			return
		}
	}
	keys := liveKeys(r)
	slices.Sort(keys)
	start := min(cursor, uint64(len(keys)))
	end := min(start+uint64(count), uint64(len(keys)))
	var out []string
	for _, k := range keys[start:end] {
		if pattern != "" && !globMatch(pattern, k) {
			continue
		}
		if typ != "" && typeName(r.db().data[k]) != typ {
			continue
		}
		out = append(out, k)
	}
	next := end
	if end == uint64(len(keys)) {
		next = 0
	}
	r.w.WriteArray(2)
	r.w.WriteBulkString(strconv.FormatUint(next, 10))
	r.w.WriteArray(len(out))
	for _, k := range out {
		r.w.WriteBulkString(k)
	}
}

// cmdSetNX is SETNX key value: SET only if key does not exist.
func cmdSetNX(r *request) {
	if _, exists := r.srv.store.lookup(r.db(), r.args[1]); exists {
		r.w.WriteInt(0)
		return
	}
	r.db().put(string(r.args[1]), string(r.args[2]))
	r.w.WriteInt(1)
}

// cmdGetSet is GETSET key value: SET, answering the old string.
func cmdGetSet(r *request) {
	old, exists, ok := lookupAs[string](r, r.args[1])
	if !ok {
		return
	}
	r.db().put(string(r.args[1]), string(r.args[2]))
	if exists {
		r.w.WriteBulkString(old)
	} else {
		r.w.WriteNull()
	}
}

// cmdGetDel is GETDEL key: GET, then delete the key.
func cmdGetDel(r *request) {
	if v, ok := existingString(r); ok {
		r.db().del(string(r.args[1]))
		r.w.WriteBulkString(v)
	}
}

// cmdAppend is APPEND key value, answering the new length. The key keeps
// its expiry time, as in Redis.
func cmdAppend(r *request) {
	v, _, ok := lookupAs[string](r, r.args[1])
	if !ok {
		return
	}
	v += string(r.args[2])
	r.db().data[string(r.args[1])] = v
	r.w.WriteInt(len(v))
}

// cmdStrLen is STRLEN key: 0 for a missing key.
func cmdStrLen(r *request) {
	v, _, ok := lookupAs[string](r, r.args[1])
	if ok {
		r.w.WriteInt(len(v))
	}
}

// cmdGetEx is GETEX key [EX s|PX ms|EXAT s|PXAT ms|PERSIST]: GET that
// also sets or removes the key's expiry.
func cmdGetEx(r *request) {
	var expireAt int64
	var hasTTL, persist bool
	for i := 2; i < len(r.args); i++ {
		opt := strings.ToUpper(string(r.args[i]))
		if opt == "PERSIST" && !hasTTL && !persist {
			persist = true
			continue
		}
		if !isExpiryOption(opt) || hasTTL || persist || i+1 == len(r.args) {
			r.w.WriteError(errSyntax)
			return
		}
		i++
		var ok bool
		if expireAt, ok = expiryArg(r, opt, r.args[i]); !ok {
			return
		}
		hasTTL = true
	}
	v, ok := existingString(r)
	if !ok {
		return
	}
	r.w.WriteBulkString(v)
	d, key := r.db(), string(r.args[1])
	switch {
	case hasTTL && expireAt <= r.srv.store.nowMS():
		d.del(key) // a time in the past deletes the key, after the reply's value
	case hasTTL:
		d.expires[key] = expireAt
	case persist:
		delete(d.expires, key)
	}
}

// lposOptions are LPOS's RANK, COUNT and MAXLEN.
type lposOptions struct {
	rank, count, maxLen int64 // count -1: not given
}

// parseLPos parses LPOS's options; when they are not valid it writes
// Redis's error and returns false.
func parseLPos(r *request) (lposOptions, bool) {
	o := lposOptions{rank: 1, count: -1}
	for i := 3; i < len(r.args); i += 2 {
		opt := strings.ToUpper(string(r.args[i]))
		if opt != "RANK" && opt != "COUNT" && opt != "MAXLEN" || i+1 >= len(r.args) {
			r.w.WriteError(errSyntax)
			return o, false
		}
		n, ok := parseInt(r.args[i+1])
		msg := ""
		switch {
		case !ok:
			msg = errNotInt
		case opt == "RANK" && n == 0:
			msg = "ERR RANK can't be zero: use 1 to start from the first match, 2 from the second ... or use negative to start from the end of the list"
		case opt != "RANK" && n < 0:
			msg = "ERR " + opt + " can't be negative"
		case opt == "RANK":
			o.rank = n
		case opt == "COUNT":
			o.count = n
		default:
			o.maxLen = n
		}
		if msg != "" {
			r.w.WriteError(msg)
			return o, false
		}
	}
	return o, true
}

// cmdLPos is LPOS key element [RANK rank] [COUNT count] [MAXLEN len]: the
// indexes of the elements equal to element, from the rank-th match on
// (counting from the tail for a negative rank), looking at no more than
// len elements (0: all). Without COUNT the first such index or nil.
func cmdLPos(r *request) {
	o, ok := parseLPos(r)
	if !ok {
		return
	}
	l, exists, ok := lookupAs[*list](r, r.args[1])
	if !ok {
		return
	}
	var found []int
	if exists {
		found = l.positions(string(r.args[2]), o)
	}
	if o.count >= 0 {
		r.w.WriteArray(len(found))
		for _, i := range found {
			r.w.WriteInt(i)
		}
	} else if len(found) > 0 {
		r.w.WriteInt(found[0])
	} else {
		r.w.WriteNull()
	}
}

// positions finds LPOS's matches.
func (l *list) positions(elem string, o lposOptions) []int {
	n, i, step, skip := l.len(), 0, 1, o.rank-1
	if o.rank < 0 {
		i, step, skip = n-1, -1, -o.rank-1
	}
	want := o.count
	if want <= 0 {
		want = int64(n) // COUNT 0: all; no COUNT: stop after the first
		if o.count < 0 {
			want = 1
		}
	}
	var found []int
	for seen := int64(0); i >= 0 && i < n && (o.maxLen == 0 || seen < o.maxLen) && int64(len(found)) < want; i, seen = i+step, seen+1 {
		if l.at(i) != elem {
			continue
		}
		if skip > 0 {
			skip--
			continue
		}
		found = append(found, i)
	}
	return found
}
