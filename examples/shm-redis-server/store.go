package main

import (
	"math/rand/v2"
	"sort"
	"time"
)

// numDBs is the number of logical databases SELECT can pick, as Redis's
// default "databases 16".
const numDBs = 16

// Expiry sweep tuning, after Redis's activeExpireCycle: look at a sample
// of keys with a TTL and go again while more than a quarter of the sample
// had expired, within a time budget.
const (
	sweepInterval = 100 * time.Millisecond
	sweepSample   = 20
	sweepBudget   = time.Millisecond
)

// Store is the keyspace: numDBs databases of keys holding strings, lists,
// sets, hashes or sorted sets, each key with an optional expiry time. It
// is not safe for concurrent use: the Server holds its mutex around every
// command, which makes each command atomic as in Redis.
type Store struct {
	dbs     [numDBs]db
	now     func() time.Time // the clock; tests replace it
	expired int64            // keys deleted because they expired

	watchers map[watchKey]map[*watchState]struct{} // the clients that WATCH each key; see multi.go
}

// db is one logical database. Invariant: every key of expires is a key of
// data; a key whose expiry time has passed is logically absent and is
// deleted when next looked up or swept.
type db struct {
	data    map[string]any   // string, *list, set, hash or *zset
	expires map[string]int64 // unix milliseconds
}

// Value types. Strings are stored as Go strings, copied from the request
// buffer, which redcon reuses.
type (
	set  map[string]struct{}
	hash map[string]string
)

// NewStore returns an empty store on the system clock.
func NewStore() *Store {
	s := &Store{now: time.Now, watchers: map[watchKey]map[*watchState]struct{}{}}
	for i := range s.dbs {
		s.dbs[i] = db{data: map[string]any{}, expires: map[string]int64{}}
	}
	return s
}

// nowMS is the current time in unix milliseconds, the unit of expiry.
func (s *Store) nowMS() int64 { return s.now().UnixMilli() }

// lookup returns the live value of key, deleting it first if it expired.
func (s *Store) lookup(d *db, key []byte) (any, bool) {
	v, ok := d.data[string(key)]
	if !ok {
		return nil, false
	}
	if at, ok := d.expires[string(key)]; ok && at <= s.nowMS() {
		d.del(string(key))
		s.expired++
		s.touch(d, string(key))
		return nil, false
	}
	return v, true
}

// put stores v under key and clears any expiry: a new value, as SET.
func (d *db) put(key string, v any) {
	d.data[key] = v
	delete(d.expires, key)
}

// del removes key and reports whether it was there (expired or not).
func (d *db) del(key string) bool {
	if _, ok := d.data[key]; !ok {
		return false
	}
	delete(d.data, key)
	delete(d.expires, key)
	return true
}

// flush empties the database.
func (d *db) flush() {
	clear(d.data)
	clear(d.expires)
}

// sweep deletes expired keys that nobody looks up, so that memory is given
// back; lookups alone would keep them forever.
func (s *Store) sweep() {
	start := s.now()
	now := start.UnixMilli()
	for i := range s.dbs {
		d := &s.dbs[i]
		for len(d.expires) > 0 {
			seen, expired := 0, 0
			// Map iteration starts at a random place, which makes the
			// first sweepSample keys a random sample.
			for k, at := range d.expires {
				if seen == sweepSample {
					break
				}
				seen++
				if at <= now {
					d.del(k)
					s.expired++
					s.touch(d, k)
					expired++
				}
			}
			if expired*4 <= seen || s.now().Sub(start) > sweepBudget {
				break
			}
		}
	}
}

// list is a double-ended queue of strings: items are front, reversed, then
// back, so pushes and pops at either end are amortized O(1).
type list struct {
	front []string // front[len(front)-1] is the head
	back  []string
}

func (l *list) len() int { return len(l.front) + len(l.back) }

func (l *list) pushFront(v string) { l.front = append(l.front, v) }
func (l *list) pushBack(v string)  { l.back = append(l.back, v) }

// at returns the element at index i, 0 <= i < l.len().
func (l *list) at(i int) string {
	if i < len(l.front) {
		return l.front[len(l.front)-1-i]
	}
	return l.back[i-len(l.front)]
}

// popFront removes and returns the head; the list must not be empty.
func (l *list) popFront() string { return popEnd(&l.front, &l.back) }

// popBack removes and returns the tail; the list must not be empty.
func (l *list) popBack() string { return popEnd(&l.back, &l.front) }

// popEnd removes and returns the element at the end of the list whose
// half is near: near's last, or far's first when near is empty. The
// emptied slot is cleared so the string can be freed.
func popEnd(near, far *[]string) string {
	if n := len(*near); n > 0 {
		v := (*near)[n-1]
		(*near)[n-1] = ""
		*near = (*near)[:n-1]
		return v
	}
	v := (*far)[0]
	(*far)[0] = ""
	*far = (*far)[1:]
	return v
}

// zset is a sorted set: members with scores, ordered by (score, member).
// Invariant: items holds exactly the members of scores, sorted.
type zset struct {
	scores map[string]float64
	items  []zitem
}

type zitem struct {
	member string
	score  float64
}

func newZSet() *zset { return &zset{scores: map[string]float64{}} }

func (a zitem) less(b zitem) bool {
	return a.score < b.score || a.score == b.score && a.member < b.member
}

// search returns the index where it is or would be in items.
func (z *zset) search(it zitem) int {
	return sort.Search(len(z.items), func(i int) bool { return !z.items[i].less(it) })
}

// add sets member's score and reports whether the member is new.
func (z *zset) add(member string, score float64) bool {
	old, exists := z.scores[member]
	if exists {
		if old == score {
			return false
		}
		i := z.search(zitem{member, old})
		z.items = append(z.items[:i], z.items[i+1:]...)
	}
	z.scores[member] = score
	it := zitem{member, score}
	i := z.search(it)
	z.items = append(z.items, zitem{})
	copy(z.items[i+1:], z.items[i:])
	z.items[i] = it
	return !exists
}

// popMin removes and returns the lowest item; the set must not be empty.
func (z *zset) popMin() zitem {
	it := z.items[0]
	z.items[0] = zitem{}
	z.items = z.items[1:]
	delete(z.scores, it.member)
	return it
}

// randomMember picks a member of a non-empty set, uniformly enough for
// SPOP: Go's map iteration order starts at a random bucket and offset.
func randomMember(s set) string {
	skip := rand.IntN(min(len(s), 8))
	for m := range s {
		if skip == 0 {
			return m
		}
		skip--
	}
	panic("unreachable: set is not empty")
}
