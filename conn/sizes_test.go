package conn

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"testing"
	"time"
)

// TestWriteSizesAroundBatches sends writes of every size around the
// ring's quarter (the consumer's consume batch), half (what a writer
// waits for) and whole, and beyond, through a ring of the least size,
// with Write, ReadFrom and WriteTo under both wait policies, the reader
// taking random amounts: every byte must arrive once, in order, and no
// side may wait for space or data that never comes.
func TestWriteSizesAroundBatches(t *testing.T) {
	for _, pol := range []WaitPolicy{WaitAdaptive, WaitSpin} {
		for _, mode := range []string{"rw", "readfrom", "writeto"} {
			t.Run(fmt.Sprint(pol, mode), func(t *testing.T) {
				a, b := newPair(t, "unix", ListenConfig{Wait: pol}, Dialer{RingSize: MinRingSize, Wait: pol, NoFallback: true})
				cp := a.ringSize()
				sizes := []int{1, 2, 63, 64, 65, cp/4 - 1, cp / 4, cp/4 + 1, cp/2 - 1, cp / 2, cp/2 + 1, 3*cp/4 + 1, cp - 1, cp, cp + 1, 2*cp + 3, 7*cp + 11}
				total := 0
				for _, s := range sizes {
					total += s
				}
				want := sizedPattern(total)
				errc := make(chan error, 1)
				go func() {
					off := 0
					for i, s := range sizes {
						var err error
						switch {
						case mode == "readfrom" && i%2 == 0:
							var n int64
							n, err = a.ReadFrom(bytes.NewReader(want[off : off+s]))
							if err == nil && int(n) != s {
								err = fmt.Errorf("readfrom %d of %d", n, s)
							}
						default:
							var n int
							n, err = a.Write(want[off : off+s])
							if err == nil && n != s {
								err = fmt.Errorf("write %d of %d", n, s)
							}
						}
						if err != nil {
							errc <- err
							return
						}
						off += s
						if i%3 == 0 {
							time.Sleep(time.Duration(rand.IntN(200)) * time.Microsecond)
						}
					}
					errc <- a.CloseWrite()
				}()
				got := make([]byte, 0, total)
				done := make(chan error, 1)
				go func() {
					if mode == "writeto" {
						var buf bytes.Buffer
						_, err := b.WriteTo(&jitterWriter{w: &buf})
						got = buf.Bytes()
						done <- err
						return
					}
					buf := make([]byte, cp*2)
					for {
						k := 1 + rand.IntN(len(buf))
						if rand.IntN(4) == 0 {
							k = 1 + rand.IntN(7)
						}
						n, err := b.Read(buf[:k])
						got = append(got, buf[:n]...)
						if err == io.EOF {
							done <- nil
							return
						}
						if err != nil {
							done <- err
							return
						}
						if rand.IntN(50) == 0 {
							time.Sleep(100 * time.Microsecond)
						}
					}
				}()
				select {
				case err := <-done:
					if err != nil {
						t.Fatal(err)
					}
				case <-time.After(20 * time.Second):
					t.Fatalf("hang: reader got %d of %d", len(got), total)
				}
				if err := <-errc; err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, want) {
					t.Fatalf("data mismatch: got %d bytes want %d", len(got), total)
				}
			})
		}
	}
}

// sizedPattern returns n bytes that differ from any shifted copy of
// themselves.
func sizedPattern(n int) []byte {
	r := rand.New(rand.NewPCG(uint64(n), 7))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// jitterWriter takes every write whole, sleeping now and then first, so
// that WriteTo meets a writer slower than the ring.
type jitterWriter struct{ w io.Writer }

func (s *jitterWriter) Write(p []byte) (int, error) {
	if rand.IntN(10) == 0 {
		time.Sleep(50 * time.Microsecond)
	}
	return s.w.Write(p)
}
