package ring

import (
	"bytes"
	"errors"
	"math"
	"math/rand/v2"
	"sync"
	"testing"
	"unsafe"

	"pgregory.net/rapid"
)

// freeNow returns how many bytes the producer can write now. The package
// offers no such count: Write writes what fits.
func (p *Producer) freeNow() (int, error) {
	f, err := p.free(uint64(len(p.s.data)))
	return int(f), err
}

// fataler is what both *testing.T and *rapid.T offer.
type fataler interface {
	Helper()
	Fatal(args ...any)
}

// newMem returns 8-byte aligned memory for a ring of the given capacity,
// initialized with counters at start.
func newMem(t fataler, capacity int, start uint64) []byte {
	t.Helper()
	size, err := Size(capacity)
	if err != nil {
		t.Fatal(err)
	}
	words := make([]uint64, (size+7)/8)
	mem := unsafe.Slice((*byte)(unsafe.Pointer(&words[0])), size)
	if err := initAt(mem, start); err != nil {
		t.Fatal(err)
	}
	return mem
}

func newPair(t fataler, capacity int, start uint64) (*Producer, *Consumer, []byte) {
	t.Helper()
	mem := newMem(t, capacity, start)
	p, err := NewProducer(mem)
	if err != nil {
		t.Fatal(err)
	}
	c, err := NewConsumer(mem)
	if err != nil {
		t.Fatal(err)
	}
	return p, c, mem
}

// TestLayout pins the shared layout: changing it breaks peers built from
// another version, so it must come with a new segment layout version.
func TestLayout(t *testing.T) {
	for _, f := range []struct {
		name      string
		got, want int
	}{
		{"tail", offTail, 0},
		{"head", offHead, 128},
		{"writerWaiting", offWriterWaiting, 256},
		{"writerClosed", offWriterClosed, 260},
		{"readerWaiting", offReaderWaiting, 384},
		{"readerClosed", offReaderClosed, 388},
		{"ControlSize", ControlSize, 512},
	} {
		if f.got != f.want {
			t.Errorf("%s at %d, want %d", f.name, f.got, f.want)
		}
	}
	for _, pair := range [][2]int{{offTail, offHead}, {offHead, offWriterWaiting}, {offWriterWaiting, offReaderWaiting}} {
		if pair[1]-pair[0] < 128 {
			t.Errorf("words at %d and %d are closer than 128 bytes", pair[0], pair[1])
		}
	}
}

func TestCapacityValidation(t *testing.T) {
	for _, c := range []int{0, 1, 63, 100, 3 << 10, MaxCapacity * 2, -64} {
		if _, err := Size(c); !errors.Is(err, ErrCapacity) {
			t.Errorf("Size(%d) = %v, want ErrCapacity", c, err)
		}
	}
	for _, n := range []int{0, 10, ControlSize, ControlSize + 100} {
		if _, err := NewProducer(make([]byte, n)); !errors.Is(err, ErrCapacity) {
			t.Errorf("NewProducer(%d bytes) = %v, want ErrCapacity", n, err)
		}
	}
	mem := make([]byte, ControlSize+64+8)
	if _, err := NewConsumer(mem[4 : 4+ControlSize+64]); err == nil {
		t.Error("NewConsumer on misaligned memory succeeded")
	}
}

// model is the reference: a FIFO of bytes with a capacity.
type model struct {
	buf      []byte
	capacity int
}

func (m *model) free() int { return m.capacity - len(m.buf) }

// TestRingModel drives one producer and one consumer with random calls and
// compares every result with the model.
func TestRingModel(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		capacity := 1 << rapid.IntRange(6, 10).Draw(t, "log2cap")
		// Start anywhere, including just below 2^64 so counters wrap.
		start := rapid.OneOf(
			rapid.Uint64(),
			rapid.Uint64Range(math.MaxUint64-uint64(4*capacity), math.MaxUint64),
			rapid.Just(uint64(0)),
		).Draw(t, "start")
		p, c, _ := newPair(t, capacity, start)
		m := &model{capacity: capacity}
		next := byte(0)
		gen := func(n int) []byte {
			b := make([]byte, n)
			for i := range b {
				b[i] = next
				next++
			}
			return b
		}
		t.Repeat(map[string]func(*rapid.T){
			"Write": func(t *rapid.T) {
				b := gen(rapid.IntRange(0, 2*capacity).Draw(t, "n"))
				n, err := p.Write(b)
				if err != nil {
					t.Fatal(err)
				}
				if want := min(len(b), m.free()); n != want {
					t.Fatalf("Write(%d) = %d, want %d", len(b), n, want)
				}
				next -= byte(len(b) - n) // unwritten bytes are regenerated
				m.buf = append(m.buf, b[:n]...)
			},
			"ReservePublish": func(t *rapid.T) {
				limit := rapid.IntRange(-1, 2*capacity).Draw(t, "max")
				r, err := p.Reserve(limit)
				if err != nil {
					t.Fatal(err)
				}
				if len(r) > max(limit, 0) || len(r) > m.free() {
					t.Fatalf("Reserve(%d) = %d bytes, free %d", limit, len(r), m.free())
				}
				if limit > 0 && m.free() > 0 && len(r) == 0 {
					t.Fatalf("Reserve(%d) empty with %d free", limit, m.free())
				}
				n := rapid.IntRange(0, len(r)).Draw(t, "publish")
				copy(r, gen(n))
				if err := p.Publish(n); err != nil {
					t.Fatal(err)
				}
				m.buf = append(m.buf, r[:n]...)
				if err := p.Publish(1); !errors.Is(err, errBeyond) {
					t.Fatalf("second Publish = %v, want errBeyond", err)
				}
			},
			"Read": func(t *rapid.T) {
				b := make([]byte, rapid.IntRange(0, 2*capacity).Draw(t, "n"))
				n, err := c.Read(b)
				if err != nil {
					t.Fatal(err)
				}
				want := min(len(b), len(m.buf))
				if n != want || !bytes.Equal(b[:n], m.buf[:n]) {
					t.Fatalf("Read(%d) = %d %x, want %d %x", len(b), n, b[:n], want, m.buf[:want])
				}
				m.buf = m.buf[n:]
			},
			"PeekConsume": func(t *rapid.T) {
				r, err := c.Peek()
				if err != nil {
					t.Fatal(err)
				}
				if len(r) > len(m.buf) || !bytes.Equal(r, m.buf[:len(r)]) {
					t.Fatalf("Peek = %x, model %x", r, m.buf)
				}
				if len(m.buf) > 0 && len(r) == 0 {
					t.Fatal("Peek empty with bytes buffered")
				}
				n := rapid.IntRange(0, len(r)).Draw(t, "consume")
				if err := c.Consume(n); err != nil {
					t.Fatal(err)
				}
				m.buf = m.buf[n:]
				if err := c.Consume(len(r) - n + 1); !errors.Is(err, errBeyond) {
					t.Fatalf("over-Consume = %v, want errBeyond", err)
				}
			},
			"": func(t *rapid.T) {
				f, err := p.freeNow()
				if err != nil || f != m.free() {
					t.Fatalf("Free = %d, %v; model %d", f, err, m.free())
				}
				l, err := c.Len()
				if err != nil || l != len(m.buf) {
					t.Fatalf("Len = %d, %v; model %d", l, err, len(m.buf))
				}
			},
		})
	})
}

// TestCorruptCounters scribbles over the shared counters the way a hostile
// peer would and checks each side fails with ErrCorrupt instead of
// misbehaving.
func TestCorruptCounters(t *testing.T) {
	const capacity = 256
	for _, tc := range []struct {
		name string
		tail func(head, tail uint64) uint64 // new shared tail, seen by the consumer
		head func(head, tail uint64) uint64 // new shared head, seen by the producer
	}{
		{name: "tail far ahead", tail: func(h, t uint64) uint64 { return h + capacity + 1 }},
		{name: "tail behind head", tail: func(h, t uint64) uint64 { return h - 1 }},
		{name: "tail backwards", tail: func(h, t uint64) uint64 { return t - 1 }},
		{name: "tail max", tail: func(h, t uint64) uint64 { return math.MaxUint64 }},
		{name: "head past tail", head: func(h, t uint64) uint64 { return t + 1 }},
		{name: "head backwards", head: func(h, t uint64) uint64 { return h - 1 }},
		{name: "head far behind", head: func(h, t uint64) uint64 { return t - capacity - 1 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, c, mem := newPair(t, capacity, 1000)
			// Put the ring in a state with bytes in flight and both
			// caches warm.
			if _, err := p.Write(make([]byte, 100)); err != nil {
				t.Fatal(err)
			}
			if _, err := c.Read(make([]byte, 30)); err != nil {
				t.Fatal(err)
			}
			if _, err := p.freeNow(); err != nil {
				t.Fatal(err)
			}
			s, _ := view(mem)
			h, tl := s.head.Load(), s.tail.Load()
			if tc.tail != nil {
				s.tail.Store(tc.tail(h, tl))
				_, err := c.Read(make([]byte, capacity))
				if !errors.Is(err, ErrCorrupt) {
					t.Fatalf("Read after corrupt tail = %v, want ErrCorrupt", err)
				}
				for _, f := range []func() error{
					func() error { _, err := c.Len(); return err },
					func() error { _, err := c.Peek(); return err },
					func() error { return c.Consume(0) },
				} {
					if err := f(); !errors.Is(err, ErrCorrupt) {
						t.Fatalf("consumer call after corruption = %v", err)
					}
				}
				if c.PrepareWait() {
					t.Fatal("PrepareWait on a corrupt ring said park")
				}
			}
			if tc.head != nil {
				s.head.Store(tc.head(h, tl))
				_, err := p.Write(make([]byte, capacity))
				if !errors.Is(err, ErrCorrupt) {
					t.Fatalf("Write after corrupt head = %v, want ErrCorrupt", err)
				}
				if _, err := p.Reserve(1); !errors.Is(err, ErrCorrupt) {
					t.Fatalf("Reserve after corruption = %v", err)
				}
				if err := p.Publish(0); !errors.Is(err, ErrCorrupt) {
					t.Fatalf("Publish after corruption = %v", err)
				}
			}
		})
	}
}

func TestAttachCorrupt(t *testing.T) {
	mem := newMem(t, 64, 0)
	s, _ := view(mem)
	s.tail.Store(65)
	if _, err := NewProducer(mem); !errors.Is(err, ErrCorrupt) {
		t.Errorf("NewProducer = %v, want ErrCorrupt", err)
	}
	if _, err := NewConsumer(mem); !errors.Is(err, ErrCorrupt) {
		t.Errorf("NewConsumer = %v, want ErrCorrupt", err)
	}
}

// TestWaitFlags checks the handshake of the sleep protocol in one
// goroutine: PrepareWait refuses to park when the condition already holds,
// and a wake-up is owed exactly once per announced park.
func TestWaitFlags(t *testing.T) {
	p, c, _ := newPair(t, 64, 0)
	if p.WakeReader() != WaitNone || c.WakeWriter() != WaitNone {
		t.Fatal("wake-up owed with nobody waiting")
	}
	if !c.PrepareWait() {
		t.Fatal("consumer of an empty ring may not park")
	}
	if _, err := p.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	if p.WakeReader() != WaitPark {
		t.Fatal("parked reader not owed a wake-up")
	}
	if p.WakeReader() != WaitNone {
		t.Fatal("wake-up owed twice")
	}
	if c.PrepareWait() {
		t.Fatal("consumer parks with a byte readable")
	}
	if p.WakeReader() != WaitNone {
		t.Fatal("withdrawn wait still owed a wake-up")
	}
	if _, err := p.Write(make([]byte, 63)); err != nil {
		t.Fatal(err)
	}
	if !p.PrepareWait(1) {
		t.Fatal("producer of a full ring may not park")
	}
	if p.PrepareWait(0) {
		t.Fatal("producer parks wanting 0 bytes")
	}
	if !p.PrepareWait(1) {
		t.Fatal("producer of a full ring may not park")
	}
	if _, err := c.Read(make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
	if c.WakeWriter() != WaitPark {
		t.Fatal("parked writer not owed a wake-up")
	}
	c.Close()
	if !p.ReaderClosed() || p.PrepareWait(64) {
		t.Fatal("producer parks after the consumer closed")
	}
	p.Close()
	if !c.WriterClosed() {
		t.Fatal("close not seen")
	}
	if _, err := c.Read(make([]byte, 64)); err != nil {
		t.Fatal(err)
	}
	if c.PrepareWait() {
		t.Fatal("consumer parks after the producer closed")
	}
}

// TestDozeFlags checks the doze's values in one goroutine: a doze is
// claimed as a doze, a doze turned into a park as a park, a doze the
// waker claimed cannot become a park, and a value no waiter stores is
// claimed as a park.
func TestDozeFlags(t *testing.T) {
	p, c, _ := newPair(t, 64, 0)
	if !c.PrepareDoze() || c.Word().Load() != WaitDoze {
		t.Fatal("consumer of an empty ring may not doze")
	}
	if _, err := p.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	if got := p.WakeReader(); got != WaitDoze {
		t.Fatalf("WakeReader = %d, want WaitDoze", got)
	}
	if c.EndDoze() {
		t.Fatal("a claimed doze became a park")
	}
	if _, err := c.Read(make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
	if !c.PrepareDoze() || !c.EndDoze() || c.Word().Load() != WaitPark {
		t.Fatal("an unclaimed doze did not become a park")
	}
	if _, err := p.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	if got := p.WakeReader(); got != WaitPark {
		t.Fatalf("WakeReader after EndDoze = %d, want WaitPark", got)
	}
	if c.PrepareDoze() {
		t.Fatal("consumer dozes with a byte readable")
	}
	if c.Word().Load() != WaitNone {
		t.Fatal("a refused doze left its flag")
	}
	for _, v := range []uint32{3, 7, 1 << 31} {
		p.ReaderWord().Store(v)
		if got := p.WakeReader(); got != WaitPark {
			t.Fatalf("flag %d claimed as %d, want WaitPark", v, got)
		}
		if c.Word().Load() != WaitNone {
			t.Fatalf("flag %d not cleared", v)
		}
	}
	if _, err := p.Write(make([]byte, 63)); err != nil {
		t.Fatal(err)
	}
	if !p.PrepareDoze(1) {
		t.Fatal("producer of a full ring may not doze")
	}
	p.CancelWait()
	if p.Word().Load() != WaitNone || c.WriterWord() != p.Word() {
		t.Fatal("CancelWait left a doze announced")
	}
}

// TestConcurrentStream runs a producer and a consumer in two goroutines
// with random chunk sizes and checks every byte arrives once, in order.
func TestConcurrentStream(t *testing.T) {
	total := 8 << 20
	if testing.Short() {
		total = 1 << 20
	}
	for _, zeroCopy := range []bool{false, true} {
		p, c, _ := newPair(t, 1024, math.MaxUint64-5000)
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(1, 2))
			var x byte
			buf := make([]byte, 3000)
			for sent := 0; sent < total; {
				n := min(r.IntN(len(buf))+1, total-sent)
				if zeroCopy {
					dst, err := p.Reserve(n)
					if err != nil {
						t.Error(err)
						return
					}
					for i := range dst {
						dst[i] = x
						x++
					}
					if err := p.Publish(len(dst)); err != nil {
						t.Error(err)
						return
					}
					sent += len(dst)
				} else {
					for i := range buf[:n] {
						buf[i] = x + byte(i)
					}
					w, err := p.Write(buf[:n])
					if err != nil {
						t.Error(err)
						return
					}
					x += byte(w)
					sent += w
				}
				if sent < total {
					yieldSome()
				}
			}
		}()
		r := rand.New(rand.NewPCG(3, 4))
		var want byte
		buf := make([]byte, 3000)
		for got := 0; got < total; {
			var chunk []byte
			if zeroCopy {
				peek, err := c.Peek()
				if err != nil {
					t.Fatal(err)
				}
				chunk = peek[:min(len(peek), r.IntN(3000)+1)]
			} else {
				n, err := c.Read(buf[:r.IntN(len(buf))+1])
				if err != nil {
					t.Fatal(err)
				}
				chunk = buf[:n]
			}
			for i, b := range chunk {
				if b != want {
					t.Fatalf("byte %d = %d, want %d", got+i, b, want)
				}
				want++
			}
			if zeroCopy {
				if err := c.Consume(len(chunk)); err != nil {
					t.Fatal(err)
				}
			}
			got += len(chunk)
			if len(chunk) == 0 {
				yieldSome()
			}
		}
		wg.Wait()
	}
}

// TestSplit runs a ring whose control block and data area are separate
// slices, as a shared segment lays them out, and checks the bytes and the
// counters land where the layout says.
func TestSplit(t *testing.T) {
	ctrl := make([]byte, ControlSize)
	data := make([]byte, 64)
	if err := InitSplit(ctrl, data); err != nil {
		t.Fatal(err)
	}
	p, err := NewProducerSplit(ctrl, data)
	if err != nil {
		t.Fatal(err)
	}
	c, err := NewConsumerSplit(ctrl, data)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Write([]byte("split")); err != nil {
		t.Fatal(err)
	}
	if string(data[:5]) != "split" || ctrl[offTail] != 5 {
		t.Fatalf("data %q, tail byte %d", data[:5], ctrl[offTail])
	}
	buf := make([]byte, 8)
	if n, err := c.Read(buf); err != nil || string(buf[:n]) != "split" {
		t.Fatalf("Read = %q, %v", buf[:n], err)
	}
	if ctrl[offHead] != 5 {
		t.Fatalf("head byte %d", ctrl[offHead])
	}
	for _, bad := range [][2][]byte{{ctrl[:ControlSize-1], data}, {ctrl, data[:63]}} {
		if err := InitSplit(bad[0], bad[1]); !errors.Is(err, ErrCapacity) {
			t.Errorf("InitSplit(%d, %d) = %v", len(bad[0]), len(bad[1]), err)
		}
	}
	if err := Init(make([]byte, 10)); !errors.Is(err, ErrCapacity) {
		t.Errorf("Init of 10 bytes = %v", err)
	}
}

// TestConsumeInParts consumes one Peek's region in two calls, as its doc
// allows, and checks a third call beyond the region fails.
func TestConsumeInParts(t *testing.T) {
	p, c, _ := newPair(t, 64, 0)
	if _, err := p.Write([]byte("abcdef")); err != nil {
		t.Fatal(err)
	}
	r, err := c.Peek()
	if err != nil || string(r) != "abcdef" {
		t.Fatalf("Peek = %q, %v", r, err)
	}
	if err := c.Consume(2); err != nil {
		t.Fatal(err)
	}
	if err := c.Consume(4); err != nil {
		t.Fatal(err)
	}
	if err := c.Consume(1); !errors.Is(err, errBeyond) {
		t.Fatalf("Consume past the region = %v, want errBeyond", err)
	}
	if n, err := c.Len(); n != 0 || err != nil {
		t.Fatalf("Len = %d, %v after releasing everything", n, err)
	}
}
