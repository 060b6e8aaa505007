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
