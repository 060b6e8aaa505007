package ring_test

import (
	"fmt"
	"runtime"

	"github.com/shmconn/shmconn/ring"
)

// A ring over an ordinary []byte, with a producer and a consumer in one
// process. Across processes mem would be a shared mapping instead (package
// segment makes one); the calls are the same. Neither side ever blocks:
// Write reports how much fitted and Read how much there was.
func Example() {
	size, err := ring.Size(64) // 64 bytes of data plus the control block
	if err != nil {
		fmt.Println(err)
		return
	}
	mem := make([]byte, size)
	if err := ring.Init(mem); err != nil {
		fmt.Println(err)
		return
	}
	p, _ := ring.NewProducer(mem)
	c, _ := ring.NewConsumer(mem)

	n, _ := p.Write([]byte("hello, ring"))
	fmt.Println("wrote", n)
	buf := make([]byte, 64)
	n, _ = c.Read(buf)
	fmt.Printf("read %d: %s\n", n, buf[:n])
	// Output:
	// wrote 11
	// read 11: hello, ring
}

// A producer goroutine streams more bytes than the ring holds to a
// consumer goroutine. Each side retries when the ring is full or empty;
// this example yields, where package conn waits by its WaitPolicy.
func Example_stream() {
	size, _ := ring.Size(64)
	mem := make([]byte, size)
	ring.Init(mem)
	p, _ := ring.NewProducer(mem)
	c, _ := ring.NewConsumer(mem)

	const total = 1000
	go func() {
		msg := make([]byte, total)
		for i := range msg {
			msg[i] = byte(i)
		}
		for len(msg) > 0 {
			n, err := p.Write(msg)
			if err != nil {
				return
			}
			msg = msg[n:]
			if n == 0 {
				runtime.Gosched() // full: let the consumer run
			}
		}
		p.Close() // no more bytes will come
	}()

	got, sum := 0, 0
	buf := make([]byte, 64)
	for got < total {
		n, err := c.Read(buf)
		if err != nil {
			fmt.Println(err)
			return
		}
		for _, b := range buf[:n] {
			sum += int(b)
		}
		got += n
		if n == 0 {
			runtime.Gosched() // empty: let the producer run
		}
	}
	fmt.Println("received", got, "bytes, sum", sum)
	// Output: received 1000 bytes, sum 124716
}
