// Package e2e holds palisade's end-to-end tests: the real palisade binary
// (built once by TestMain with CGO_ENABLED=0), real daemons and clients in
// network namespaces created by the tests, documentation addresses only.
// Tests need root and skip with the reason otherwise.
package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/palisade-project/palisade/internal/testbin"
	"github.com/palisade-project/palisade/internal/testutil/poll"

	"github.com/palisade-project/palisade/internal/firewall/nstest"
)

// binary is the palisade binary built by TestMain ("" when not root).
var binary string

func TestMain(m *testing.M) { os.Exit(runMain(m)) }

func runMain(m *testing.M) int {
	if os.Getenv(freshRunEnv) != "" {
		return m.Run() // a helper process: the parent built the binary
	}
	if os.Geteuid() == 0 {
		bin, cleanup, err := testbin.Build()
		if err != nil {
			fmt.Fprintln(os.Stderr, "e2e:", err)
			return 1
		}
		defer cleanup()
		binary = bin
	}
	return m.Run()
}

// palisadeBin returns the built binary, skipping when it was not built.
func palisadeBin(t *testing.T) string {
	t.Helper()
	if binary == "" {
		t.Skip("e2e test: needs root (network namespaces, sshd, firewall)")
	}
	return binary
}

// requirePrograms skips unless every program is installed.
func requirePrograms(t *testing.T, names ...string) {
	t.Helper()
	for _, n := range names {
		if _, err := exec.LookPath(n); err != nil {
			t.Skipf("e2e test: %s is not installed", n)
		}
	}
}

// pair is a server and a client namespace joined by a veth link.
type pair struct {
	Server, Client         *nstest.NS
	ServerAddr, ClientAddr netip.Addr
}

// newPair creates the two namespaces (192.0.2.1 server, 192.0.2.2 client).
func newPair(t *testing.T) *pair {
	t.Helper()
	srv, cli := nstest.New(t), nstest.New(t)
	nstest.Link(t, srv, cli, []netip.Prefix{netip.MustParsePrefix("192.0.2.1/24")}, []netip.Prefix{netip.MustParsePrefix("192.0.2.2/24")})
	return &pair{Server: srv, Client: cli, ServerAddr: netip.MustParseAddr("192.0.2.1"), ClientAddr: netip.MustParseAddr("192.0.2.2")}
}

// result is a finished program.
type result struct {
	Out  string // stdout and stderr
	Code int    // exit code; -1 when it did not run or timed out
	Err  error
}

// runIn runs a program inside ns (ns nil: in the test's namespace) with a
// bounded time, the given extra environment and no shell.
func runIn(ns *nstest.NS, timeout time.Duration, env []string, name string, args ...string) result {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if ns != nil {
		args = append([]string{"netns", "exec", ns.Name, name}, args...)
		name = "ip"
	}
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append([]string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C", "HOME=/root"}, env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	code := -1
	if cmd.ProcessState != nil {
		code = cmd.ProcessState.ExitCode()
	}
	return result{Out: out.String(), Code: code, Err: err}
}

// lockedBuffer collects a background process's output.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startIn starts a long-running program in ns; it is stopped (SIGTERM, then
// SIGKILL after 5s) when the test ends, and its output is logged when the
// test failed.
func startIn(t *testing.T, ns *nstest.NS, name string, args ...string) *exec.Cmd {
	t.Helper()
	args = append([]string{"netns", "exec", ns.Name, name}, args...)
	cmd := exec.Command("ip", args...)
	cmd.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C"}
	out := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("output of %s:\n%s", name, out.String())
		}
	})
	return cmd
}

// eventually polls cond until it is nil or within passes.
func eventually(t *testing.T, within time.Duration, what string, cond func() error) {
	t.Helper()
	poll.UntilNil(t, within, what, cond)
}
