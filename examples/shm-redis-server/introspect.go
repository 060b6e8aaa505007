package main

import (
	"strings"
	"time"
)

// OBJECT ENCODING and WAIT: introspection a client may ask for.

// cmdObject is OBJECT ENCODING key | HELP.
func cmdObject(r *request) {
	switch sub := strings.ToUpper(string(r.args[1])); {
	case sub == "HELP" && len(r.args) == 2:
		writeHelp(r, "OBJECT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:", "ENCODING <key>",
			"    Return the kind of internal representation used in order to store the value", "    associated with a <key>.",
			"HELP", "    Prints this help.")
	case sub == "ENCODING" && len(r.args) == 3:
		if v, ok := r.srv.store.lookup(r.db(), r.args[2]); ok {
			r.w.WriteBulkString(encoding(v))
		} else {
			r.w.WriteNull()
		}
	case sub == "ENCODING" || sub == "HELP":
		subArityError(r)
	default:
		unknownSubcommand(r)
	}
}

// Redis 7.0's default limits for its compact encodings.
const (
	maxEmbstr          = 44  // bytes of a string stored with its object
	maxIntsetEntries   = 512 // set-max-intset-entries
	maxListpackEntries = 128 // hash- and zset-max-listpack-entries
	maxListpackValue   = 64  // hash- and zset-max-listpack-value
)

// encoding is the encoding Redis 7.0 gives a value of this content,
// written by SET, HSET and the like. Redis converts a value to its larger
// encoding once, and never back: a hash that grew past the limits and
// shrank stays "hashtable" there, and APPEND makes a string "raw"; here
// the encoding follows the content.
func encoding(v any) string {
	switch v := v.(type) {
	case string:
		if _, ok := parseInt(v); ok {
			return "int"
		} else if len(v) <= maxEmbstr {
			return "embstr"
		}
		return "raw"
	case *list:
		return "quicklist"
	case set:
		if len(v) <= maxIntsetEntries && allInts(v) {
			return "intset"
		}
		return "hashtable"
	case hash:
		if len(v) <= maxListpackEntries && allShort(v) {
			return "listpack"
		}
		return "hashtable"
	case *zset:
		if len(v.items) <= maxListpackEntries && allShort(v.scores) {
			return "listpack"
		}
		return "skiplist"
	}
	return "unknown"
}

func allInts(s set) bool {
	for m := range s {
		if _, ok := parseInt(m); !ok {
			return false
		}
	}
	return true
}

// allShort reports whether every key of m, and every string value, fits
// a listpack entry.
func allShort[V any](m map[string]V) bool {
	for k, v := range m {
		if s, ok := any(v).(string); len(k) > maxListpackValue || ok && len(s) > maxListpackValue {
			return false
		}
	}
	return true
}

// cmdWait is WAIT numreplicas timeout. This server has no replicas, so
// the answer is 0, after the timeout when replicas were asked for, as
// Redis's. Where Redis would wait forever (timeout 0), or inside EXEC, or
// for a Pub/Sub client (which publishers must never wait for), it
// answers at once.
func cmdWait(r *request) {
	n, ok := parseInt(r.args[1])
	if !ok {
		r.w.WriteError(errNotInt)
		return
	}
	timeout, ok := parseInt(r.args[2])
	switch {
	case !ok:
		r.w.WriteError("ERR timeout is not an integer or out of range")
		return
	case timeout < 0:
		r.w.WriteError("ERR timeout is negative")
		return
	}
	if n > 0 && timeout > 0 && !r.inExec && r.sess.sub == nil {
		time.Sleep(time.Duration(timeout) * time.Millisecond)
	}
	r.w.WriteInt(0)
}
