package sysexec

import (
	"context"
	"errors"
	"io"
	"os/exec"
	"strings"
	"testing"
	"time"
)

func need(t *testing.T, names ...string) {
	t.Helper()
	for _, n := range names {
		if _, err := exec.LookPath(n); err != nil {
			t.Skipf("%s not installed", n)
		}
	}
}

func TestExecStarter(t *testing.T) {
	need(t, "echo", "ls", "sleep", "env")
	ctx := context.Background()
	for _, tc := range []struct {
		name    string
		cmd     Cmd
		out     string // stdout must contain this
		exit    int    // -1: no ExitError expected
		stderr  string
		startOK bool
	}{
		{name: "output streamed", cmd: Cmd{Name: "echo", Args: []string{"hello", "world"}}, out: "hello world\n", exit: -1, startOK: true},
		{name: "minimal environment plus extra", cmd: Cmd{Name: "env", Env: []string{"X=1"}}, out: "SYSTEMD_COLORS=0\nX=1\n", exit: -1, startOK: true},
		{name: "non-zero exit keeps stderr", cmd: Cmd{Name: "ls", Args: []string{"/nonexistent-palisade"}}, exit: 2, stderr: "nonexistent-palisade", startOK: true},
		{name: "missing program", cmd: Cmd{Name: "/nonexistent/prog"}, startOK: false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := ExecStarter{}.Start(ctx, tc.cmd)
			if !tc.startOK {
				if err == nil || strings.Count(err.Error(), "/nonexistent/prog") != 1 {
					t.Fatalf("Start = %v, want an error naming the program once", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			out, err := io.ReadAll(p.Stdout())
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(out), tc.out) {
				t.Errorf("stdout %q, want it to contain %q", out, tc.out)
			}
			err = p.Wait()
			var ee *ExitError
			if tc.exit < 0 {
				if err != nil {
					t.Fatalf("Wait = %v", err)
				}
				return
			}
			if !errors.As(err, &ee) || ee.ExitCode != tc.exit || !strings.Contains(ee.Stderr, tc.stderr) {
				t.Fatalf("Wait = %#v, want exit %d with stderr containing %q", err, tc.exit, tc.stderr)
			}
		})
	}
}

func TestRunErrorNamesTheProgramOnce(t *testing.T) {
	_, err := NewExec(0).Run(context.Background(), Cmd{Name: "palisade-no-such-program", Args: []string{"x"}})
	if err == nil || strings.Count(err.Error(), "palisade-no-such-program") != 1 || !strings.Contains(err.Error(), "not found") {
		t.Errorf("err = %v", err)
	}
}

func TestExecStarterCancel(t *testing.T) {
	need(t, "sleep")
	ctx, cancel := context.WithCancel(context.Background())
	p, err := ExecStarter{}.Start(ctx, Cmd{Name: "sleep", Args: []string{"60"}})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	cancel()
	_, _ = io.ReadAll(p.Stdout())
	if err := p.Wait(); err == nil {
		t.Error("a cancelled program reported success")
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("cancelled program took %v to end", d)
	}
}

func TestTailBuffer(t *testing.T) {
	var b tailBuffer
	_, _ = b.Write([]byte(strings.Repeat("a", 5000)))
	_, _ = b.Write([]byte("end"))
	if s := b.String(); len(s) != 4096 || !strings.HasSuffix(s, "aend") {
		t.Errorf("kept %d bytes ending %q, want the last 4096", len(s), s[len(s)-4:])
	}
}
