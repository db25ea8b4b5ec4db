package cli

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"

	"github.com/palisade-project/palisade/internal/control"
	"github.com/palisade-project/palisade/internal/harden/sshd"
)

// configDaemon answers the config verb like a daemon running dir with
// jails, and records the verbs it got.
type configDaemon struct {
	dir   string
	jails []control.JailConfig
	mu    sync.Mutex
	verbs []control.Verb
}

func (d *configDaemon) Handle(_ context.Context, req control.Request) (any, error) {
	d.mu.Lock()
	d.verbs = append(d.verbs, req.Verb)
	d.mu.Unlock()
	switch req.Verb {
	case control.VerbConfig:
		return control.ConfigReply{ConfigDir: d.dir, Jails: d.jails}, nil
	case control.VerbReload:
		return control.ReloadReply{}, nil
	}
	return control.PingReply{}, nil
}

// TestHardeningFollowsTheDaemon: with a daemon answering on the socket,
// ssh harden moves the jails that daemon runs (a jail named ssh-guard
// using the sshd filter, in /etc/fail2ban, its port set in a jail.d/*.local
// that wins over jail.local), and ssh audit and port check report that
// daemon's jails; without the daemon they read --config-dir.
func TestHardeningFollowsTheDaemon(t *testing.T) {
	r := sshRoot(t)
	t.Setenv("SUDO_USER", "admin")
	f2b := r.Path("/etc/fail2ban")
	r.Write("/etc/fail2ban/jail.conf", "[DEFAULT]\nbantime = 10m\n")
	r.Write("/etc/fail2ban/jail.local", "[ssh-guard]\nenabled = true\nfilter = sshd\nport = ssh\nlogpath = /var/log/auth.log\n")
	r.Write("/etc/fail2ban/jail.d/zz-ports.local", "[ssh-guard]\nport = 22\n")
	d := &configDaemon{dir: f2b, jails: []control.JailConfig{
		{Name: "recidive", Filter: "recidive", Port: "0:65535", Ports: []control.PortRange{{From: 0, To: 65535}}},
		{Name: "ssh-guard", Filter: "sshd", Port: "22", Ports: []control.PortRange{{From: 22, To: 22}}, Where: f2b + "/jail.local:2"},
	}}
	sock := serveFake(t, d)

	code, out, errOut := runHardenCLI("--root", r.Dir, "--socket", sock, "ssh", "harden", "--port", "2222", "--dry-run", "--json")
	if code != ExitOK {
		t.Fatalf("harden: exit %d: %s", code, errOut)
	}
	var res sshd.Result
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("%v:\n%s", err, out)
	}
	want := r.Path("/etc/fail2ban/jail.d/zz-ports.local")
	if !strings.Contains(res.Diff, "--- "+want) || !strings.Contains(res.Diff, "+port = 2222") || strings.Join(res.Jails, ",") != "ssh-guard" {
		t.Errorf("harden moved %q in:\n%s\nwant ssh-guard's port in %s", res.Jails, res.Diff, want)
	}
	if strings.Contains(res.Diff, "/etc/palisade/") {
		t.Errorf("the diff touches /etc/palisade, which the daemon does not run:\n%s", res.Diff)
	}

	code, out, _ = runHardenCLI("--root", r.Dir, "--socket", sock, "ssh", "audit")
	if code != ExitOK || !strings.Contains(out, "[ok] jail: 22") || !strings.Contains(out, "the ssh-guard jail of the running daemon ("+f2b+") protects the SSH port") {
		t.Errorf("audit (exit %d) does not report the daemon's jail:\n%s", code, out)
	}

	code, out, _ = runHardenCLI("--root", r.Dir, "--socket", sock, "port", "check", "2200", "--json")
	var pc struct {
		Usable bool     `json:"usable"`
		Jails  []string `json:"jails"`
	}
	if err := json.Unmarshal([]byte(out), &pc); err != nil || code != ExitOK || strings.Join(pc.Jails, ",") != "recidive" {
		t.Errorf("port check 2200: exit %d %+v %v:\n%s", code, pc, err, out)
	}

	// A --config-dir that differs from what the daemon runs: the daemon wins.
	_, _, errOut = runHardenCLI("--root", r.Dir, "--socket", sock, "port", "check", "2200", "--config-dir", r.Path("/etc/palisade"))
	if !strings.Contains(errOut, "the running daemon reads "+f2b) {
		t.Errorf("no warning about the differing --config-dir: %q", errOut)
	}

	// No daemon (under --root the default socket is not asked): the files
	// of --config-dir are read.
	code, out, _ = runHardenCLI("--root", r.Dir, "ssh", "audit", "--config-dir", f2b)
	if code != ExitOK || !strings.Contains(out, "the ssh-guard jail of "+f2b+" protects the SSH port") {
		t.Errorf("audit with --config-dir (exit %d):\n%s", code, out)
	}
	code, out, _ = runHardenCLI("--root", r.Dir, "ssh", "audit")
	if code != ExitOK || !strings.Contains(out, "the sshd jail of "+r.Path("/etc/palisade")+" protects the SSH port") {
		t.Errorf("audit of the built-in configuration (exit %d):\n%s", code, out)
	}
}
