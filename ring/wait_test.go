package ring

import (
	"testing"
	"time"
)

// TestNoLostWakeups drives the sleep protocol as hard as it can go: the
// consumer parks whenever the ring is empty and the producer wakes it only
// when WakeReader says so (and the other way round when the ring is full).
// A lost wake-up leaves one side parked forever, which the timeout turns
// into a failure. Run under -race too: the race detector's atomics are
// weaker than the normal build's, and the protocol must hold under both.
// Parked sides never look again on their own: a wake-up must come
// through the flags. The channels have room for one token, and the sender
// never blocks on them.
func TestNoLostWakeups(t *testing.T) {
	total := 200000
	if testing.Short() {
		total = 20000
	}
	p, c, _ := newPair(t, 64, 0)
	dataReady := make(chan struct{}, 1)
	spaceReady := make(chan struct{}, 1)
	// park waits for a wake-up, without bound (10 s here).
	park := func(ch chan struct{}, ready func() bool, who string, i int) {
		select {
		case <-ch:
		case <-time.After(10 * time.Second):
			t.Errorf("%s parked forever at %d: lost wake-up", who, i)
		}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		b := []byte{0}
		for i := 0; i < total && !t.Failed(); {
			b[0] = byte(i)
			n, err := p.Write(b)
			if err != nil {
				t.Error(err)
				return
			}
			if n == 1 {
				i++
				if p.WakeReader() {
					notify(dataReady)
				}
				continue
			}
			if p.PrepareWait(1) {
				park(spaceReady, func() bool { return p.HasSpace(1) }, "producer", i)
				p.CancelWait()
			}
		}
	}()
	buf := make([]byte, 7)
	for got := 0; got < total && !t.Failed(); {
		n, err := c.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range buf[:n] {
			if b != byte(got) {
				t.Fatalf("byte %d = %d", got, b)
			}
			got++
		}
		if n > 0 {
			if c.WakeWriter() {
				notify(spaceReady)
			}
			continue
		}
		if c.PrepareWait() {
			park(dataReady, c.Pending, "consumer", got)
			c.CancelWait()
		}
	}
	<-done
}

func notify(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}
