//go:build unix

package fault

import (
	"errors"
	"fmt"
	"runtime/debug"
	"testing"
	"unsafe"

	"github.com/shmconn/shmconn/internal/testutil"
)

var errFault = errors.New("fault")

func wrap(addr uintptr) error { return fmt.Errorf("%w at %#x", errFault, addr) }

// touch writes the first byte of m under Guard and Catch.
func touch(m []byte) (err error) {
	defer Catch(&err, Guard(), wrap)
	m[0] = 1
	return nil
}

func TestCatchRealFault(t *testing.T) {
	m := testutil.TruncatedMapping(t)
	err := touch(m)
	if !errors.Is(err, errFault) {
		t.Fatalf("touching a truncated mapping: %v, want the wrapped fault", err)
	}
	want := fmt.Sprintf("at %#x", uintptr(unsafe.Pointer(&m[0])))
	if got := err.Error(); got != "fault "+want {
		t.Errorf("error %q, want the faulting address: %q", got, "fault "+want)
	}
	if debug.SetPanicOnFault(false) {
		t.Error("panic-on-fault still on after Catch")
	}
}

func TestCatchRestoresMode(t *testing.T) {
	for _, before := range []bool{false, true} {
		debug.SetPanicOnFault(before)
		var err error
		func() {
			defer Catch(&err, Guard(), wrap)
			if !debug.SetPanicOnFault(true) {
				t.Error("Guard did not turn panic-on-fault on")
			}
		}()
		if err != nil {
			t.Errorf("no fault, yet err = %v", err)
		}
		if after := debug.SetPanicOnFault(false); after != before {
			t.Errorf("mode %v after Catch, want %v restored", after, before)
		}
	}
}

func TestCatchLetsOtherPanicsThrough(t *testing.T) {
	defer debug.SetPanicOnFault(false)
	var err error
	defer func() {
		if r := recover(); r != "not a fault" {
			t.Errorf("recovered %v, want the original panic", r)
		}
		if err != nil {
			t.Errorf("err = %v for a panic that is no fault", err)
		}
		if debug.SetPanicOnFault(false) {
			t.Error("panic-on-fault still on after Catch")
		}
	}()
	defer Catch(&err, Guard(), wrap)
	panic("not a fault")
}

// TestLentRestoresMode: code run through Lent runs with panic-on-fault on
// and returns what it returned; the caller's mode is back afterwards.
func TestLentRestoresMode(t *testing.T) {
	for _, before := range []bool{false, true} {
		debug.SetPanicOnFault(before)
		var inside bool
		n, err := Lent(func() (int, error) {
			inside = debug.SetPanicOnFault(true)
			return 7, errFault
		}, func(uintptr) bool { return true }, wrap)
		if n != 7 || err != errFault {
			t.Errorf("Lent returned %d, %v, want f's 7, %v", n, err, errFault)
		}
		if !inside {
			t.Error("panic-on-fault off inside Lent")
		}
		if after := debug.SetPanicOnFault(false); after != before {
			t.Errorf("mode %v after Lent, want %v restored", after, before)
		}
	}
}

// lentTouch runs a touch of m[0] through Lent, inside a Catch as conn's
// ReadFrom and WriteTo do, with shared saying whether the address is the
// shared memory's.
func lentTouch(m []byte, shared bool) (err error) {
	defer Catch(&err, Guard(), wrap)
	_, err = Lent(func() (int, error) {
		m[0] = 1
		return 1, nil
	}, func(addr uintptr) bool { return shared && addr == uintptr(unsafe.Pointer(&m[0])) }, wrap)
	return err
}

// TestLentSharedFault: a fault in the shared memory, raised by code we
// lent it to, is the peer's doing: an error, not a crash.
func TestLentSharedFault(t *testing.T) {
	m := testutil.TruncatedMapping(t)
	if err := lentTouch(m, true); !errors.Is(err, errFault) {
		t.Fatalf("fault in shared memory under Lent: %v, want the wrapped fault", err)
	}
	if debug.SetPanicOnFault(false) {
		t.Error("panic-on-fault still on after Lent and Catch")
	}
}

// TestLentForeignFault: a fault elsewhere is the lent code's own: it panics
// on as a *Foreign carrying the runtime's error, and the Catch around Lent
// does not report it as the peer's.
func TestLentForeignFault(t *testing.T) {
	m := testutil.TruncatedMapping(t)
	var r any
	func() {
		defer func() { r = recover() }()
		err := lentTouch(m, false)
		t.Errorf("a foreign fault returned %v instead of panicking", err)
	}()
	f, ok := r.(*Foreign)
	if !ok {
		t.Fatalf("panic %#v, want a *Foreign", r)
	}
	var addr interface{ Addr() uintptr }
	if !errors.As(f, &addr) || addr.Addr() != uintptr(unsafe.Pointer(&m[0])) {
		t.Errorf("Foreign %v does not carry the faulting address %p", f, &m[0])
	}
	if debug.SetPanicOnFault(false) {
		t.Error("panic-on-fault still on after the foreign fault")
	}
}

// TestLentOtherPanic: a panic that is no fault goes on as it was.
func TestLentOtherPanic(t *testing.T) {
	var r any
	func() {
		defer func() { r = recover() }()
		_, _ = Lent(func() (int, error) { panic("boom") }, func(uintptr) bool { return true }, wrap)
	}()
	if r != "boom" {
		t.Fatalf("panic %#v, want \"boom\" passed on", r)
	}
}
