package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/shmconn/shmconn/atomicx"
)

const linux = true

// Child roles of the parked floors' servers.
const (
	roleParkedEventfd = "parked-eventfd"
	roleParkedFutex   = "parked-futex"
)

// newEventfd returns an eventfd counter starting at 0.
func newEventfd() (*os.File, error) {
	fd, _, errno := syscall.Syscall(syscall.SYS_EVENTFD2, 0, syscall.O_CLOEXEC, 0)
	if errno != 0 {
		return nil, os.NewSyscallError("eventfd2", errno)
	}
	return os.NewFile(fd, "eventfd"), nil
}

// pollable returns a file for f's descriptor that reads and writes
// through the netpoller: a descriptor of its own, non-blocking. (A file
// handed to a child in ExtraFiles is made blocking by os/exec, and the
// flag belongs to the open file, so it is set again here, after the
// child started.)
func pollable(f *os.File) (*os.File, error) {
	fd, err := syscall.Dup(int(f.Fd()))
	if err != nil {
		return nil, os.NewSyscallError("dup", err)
	}
	syscall.CloseOnExec(fd)
	if err := syscall.SetNonblock(fd, true); err != nil {
		syscall.Close(fd)
		return nil, err
	}
	return os.NewFile(uintptr(fd), f.Name()), nil
}

// eventfdRoundTripper passes a count of 1 on one eventfd and waits, in the
// netpoller, for the server's on the other.
type eventfdRoundTripper struct {
	req, resp *os.File
	buf       [8]byte
}

func (r *eventfdRoundTripper) roundTrip() error {
	binary.NativeEndian.PutUint64(r.buf[:], 1)
	if _, err := r.req.Write(r.buf[:]); err != nil {
		return err
	}
	_, err := io.ReadFull(r.resp, r.buf[:])
	return err
}

// withParkedEventfd runs f against a parked eventfd server child: the
// child gets the request eventfd as its fd 3 and the response one as 4.
func (b *bench) withParkedEventfd(ctx context.Context, f func(roundTripper) error) error {
	req, err := newEventfd()
	if err != nil {
		return err
	}
	defer req.Close()
	resp, err := newEventfd()
	if err != nil {
		return err
	}
	defer resp.Close()
	srv, err := b.startChild("server "+parkedEventfd.network, []string{envRole + "=" + roleParkedEventfd}, req, resp)
	if err != nil {
		return err
	}
	return b.thenStop(srv, func() error {
		preq, err := pollable(req)
		if err != nil {
			return err
		}
		defer preq.Close()
		presp, err := pollable(resp)
		if err != nil {
			return err
		}
		// Closing it ends a read blocked in the netpoller, if the run is
		// cancelled while the server is gone.
		stop := context.AfterFunc(ctx, func() { presp.Close() })
		defer stop()
		defer presp.Close()
		return f(&eventfdRoundTripper{req: preq, resp: presp})
	})
}

// childParkedEventfd answers every count on fd 3 with one on fd 4, reading
// through the netpoller, until the parent closes its stdin.
func childParkedEventfd() error {
	var files [2]*os.File
	for i, fd := range []int{3, 4} {
		if err := syscall.SetNonblock(fd, true); err != nil {
			return err
		}
		files[i] = os.NewFile(uintptr(fd), "eventfd")
	}
	req, resp := files[0], files[1]
	go func() {
		var buf [8]byte
		for {
			if _, err := io.ReadFull(req, buf[:]); err != nil {
				return
			}
			if _, err := resp.Write(buf[:]); err != nil {
				return
			}
		}
	}()
	return control(roleParkedEventfd)
}

// The futex floor's words, in the floor's memory: each on a line of its
// own.
const (
	futexReqOff  = 0
	futexRespOff = atomicx.FalseSharingRange
)

// Linux futex operations on memory shared between processes (not the
// _PRIVATE ones).
const (
	futexWait = 0
	futexWake = 1
)

// futexWaitFor blocks while *w == val, at most futexDoze. It is a raw
// system call: the runtime neither hands the P on nor wakes another
// thread (sysmon) for it, which is what makes it the cheapest wait.
func futexWaitFor(w *atomic.Uint32, val uint32) {
	ts := syscall.NsecToTimespec(int64(futexDoze))
	syscall.RawSyscall6(syscall.SYS_FUTEX, uintptr(unsafe.Pointer(w)), futexWait, uintptr(val), uintptr(unsafe.Pointer(&ts)), 0, 0)
}

func futexWakeAll(w *atomic.Uint32) {
	syscall.RawSyscall6(syscall.SYS_FUTEX, uintptr(unsafe.Pointer(w)), futexWake, 1<<31-1, 0, 0, 0)
}

// futexWords maps the futex floor's two words from f.
func futexWords(f *os.File) (mem []byte, req, resp *atomic.Uint32, err error) {
	size, err := floorSize()
	if err != nil {
		return nil, nil, nil, err
	}
	mem, err = syscall.Mmap(int(f.Fd()), 0, size, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED)
	if err != nil {
		return nil, nil, nil, os.NewSyscallError("mmap", err)
	}
	req, err1 := atomicx.Uint32At(mem, futexReqOff)
	resp, err2 := atomicx.Uint32At(mem, futexRespOff)
	if err := errors.Join(err1, err2); err != nil {
		syscall.Munmap(mem)
		return nil, nil, nil, err
	}
	return mem, req, resp, nil
}

// futexRoundTripper stores a sequence number in the request word, wakes
// the server, and waits on the response word until the server echoes it.
type futexRoundTripper struct {
	ctx       context.Context
	req, resp *atomic.Uint32
	seq       uint32
}

func (r *futexRoundTripper) roundTrip() error {
	r.seq++
	seq := r.seq
	r.req.Store(seq)
	futexWakeAll(r.req)
	start := time.Now()
	for {
		got := r.resp.Load()
		if got == seq {
			return nil
		}
		futexWaitFor(r.resp, got)
		if r.resp.Load() == seq {
			return nil // the common case reads no clock
		}
		if err := r.ctx.Err(); err != nil {
			return err
		}
		if time.Since(start) > floorStall {
			return fmt.Errorf("server silent for %v", floorStall)
		}
	}
}

// withParkedFutex runs f against a futex server child, which gets the
// memory as its fd 3.
func (b *bench) withParkedFutex(ctx context.Context, f func(roundTripper) error) error {
	file, err := createFloorFile()
	if err != nil {
		return err
	}
	defer file.Close()
	mem, req, resp, err := futexWords(file)
	if err != nil {
		return err
	}
	defer syscall.Munmap(mem)
	srv, err := b.startChild("server "+parkedFutex.network, []string{envRole + "=" + roleParkedFutex}, file)
	if err != nil {
		return err
	}
	return b.thenStop(srv, func() error { return f(&futexRoundTripper{ctx: ctx, req: req, resp: resp}) })
}

// childParkedFutex echoes each sequence number of the request word into
// the response word, waking the client, until the parent closes its
// stdin.
func childParkedFutex() error {
	_, req, resp, err := futexWords(os.NewFile(floorFD, "floor"))
	if err != nil {
		return err
	}
	go func() {
		var last uint32
		for {
			seq := req.Load()
			if seq == last {
				futexWaitFor(req, last)
				continue
			}
			last = seq
			resp.Store(seq)
			futexWakeAll(resp)
		}
	}()
	return control(roleParkedFutex)
}
