package atomicx

import (
	"errors"
	"testing"
	"unsafe"
)

func aligned(size int) []byte {
	// A []uint64 backing store is 8-byte aligned.
	words := make([]uint64, (size+7)/8)
	return unsafe.Slice((*byte)(unsafe.Pointer(&words[0])), size)
}

func TestViews(t *testing.T) {
	mem := aligned(64)
	u, err := Uint64At(mem, 8)
	if err != nil {
		t.Fatal(err)
	}
	u.Store(0x0102030405060708)
	if mem[8] != 0x08 || mem[15] != 0x01 {
		t.Fatalf("store did not land at offset 8: %x", mem[:16])
	}
	v, err := Uint32At(mem, 60)
	if err != nil {
		t.Fatal(err)
	}
	v.Add(7)
	if mem[60] != 7 {
		t.Fatalf("add did not land at offset 60: %x", mem[56:])
	}
}

func TestViewErrors(t *testing.T) {
	mem := aligned(64)
	for _, tc := range []struct {
		name string
		err  error
		f    func() error
	}{
		{"misaligned64", ErrAlignment, func() error { _, err := Uint64At(mem, 4); return err }},
		{"misaligned32", ErrAlignment, func() error { _, err := Uint32At(mem, 2); return err }},
		{"past end", ErrBounds, func() error { _, err := Uint64At(mem, 64); return err }},
		{"straddles end", ErrBounds, func() error { _, err := Uint64At(mem, 60); return err }},
		{"negative", ErrBounds, func() error { _, err := Uint32At(mem, -4); return err }},
		{"empty", ErrBounds, func() error { _, err := Uint32At(nil, 0); return err }},
	} {
		if err := tc.f(); !errors.Is(err, tc.err) {
			t.Errorf("%s: got %v, want %v", tc.name, err, tc.err)
		}
	}
}

func TestPause(t *testing.T) {
	Pause(0)
	Pause(-1)
	Pause(1)
	Pause(1000) // must return; nothing else to observe
}

func BenchmarkPause(b *testing.B) {
	for b.Loop() {
		Pause(1)
	}
}

func TestStoreRelease(t *testing.T) {
	mem := aligned(16)
	u, err := Uint64At(mem, 8)
	if err != nil {
		t.Fatal(err)
	}
	StoreRelease(u, 0xdeadbeefcafe)
	if u.Load() != 0xdeadbeefcafe || mem[8] != 0xfe {
		t.Fatalf("StoreRelease stored %x", mem[8:])
	}
}

// TestPrefetch: a prefetch of any byte of a slice, first and last
// included, returns and changes nothing.
func TestPrefetch(t *testing.T) {
	b := []byte{1, 2, 3}
	for i := range b {
		Prefetch(&b[i])
	}
	if b[0] != 1 || b[1] != 2 || b[2] != 3 {
		t.Fatalf("prefetch changed memory: %v", b)
	}
}
