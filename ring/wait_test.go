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
				if p.WakeReader() != WaitNone {
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
		n := readInOrder(t, c, buf, &got)
		if n > 0 {
			if c.WakeWriter() != WaitNone {
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

// TestNoLostWakeupsDozing drives the doze protocol as hard as it can go:
// a waiter announces a doze, waits a little for a doze wake-up, then
// either finds the flag claimed (and looks again) or turns the doze into
// a park and waits for a park wake-up, which must come. The waker wakes
// by the kind it claimed. Wake-ups of the wrong kind, or lost ones, leave
// a side parked forever (10 s here).
func TestNoLostWakeupsDozing(t *testing.T) {
	total := 100000
	if testing.Short() {
		total = 10000
	}
	p, c, _ := newPair(t, 64, 0)
	type wakeups struct{ doze, park chan struct{} }
	data := wakeups{make(chan struct{}, 1), make(chan struct{}, 1)}
	space := wakeups{make(chan struct{}, 1), make(chan struct{}, 1)}
	send := func(w wakeups, kind uint32) {
		switch kind {
		case WaitDoze:
			notify(w.doze)
		case WaitPark:
			notify(w.park)
		}
	}
	// wait dozes (a spurious doze wake-up from an earlier round is
	// harmless: the flag still holds WaitDoze, and the caller looks
	// again), then parks if the doze was not claimed.
	wait := func(w wakeups, endDoze, cancel func() bool, who string, i int, round int) {
		select {
		case <-w.doze:
		case <-time.After(time.Duration(round%3) * time.Microsecond):
		}
		if !endDoze() {
			return // claimed: look again
		}
		select {
		case <-w.park:
		case <-time.After(10 * time.Second):
			t.Errorf("%s parked forever at %d: lost wake-up", who, i)
		}
		cancel()
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		b := []byte{0}
		for i, round := 0, 0; i < total && !t.Failed(); round++ {
			b[0] = byte(i)
			n, err := p.Write(b)
			if err != nil {
				t.Error(err)
				return
			}
			if n == 1 {
				i++
				send(data, p.WakeReader())
				continue
			}
			if p.PrepareDoze(1) {
				wait(space, p.EndDoze, func() bool { p.CancelWait(); return true }, "producer", i, round)
			}
		}
	}()
	buf := make([]byte, 7)
	for got, round := 0, 0; got < total && !t.Failed(); round++ {
		n := readInOrder(t, c, buf, &got)
		if n > 0 {
			send(space, c.WakeWriter())
			continue
		}
		if c.PrepareDoze() {
			wait(data, c.EndDoze, func() bool { c.CancelWait(); return true }, "consumer", got, round)
		}
	}
	<-done
}

// readInOrder reads what c holds into buf and checks that the bytes count
// up from *got (mod 256), advancing it; it returns how many it read.
func readInOrder(t *testing.T, c *Consumer, buf []byte, got *int) int {
	t.Helper()
	n, err := c.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range buf[:n] {
		if b != byte(*got) {
			t.Fatalf("byte %d = %d", *got, b)
		}
		*got++
	}
	return n
}
