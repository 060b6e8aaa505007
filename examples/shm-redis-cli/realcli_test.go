package main

import (
	"bytes"
	"context"
	"flag"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/shmconn/shmconn/internal/testutil"
)

// cliChildEnv, set in the environment, makes the test binary run this
// redis-cli's main instead of the tests, so that a test can send it
// signals as to any process.
const cliChildEnv = "SHMCONN_REDIS_CLI_CHILD"

func init() {
	if os.Getenv(cliChildEnv) == "1" {
		main() // exits
	}
}

// realCLI returns the path of the real redis-cli, or skips the test.
func realCLI(t *testing.T) string {
	path, err := exec.LookPath("redis-cli")
	if err != nil {
		t.Skip("redis-cli not installed; CI installs redis-tools (apt-get install redis-tools)")
	}
	return path
}

// oursCmd is this redis-cli as a command of its own.
func oursCmd(t *testing.T, args ...string) *exec.Cmd {
	return testutil.SelfCommand(t, cliChildEnv, args...)
}

// subscribeRun runs cmd, a redis-cli in subscribe mode, until its output
// has ready lines, publishes msgs to channel ch1 through s, waits for
// them, sends SIGINT and returns the output and how the process ended:
// "SIGINT" if killed by it or with status 130 (what a shell shows for
// it), else its exit status.
func subscribeRun(t *testing.T, s *server, cmd *exec.Cmd, ready int, msgs ...string) (out, end string) {
	t.Helper()
	var buf testutil.SyncBuffer
	cmd.Stdout = &buf
	require.NoError(t, cmd.Start())
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	defer func() { cmd.Process.Kill(); <-exited }()
	lines := func() int { return strings.Count(buf.String(), "\n") }
	require.Eventually(t, func() bool { return lines() >= ready }, 20*time.Second, 5*time.Millisecond, "output %q", buf.String())
	for _, m := range msgs {
		require.Equal(t, "1\n", mustCLI(t, join(s.unix(), []string{"PUBLISH", "ch1", m})...))
	}
	require.Eventually(t, func() bool { return strings.Contains(buf.String(), msgs[len(msgs)-1]) }, 20*time.Second, 5*time.Millisecond,
		"no message in %q", buf.String())
	time.Sleep(50 * time.Millisecond) // anything else that would come
	require.NoError(t, cmd.Process.Signal(syscall.SIGINT))
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		t.Fatalf("%s did not exit on SIGINT", cmd.Path)
	}
	st := cmd.ProcessState.Sys().(syscall.WaitStatus)
	if st.Signaled() && st.Signal() == syscall.SIGINT || st.ExitStatus() == 130 {
		return buf.String(), "SIGINT"
	}
	return buf.String(), cmd.ProcessState.String()
}

// TestSubscribeLikeRealCLI runs SUBSCRIBE and PSUBSCRIBE, given on the
// command line and typed at the prompt, formatted and raw, in the real
// redis-cli and in this one: both say "Reading messages..." (formatted
// only), print the subscriptions and then each published message as it
// comes, until Ctrl-C ends them. The output must be the same, and so
// must the exit: killed by SIGINT in command mode, status 0 at the prompt.
func TestSubscribeLikeRealCLI(t *testing.T) {
	real := realCLI(t)
	s := startServer(t)
	for _, tc := range []struct {
		name  string
		flags []string
		cmd   string
		stdin bool
		ready int // lines before the messages
	}{
		{"command", []string{"--no-raw"}, "SUBSCRIBE ch1 ch2", false, 1 + 6},
		{"command raw", nil, "SUBSCRIBE ch1", false, 3},
		{"prompt", []string{"--no-raw"}, "PSUBSCRIBE ch? x*", true, 1 + 6},
		{"prompt raw", nil, "SUBSCRIBE ch1 ch2", true, 6},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := join(s.unix(), tc.flags)
			if !tc.stdin {
				args = join(args, strings.Fields(tc.cmd))
			}
			var outs, ends []string
			for _, cmd := range []*exec.Cmd{exec.Command(real, args...), oursCmd(t, args...)} {
				if tc.stdin {
					cmd.Stdin = strings.NewReader(tc.cmd + "\n")
				}
				out, end := subscribeRun(t, s, cmd, tc.ready, "hello", "world")
				outs, ends = append(outs, out), append(ends, end)
			}
			require.Equal(t, outs[0], outs[1], "real redis-cli vs this one")
			require.Equal(t, ends[0], ends[1], "how Ctrl-C ended the real redis-cli vs this one")
			require.Contains(t, outs[1], "hello")
			require.Contains(t, outs[1], "world")
			require.Equal(t, !slices.Contains(tc.flags, "--no-raw"), !strings.HasPrefix(outs[1], "Reading messages... (press Ctrl-C to quit)\n"))
		})
	}
}

// TestHelpAndClearLikeRealCLI types help, clear and help on a command at
// the prompt of both redis-clis: neither sends them to the server (which
// would answer "unknown command"); clear writes the same escape
// sequence; the generic help is the real one's, less what this cli lacks
// (completion and hints); help on a command, from the server's COMMAND
// DOCS, is the real one's.
func TestHelpAndClearLikeRealCLI(t *testing.T) {
	real := realCLI(t)
	s := startServer(t)
	input := "help\nclear\nhelp get\nPING\n"
	cmd := exec.Command(real, s.unix()...)
	cmd.Stdin = strings.NewReader(input)
	want, err := cmd.Output()
	require.NoError(t, err)
	got, errOut, code := cli(context.Background(), input, false, s.unix()...)
	require.Equal(t, 0, code, errOut)
	for _, out := range []string{string(want), got} {
		require.Equal(t, 1, strings.Count(out, clearScreen), "%q", out)
		require.NotContains(t, out, "unknown command")
		require.Contains(t, out, "PONG\n")
		require.Contains(t, out, "\r\n  \x1b[1mGET\x1b[0m")
		require.Regexp(t, "\r\n  \x1b\\[33msummary:\x1b\\[0m .+\r\n  \x1b\\[33msince:\x1b\\[0m 1\\.0\\.0\r\n  \x1b\\[33mgroup:\x1b\\[0m string\r\n", out)
	}
	require.True(t, strings.HasPrefix(got, version+"\n"+genericHelp+clearScreen), "%q", got)
	for _, line := range strings.Split(genericHelp, "\n") {
		require.Contains(t, string(want), line+"\n", "a line of the real redis-cli's help")
	}
	helpGet := regexp.MustCompile("\r\n  \x1b\\[1mGET(?s:.*)\r\n\r\n")
	require.Equal(t, helpGet.FindString(string(want)), helpGet.FindString(got), "help get")
}

// TestUsageLikeRealCLI checks -h without a host and --help against the
// real redis-cli: the usage on standard output, exit status 0, and the
// options this cli shares with it spelled the same (one dash for one
// letter, two otherwise).
func TestUsageLikeRealCLI(t *testing.T) {
	real := realCLI(t)
	option := regexp.MustCompile(`(?m)^  (--?[a-z0-9-]+)`)
	var wantUsage string
	for _, args := range [][]string{{"-h"}, {"--help"}, {"-p", "1", "-h"}} {
		want, err := exec.Command(real, args...).Output()
		require.NoError(t, err, "real redis-cli %v", args)
		got, errOut, code := cli(context.Background(), "", false, args...)
		require.Equal(t, 0, code, "%v: %s", args, errOut)
		require.Empty(t, errOut)
		for _, out := range []string{string(want), got} {
			require.Regexp(t, `^redis-cli \d+\.\d+\.\d+`, out)
			require.Contains(t, out, "\nUsage: redis-cli [OPTIONS] [cmd [arg [arg ...]]]\n")
		}
		wantUsage = string(want)
	}
	realOptions := map[string]bool{}
	for _, m := range option.FindAllStringSubmatch(wantUsage, -1) {
		realOptions[m[1]] = true
	}
	ours := map[string]bool{}
	for _, m := range option.FindAllStringSubmatch(usage, -1) {
		ours[m[1]] = true
		name := strings.TrimLeft(m[1], "-")
		require.Equal(t, len(name) == 1, !strings.HasPrefix(m[1], "--"), "%s: one dash for one letter, two otherwise", m[1])
		require.True(t, realOptions[m[1]] || m[1] == "--shm" || m[1] == "--wait" || m[1] == "--latency-sample-rate", "%s is not the real redis-cli's", m[1])
	}
	var o options
	var wait string
	newFlagSet(&o, &wait).VisitAll(func(f *flag.Flag) {
		spelled := "--" + f.Name
		if len(f.Name) == 1 {
			spelled = "-" + f.Name
		}
		require.True(t, ours[spelled], "usage lacks %s", spelled)
	})
	var errOut bytes.Buffer
	_, err := parseFlags([]string{"-p"}, &bytes.Buffer{}, &errOut)
	require.Error(t, err, "-p without a port is an error, as in the real redis-cli")
}
