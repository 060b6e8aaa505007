package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"syscall"

	"github.com/shmconn/shmconn/conn"
)

// The command re-executes itself as its peer processes. The environment
// tells a child its role; the parent talks to it over the child's stdin and
// stdout, one line at a time:
//
//	child:  ready ADDR                     listening (server) or connected (idle client)
//	parent: stats
//	child:  stats CPU_NS THREADS           CPU time used so far, OS threads now
//	parent: closes stdin                   the child closes its conns and exits
//
// A child also dies with its parent (Pdeathsig), and ignores SIGINT: a ^C
// in the terminal reaches the whole process group, and the parent, which
// owns the measurements, decides when its children stop.
const (
	envRole  = "SHMBENCH_ROLE"  // "server", "idle-client", "floor", "load" or a parked floor's server
	envNet   = "SHMBENCH_NET"   // "shm", "unix" or "tcp"
	envWait  = "SHMBENCH_WAIT"  // shm wait policy
	envAddr  = "SHMBENCH_ADDR"  // listen or dial address
	envConns = "SHMBENCH_CONNS" // idle client: conns to open
	envRing  = "SHMBENCH_RING"  // shm ring size, 0 for the default
)

// What a client asks of a server conn, in the first byte it sends.
const (
	modeEcho    = 'e' // echo every byte back
	modeDiscard = 'd' // read to EOF, then answer the byte count (8 bytes, little endian)
)

// isChild reports whether this process was started as a peer.
func isChild() bool { return os.Getenv(envRole) != "" }

// runChild plays the role named in the environment and returns the exit
// code.
func runChild() int {
	signal.Ignore(os.Interrupt)
	raiseFileLimit()
	var err error
	switch role := os.Getenv(envRole); role {
	case "server":
		err = childServer()
	case "idle-client":
		err = childIdleClient()
	case "floor":
		err = childFloor()
	case "load":
		err = childLoad()
	case roleParkedEventfd:
		err = childParkedEventfd()
	case roleParkedFutex:
		err = childParkedFutex()
	default:
		err = fmt.Errorf("unknown role %q", role)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "shmbench child:", err)
		return 1
	}
	return 0
}

// childEnv reads the settings every role shares.
func childEnv() (network string, wait conn.WaitPolicy, addr string, ringSize int, err error) {
	network, addr = os.Getenv(envNet), os.Getenv(envAddr)
	if wait, err = conn.ParseWaitPolicy(os.Getenv(envWait)); err != nil {
		return
	}
	if s := os.Getenv(envRing); s != "" {
		if ringSize, err = strconv.Atoi(s); err != nil {
			return
		}
	}
	switch network {
	case "shm", "unix", "tcp":
	default:
		err = fmt.Errorf("unknown network %q", network)
	}
	return
}

// connSet tracks open conns so a child can close them all on the way out.
type connSet struct {
	mu sync.Mutex
	m  map[net.Conn]struct{}
}

func (s *connSet) add(c net.Conn) {
	s.mu.Lock()
	if s.m == nil {
		s.m = make(map[net.Conn]struct{})
	}
	s.m[c] = struct{}{}
	s.mu.Unlock()
}

func (s *connSet) remove(c net.Conn) {
	s.mu.Lock()
	delete(s.m, c)
	s.mu.Unlock()
}

func (s *connSet) closeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.m {
		c.Close()
	}
}

func childServer() error {
	network, wait, addr, ringSize, err := childEnv()
	if err != nil {
		return err
	}
	var ln net.Listener
	switch network {
	case "shm":
		lc := conn.ListenConfig{Wait: wait, RingSize: ringSize, NoFallback: true}
		ln, err = lc.Listen(context.Background(), "unix", addr)
	default:
		ln, err = net.Listen(network, addr)
	}
	if err != nil {
		return err
	}
	var conns connSet
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return // closed on the way out
			}
			if _, ok := c.(*conn.Conn); network == "shm" && !ok {
				fmt.Fprintf(os.Stderr, "shmbench server: accepted %T, not shared memory\n", c)
				c.Close()
				continue
			}
			conns.add(c)
			go func() {
				defer conns.remove(c)
				defer c.Close()
				serveConn(c)
			}()
		}
	}()
	err = control(ln.Addr().String())
	ln.Close()
	conns.closeAll()
	return err
}

// serveConn does what the client's first byte asks for.
func serveConn(c net.Conn) {
	var mode [1]byte
	if _, err := io.ReadFull(c, mode[:]); err != nil {
		return
	}
	switch mode[0] {
	case modeEcho:
		buf := make([]byte, 16<<10)
		for {
			n, err := c.Read(buf)
			if err != nil {
				return
			}
			if _, err := c.Write(buf[:n]); err != nil {
				return
			}
		}
	case modeDiscard:
		n, err := io.CopyBuffer(io.Discard, c, make([]byte, 64<<10))
		if err != nil {
			return
		}
		c.Write(binary.LittleEndian.AppendUint64(nil, uint64(n)))
	}
}

// childIdleClient opens the conns, leaves one goroutine blocked in Read on
// each, and waits.
func childIdleClient() error {
	network, wait, addr, ringSize, err := childEnv()
	if err != nil {
		return err
	}
	n, err := strconv.Atoi(os.Getenv(envConns))
	if err != nil {
		return err
	}
	var conns connSet
	defer conns.closeAll()
	d := dialer{network: network, addr: addr, shm: conn.Dialer{Wait: wait, RingSize: ringSize, NoFallback: true}}
	// Dial a few at a time: the listener negotiates each in a goroutine of
	// its own, and a few in flight keep both processes busy.
	const parallel = 8
	sem := make(chan struct{}, parallel)
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			c, err := d.dial(context.Background())
			if err == nil {
				_, err = c.Write([]byte{modeEcho})
			}
			if err != nil {
				errs <- err
				return
			}
			conns.add(c)
			go func() {
				var b [64]byte
				c.Read(b[:]) // blocks until the conn is closed
			}()
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return fmt.Errorf("dialing %d conns: %w", n, err)
	}
	return control(addr)
}

// control announces the child ready and answers the parent until it
// closes our stdin.
func control(addr string) error {
	// A non-blocking stdin goes through the netpoller, so waiting for the
	// parent holds no OS thread and does not show in the thread counts.
	if err := syscall.SetNonblock(0, true); err != nil {
		return err
	}
	in := bufio.NewScanner(os.NewFile(0, "stdin"))
	fmt.Printf("ready %s\n", addr)
	for in.Scan() {
		switch in.Text() {
		case "stats":
			cpu, err := cpuTime()
			if err != nil {
				return err
			}
			threads, err := threadCount("self")
			if err != nil {
				return err
			}
			fmt.Printf("stats %d %d\n", cpu.Nanoseconds(), threads)
		default:
			return fmt.Errorf("unknown command %q", in.Text())
		}
	}
	if err := in.Err(); err != nil && !errors.Is(err, os.ErrClosed) {
		return err
	}
	return nil
}
