package conn

import (
	"bytes"
	"io"
	"testing"

	"pgregory.net/rapid"
)

// TestConnModel checks a conn pair against the simplest model of a
// stream: whatever chunking the writer uses and whatever buffer sizes the
// reader uses, concurrently, the reader gets exactly the bytes written, in
// order, then io.EOF after CloseWrite; and the reverse direction is
// independent.
func TestConnModel(t *testing.T) {
	// Each check gets a fresh pair with small rings, so writes wrap and
	// block often.
	for _, policy := range []WaitPolicy{WaitAdaptive, WaitSpin} {
		t.Run(policy.String(), func(t *testing.T) {
			rapid.Check(t, func(rt *rapid.T) {
				c1, c2 := newPairRapid(t, rt, policy)
				// The stream: a list of writes of random sizes.
				writes := rapid.SliceOfN(rapid.IntRange(0, 3*MinRingSize), 1, 20).Draw(rt, "writes")
				reads := rapid.SliceOfN(rapid.IntRange(1, 3*MinRingSize), 1, 20).Draw(rt, "reads")
				seed := rapid.Byte().Draw(rt, "seed")
				var want []byte
				for _, n := range writes {
					for range n {
						want = append(want, seed+byte(len(want)*7))
					}
				}
				// Write the stream in the drawn chunks while the peer
				// writes the same stream back the other way, concurrently.
				errc := make(chan error, 2)
				send := func(c *Conn) {
					off := 0
					for _, n := range writes {
						if _, err := c.Write(want[off : off+n]); err != nil {
							errc <- err
							return
						}
						off += n
					}
					errc <- c.CloseWrite()
				}
				go send(c1)
				go send(c2)
				recv := func(c *Conn) []byte {
					var got []byte
					for i := 0; ; i++ {
						buf := make([]byte, reads[i%len(reads)])
						n, err := c.Read(buf)
						got = append(got, buf[:n]...)
						if err == io.EOF {
							return got
						}
						if err != nil {
							rt.Fatalf("read: %v", err)
						}
						if n == 0 {
							rt.Fatal("Read returned 0 bytes and no error")
						}
					}
				}
				done := make(chan []byte, 1)
				go func() { done <- recv(c1) }()
				got2 := recv(c2)
				got1 := <-done
				for range 2 {
					if err := <-errc; err != nil {
						rt.Fatalf("write: %v", err)
					}
				}
				if !bytes.Equal(got2, want) || !bytes.Equal(got1, want) {
					rt.Fatalf("stream differs: sent %d bytes, got %d and %d", len(want), len(got2), len(got1))
				}
			})
		})
	}
}

// newPairRapid makes a small-ring pair for one rapid check and closes it
// when the check ends.
func newPairRapid(t *testing.T, rt *rapid.T, policy WaitPolicy) (*Conn, *Conn) {
	ln, err := (&ListenConfig{RingSize: MinRingSize, Wait: policy}).Listen(t.Context(), "unix", listenAddr(t, "unix"))
	if err != nil {
		rt.Fatal(err)
	}
	defer ln.Close()
	c1, c2, err := dialPair(ln, Dialer{RingSize: MinRingSize, Wait: policy})
	if err != nil {
		rt.Fatal(err)
	}
	rt.Cleanup(func() {
		c1.Close()
		c2.Close()
	})
	return c1, c2
}
