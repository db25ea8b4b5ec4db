package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/palisade-project/palisade/internal/firewall/nstest"
)

// auditReport is the part of "palisade audit --json" the test reads.
type auditReport struct {
	Score  int  `json:"score"`
	Passed bool `json:"passed"`
	Checks []struct {
		ID       string   `json:"id"`
		Status   string   `json:"status"`
		Message  string   `json:"message"`
		Evidence []string `json:"evidence"`
		Fix      string   `json:"fix"`
	} `json:"checks"`
}

func (r auditReport) check(t *testing.T, id string) (status, evidence, fix string) {
	t.Helper()
	for _, c := range r.Checks {
		if c.ID == id {
			return c.Status, strings.Join(c.Evidence, "\n"), c.Fix
		}
	}
	t.Fatalf("no check %s in the report", id)
	return "", "", ""
}

// TestAuditLiveServer audits a live server in a network namespace: real
// sshd, the real daemon with its jail and Cloudflare lock in the kernel,
// sockets and the ruleset read live (nft), and compares the verdicts with
// what palisade status, cloudflare status and ssh audit say.
func TestAuditLiveServer(t *testing.T) {
	lab := newSSHLab(t)
	srv := lab.net.Server
	root := lab.root
	lab.write("/var/log/auth.log", "")
	lab.write("/etc/palisade/palisade.local", "[cloudflare]\nenabled = true\nurl = http://127.0.0.1:9/ips\n")
	lab.write("/cf.txt", "173.245.48.0/20\n103.21.244.0/22\n2400:cb00::/32\n")
	nstest.Listen(t, srv, "0.0.0.0:80")

	sock := filepath.Join(root, "run", "palisade.sock")
	db := filepath.Join(root, "var/lib/palisade/palisade.db")
	daemon := startIn(t, srv, binary, "--root", root, "daemon", "--config-dir", filepath.Join(root, "etc/palisade"), "--socket", sock, "--db", db)
	sshConn := "SSH_CONNECTION=" + lab.net.ClientAddr.String() + " 50000 " + lab.net.ServerAddr.String() + " 22"
	cli := func(args ...string) result {
		return runIn(srv, 30*time.Second, []string{sshConn}, binary, append([]string{"--root", root, "--socket", sock}, args...)...)
	}
	var status struct {
		Backend string `json:"backend"`
		Jails   []struct {
			Name    string   `json:"name"`
			Sources []string `json:"sources"`
			Error   string   `json:"error"`
		} `json:"jails"`
	}
	eventually(t, 20*time.Second, "daemon answering", func() error {
		r := cli("status", "--json")
		if r.Code != 0 {
			return fmt.Errorf("status: exit %d: %s", r.Code, r.Out)
		}
		return json.Unmarshal([]byte(r.Out), &status)
	})
	if r := cli("cloudflare", "sync", "--source", filepath.Join(root, "cf.txt")); r.Code != 0 {
		t.Fatalf("cloudflare sync: %s", r.Out)
	}
	audit := func() auditReport {
		t.Helper()
		// stdout alone: the exit message goes to stderr.
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, "ip", "netns", "exec", srv.Name, binary, "--root", root, "--socket", sock, "audit", "--json")
		cmd.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C", sshConn}
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		var rep auditReport
		if jerr := json.Unmarshal(stdout.Bytes(), &rep); jerr != nil {
			t.Fatalf("audit --json: %v: %v\n%s%s", err, jerr, stdout.String(), stderr.String())
		}
		r := result{Code: cmd.ProcessState.ExitCode()}
		want := 0
		if !rep.Passed {
			want = 1
		}
		if r.Code != want {
			t.Fatalf("audit exit %d with passed=%v", r.Code, rep.Passed)
		}
		return rep
	}
	rep := audit()

	// The daemon: running, and agreeing with palisade status.
	if st, _, _ := rep.check(t, "daemon.running"); st != "pass" {
		t.Errorf("daemon.running: %s", st)
	}
	st, ev, _ := rep.check(t, "daemon.backend")
	if st != "pass" || !strings.Contains(ev, "daemon backend: "+status.Backend) || !strings.Contains(ev, "j_sshd") {
		t.Errorf("daemon.backend: %s\n%s (status says backend %s)", st, ev, status.Backend)
	}
	var sshdSources []string
	for _, j := range status.Jails {
		if j.Name == "sshd" {
			sshdSources = j.Sources
		}
	}
	st, ev, _ = rep.check(t, "jails.sshd")
	if st != "pass" || len(sshdSources) == 0 || !strings.Contains(ev, "read by the daemon from "+strings.Join(sshdSources, ", ")) {
		t.Errorf("jails.sshd: %s\n%s (status: sources %q)", st, ev, sshdSources)
	}
	st, ev, _ = rep.check(t, "jails.ignoreip-admin")
	if st != "fail" || !strings.Contains(ev, lab.net.ClientAddr.String()+" (SSH_CONNECTION)") {
		t.Errorf("jails.ignoreip-admin: %s\n%s", st, ev)
	}

	// sshd: the live process on port 22, and the same findings as ssh audit.
	st, ev, fix := rep.check(t, "ports.ssh-default")
	if want := fmt.Sprintf("tcp 0.0.0.0:22 (sshd, pid %d)", lab.sshd.Process.Pid); st != "fail" || !strings.Contains(ev, want) || fix == "" {
		t.Errorf("ports.ssh-default: %s %q\n%s; want %s", st, fix, ev, want)
	}
	var sshAudit struct {
		Findings []struct {
			ID    string `json:"id"`
			Where string `json:"where"`
		} `json:"findings"`
	}
	if r := cli("ssh", "audit", "--json"); r.Code != 0 || json.Unmarshal([]byte(r.Out), &sshAudit) != nil {
		t.Fatalf("ssh audit: %s", r.Out)
	}
	for _, f := range sshAudit.Findings {
		if f.ID == "password-auth" {
			st, ev, fix = rep.check(t, "ssh.password-auth")
			if st != "fail" || !strings.Contains(ev, f.Where) || !strings.HasSuffix(f.Where, "50-cloud-init.conf:1") || fix != "palisade ssh harden --keys-only" {
				t.Errorf("ssh.password-auth: %s %q\n%s; ssh audit says %s", st, fix, ev, f.Where)
			}
		}
	}

	// The firewall: only the jail table and the lock; nothing refuses by
	// default, so every listening port is open by accident.
	if st, _, _ := rep.check(t, "firewall.enabled"); st != "fail" {
		t.Errorf("firewall.enabled: %s", st)
	}
	st, ev, _ = rep.check(t, "firewall.ports-intended")
	if st != "fail" || !strings.Contains(ev, "tcp 0.0.0.0:22") || !strings.Contains(ev, ":80 (") {
		t.Errorf("firewall.ports-intended: %s\n%s", st, ev)
	}

	// The firewall policy, made with palisade firewall: the audit reads the
	// same file and the real kernel, and agrees with firewall status.
	t.Cleanup(func() { stopFirewallWatcher(root) })
	for _, args := range [][]string{{"default", "deny"}, {"allow", "80/tcp"}, {"limit", "22/tcp", "--conn", "2", "--rate", "1/1s"},
		{"enable", "--confirm-within", "60s"}, {"confirm"}} {
		if r := cli(append([]string{"firewall"}, args...)...); r.Code != 0 {
			t.Fatalf("firewall %v: exit %d: %s", args, r.Code, r.Out)
		}
	}
	var fw struct {
		Enabled   bool   `json:"enabled"`
		Default   string `json:"default_incoming"`
		Installed bool   `json:"installed"`
	}
	if r := cli("firewall", "status", "--json"); r.Code != 0 || json.Unmarshal([]byte(r.Out), &fw) != nil || !fw.Enabled || !fw.Installed || fw.Default != "deny" {
		t.Fatalf("firewall status: %+v: %s", fw, r.Out)
	}
	withPolicy := audit()
	for _, id := range []string{"firewall.enabled", "firewall.in-kernel", "firewall.applied", "firewall.default-deny", "firewall.ssh-limit", "firewall.ports-intended"} {
		if st, ev, _ := withPolicy.check(t, id); st != "pass" {
			t.Errorf("%s with the policy: %s\n%s", id, st, ev)
		}
	}
	if _, ev, _ := withPolicy.check(t, "firewall.ssh-limit"); !strings.Contains(ev, "port 22/tcp: rule 2 limit 22/tcp --conn 2 --rate 1/1s") {
		t.Errorf("firewall.ssh-limit evidence:\n%s", ev)
	}

	// The Cloudflare lock: in force and fresh, as cloudflare status says.
	var cf struct {
		State  string `json:"state"`
		Kernel struct {
			Installed bool `json:"installed"`
			InSync    bool `json:"in_sync"`
		} `json:"kernel"`
	}
	if r := cli("cloudflare", "status", "--json"); r.Code != 0 || json.Unmarshal([]byte(r.Out), &cf) != nil {
		t.Fatalf("cloudflare status: %s", r.Out)
	}
	if cf.State != "on" || !cf.Kernel.Installed || !cf.Kernel.InSync {
		t.Fatalf("cloudflare status: %+v", cf)
	}
	for _, id := range []string{"cloudflare.lock", "cloudflare.fresh"} {
		if st, ev, _ := rep.check(t, id); st != "pass" {
			t.Errorf("%s: %s\n%s", id, st, ev)
		}
	}
	st, ev, _ = rep.check(t, "ports.exposed")
	if st != "info" || !strings.Contains(ev, ":80 ") || !strings.Contains(ev, "reachable from Cloudflare only") {
		t.Errorf("ports.exposed: %s\n%s", st, ev)
	}

	// Turned off: the audit follows the kernel and the daemon at once.
	if r := cli("cloudflare", "off"); r.Code != 0 {
		t.Fatalf("cloudflare off: %s", r.Out)
	}
	rep = audit()
	if st, ev, fix := rep.check(t, "cloudflare.lock"); st != "fail" || fix != "palisade cloudflare sync" {
		t.Errorf("cloudflare.lock after off: %s %q\n%s", st, fix, ev)
	}

	// The daemon stops: nothing reads the jail any more.
	if err := daemon.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("stop the daemon: %v", err)
	}
	eventually(t, 20*time.Second, "daemon gone", func() error {
		if r := cli("status"); r.Code == 0 {
			return fmt.Errorf("the daemon still answers")
		}
		return nil
	})
	rep = audit()
	for id, want := range map[string]string{"daemon.running": "fail", "jails.sshd": "fail", "daemon.backend": "skip"} {
		if st, _, _ := rep.check(t, id); st != want {
			t.Errorf("%s after the daemon stopped: %s, want %s", id, st, want)
		}
	}
	if rep.Passed {
		t.Error("audit passed without a daemon")
	}
}
