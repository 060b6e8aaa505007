package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/shmconn/shmconn/conn"
)

// The test binary re-executes itself as a client process that a test can
// SIGKILL at a chosen point. It dials the module's socket over shm, prints
// "ready <client id>" once it is at that point, and waits to be killed.
const (
	envPeer     = "SHMCONN_MODULE_PEER"      // the point: "half-request" or "mid-reply"
	envPeerAddr = "SHMCONN_MODULE_PEER_ADDR" // the module's socket
)

// halfRequest is a SET whose value is announced but only partly sent.
const halfRequest = "*3\r\n$3\r\nSET\r\n$4\r\nhalf\r\n$100\r\nonly-a-part"

// runAsPeer plays the peer when the environment asks for one; it never
// returns then.
func runAsPeer() {
	role := os.Getenv(envPeer)
	if role == "" {
		return
	}
	if err := playPeer(role, os.Getenv(envPeerAddr)); err != nil {
		fmt.Println("error", err)
		os.Exit(2)
	}
	time.Sleep(time.Minute) // killed long before
	os.Exit(3)
}

func playPeer(role, addr string) error {
	nc, err := conn.Dial("unix", addr)
	if err != nil {
		return err
	}
	r := bufio.NewReader(nc)
	fmt.Fprint(nc, "CLIENT ID\r\n")
	line, err := r.ReadString('\n')
	if err != nil || !strings.HasPrefix(line, ":") {
		return fmt.Errorf("CLIENT ID: %q %v", line, err)
	}
	id := strings.TrimSpace(line[1:])
	switch role {
	case "half-request":
		_, err = fmt.Fprint(nc, halfRequest)
	case "mid-reply":
		// The value is far larger than a ring: the server is still
		// writing it when the peer stops reading.
		fmt.Fprint(nc, "GET big\r\n")
		_, err = io.ReadFull(r, make([]byte, 64<<10))
	default:
		err = fmt.Errorf("unknown role %q", role)
	}
	if err == nil {
		fmt.Println("ready", id)
	}
	return err
}

// peer is a client process started by startPeer.
type peer struct {
	cmd *exec.Cmd
	id  string // its CLIENT ID
}

// startPeer starts a client process and waits until it reached the point
// role names.
func startPeer(t *testing.T, s *server, role string) *peer {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envPeer+"="+role, envPeerAddr+"="+s.shm)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &peer{cmd: cmd}
	t.Cleanup(p.kill)
	line, err := bufio.NewReader(out).ReadString('\n')
	id, ok := strings.CutPrefix(strings.TrimSpace(line), "ready ")
	if err != nil || !ok {
		t.Fatalf("peer %s: %q %v", role, line, err)
	}
	p.id = id
	return p
}

// kill SIGKILLs the peer and reaps it; killing it again does nothing.
func (p *peer) kill() {
	if p.cmd.ProcessState == nil {
		p.cmd.Process.Kill()
		p.cmd.Wait()
	}
}
