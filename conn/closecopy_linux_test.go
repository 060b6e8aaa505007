package conn

import (
	"bytes"
	"fmt"
	"os"
	"syscall"
	"testing"
	"time"
)

// segmentMappingSize returns the size of the first shmconn segment mapped
// in this process.
func segmentMappingSize(t *testing.T) int {
	t.Helper()
	maps, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range bytes.Split(maps, []byte("\n")) {
		if bytes.Contains(l, []byte("memfd:shmconn")) {
			var lo, hi uint64
			fmt.Sscanf(string(l), "%x-%x", &lo, &hi)
			return int(hi - lo)
		}
	}
	t.Fatal("no segment mapped")
	return 0
}

// TestCloseBesideEchoTouchesNoFreedMemory: Close of a conn echoing to
// itself (io.Copy(c, c): WriteTo whose Write waits for space) must have
// marked the rings closed before the segment is unmapped, whoever unmaps
// it. A goroutine keeps mapping fresh memory of the segment's size, which
// the kernel hands out where a segment was just unmapped: a closed flag
// written late shows there as a non-zero byte. (A flag written late shows
// within 150-3000 iterations.)
func TestCloseBesideEchoTouchesNoFreedMemory(t *testing.T) {
	rounds := 3000
	if testing.Short() {
		rounds = 100
	}
	a, b := newPair(t, "unix", ListenConfig{}, Dialer{RingSize: MinRingSize, NoFallback: true})
	size := segmentMappingSize(t)
	a.Close()
	b.Close()
	stop, found := make(chan struct{}), make(chan string, 1)
	defer close(stop)
	go func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			m, err := syscall.Mmap(-1, 0, size, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
			if err != nil {
				continue
			}
			if i := bytes.IndexFunc(m[:4096], func(r rune) bool { return r != 0 }); i >= 0 {
				select {
				case found <- fmt.Sprintf("byte %#x at offset %#x of a fresh mapping", m[i], i):
				default:
				}
			}
			syscall.Munmap(m)
		}
	}()
	for i := range rounds {
		a, b := newPair(t, "unix", ListenConfig{}, Dialer{RingSize: MinRingSize, NoFallback: true})
		go b.Write(make([]byte, 3*MinRingSize))
		done := make(chan error, 1)
		go func() {
			_, err := a.WriteTo(a)
			done <- err
		}()
		time.Sleep(time.Millisecond)
		a.Close()
		<-done
		b.Close()
		select {
		case f := <-found:
			t.Fatalf("round %d: %s", i, f)
		default:
		}
	}
}
