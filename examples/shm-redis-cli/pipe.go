package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
)

// pipeMode is --pipe: standard input, already in Redis protocol (or
// inline commands), goes to the server as it is, while the replies are
// counted. As redis-cli does, it ends the input with ECHO of a random
// marker, so the marker's echo tells it the last reply has come. Error
// replies go to standard error; the exit code is 1 if there were any.
func pipeMode(ctx context.Context, c *client, std stdio) int {
	var m [20]byte
	rand.Read(m[:])
	marker := hex.EncodeToString(m[:])
	input, err := io.ReadAll(std.in)
	if err != nil {
		fmt.Fprintln(std.err, "redis-cli: reading standard input:", err)
		return 1
	}
	if len(input) > 0 && !bytes.HasSuffix(input, []byte("\n")) {
		input = append(input, '\r', '\n')
	}
	input = AppendCommand(input, "ECHO", marker)

	// Replies are read while the input is written, or a large input would
	// fill both directions' buffers and stall.
	type result struct {
		replies, errors int
		err             error
	}
	done := make(chan result, 1)
	go func() {
		var res result
		for {
			rep, err := ReadReply(c.r)
			if err != nil {
				res.err = err
				break
			}
			if rep.Kind == Bulk && rep.Str == marker {
				break
			}
			res.replies++
			if rep.Kind == Error {
				res.errors++
				fmt.Fprintln(std.err, rep.Str)
			}
		}
		done <- res
	}()
	c.mu.Lock()
	nc := c.c
	c.mu.Unlock()
	if _, err := nc.Write(input); err != nil {
		c.close()
		<-done
		return ioError(ctx, std, err)
	}
	fmt.Fprintln(std.out, "All data transferred. Waiting for the last reply...")
	res := <-done
	if res.err != nil {
		return ioError(ctx, std, res.err)
	}
	fmt.Fprintln(std.out, "Last reply received from server.")
	fmt.Fprintf(std.out, "errors: %d, replies: %d\n", res.errors, res.replies)
	if res.errors > 0 {
		return 1
	}
	return 0
}
