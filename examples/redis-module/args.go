package main

import (
	"fmt"
	"io/fs"
	"strconv"

	"github.com/shmconn/shmconn/conn"
)

// options are the module's arguments, by their fixed names.
type options struct {
	socket     string      // unixsocket: the path shm clients dial (required)
	perm       fs.FileMode // unixsocketperm: the socket's mode; 0 leaves the umask's
	wait       conn.WaitPolicy
	maxClients int // 0: redis-server's maxclients
}

func parseOptions(args []string) (options, error) {
	var o options
	if len(args)%2 != 0 {
		return o, fmt.Errorf("arguments come in name value pairs, got %q", args)
	}
	for i := 0; i < len(args); i += 2 {
		name, val := args[i], args[i+1]
		var err error
		switch name {
		case "unixsocket":
			o.socket = val
		case "unixsocketperm":
			var p uint64
			p, err = strconv.ParseUint(val, 8, 32)
			if err == nil && p > 0o777 {
				err = fmt.Errorf("out of range")
			}
			o.perm = fs.FileMode(p)
		case "wait":
			o.wait, err = conn.ParseWaitPolicy(val)
		case "maxclients":
			o.maxClients, err = strconv.Atoi(val)
			if err == nil && o.maxClients < 1 {
				err = fmt.Errorf("must be at least 1")
			}
		default:
			return o, fmt.Errorf("unknown argument %q (want unixsocket, unixsocketperm, wait, maxclients)", name)
		}
		if err != nil {
			return o, fmt.Errorf("%s %q: %v", name, val, err)
		}
	}
	if o.socket == "" {
		return o, fmt.Errorf("unixsocket <path> is required")
	}
	return o, nil
}
