package conn_test

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/shmconn/shmconn/conn"
)

// A server listens with Listen and accepts conns as from any
// net.Listener; a client dials with a Dialer. Both ends then hold a
// net.Conn whose bytes travel through shared memory.
func Example() {
	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)
	sock := filepath.Join(dir, "echo.sock")

	ln, err := conn.Listen("unix", sock)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer ln.Close()
	go func() { // an echo server for one client
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		io.Copy(c, c)
	}()

	var d conn.Dialer // the zero value has the defaults
	c, err := d.DialContext(context.Background(), "unix", sock)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()
	_, shared := c.(*conn.Conn) // not a *conn.Conn: it fell back to the socket
	fmt.Println("shared memory:", shared)

	fmt.Fprintln(c, "hello")
	line, _ := bufio.NewReader(c).ReadString('\n')
	fmt.Print(line)
	// Output:
	// shared memory: true
	// hello
}

// net/http runs over shared memory when the server serves on a Listener
// and the client's Transport dials with a Dialer: DialContext has the
// signature Transport.DialContext takes. (go-redis takes the same in
// Options.Dialer; the example module shows it in examples/shm-redis-server.)
func ExampleDialer_DialContext_httpTransport() {
	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)
	sock := filepath.Join(dir, "http.sock")

	ln, err := conn.Listen("unix", sock)
	if err != nil {
		fmt.Println(err)
		return
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello from %s", r.URL.Path)
	})}
	served := make(chan struct{})
	go func() {
		defer close(served)
		srv.Serve(ln)
	}()
	defer func() {
		srv.Shutdown(context.Background())
		<-served
	}()

	d := &conn.Dialer{}
	client := &http.Client{Transport: &http.Transport{
		// The URL's host is ignored: every request goes to the socket.
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return d.DialContext(ctx, "unix", sock)
		},
	}}
	defer client.CloseIdleConnections()
	resp, err := client.Get("http://shm/greeting")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	fmt.Println(string(body))
	// Output: hello from /greeting
}

// CloseWrite ends the stream in one direction: the peer reads what was
// written, then io.EOF, and can still answer. Here the client sends a
// request of unknown length and signals its end by closing its side.
func ExampleConn_CloseWrite() {
	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)
	sock := filepath.Join(dir, "upper.sock")

	ln, err := conn.Listen("unix", sock)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer ln.Close()
	go func() { // reads everything, then answers in upper case
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		req, _ := io.ReadAll(c) // until the client's CloseWrite
		io.WriteString(c, strings.ToUpper(string(req)))
	}()

	c, err := conn.Dial("unix", sock)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()
	io.WriteString(c, "shared ")
	io.WriteString(c, "memory")
	if cw, ok := c.(interface{ CloseWrite() error }); ok { // *conn.Conn, or the fallback's *net.UnixConn
		cw.CloseWrite()
	}
	resp, _ := io.ReadAll(c)
	fmt.Println(string(resp))
	// Output: SHARED MEMORY
}

// io.Copy between a *Conn and a file or socket copies each byte once: it
// calls the conn's ReadFrom, which reads straight into the ring, and
// WriteTo, which writes straight out of it. Here a server stores what a
// client uploads and says how much arrived.
func ExampleConn_ReadFrom() {
	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)
	sock := filepath.Join(dir, "upload.sock")

	ln, err := conn.Listen("unix", sock)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		f, _ := os.Create(filepath.Join(dir, "upload"))
		defer f.Close()
		n, _ := io.Copy(f, c) // c.WriteTo(f), until the client's CloseWrite
		fmt.Fprintf(c, "stored %d bytes", n)
	}()

	c, err := conn.Dial("unix", sock)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()
	upload := strings.NewReader(strings.Repeat("0123456789", 100_000))
	io.Copy(c, struct{ io.Reader }{upload}) // c.ReadFrom (strings.Reader's WriteTo hidden)
	c.(*conn.Conn).CloseWrite()
	resp, _ := io.ReadAll(c)
	fmt.Println(string(resp))
	// Output: stored 1000000 bytes
}

// A WaitPolicy is a flag with flag.TextVar (or a field of any config read
// through encoding.TextUnmarshaler).
func ExampleWaitPolicy_UnmarshalText() {
	fs := flag.NewFlagSet("server", flag.ContinueOnError)
	var d conn.Dialer
	fs.TextVar(&d.Wait, "wait", conn.WaitAdaptive, "how blocked calls wait: adaptive or spin")
	fs.Parse([]string{"-wait", "spin"})
	fmt.Println(d.Wait)
	// Output: spin
}

// A Dialer read from JSON takes the policy's name, or the number that
// configs written before the name hold.
func ExampleWaitPolicy_UnmarshalJSON() {
	for _, config := range []string{`{"Wait":"spin"}`, `{"Wait":1}`} {
		var d conn.Dialer
		if err := json.Unmarshal([]byte(config), &d); err != nil {
			fmt.Println(err)
			continue
		}
		b, _ := json.Marshal(struct{ Wait conn.WaitPolicy }{d.Wait})
		fmt.Println(d.Wait, string(b))
	}
	// Output:
	// spin {"Wait":"spin"}
	// spin {"Wait":"spin"}
}
