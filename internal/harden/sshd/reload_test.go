package sshd

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/palisade-project/palisade/internal/sysexec"
)

func TestReloaderDetect(t *testing.T) {
	ctx := context.Background()
	exit3 := &sysexec.ExitError{Cmd: "systemctl", ExitCode: 3}
	tests := []struct {
		name  string
		root  string
		rules map[string]error
		eff   Effective
		want  string
	}{
		{"ssh.service active", "", map[string]error{"systemctl is-active --quiet ssh.service": nil}, Effective{}, "systemd:ssh.service"},
		{"sshd.service active", "", map[string]error{"systemctl is-active --quiet ssh.service": exit3, "systemctl is-active --quiet sshd.service": nil}, Effective{}, "systemd:sshd.service"},
		{"no unit: pid file", "", map[string]error{"systemctl": exit3}, Effective{"pidfile": {"/run/sshd.pid"}}, "pidfile:/run/sshd.pid"},
		{"under a root: pid file, no systemctl", "/r", nil, Effective{"pidfile": {"/run/sshd.pid"}}, "pidfile:/r/run/sshd.pid"},
		{"pid file path already under the root", "/r", nil, Effective{"pidfile": {"/r/run/x.pid"}}, "pidfile:/r/run/x.pid"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := &sysexec.Fake{}
			for p, err := range tc.rules {
				f.On(p, sysexec.Result{}, err)
			}
			r := &Reloader{Runner: f, Root: tc.root}
			if got := r.Detect(ctx, tc.eff); got != tc.want {
				t.Errorf("Detect = %q, want %q", got, tc.want)
			}
			if tc.root != "" && len(f.Calls()) != 0 {
				t.Errorf("systemctl run under a root: %v", f.Calls())
			}
		})
	}
}

func TestReloaderReload(t *testing.T) {
	ctx := context.Background()
	f := &sysexec.Fake{}
	f.On("systemctl", sysexec.Result{}, nil)
	r := &Reloader{Runner: f}
	if err := r.Reload(ctx, "systemd:ssh.service", true); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range f.Calls() {
		got = append(got, c.String())
	}
	want := "systemctl daemon-reload|systemctl restart ssh.socket|systemctl reload-or-restart ssh.service"
	if strings.Join(got, "|") != want {
		t.Errorf("calls %q, want %q", got, want)
	}
	// A pid file naming a process that is not sshd is refused.
	dir := t.TempDir()
	pf := filepath.Join(dir, "sshd.pid")
	if err := os.WriteFile(pf, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := r.Reload(ctx, "pidfile:"+pf, false); err == nil || !strings.Contains(err.Error(), "is not sshd") {
		t.Errorf("non-sshd pid: %v", err)
	}
	if err := r.Reload(ctx, "pidfile:"+filepath.Join(dir, "missing.pid"), false); err == nil {
		t.Error("missing pid file accepted")
	}
	if err := r.Reload(ctx, "", false); err != nil {
		t.Errorf("empty method: %v", err)
	}
	if err := r.Reload(ctx, "bogus:x", false); err == nil {
		t.Error("unknown method accepted")
	}
}
