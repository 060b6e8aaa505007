package ring

import (
	"math/rand/v2"
	"testing"
	"time"
)

// TestConsumeBatchStale checks what the producer sees of a batching
// consumer: the space of reads short of a batch stays hidden, a full batch
// returns all of it, and ending the batching returns the rest.
func TestConsumeBatchStale(t *testing.T) {
	p, c, _ := newPair(t, 1024, 0)
	c.SetConsumeBatch(256)
	buf := make([]byte, 1024)
	if _, err := p.Write(buf); err != nil {
		t.Fatal(err)
	}
	if n, _ := c.Read(buf[:255]); n != 255 {
		t.Fatalf("read %d", n)
	}
	if f, _ := p.freeNow(); f != 0 {
		t.Fatalf("free %d before a batch was read, want 0", f)
	}
	if c.WakeWriter() != WaitNone {
		t.Fatal("wake-up owed with nothing returned")
	}
	if n, _ := c.Read(buf[:1]); n != 1 {
		t.Fatalf("read %d", n)
	}
	if f, _ := p.freeNow(); f != 256 {
		t.Fatalf("free %d after a batch, want 256", f)
	}
	if n, _ := c.Read(buf[:10]); n != 10 {
		t.Fatalf("read %d", n)
	}
	c.SetConsumeBatch(0)
	if f, _ := p.freeNow(); f != 266 {
		t.Fatalf("free %d after SetConsumeBatch(0), want 266", f)
	}
	c.SetConsumeBatch(1 << 20)
	if c.batch != 256 {
		t.Fatalf("batch %d, want it clamped to a quarter of the ring (256)", c.batch)
	}
}

// TestConsumeBatchNoLostWakeup runs a producer and a batching consumer in
// two goroutines that park on channels, as package conn parks on its side
// socket, with the producer waiting for as much as SetConsumeBatch allows: every byte
// must arrive in order and neither side may wait forever.
func TestConsumeBatchNoLostWakeup(t *testing.T) {
	const capacity = 1024
	total := 4 << 20
	if testing.Short() {
		total = 1 << 20
	}
	p, c, _ := newPair(t, capacity, 0)
	c.SetConsumeBatch(capacity / 4)
	wakeReader := make(chan struct{}, 1)
	wakeWriter := make(chan struct{}, 1)
	park := func(ch chan struct{}, who string) bool {
		select {
		case <-ch:
			return true
		case <-time.After(10 * time.Second):
			t.Errorf("%s parked for 10 s: a wake-up was lost", who)
			return false
		}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		r := rand.New(rand.NewPCG(5, 6))
		buf := make([]byte, 3*capacity)
		var x byte
		for sent := 0; sent < total; {
			n := min(r.IntN(len(buf))+1, total-sent)
			for i := range buf[:n] {
				buf[i] = x + byte(i)
			}
			for off := 0; off < n; {
				w, err := p.Write(buf[off:n])
				if err != nil {
					t.Error(err)
					return
				}
				if w > 0 {
					off += w
					if p.WakeReader() != WaitNone {
						wakeReader <- struct{}{}
					}
					continue
				}
				if p.PrepareWait(min(n-off, capacity-capacity/4)) && !park(wakeWriter, "producer") {
					return
				}
			}
			x += byte(n)
			sent += n
		}
	}()
	r := rand.New(rand.NewPCG(7, 8))
	buf := make([]byte, capacity)
	var want byte
	for got := 0; got < total; {
		n, err := c.Read(buf[:r.IntN(len(buf))+1])
		if err != nil {
			t.Fatal(err)
		}
		for i, b := range buf[:n] {
			if b != want {
				t.Fatalf("byte %d = %d, want %d", got+i, b, want)
			}
			want++
		}
		got += n
		if n > 0 {
			if c.WakeWriter() != WaitNone {
				wakeWriter <- struct{}{}
			}
			continue
		}
		if c.PrepareWait() && !park(wakeReader, "consumer") {
			break
		}
	}
	<-done
}

// TestConsumeBatchCloseWakes: a batching consumer that closes owes a
// parked producer its wake-up, though it returned no space.
func TestConsumeBatchCloseWakes(t *testing.T) {
	p, c, _ := newPair(t, 1024, 0)
	c.SetConsumeBatch(256)
	if _, err := p.Write(make([]byte, 1024)); err != nil {
		t.Fatal(err)
	}
	if !p.PrepareWait(1) {
		t.Fatal("producer of a full ring may not park")
	}
	if n, _ := c.Read(make([]byte, 10)); n != 10 || c.WakeWriter() != WaitNone {
		t.Fatal("a read short of a batch owes no wake-up")
	}
	c.Close()
	if c.WakeWriter() != WaitPark {
		t.Fatal("the parked producer is not woken by Close")
	}
}
