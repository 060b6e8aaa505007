package main

import (
	"math"
	"strconv"
	"strings"
)

// Error replies, worded as Redis words them: clients and tests match on
// them.
const (
	errWrongType   = "WRONGTYPE Operation against a key holding the wrong kind of value"
	errNotInt      = "ERR value is not an integer or out of range"
	errNotFloat    = "ERR value is not a valid float"
	errNotPositive = "ERR value is out of range, must be positive"
	errSyntax      = "ERR syntax error"
	errOverflow    = "ERR increment or decrement would overflow"
)

// nullArray is RESP2's null multi-bulk, which redcon has no writer for.
var nullArray = []byte("*-1\r\n")

// Data commands: strings, keys, lists, sets, hashes and sorted sets. Each
// runs with the server's mutex held, the arity already checked.

func cmdGet(r *request) {
	if v, ok := existingString(r); ok {
		r.w.WriteBulkString(v)
	}
}

// existingString looks up the string at the request's key, r.args[1], and
// answers for GET and its kin when there is none: WRONGTYPE, or null for a
// missing key. ok means v is there to answer with.
func existingString(r *request) (v string, ok bool) {
	v, exists, ok := lookupAs[string](r, r.args[1])
	if ok && !exists {
		r.w.WriteNull()
	}
	return v, ok && exists
}

// cmdSet is SET key value [NX|XX] [GET] [EX s|PX ms|EXAT s|PXAT ms|KEEPTTL].
func cmdSet(r *request) {
	var nx, xx, get, keepTTL, hasTTL bool
	var expireAt int64
	for i := 3; i < len(r.args); i++ {
		switch opt := strings.ToUpper(string(r.args[i])); {
		case opt == "NX" && !xx:
			nx = true
		case opt == "XX" && !nx:
			xx = true
		case opt == "GET":
			get = true
		case opt == "KEEPTTL" && !hasTTL:
			keepTTL = true
		case isExpiryOption(opt) && !keepTTL && !hasTTL && i+1 < len(r.args):
			i++
			at, ok := expiryArg(r, opt, r.args[i])
			if !ok {
				return
			}
			expireAt, hasTTL = at, true
		default:
			r.w.WriteError(errSyntax)
			return
		}
	}
	d, key := r.db(), string(r.args[1])
	cur, exists := r.srv.store.lookup(d, r.args[1])
	old, isString := cur.(string)
	if get && exists && !isString {
		r.w.WriteError(errWrongType)
		return
	}
	reply := func() {
		switch {
		case !get:
			r.w.WriteString("OK")
		case exists:
			r.w.WriteBulkString(old)
		default:
			r.w.WriteNull()
		}
	}
	if nx && exists || xx && !exists {
		if get && exists {
			r.w.WriteBulkString(old)
		} else {
			r.w.WriteNull()
		}
		return
	}
	prevTTL, hadTTL := d.expires[key]
	d.put(key, string(r.args[2]))
	switch {
	case hasTTL:
		d.expires[key] = expireAt
	case keepTTL && hadTTL:
		d.expires[key] = prevTTL
	}
	reply()
}

func isExpiryOption(opt string) bool {
	return opt == "EX" || opt == "PX" || opt == "EXAT" || opt == "PXAT"
}

// expiryArg parses the argument of SET's or GETEX's EX, PX, EXAT or PXAT
// option into unix milliseconds; when it is not valid it writes Redis's
// error and returns false.
func expiryArg(r *request, opt string, arg []byte) (int64, bool) {
	n, ok := parseInt(arg)
	if !ok {
		r.w.WriteError(errNotInt)
		return 0, false
	}
	at, ok := expiryTime(r.srv.store.nowMS(), n, opt)
	if !ok {
		r.w.WriteError("ERR invalid expire time in '" + r.cmd.name + "' command")
	}
	return at, ok
}

// expiryTime turns an EX/PX/EXAT/PXAT argument into unix milliseconds;
// false for a time Redis refuses (not positive, or overflowing).
func expiryTime(now, n int64, unit string) (int64, bool) {
	if n <= 0 {
		return 0, false
	}
	switch unit {
	case "EX":
		if n > (math.MaxInt64-now)/1000 {
			return 0, false
		}
		return now + n*1000, true
	case "PX":
		if n > math.MaxInt64-now {
			return 0, false
		}
		return now + n, true
	case "EXAT":
		if n > math.MaxInt64/1000 {
			return 0, false
		}
		return n * 1000, true
	default: // PXAT
		return n, true
	}
}

func cmdIncr(r *request) { incrBy(r, 1) }
func cmdDecr(r *request) { incrBy(r, -1) }

func cmdIncrBy(r *request) {
	if by, ok := parseInt(r.args[2]); ok {
		incrBy(r, by)
	} else {
		r.w.WriteError(errNotInt)
	}
}

func cmdDecrBy(r *request) {
	by, ok := parseInt(r.args[2])
	switch {
	case !ok:
		r.w.WriteError(errNotInt)
	case by == math.MinInt64:
		r.w.WriteError("ERR decrement would overflow")
	default:
		incrBy(r, -by)
	}
}

// incrBy adds by to the integer at key, keeping its expiry, as INCR does.
func incrBy(r *request, by int64) {
	v, exists, ok := lookupAs[string](r, r.args[1])
	if !ok {
		return
	}
	var n int64
	if exists {
		if n, ok = parseInt(v); !ok {
			r.w.WriteError(errNotInt)
			return
		}
	}
	if by > 0 && n > math.MaxInt64-by || by < 0 && n < math.MinInt64-by {
		r.w.WriteError(errOverflow)
		return
	}
	n += by
	r.db().data[string(r.args[1])] = strconv.FormatInt(n, 10)
	r.w.WriteInt64(n)
}

func cmdMGet(r *request) {
	r.w.WriteArray(len(r.args) - 1)
	for _, key := range r.args[1:] {
		v, ok := r.srv.store.lookup(r.db(), key)
		if s, isString := v.(string); ok && isString {
			r.w.WriteBulkString(s)
		} else {
			r.w.WriteNull()
		}
	}
}

func cmdMSet(r *request) {
	if len(r.args)%2 == 0 {
		r.arityError()
		return
	}
	d := r.db()
	for i := 1; i < len(r.args); i += 2 {
		d.put(string(r.args[i]), string(r.args[i+1]))
	}
	r.w.WriteString("OK")
}

func cmdDel(r *request) {
	n := 0
	for _, key := range r.args[1:] {
		if _, ok := r.srv.store.lookup(r.db(), key); ok {
			r.db().del(string(key))
			n++
		}
	}
	r.w.WriteInt(n)
}

func cmdExists(r *request) {
	n := 0
	for _, key := range r.args[1:] {
		if _, ok := r.srv.store.lookup(r.db(), key); ok {
			n++
		}
	}
	r.w.WriteInt(n)
}

func cmdType(r *request) {
	v, ok := r.srv.store.lookup(r.db(), r.args[1])
	t := "none"
	if ok {
		t = typeName(v)
	}
	r.w.WriteString(t)
}

// typeName is the name TYPE gives a stored value.
func typeName(v any) string {
	switch v.(type) {
	case string:
		return "string"
	case *list:
		return "list"
	case set:
		return "set"
	case hash:
		return "hash"
	case *zset:
		return "zset"
	}
	return "none"
}

func cmdExpire(r *request)  { expire(r, 1000) }
func cmdPExpire(r *request) { expire(r, 1) }

// updateCond is the NX, XX, GT and LT options of EXPIRE and ZADD: update
// only what does not exist, only what does, only to a greater value, only
// to a lesser one.
type updateCond struct{ nx, xx, gt, lt bool }

// parse sets the option a names, in any case, and reports whether it
// named one.
func (c *updateCond) parse(a []byte) bool {
	switch strings.ToUpper(string(a)) {
	case "NX":
		c.nx = true
	case "XX":
		c.xx = true
	case "GT":
		c.gt = true
	case "LT":
		c.lt = true
	default:
		return false
	}
	return true
}

// expire is EXPIRE and PEXPIRE: key n [NX|XX|GT|LT], n in unit ms.
func expire(r *request, unit int64) {
	n, ok := parseInt(r.args[2])
	if !ok {
		r.w.WriteError(errNotInt)
		return
	}
	var c updateCond
	for _, a := range r.args[3:] {
		if !c.parse(a) {
			r.w.WriteError("ERR Unsupported option " + string(a))
			return
		}
	}
	nx, xx, gt, lt := c.nx, c.xx, c.gt, c.lt
	switch {
	case nx && (xx || gt || lt):
		r.w.WriteError("ERR NX and XX, GT or LT options at the same time are not compatible")
		return
	case gt && lt:
		r.w.WriteError("ERR GT and LT options at the same time are not compatible")
		return
	}
	now := r.srv.store.nowMS() // positive, so now + a negative n*unit cannot overflow
	if n > math.MaxInt64/unit || n < math.MinInt64/unit || n*unit > math.MaxInt64-now {
		r.w.WriteError("ERR invalid expire time in '" + r.cmd.name + "' command")
		return
	}
	at := now + n*unit
	d, key := r.db(), string(r.args[1])
	if _, ok := r.srv.store.lookup(d, r.args[1]); !ok {
		r.w.WriteInt(0)
		return
	}
	cur, has := d.expires[key]
	// A key without expiry counts as expiring at infinity for GT and LT.
	if nx && has || xx && !has || gt && (!has || at <= cur) || lt && has && at >= cur {
		r.w.WriteInt(0)
		return
	}
	if at <= now {
		d.del(key)
	} else {
		d.expires[key] = at
	}
	r.w.WriteInt(1)
}

func cmdTTL(r *request)  { ttl(r, false) }
func cmdPTTL(r *request) { ttl(r, true) }

func ttl(r *request, ms bool) {
	d := r.db()
	if _, ok := r.srv.store.lookup(d, r.args[1]); !ok {
		r.w.WriteInt(-2)
		return
	}
	at, ok := d.expires[string(r.args[1])]
	if !ok {
		r.w.WriteInt(-1)
		return
	}
	left := max(at-r.srv.store.nowMS(), 0)
	if !ms {
		left = (left + 500) / 1000
	}
	r.w.WriteInt64(left)
}

func cmdPersist(r *request) {
	d, key := r.db(), string(r.args[1])
	_, exists := r.srv.store.lookup(d, r.args[1])
	if _, has := d.expires[key]; exists && has {
		delete(d.expires, key)
		r.w.WriteInt(1)
		return
	}
	r.w.WriteInt(0)
}

// Lists.

func cmdLPush(r *request) { push(r, true) }
func cmdRPush(r *request) { push(r, false) }

func push(r *request, front bool) {
	l, ok := lookupOrCreate(r, func() *list { return &list{} })
	if !ok {
		return
	}
	for _, v := range r.args[2:] {
		if front {
			l.pushFront(string(v))
		} else {
			l.pushBack(string(v))
		}
	}
	r.w.WriteInt(l.len())
}

func cmdLPop(r *request) { pop(r, true) }
func cmdRPop(r *request) { pop(r, false) }

// pop is LPOP and RPOP: key [count].
func pop(r *request, front bool) {
	if len(r.args) > 3 {
		r.arityError()
		return
	}
	count, ok := popCount(r)
	if !ok {
		return
	}
	l, exists, ok := lookupAs[*list](r, r.args[1])
	switch {
	case !ok:
		return
	case !exists && count < 0:
		r.w.WriteNull()
		return
	case !exists:
		r.w.WriteRaw(nullArray)
		return
	}
	next := l.popBack
	if front {
		next = l.popFront
	}
	writePopped(r, count, l.len(), next)
	if l.len() == 0 {
		r.db().del(string(r.args[1]))
	}
}

func cmdLRange(r *request) {
	l, lo, hi, ok := lookupRange(r, (*list).len)
	if !ok {
		return
	}
	r.w.WriteArray(hi - lo)
	for i := lo; i < hi; i++ {
		r.w.WriteBulkString(l.at(i))
	}
}

// clampRange turns Redis's inclusive, possibly negative start and stop
// into a half-open range [lo, hi) within [0, n).
func clampRange(start, stop int64, n int) (lo, hi int) {
	if start < 0 {
		start += int64(n)
	}
	if stop < 0 {
		stop += int64(n)
	}
	start = max(start, 0)
	stop = min(stop, int64(n)-1)
	if start > stop {
		return 0, 0
	}
	return int(start), int(stop) + 1
}

func cmdLLen(r *request) {
	if l, exists, ok := lookupAs[*list](r, r.args[1]); ok {
		if exists {
			r.w.WriteInt(l.len())
		} else {
			r.w.WriteInt(0)
		}
	}
}

// Sets.

func cmdSAdd(r *request) {
	s, ok := lookupOrCreate(r, func() set { return set{} })
	if !ok {
		return
	}
	n := 0
	for _, m := range r.args[2:] {
		if _, had := s[string(m)]; !had {
			s[string(m)] = struct{}{}
			n++
		}
	}
	r.w.WriteInt(n)
}

func cmdSRem(r *request) { removeMembers[set](r) }

// removeMembers is SREM and HDEL: it deletes the named members (or
// fields) of the collection at key, drops the key once it is empty and
// replies how many it deleted.
func removeMembers[M ~map[string]V, V any](r *request) {
	m, exists, ok := lookupAs[M](r, r.args[1])
	if !ok {
		return
	}
	n := 0
	if exists {
		for _, k := range r.args[2:] {
			if _, had := m[string(k)]; had {
				delete(m, string(k))
				n++
			}
		}
		if len(m) == 0 {
			r.db().del(string(r.args[1]))
		}
	}
	r.w.WriteInt(n)
}

func cmdSCard(r *request) {
	if s, _, ok := lookupAs[set](r, r.args[1]); ok {
		r.w.WriteInt(len(s))
	}
}

func cmdSIsMember(r *request) {
	if s, _, ok := lookupAs[set](r, r.args[1]); ok {
		_, is := s[string(r.args[2])]
		r.w.WriteInt(b2i(is))
	}
}

func cmdSMembers(r *request) {
	if s, _, ok := lookupAs[set](r, r.args[1]); ok {
		r.w.WriteArray(len(s))
		for m := range s {
			r.w.WriteBulkString(m)
		}
	}
}

// popCount parses the count of LPOP, RPOP and SPOP, r.args[2]: -1 when
// none is given (reply with one element, not an array). Like Redis it
// answers a count that is not a number as out of range.
func popCount(r *request) (int64, bool) {
	if len(r.args) < 3 {
		return -1, true
	}
	n, ok := parseInt(r.args[2])
	if !ok || n < 0 {
		r.w.WriteError(errNotPositive)
		return 0, false
	}
	return n, true
}

// writePopped answers a pop of count elements (-1: one, not in an array)
// from a collection of size elements, removing each with next.
func writePopped(r *request, count int64, size int, next func() string) {
	if count < 0 {
		r.w.WriteBulkString(next())
		return
	}
	n := int(min(count, int64(size)))
	r.w.WriteArray(n)
	for range n {
		r.w.WriteBulkString(next())
	}
}

// cmdSPop is SPOP key [count].
func cmdSPop(r *request) {
	if len(r.args) > 3 {
		r.w.WriteError(errSyntax)
		return
	}
	count, ok := popCount(r)
	if !ok {
		return
	}
	s, exists, ok := lookupAs[set](r, r.args[1])
	switch {
	case !ok:
		return
	case !exists && count < 0:
		r.w.WriteNull()
		return
	}
	writePopped(r, count, len(s), func() string {
		m := randomMember(s)
		delete(s, m)
		return m
	})
	if exists && len(s) == 0 {
		r.db().del(string(r.args[1]))
	}
}

// Hashes.

func cmdHSet(r *request) {
	if len(r.args)%2 != 0 {
		r.arityError()
		return
	}
	h, ok := lookupOrCreate(r, func() hash { return hash{} })
	if !ok {
		return
	}
	n := 0
	for i := 2; i < len(r.args); i += 2 {
		f := string(r.args[i])
		if _, had := h[f]; !had {
			n++
		}
		h[f] = string(r.args[i+1])
	}
	r.w.WriteInt(n)
}

func cmdHGet(r *request) {
	if h, _, ok := lookupAs[hash](r, r.args[1]); ok {
		if v, has := h[string(r.args[2])]; has {
			r.w.WriteBulkString(v)
		} else {
			r.w.WriteNull()
		}
	}
}

func cmdHGetAll(r *request) {
	if h, _, ok := lookupAs[hash](r, r.args[1]); ok {
		writeMap(r, len(h))
		for f, v := range h {
			r.w.WriteBulkString(f)
			r.w.WriteBulkString(v)
		}
	}
}

func cmdHDel(r *request) { removeMembers[hash](r) }

func cmdHLen(r *request) {
	if h, _, ok := lookupAs[hash](r, r.args[1]); ok {
		r.w.WriteInt(len(h))
	}
}

// Sorted sets.

// cmdZAdd is ZADD key [NX|XX] [GT|LT] [CH] [INCR] score member [score member ...].
func cmdZAdd(r *request) {
	var c updateCond
	var ch, incr bool
	i := 2
flags:
	for ; i < len(r.args); i++ {
		switch {
		case c.parse(r.args[i]):
		case strings.EqualFold(string(r.args[i]), "CH"):
			ch = true
		case strings.EqualFold(string(r.args[i]), "INCR"):
			incr = true
		default:
			break flags
		}
	}
	nx, xx, gt, lt := c.nx, c.xx, c.gt, c.lt
	pairs := r.args[i:]
	switch {
	case len(pairs) == 0 || len(pairs)%2 != 0:
		r.w.WriteError(errSyntax)
		return
	case nx && xx:
		r.w.WriteError("ERR XX and NX options at the same time are not compatible")
		return
	case gt && lt || nx && (gt || lt):
		r.w.WriteError("ERR GT, LT, and/or NX options at the same time are not compatible")
		return
	case incr && len(pairs) > 2:
		r.w.WriteError("ERR INCR option supports a single increment-element pair")
		return
	}
	scores := make([]float64, len(pairs)/2)
	for j := range scores {
		f, ok := parseFloat(pairs[2*j])
		if !ok {
			r.w.WriteError(errNotFloat)
			return
		}
		scores[j] = f
	}
	z, exists, ok := lookupAs[*zset](r, r.args[1])
	if !ok {
		return
	}
	added, changed := 0, 0
	var incrScore float64
	incrDone := false
	for j, score := range scores {
		member := string(pairs[2*j+1])
		var cur float64
		has := false
		if exists {
			cur, has = z.scores[member]
		}
		switch {
		case has && nx, !has && xx:
			continue
		case has:
			if incr {
				score += cur
				if math.IsNaN(score) {
					r.w.WriteError("ERR resulting score is not a number (NaN)")
					return
				}
			}
			if gt && score <= cur || lt && score >= cur {
				continue
			}
			if score != cur {
				z.add(member, score)
				changed++
			}
		default:
			if !exists {
				z, exists = newZSet(), true
				r.db().put(string(r.args[1]), z)
			}
			z.add(member, score)
			added++
		}
		incrScore, incrDone = score, true
	}
	switch {
	case incr && incrDone:
		r.w.WriteBulkString(formatScore(incrScore))
	case incr:
		r.w.WriteNull()
	case ch:
		r.w.WriteInt(added + changed)
	default:
		r.w.WriteInt(added)
	}
}

func cmdZCard(r *request) {
	if z, exists, ok := lookupAs[*zset](r, r.args[1]); ok {
		if exists {
			r.w.WriteInt(len(z.items))
		} else {
			r.w.WriteInt(0)
		}
	}
}

func cmdZScore(r *request) {
	z, exists, ok := lookupAs[*zset](r, r.args[1])
	if !ok {
		return
	}
	if !exists {
		r.w.WriteNull()
	} else if s, has := z.scores[string(r.args[2])]; has {
		writeDouble(r, s)
	} else {
		r.w.WriteNull()
	}
}

// cmdZPopMin is ZPOPMIN key [count]: a flat array of members and scores.
func cmdZPopMin(r *request) {
	if len(r.args) > 3 {
		r.w.WriteError(errSyntax)
		return
	}
	count := int64(1)
	if len(r.args) == 3 {
		n, ok := parseCount(r, r.args[2], 0, errNotPositive)
		if !ok {
			return
		}
		count = n
	}
	z, exists, ok := lookupAs[*zset](r, r.args[1])
	if !ok {
		return
	}
	if !exists {
		r.w.WriteArray(0)
		return
	}
	n := int(min(count, int64(len(z.items))))
	r.w.WriteArray(2 * n)
	for range n {
		it := z.popMin()
		r.w.WriteBulkString(it.member)
		r.w.WriteBulkString(formatScore(it.score))
	}
	if len(z.items) == 0 {
		r.db().del(string(r.args[1]))
	}
}

// cmdZRange is ZRANGE key start stop [WITHSCORES], by index only.
func cmdZRange(r *request) {
	withScores := false
	for _, a := range r.args[4:] {
		if !strings.EqualFold(string(a), "WITHSCORES") {
			r.w.WriteError(errSyntax)
			return
		}
		withScores = true
	}
	z, lo, hi, ok := lookupRange(r, func(z *zset) int { return len(z.items) })
	if !ok {
		return
	}
	if withScores {
		r.w.WriteArray(2 * (hi - lo))
	} else {
		r.w.WriteArray(hi - lo)
	}
	for _, it := range z.items[lo:hi] {
		r.w.WriteBulkString(it.member)
		if withScores {
			r.w.WriteBulkString(formatScore(it.score))
		}
	}
}

// lookupAs looks key up in the selected database expecting a T. exists
// says whether key is there; ok is false, with the WRONGTYPE error already
// written, when it holds something other than a T.
func lookupAs[T any](r *request, key []byte) (v T, exists, ok bool) {
	x, exists := r.srv.store.lookup(r.db(), key)
	if !exists {
		return v, false, true
	}
	v, ok = x.(T)
	if !ok {
		r.w.WriteError(errWrongType)
	}
	return v, true, ok
}

// lookupOrCreate is lookupAs for the request's key, r.args[1], that stores
// a new value made by create when the key does not exist.
func lookupOrCreate[T any](r *request, create func() T) (v T, ok bool) {
	v, exists, ok := lookupAs[T](r, r.args[1])
	if ok && !exists {
		v = create()
		r.db().put(string(r.args[1]), v)
	}
	return v, ok
}

// parseInt parses a base-10 int64 as strictly as Redis does: no sign but
// '-', no leading zeros, no spaces.
func parseInt[T string | []byte](s T) (int64, bool) {
	if len(s) == 0 || len(s) > 20 {
		return 0, false
	}
	neg := s[0] == '-'
	digits := s
	if neg {
		digits = s[1:]
	}
	if len(digits) == 0 || digits[0] == '0' && (len(digits) > 1 || neg) {
		return 0, false
	}
	var u uint64
	for i := 0; i < len(digits); i++ {
		c := digits[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		if u > (math.MaxUint64-9)/10 {
			return 0, false
		}
		u = u*10 + uint64(c-'0')
	}
	switch {
	case neg && u <= 1<<63:
		return -int64(u-1) - 1, true
	case !neg && u <= math.MaxInt64:
		return int64(u), true
	}
	return 0, false
}

// parseCount parses a count argument that must be an integer of at least
// lowest; when it is not, it writes the error (tooLow for a small one) and
// returns false.
func parseCount(r *request, b []byte, lowest int64, tooLow string) (int64, bool) {
	n, ok := parseInt(b)
	switch {
	case !ok:
		r.w.WriteError(errNotInt)
	case n < lowest:
		r.w.WriteError(tooLow)
		ok = false
	}
	return n, ok
}

// parseFloat parses a score: a float, "inf", "+inf" or "-inf"; not NaN.
func parseFloat(b []byte) (float64, bool) {
	s := string(b)
	switch strings.ToLower(s) {
	case "inf", "+inf":
		return math.Inf(1), true
	case "-inf":
		return math.Inf(-1), true
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, false
	}
	return f, true
}

// writeDouble writes a score: a RESP3 double to a client that said HELLO
// 3, a bulk string otherwise, as Redis does for ZSCORE.
func writeDouble(r *request, f float64) {
	if r.sess.proto == 3 {
		r.w.WriteRaw([]byte("," + formatScore(f) + "\r\n"))
	} else {
		r.w.WriteBulkString(formatScore(f))
	}
}

// formatScore prints a score the way Redis 7.2 does: the shortest form
// that reads back the same, and "inf" or "-inf".
func formatScore(f float64) string {
	switch {
	case math.IsInf(f, 1):
		return "inf"
	case math.IsInf(f, -1):
		return "-inf"
	}
	return strconv.FormatFloat(f, 'g', -1, 64)
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// lookupRange serves the start and stop arguments of LRANGE and ZRANGE:
// it parses them, looks up the collection at key and clamps the range to
// its size. ok is false when the reply is already written: an index that is
// not an integer, a key of another type, or a missing key (an empty array).
func lookupRange[T any](r *request, size func(T) int) (v T, lo, hi int, ok bool) {
	start, ok1 := parseInt(r.args[2])
	stop, ok2 := parseInt(r.args[3])
	if !ok1 || !ok2 {
		r.w.WriteError(errNotInt)
		return v, 0, 0, false
	}
	v, exists, ok := lookupAs[T](r, r.args[1])
	if !ok {
		return v, 0, 0, false
	}
	if !exists {
		r.w.WriteArray(0)
		return v, 0, 0, false
	}
	lo, hi = clampRange(start, stop, size(v))
	return v, lo, hi, true
}
