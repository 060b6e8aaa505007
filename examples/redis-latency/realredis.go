package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"

	"github.com/redis/go-redis/v9"

	"github.com/shmconn/shmconn/conn"
)

// realRedis is a real redis-server the demo started in its temp directory:
// TCP and unix socket, and, when the module could be built, shmconn
// clients through the module's socket.
type realRedis struct {
	child *child
	tcp   string // host:port
	sock  string // its own unix socket
	shm   string // the module's socket; "" without the module
}

// buildModule builds examples/redis-module as a shared object in dir,
// with cgo: the go toolchain that runs the demo, and a C compiler.
func buildModule(ctx context.Context, dir string) (string, error) {
	so := filepath.Join(dir, "shmconn-redis.so")
	fmt.Fprintln(os.Stderr, "building examples/redis-module (cgo) ...")
	build := exec.CommandContext(ctx, "go", "build", "-buildmode=c-shared", "-o", so, "github.com/shmconn/shmconn/examples/redis-module")
	build.Env = append(os.Environ(), "CGO_ENABLED=1")
	if out, err := build.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building the Redis module: %v\n%s", err, out)
	}
	// redis-server loads only executable modules.
	return so, os.Chmod(so, 0o755)
}

// startRealRedis starts redis-server with the module (wait policy wait)
// loaded from so, or without it when so is "".
func startRealRedis(ctx context.Context, dir, so, wait string) (*realRedis, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	r := &realRedis{tcp: "127.0.0.1:" + strconv.Itoa(port), sock: filepath.Join(dir, "real-redis.sock")}
	args := []string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--unixsocket", r.sock,
		"--save", "", "--appendonly", "no", "--dir", dir, "--logfile", filepath.Join(dir, "real-redis.log")}
	if so != "" {
		r.shm = filepath.Join(dir, "real-redis-shm.sock")
		args = append(args, "--loadmodule", so, "unixsocket", r.shm, "wait", wait)
	}
	if r.child, err = startChild(ctx, bin, args...); err != nil {
		return nil, err
	}
	err = waitReady(ctx, "unix", r.sock)
	if err == nil && r.shm != "" {
		err = waitReady(ctx, "unix", r.shm)
	}
	if err != nil {
		r.child.stop()
		log, _ := os.ReadFile(filepath.Join(dir, "real-redis.log"))
		return nil, fmt.Errorf("redis-server: %w\n%s", err, log)
	}
	return r, nil
}

// options are go-redis options for each transport, named for the table.
func (r *realRedis) options(d *conn.Dialer) []target {
	t := []target{
		{"redis-server tcp", &redis.Options{Network: "tcp", Addr: r.tcp}},
		{"redis-server unix socket", &redis.Options{Network: "unix", Addr: r.sock}},
	}
	if r.shm != "" {
		t = append(t, target{"redis-server shm (module)", &redis.Options{Network: "unix", Addr: r.shm, Dialer: d.DialContext}})
	}
	return t
}

// target is a transport to measure and how go-redis reaches it.
type target struct {
	name string
	opts *redis.Options
}

// startRealIfInstalled starts a real redis-server with the module when
// redis-server is installed, and says on stderr what it could not do: no
// redis-server (nil), or no module (no cgo or C compiler: sockets only).
func startRealIfInstalled(ctx context.Context, dir, wait string) *realRedis {
	if _, err := exec.LookPath("redis-server"); err != nil {
		fmt.Fprintln(os.Stderr, "redis-server is not installed: measuring the example server only")
		return nil
	}
	so, err := buildModule(ctx, dir)
	if err != nil {
		fmt.Fprintf(os.Stderr, "%v\nmeasuring the real redis-server over its sockets only\n", err)
		so = ""
	}
	r, err := startRealRedis(ctx, dir, so, wait)
	if err != nil {
		fmt.Fprintf(os.Stderr, "starting redis-server: %v\n", err)
		return nil
	}
	return r
}
