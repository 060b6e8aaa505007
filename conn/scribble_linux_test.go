//go:build linux

package conn

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The peer process scribbles over the ring while the reader or writer of
// an io.Copy runs in the listener's process: what that code checked, kept
// or logged must be what was published or produced, not the scribble.
// The scribbler is a raw dialer in a process of its own, over both
// transports (TestCopyHandsOutPrivateBytes shows the same in one process).

// scribbleMsg is what the parent publishes, or the child's source
// produces.
const (
	scribbleMsg = "bytes the listener checks"
	scribbleLen = len(scribbleMsg)
)

func init() {
	for _, network := range []string{"unix", "tcp"} {
		memoryRoles["scribble-writeto-"+network] = func(string) error { return scribbleListener(network, true) }
		memoryRoles["scribble-readfrom-"+network] = func(string) error { return scribbleListener(network, false) }
	}
}

// scribbleListener accepts one conn over network and, with writeTo, copies it
// into a writer that checks its bytes, waits for a line on stdin, and
// prints "result: " and the bytes it then holds; otherwise it copies into
// it an io.TeeReader of a source that produces scribbleMsg, waits for the
// line inside its Read, and prints "result: " and the tee's log.
func scribbleListener(network string, writeTo bool) error {
	c, stop, err := acceptAnnounced(network)
	if err != nil {
		return err
	}
	defer stop()
	stdin := bufio.NewScanner(os.Stdin)
	waitParent := func() {
		fmt.Println("scribble now")
		stdin.Scan()
	}
	if writeTo {
		var kept []byte
		_, err = io.Copy(writerFunc(func(p []byte) (int, error) {
			if string(p) == scribbleMsg { // the check
				waitParent()
				kept = append(kept, p...) // the store
			}
			return len(p), nil
		}), c)
		fmt.Printf("result: %s (%v)\n", kept, err)
		return nil
	}
	calls := 0
	source := readerFunc(func(p []byte) (int, error) {
		if calls++; calls > 1 {
			return 0, io.EOF
		}
		n := copy(p, scribbleMsg)
		waitParent()
		return n, nil
	})
	var log bytes.Buffer
	_, err = io.Copy(c, io.TeeReader(source, &log))
	fmt.Printf("result: %s (%v)\n", log.Bytes(), err)
	return nil
}

// TestProcessScribbleUnderCopy: a peer process that scribbles over the
// ring changes neither the bytes a WriteTo's writer checked and kept nor
// what a ReadFrom's reader produced, as its io.TeeReader logs it and as the
// peer itself reads it.
func TestProcessScribbleUnderCopy(t *testing.T) {
	for _, tc := range []struct{ network, how string }{
		{"unix", "writeto"}, {"unix", "readfrom"}, {"tcp", "writeto"}, {"tcp", "readfrom"},
	} {
		how := tc.how
		t.Run(tc.network+"/"+how, func(t *testing.T) {
			var toChild io.WriteCloser
			cmd, stderr, lines, side, seg, _ := hostileDial(t, tc.network, "scribble-"+how+"-"+tc.network, func(cmd *exec.Cmd) {
				var err error
				toChild, err = cmd.StdinPipe()
				require.NoError(t, err)
			})
			p := &rawPeer{side: side, seg: seg, cap: MinRingSize}
			ring := seg.Data(1) // the listener writes into direction 1
			if how == "writeto" {
				p.publish(t, []byte(scribbleMsg))
				ring = seg.Data(0)
			}
			require.True(t, lines.Scan(), "the child's call of the reader or writer")
			require.Equal(t, "scribble now", lines.Text())
			scribble(ring[:scribbleLen])
			_, err := io.WriteString(toChild, "go\n")
			require.NoError(t, err)
			if how == "readfrom" {
				tail := u64(t, p.in(), specTail)
				require.Eventually(t, func() bool { return tail.Load() == uint64(scribbleLen) }, 10*time.Second, time.Millisecond)
				require.Equal(t, scribbleMsg, string(ring[:scribbleLen]), "what the peer reads")
			}
			u32(t, p.out(), specWriterClosed).Store(1) // an orderly end of the stream, for the writer's copy
			require.NoError(t, side.Close())
			require.Equal(t, "result: "+scribbleMsg+" (<nil>)", childResult(t, cmd, stderr, lines))
		})
	}
}
