//go:build !linux

package conn

import "net"

// peerCred reports no credentials where SO_PEERCRED does not exist.
func peerCred(net.Conn) (PeerCred, bool, error) { return PeerCred{}, false, nil }
