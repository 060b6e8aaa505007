// Package ring is a lock-free single-producer/single-consumer byte FIFO laid
// over memory the caller supplies: an ordinary []byte in one process, or a
// mapping shared by two processes.
//
// # Layout
//
// The memory starts with a ControlSize-byte control block, followed by the
// data area of capacity bytes (a power of two):
//
//	offset   0  tail           uint64  bytes ever written       (producer writes)
//	offset 128  head           uint64  bytes ever read          (consumer writes)
//	offset 256  writerWaiting  uint32  producer parked on full  (producer sets, consumer clears)
//	offset 260  writerClosed   uint32  no more bytes will come  (producer writes)
//	offset 384  readerWaiting  uint32  consumer parked on empty (consumer sets, producer clears)
//	offset 388  readerClosed   uint32  nobody will read again   (consumer writes)
//	offset 512  data           [capacity]byte
//
// The control block and the data area may also live apart (InitSplit,
// NewProducerSplit, NewConsumerSplit): the offsets above are then relative
// to the control block, and data is its own slice.
//
// Each group is FalseSharingRange (128) bytes from the next. The counters
// change on every call; the flags almost never, yet each side reads the
// other side's flags after every call (to learn whether a wake-up is
// owed). Keeping the flags off the counters' lines means those reads hit
// in the local cache instead of missing on a line the other core just
// wrote: one cross-core transfer per call instead of two.
//
// # Invariants
//
// head and tail are free-running uint64 counters that wrap at 2^64.
// Bytes [head, tail) are readable, at data index counter & (capacity-1), and
// 0 <= tail - head <= capacity. Only the producer advances tail and only the
// consumer advances head. Each side keeps its own counter in private memory
// as the authoritative copy and only ever stores it to the shared block, so
// a peer that scribbles over the block cannot move our counter; each side
// also caches the other side's counter and reloads it only when the cached
// value leaves too little for the call at hand (too little space for the
// producer, too few bytes for the consumer), which halves the cache-line
// traffic between the cores.
//
// # Ordering
//
// The producer copies bytes into the data area, then stores tail; the
// consumer loads tail, then copies bytes out, then stores head. The tail
// store publishes the bytes before it, and the head store returns the
// space before it. Both are release stores (atomicx.StoreRelease: an ordinary
// MOV on x86) and the loads are acquire loads, which is all the data
// needs. Across processes this rests on the hardware and on the atomics
// alone; the race detector cannot see the other process.
//
// # Waiting
//
// The ring does not block. It carries the flags for a sleep protocol: a
// consumer about to park calls PrepareWait, which stores readerWaiting
// with a full barrier (an atomic Swap) and then re-checks tail; a
// producer, after storing tail, calls WakeReader, which issues a full
// barrier and then loads readerWaiting and claims it. Each side stores,
// then fences, then loads, so at least one side always sees the other (the
// Dekker pattern): no wake-up is ever lost, and a parked side needs no
// timer to look again. The counter stores themselves stay release stores
// (an ordinary MOV on x86); the barrier is paid once per call that published
// something, on a line private to the caller. The same holds for a
// producer waiting for space (PrepareWait, WakeWriter).
//
// The flag's value says how the waiter wants to be woken: WaitPark (it
// parked where a wake-up message reaches it) or WaitDoze (it blocks its
// thread in a futex wait on the flag word itself, for a short bound, then
// moves the flag to WaitPark with a compare-and-swap and parks; if that
// fails the waker claimed the flag, and the waiter looks again instead).
// The waker claims whatever nonzero value it loaded and wakes by that
// kind; the ring only says which, the caller makes the system calls.
// Wake-ups may come late, twice or for nothing: a woken waiter always
// re-checks the ring.
//
// A consumer may return space in batches (SetConsumeBatch): it then stores
// head only once a batch has been read, and WakeWriter, with nothing
// stored since its last call, loads only readerClosed (a line the
// producer seldom writes) and issues no barrier. The Dekker argument
// still holds for every store it makes; what a producer gives up is a
// view of the last partial batch, which bounds how much it may wait for.
//
// The flag stores (PrepareWait, Close) stay full barriers: they are rare.
// A sync/atomic Store would not do for them: under the race detector
// it is only a release store, too weak for the Dekker pattern (a -race
// run of TestNoLostWakeups hangs with it).
//
// # Hostile peers
//
// Every counter loaded from the shared block is checked against the
// invariants before use. A value that breaks them (tail behind head, more
// than capacity bytes outstanding, a counter that moved backwards) makes
// the ring fail with ErrCorrupt, forever; it never causes an out-of-bounds
// access or a panic. The bytes themselves can still be changed by the peer
// while we copy them, which is the peer's own data to garble.
package ring

import (
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/shmconn/shmconn/atomicx"
	"github.com/shmconn/shmconn/internal/pow2"
)

// Offsets of the control block's fields, pinned by TestLayout: another
// implementation must use the same layout. Tests that play a hostile peer
// poke the fields through these names, never through numbers.
const (
	offTail          = 0
	offHead          = atomicx.FalseSharingRange
	offWriterWaiting = 2 * atomicx.FalseSharingRange
	offWriterClosed  = offWriterWaiting + 4
	offReaderWaiting = 3 * atomicx.FalseSharingRange
	offReaderClosed  = offReaderWaiting + 4

	// ControlSize is the size of the control block before the data area.
	ControlSize = 4 * atomicx.FalseSharingRange
)

// Capacity limits.
const (
	// MinCapacity is the smallest data area a ring may have.
	MinCapacity = 64
	// MaxCapacity is the largest data area a ring may have.
	MaxCapacity = 1 << 30
)

var (
	// ErrCorrupt means a counter in the shared control block broke the
	// ring's invariants: the peer is buggy or hostile. The ring is
	// unusable from then on.
	ErrCorrupt = errors.New("ring: shared counters are corrupt")
	// ErrCapacity means the memory given does not hold a control block
	// and a power-of-two data area within [MinCapacity, MaxCapacity].
	ErrCapacity = errors.New("ring: invalid capacity")
)

// errBeyond means Publish or Consume was asked for more bytes than the
// last Reserve or Peek handed out: a bug of the caller's, which no caller
// handles apart from other errors.
var errBeyond = errors.New("ring: publish or consume beyond what was reserved or peeked")

// Size returns the bytes of memory a ring with the given data capacity
// needs, or an error if capacity is not a power of two in range.
func Size(capacity int) (int, error) {
	if err := checkCapacity(capacity); err != nil {
		return 0, err
	}
	return ControlSize + capacity, nil
}

func checkCapacity(capacity int) error {
	if capacity < MinCapacity || capacity > MaxCapacity || !pow2.Is(capacity) {
		return fmt.Errorf("%w: %d is not a power of two in [%d, %d]", ErrCapacity, capacity, MinCapacity, MaxCapacity)
	}
	return nil
}

// Init prepares mem (Size bytes: the control block, then the data area)
// as an empty ring. Init must happen before either side attaches, and not
// while either is attached.
func Init(mem []byte) error { return initAt(mem, 0) }

// InitSplit is Init for a ring whose control block and data area are apart:
// ctrl is the ControlSize-byte control block and data the data area. A
// shared segment keeps all control blocks on one page this way, so a ring
// costs memory only where bytes were written.
func InitSplit(ctrl, data []byte) error { return initSplitAt(ctrl, data, 0) }

// initAt is Init with both counters at start: tests start near 2^64 to
// exercise wrap-around.
func initAt(mem []byte, start uint64) error {
	ctrl, data, err := split(mem)
	if err != nil {
		return err
	}
	return initSplitAt(ctrl, data, start)
}

func initSplitAt(ctrl, data []byte, start uint64) error {
	s, err := viewSplit(ctrl, data)
	if err != nil {
		return err
	}
	s.tail.Store(start)
	s.head.Store(start)
	s.writerWaiting.Store(0)
	s.writerClosed.Store(0)
	s.readerWaiting.Store(0)
	s.readerClosed.Store(0)
	return nil
}

// shared is the view of the control block and data area. Everything in it
// lives in memory the peer can write.
type shared struct {
	tail          *atomic.Uint64 // publishes bytes [head, tail) to the consumer
	writerWaiting *atomic.Uint32 // producer parked waiting for space
	writerClosed  *atomic.Uint32 // set after the final tail store: EOF
	head          *atomic.Uint64 // returns space [tail-capacity, head) to the producer
	readerWaiting *atomic.Uint32 // consumer parked waiting for bytes
	readerClosed  *atomic.Uint32 // consumer gone: writes are pointless
	data          []byte
	mask          uint64
}

func view(mem []byte) (shared, error) {
	ctrl, data, err := split(mem)
	if err != nil {
		return shared{}, err
	}
	return viewSplit(ctrl, data)
}

// split cuts a ring's memory into its control block and data area.
func split(mem []byte) (ctrl, data []byte, err error) {
	if len(mem) < ControlSize {
		return nil, nil, fmt.Errorf("%w: %d bytes of memory", ErrCapacity, len(mem))
	}
	return mem[:ControlSize], mem[ControlSize:], nil
}

func viewSplit(ctrl, data []byte) (shared, error) {
	capacity := len(data)
	if err := checkCapacity(capacity); err != nil {
		return shared{}, err
	}
	if len(ctrl) != ControlSize {
		return shared{}, fmt.Errorf("%w: control block of %d bytes, want %d", ErrCapacity, len(ctrl), ControlSize)
	}
	var s shared
	var errs [6]error
	s.tail, errs[0] = atomicx.Uint64At(ctrl, offTail)
	s.writerWaiting, errs[1] = atomicx.Uint32At(ctrl, offWriterWaiting)
	s.writerClosed, errs[2] = atomicx.Uint32At(ctrl, offWriterClosed)
	s.head, errs[3] = atomicx.Uint64At(ctrl, offHead)
	s.readerWaiting, errs[4] = atomicx.Uint32At(ctrl, offReaderWaiting)
	s.readerClosed, errs[5] = atomicx.Uint32At(ctrl, offReaderClosed)
	if err := errors.Join(errs[:]...); err != nil {
		return shared{}, err
	}
	s.data = data[:capacity:capacity]
	s.mask = uint64(capacity - 1)
	return s, nil
}

// Values of a waiting flag (readerWaiting, writerWaiting): how the waiter
// wants to be woken. A flag holding any other nonzero value (only a
// broken peer stores one) is claimed and woken as WaitPark.
const (
	// WaitNone: nobody waits.
	WaitNone uint32 = 0
	// WaitPark: the waiter is parked where a wake-up message reaches it
	// (package conn: a byte on the side socket).
	WaitPark uint32 = 1
	// WaitDoze: the waiter is blocked in a futex wait on the flag word
	// itself; wake it with a futex wake on that word.
	WaitDoze uint32 = 2
)

// takeTries bounds how often take retries a claim that lost to a change
// of the flag, so that a peer changing it in a loop cannot hold up our
// Write. A claim that keeps losing still owes a wake-up (an honest waiter
// that waits, dozes, looks and waits again changes the flag as often as
// it likes): take then answers WaitPark, a side-socket byte, which a
// parked waiter reads at once and a dozing one once its doze is over;
// a spurious one costs a look at the ring.
const takeTries = 3

// take claims a waiting flag after a counter store: it returns the value
// it claimed (the flag held it and this call cleared it), in which case
// the caller owes the waiter one wake-up of that kind, or WaitNone.
//
// The fence orders that release store before the flag's load: without it
// the load could be satisfied while the counter still sits in this core's
// store buffer, and a peer parking at that moment would miss the counter
// while we miss its flag. The fence is an atomic add on a word of the
// caller's own, in private memory (not the shared block), so it costs a
// locked instruction on a line the peer's process never touches; the
// line also holds the caller's private counter, which only a watcher
// goroutine of the caller's own process reads (HasSpace, Pending). The
// load before the CompareAndSwap keeps the common case (nobody waiting)
// to a read of a line that is usually already shared.
func take(fence *atomic.Uint32, flag *atomic.Uint32) uint32 {
	fence.Add(1)
	for range takeTries {
		v := flag.Load()
		if v == WaitNone {
			return WaitNone
		}
		if flag.CompareAndSwap(v, WaitNone) {
			if v == WaitDoze {
				return WaitDoze
			}
			return WaitPark
		}
	}
	return WaitPark
}

// prepare stores v in a waiting flag (a full barrier: see Waiting).
func prepare(flag *atomic.Uint32, v uint32) { flag.Swap(v) }

// cancel withdraws a wait announced in flag, whichever kind it was.
func cancel(flag *atomic.Uint32) {
	_ = flag.CompareAndSwap(WaitPark, WaitNone) || flag.CompareAndSwap(WaitDoze, WaitNone)
}

// endDoze turns a doze announced in flag into a park: it reports false
// if the flag no longer held WaitDoze (the peer claimed it and woke or is
// waking the doze): the caller must then look again instead of parking.
func endDoze(flag *atomic.Uint32) bool { return flag.CompareAndSwap(WaitDoze, WaitPark) }

// Producer is the writing end of a ring. It is safe for one goroutine at a
// time (one producer per ring, in one process); use a mutex in front of it
// for more.
type Producer struct {
	s shared

	// Owned by the producer.
	fence    atomic.Uint32 // a private word for take's barrier
	tail     uint64        // authoritative count of bytes written
	head     uint64        // cached consumer head; tail - head <= capacity
	reserved int           // bytes handed out by the last Reserve
	err      error         // sticky ErrCorrupt: later calls fail with it
}

// NewProducer attaches a producer to an initialized ring.
func NewProducer(mem []byte) (*Producer, error) {
	s, err := view(mem)
	if err != nil {
		return nil, err
	}
	return newProducer(s)
}

// NewProducerSplit attaches a producer to a ring made by InitSplit.
func NewProducerSplit(ctrl, data []byte) (*Producer, error) {
	s, err := viewSplit(ctrl, data)
	if err != nil {
		return nil, err
	}
	return newProducer(s)
}

func newProducer(s shared) (*Producer, error) {
	p := &Producer{s: s, tail: s.tail.Load(), head: s.head.Load()}
	if p.tail-p.head > uint64(len(s.data)) {
		return nil, fmt.Errorf("%w: tail %d, head %d at attach", ErrCorrupt, p.tail, p.head)
	}
	return p, nil
}

// Cap returns the data capacity in bytes.
func (p *Producer) Cap() int { return len(p.s.data) }

// free returns the free bytes, reloading the consumer's head only when the
// cached value says the ring is fuller than the caller needs.
func (p *Producer) free(want uint64) (uint64, error) {
	if p.err != nil {
		return 0, p.err
	}
	capacity := uint64(len(p.s.data))
	if f := capacity - (p.tail - p.head); f >= want {
		return f, nil
	}
	h := p.s.head.Load()
	// head must lie in [old head, tail]: it never moves backwards and never
	// passes tail. Both checks are needed: a huge forward jump would pass
	// the first only.
	if h-p.head > p.tail-p.head {
		p.err = fmt.Errorf("%w: consumer head %d outside [%d, %d]", ErrCorrupt, h, p.head, p.tail)
		return 0, p.err
	}
	p.head = h
	return capacity - (p.tail - h), nil
}

// Write copies as much of b as fits and publishes it with one counter
// store. It never blocks: n < len(b) means the ring is full.
func (p *Producer) Write(b []byte) (n int, err error) {
	f, err := p.free(uint64(len(b)))
	if err != nil || f == 0 || len(b) == 0 {
		return 0, err
	}
	if uint64(len(b)) > f {
		b = b[:f]
	}
	i := p.tail & p.s.mask
	n = copy(p.s.data[i:], b)
	if n < len(b) {
		n += copy(p.s.data, b[n:])
	}
	p.reserved = 0
	p.publish(uint64(n))
	return n, nil
}

func (p *Producer) publish(n uint64) {
	p.tail += n
	atomicx.StoreRelease(p.s.tail, p.tail) // see Waiting for why not a full barrier
}

// Reserve returns the largest contiguous free region, at most max bytes,
// for the caller to fill and then Publish. It is empty when the ring is
// full. The region ends at the end of the data area; call again after
// Publish for the part that wraps to the start.
func (p *Producer) Reserve(max int) ([]byte, error) {
	p.reserved = 0
	if max <= 0 {
		return nil, p.err
	}
	f, err := p.free(uint64(max))
	if err != nil {
		return nil, err
	}
	i := p.tail & p.s.mask
	n := min(f, uint64(max), uint64(len(p.s.data))-i)
	p.reserved = int(n)
	return p.s.data[i : i+n : i+n], nil
}

// Publish makes the first n bytes of the region the last Reserve returned
// visible to the consumer. The caller must not touch that region
// afterwards.
func (p *Producer) Publish(n int) error {
	if p.err != nil {
		return p.err
	}
	if n < 0 || n > p.reserved {
		return fmt.Errorf("%w: publish %d of %d", errBeyond, n, p.reserved)
	}
	p.reserved = 0
	if n > 0 {
		p.publish(uint64(n))
	}
	return nil
}

// HasSpace reports whether want bytes are free or the consumer has closed.
// It only reads shared memory and the producer's private tail, so another
// goroutine may call it while the producer's owner is parked (with a
// happens-before edge to the owner, such as a mutex). It does not validate
// the head: a corrupt one may make it report true (the owner's next call
// then returns ErrCorrupt) or false (the owner waits, as for a peer that
// stopped reading, until its deadline or close).
func (p *Producer) HasSpace(want int) bool {
	return uint64(len(p.s.data))-(p.tail-p.s.head.Load()) >= uint64(want) || p.ReaderClosed()
}

// Close tells the consumer no more bytes will come: once it has read
// everything before this call, it sees end of stream.
func (p *Producer) Close() { p.s.writerClosed.Swap(1) }

// ReaderClosed reports whether the consumer has said it will never read
// again.
func (p *Producer) ReaderClosed() bool { return p.s.readerClosed.Load() != 0 }

// WakeReader must be called after bytes are published or after Close. It
// returns the consumer's waiting flag if the consumer had parked or was
// dozing (and this call claimed the flag), in which case the caller must
// wake it once, as the value says (WaitPark or WaitDoze; the word to wake
// a doze on is ReaderWord); WaitNone otherwise.
func (p *Producer) WakeReader() uint32 { return take(&p.fence, p.s.readerWaiting) }

// ReaderWord is the consumer's waiting flag, the word a dozing consumer
// waits on: the caller of a WakeReader that returned WaitDoze wakes it.
func (p *Producer) ReaderWord() *atomic.Uint32 { return p.s.readerWaiting }

// PrepareWait announces that the producer is about to park until space
// frees up. It then re-checks: if want bytes are free already, or the
// consumer has closed, it withdraws the announcement and returns false, and
// the caller must not park. If it returns true the caller may park until
// woken (see Waiting), and must still bound the park: a dead consumer
// never wakes it.
func (p *Producer) PrepareWait(want int) bool { return p.prepareWait(want, WaitPark) }

// PrepareDoze is PrepareWait for a producer that will block in a futex
// wait on its flag word (Word) while the word holds WaitDoze. To park
// after the doze it calls EndDoze; to give up, CancelWait.
func (p *Producer) PrepareDoze(want int) bool { return p.prepareWait(want, WaitDoze) }

func (p *Producer) prepareWait(want int, v uint32) bool {
	prepare(p.s.writerWaiting, v)
	f, err := p.free(uint64(want))
	if err != nil || f >= uint64(want) || p.ReaderClosed() {
		p.CancelWait()
		return false
	}
	return true
}

// EndDoze turns the doze PrepareDoze announced into a park, as if
// PrepareWait had announced it. It returns false if the consumer claimed
// the flag meanwhile (its wake-up is on its way, or came): the caller must
// not park, but look again.
func (p *Producer) EndDoze() bool { return endDoze(p.s.writerWaiting) }

// Word is the producer's waiting flag, the word it dozes on.
func (p *Producer) Word() *atomic.Uint32 { return p.s.writerWaiting }

// CancelWait withdraws a PrepareWait or PrepareDoze, so the consumer does
// not pay for a wake-up nobody waits for.
func (p *Producer) CancelWait() { cancel(p.s.writerWaiting) }

// Consumer is the reading end of a ring. It is safe for one goroutine at a
// time.
type Consumer struct {
	s shared

	// Owned by the consumer.
	fence  atomic.Uint32 // a private word for take's barrier
	head   uint64        // authoritative count of bytes read
	tail   uint64        // cached producer tail; tail - head <= capacity
	peeked int           // bytes handed out by the last Peek
	err    error         // sticky ErrCorrupt: later calls fail with it

	storedHead uint64 // head as last stored in the shared block
	batch      uint64 // see SetConsumeBatch; 0 stores head on every consume
	stored     bool   // head was stored since the last WakeWriter
}

// NewConsumer attaches a consumer to an initialized ring.
func NewConsumer(mem []byte) (*Consumer, error) {
	s, err := view(mem)
	if err != nil {
		return nil, err
	}
	return newConsumer(s)
}

// NewConsumerSplit attaches a consumer to a ring made by InitSplit.
func NewConsumerSplit(ctrl, data []byte) (*Consumer, error) {
	s, err := viewSplit(ctrl, data)
	if err != nil {
		return nil, err
	}
	return newConsumer(s)
}

func newConsumer(s shared) (*Consumer, error) {
	h := s.head.Load()
	c := &Consumer{s: s, head: h, storedHead: h, tail: s.tail.Load()}
	if c.tail-c.head > uint64(len(s.data)) {
		return nil, fmt.Errorf("%w: tail %d, head %d at attach", ErrCorrupt, c.tail, c.head)
	}
	return c, nil
}

// Cap returns the data capacity in bytes.
func (c *Consumer) Cap() int { return len(c.s.data) }

// avail returns the readable bytes, reloading the producer's tail only when
// the cached value shows fewer than want.
func (c *Consumer) avail(want uint64) (uint64, error) {
	if c.err != nil {
		return 0, c.err
	}
	if a := c.tail - c.head; a >= want && a > 0 {
		return a, nil
	}
	t := c.s.tail.Load()
	// tail must lie in [old tail, head+capacity]: it never moves backwards
	// and never runs more than capacity ahead of head.
	if t-c.tail > c.head+uint64(len(c.s.data))-c.tail {
		c.err = fmt.Errorf("%w: producer tail %d outside [%d, %d]", ErrCorrupt, t, c.tail, c.head+uint64(len(c.s.data)))
		return 0, c.err
	}
	c.tail = t
	return t - c.head, nil
}

// Len returns how many bytes can be read now.
func (c *Consumer) Len() (int, error) {
	a, err := c.avail(uint64(len(c.s.data)))
	return int(a), err
}

// Read copies up to len(b) readable bytes into b and returns the space with
// one counter store. It never blocks: n == 0 means the ring is empty.
func (c *Consumer) Read(b []byte) (n int, err error) {
	a, err := c.avail(uint64(len(b)))
	if err != nil || a == 0 || len(b) == 0 {
		return 0, err
	}
	if uint64(len(b)) > a {
		b = b[:a]
	}
	i := c.head & c.s.mask
	n = copy(b, c.s.data[i:])
	if n < len(b) {
		n += copy(b[n:], c.s.data)
	}
	c.peeked = 0
	c.consume(uint64(n))
	return n, nil
}

func (c *Consumer) consume(n uint64) {
	c.head += n
	if c.head-c.storedHead >= c.batch {
		c.storeHead()
	}
}

// storeHead stores head, returning the space read so far to the producer.
func (c *Consumer) storeHead() {
	atomicx.StoreRelease(c.s.head, c.head)
	c.storedHead = c.head
	c.stored = true
}

// SetConsumeBatch makes the consumer return space to the producer in
// batches of at least n bytes instead of after every read: a read then
// stores nothing to the shared block and needs no barrier, which takes a
// cross-core transfer and a barrier's wait off every message of a
// request-response exchange. The producer sees up to n-1 bytes less free
// space than there is, so a producer that waits for space must not wait
// for more than Cap()-n bytes, or it may wait for space the consumer has
// no reason to return: with n <= Cap()/4 and waits for at most Cap()/2
// (what package conn does), a parked producer always leaves more than n
// unread bytes behind, whose reading returns a batch and wakes it. n is
// clamped to [0, Cap()/4].
func (c *Consumer) SetConsumeBatch(n int) {
	c.batch = uint64(min(max(n, 0), len(c.s.data)/4))
	if c.head != c.storedHead {
		c.storeHead()
	}
}

// Offset returns where in the data area the next byte to read lies: the
// consumer's head modulo the capacity. Bytes [head, tail) lie from there
// on, wrapping at the end of the area.
func (c *Consumer) Offset() int { return int(c.head & c.s.mask) }

// Peek returns the largest contiguous readable region (empty when the ring
// is empty) without consuming it. The region aliases the shared data area:
// it stays valid until Consume, and a hostile producer can change it under
// the caller. Call again after Consume for the part that wraps.
func (c *Consumer) Peek() ([]byte, error) {
	c.peeked = 0
	a, err := c.avail(1)
	if err != nil {
		return nil, err
	}
	i := c.head & c.s.mask
	n := min(a, uint64(len(c.s.data))-i)
	c.peeked = int(n)
	return c.s.data[i : i+n : i+n], nil
}

// Consume consumes the first n bytes of the region the last Peek returned,
// handing the space back to the producer. It may be called again for the
// bytes of that region after them, up to its end.
func (c *Consumer) Consume(n int) error {
	if c.err != nil {
		return c.err
	}
	if n < 0 || n > c.peeked {
		return fmt.Errorf("%w: consume %d of %d", errBeyond, n, c.peeked)
	}
	c.peeked -= n
	if n > 0 {
		c.consume(uint64(n))
	}
	return nil
}

// Pending reports whether bytes are readable or the producer has closed.
// Like Producer.HasSpace it only reads, for a watcher goroutine while the
// consumer's owner is parked; a corrupt tail makes it report true.
func (c *Consumer) Pending() bool {
	// Start fetching the line the next bytes land on while we look at
	// the tail: a waiter that sees the tail move then finds the bytes
	// on their way or there, one cross-core transfer instead of two in
	// a row.
	atomicx.Prefetch(&c.s.data[c.head&c.s.mask])
	return c.s.tail.Load() != c.head || c.WriterClosed()
}

// Close tells the producer nobody will read again. It is one atomic
// store, safe beside a call of the consumer's owner.
func (c *Consumer) Close() { c.s.readerClosed.Swap(1) }

// WriterClosed reports whether the producer has closed. Bytes published
// before its Close are still readable: check Len again after seeing true.
func (c *Consumer) WriterClosed() bool { return c.s.writerClosed.Load() != 0 }

// WakeWriter must be called after bytes are consumed or after Close. It
// returns the producer's waiting flag if the producer had parked or was
// dozing (and this call claimed the flag), in which case the caller must
// wake it once, as the value says (the word to wake a doze on is
// WriterWord); WaitNone otherwise. When no space was
// returned since the last call (see SetConsumeBatch) it loads only
// readerClosed, not writerWaiting, and issues no barrier: a producer that
// parked since then saw the same head as before, and the batch that will
// wake it is still to come (after Close it always looks).
func (c *Consumer) WakeWriter() uint32 {
	if !c.stored && c.s.readerClosed.Load() == 0 {
		return WaitNone
	}
	c.stored = false
	return take(&c.fence, c.s.writerWaiting)
}

// WriterWord is the producer's waiting flag, the word a dozing producer
// waits on: the caller of a WakeWriter that returned WaitDoze wakes it.
func (c *Consumer) WriterWord() *atomic.Uint32 { return c.s.writerWaiting }

// PrepareWait announces that the consumer is about to park until bytes
// arrive, then re-checks. It returns false (and withdraws the
// announcement) if bytes are readable already or the producer has closed:
// the caller must not park then. A parked caller must still bound the
// park: a dead producer never wakes it.
func (c *Consumer) PrepareWait() bool { return c.prepareWait(WaitPark) }

// PrepareDoze is PrepareWait for a consumer that will block in a futex
// wait on its flag word (Word) while the word holds WaitDoze. To park
// after the doze it calls EndDoze; to give up, CancelWait.
func (c *Consumer) PrepareDoze() bool { return c.prepareWait(WaitDoze) }

func (c *Consumer) prepareWait(v uint32) bool {
	prepare(c.s.readerWaiting, v)
	a, err := c.avail(1)
	if err != nil || a > 0 || c.WriterClosed() {
		c.CancelWait()
		return false
	}
	return true
}

// EndDoze turns the doze PrepareDoze announced into a park, as if
// PrepareWait had announced it. It returns false if the producer claimed
// the flag meanwhile (its wake-up is on its way, or came): the caller must
// not park, but look again.
func (c *Consumer) EndDoze() bool { return endDoze(c.s.readerWaiting) }

// Word is the consumer's waiting flag, the word it dozes on.
func (c *Consumer) Word() *atomic.Uint32 { return c.s.readerWaiting }

// CancelWait withdraws a PrepareWait or PrepareDoze.
func (c *Consumer) CancelWait() { cancel(c.s.readerWaiting) }
