package audit_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/palisade-project/palisade/internal/audit"
	"github.com/palisade-project/palisade/internal/audit/audittest"
	"github.com/palisade-project/palisade/internal/cloudflare"
	"github.com/palisade-project/palisade/internal/control"
	"github.com/palisade-project/palisade/internal/firewall/policy"
	"github.com/palisade-project/palisade/internal/firewall/policyctl"
	"github.com/palisade-project/palisade/internal/sysexec"
)

// run audits the lab's tree the way "palisade --root DIR audit" does.
func run(t *testing.T, l *audittest.Lab) *audit.Report {
	t.Helper()
	src := audit.HostSources(context.Background(), audit.Options{Root: l.Root.Dir, Socket: l.DaemonSocket(), Runner: sysexec.NewExec(30 * time.Second), Getenv: l.Getenv, Privileged: true})
	return (&audit.Auditor{Checkers: audit.Checkers()}).Run(context.Background(), audit.NewState(src))
}

func dump(rep *audit.Report) string {
	var b strings.Builder
	fmt.Fprintf(&b, "score %d passed %v\n", rep.Score, rep.Passed)
	for _, c := range rep.Checks {
		fmt.Fprintf(&b, "%-6s %-8s %-36s %s | %s\n", c.Status, c.Severity, c.ID, c.Message, strings.Join(c.Evidence, " / "))
	}
	return b.String()
}

func TestFreshServerScoresLow(t *testing.T) {
	l := audittest.Fresh(t)
	rep := run(t, l)
	t.Logf("fresh server: score %d", rep.Score)
	if rep.Passed || rep.Score > 40 {
		t.Errorf("fresh server: score %d, passed %v; want a low score and a failure\n%s", rep.Score, rep.Passed, dump(rep))
	}
	documented(t, rep)
	cfg := l.Root.Path("/etc/ssh/sshd_config")
	// Every finding the guide expects on such a server, with its fix and
	// evidence.
	want := []struct {
		id       string
		status   audit.Status
		fix      string
		evidence string
	}{
		{"ssh.password-auth", audit.Fail, "palisade ssh harden --keys-only", cfg + ":5"},
		{"ssh.root-login", audit.Fail, "palisade ssh harden --no-root-password", cfg + ":4"},
		{"ssh.default-port", audit.Fail, "palisade ssh harden --port 2222", cfg + ":3"},
		{"ssh.max-auth-tries", audit.Fail, "MaxAuthTries 3", "MaxAuthTries 6 (default)"},
		{"ssh.x11-forwarding", audit.Fail, "X11Forwarding no", cfg + ":8"},
		{"ssh.login-grace-time", audit.Fail, "LoginGraceTime 30", "LoginGraceTime 120"},
		{"ssh.empty-passwords", audit.Pass, "", ""},
		{"ssh.no-keys", audit.Pass, "", ""},
		{"ssh.second-factor", audit.Info, "", "AuthenticationMethods any (default)"},
		{"ports.ssh-default", audit.Fail, "palisade ssh harden --port 2222", "tcp 0.0.0.0:22 (sshd, pid 500)"},
		{"ports.ftp-default", audit.Pass, "", ""},
		{"ports.exposed", audit.Info, "", "tcp 0.0.0.0:80 (nginx, pid 600): reachable (no firewall is enabled)"},
		{"firewall.enabled", audit.Fail, "palisade firewall enable", ""},
		{"firewall.default-deny", audit.Fail, "palisade firewall default deny", ""},
		{"firewall.ports-intended", audit.Fail, "palisade firewall allow PORT/PROTO", "tcp 0.0.0.0:443 (nginx, pid 600): no firewall is enabled"},
		{"firewall.ssh-limit", audit.Fail, "palisade firewall limit 22/tcp --conn 2 --rate 1/1s", ""},
		{"firewall.flush-ruleset", audit.Pass, "", ""},
		{"firewall.docker", audit.Skip, "", ""},
		{"jails.config", audit.Pass, "", ""},
		{"jails.sshd", audit.Fail, "systemctl enable --now palisade", "the daemon is not running"},
		{"jails.nginx", audit.Fail, "[nginx-http-auth] enabled = true", "package nginx installed"},
		{"jails.postfix", audit.Skip, "", ""},
		{"jails.ignoreip-admin", audit.Fail, "ignoreip", "admin address 198.51.100.7 (SSH_CONNECTION)"},
		{"jails.sshd-increment", audit.Fail, "bantime.increment = true", ""},
		{"cloudflare.lock", audit.Info, "palisade cloudflare sync", "tcp 0.0.0.0:80 (nginx, pid 600)"},
		{"cloudflare.fresh", audit.Skip, "", ""},
		{"notify.bans", audit.Fail, "[notify:admin]", ""},
		{"notify.health", audit.Fail, "palisade notify test", ""},
		{"updates.unattended", audit.Fail, "apt-get install unattended-upgrades", "package unattended-upgrades installed: false"},
		{"updates.security", audit.Fail, "apt-get update && apt-get upgrade", "openssl " + audittest.OpenSSLOld + " -> " + audittest.OpenSSLSafe},
		{"daemon.running", audit.Fail, "systemctl enable --now palisade", ""},
		{"daemon.healthy", audit.Skip, "", ""},
		{"daemon.boot", audit.Fail, "systemctl enable palisade", ""},
	}
	for _, w := range want {
		c, ok := rep.Check(w.id)
		if !ok {
			t.Errorf("%s: missing", w.id)
			continue
		}
		if c.Status != w.status {
			t.Errorf("%s: status %s (%s), want %s", w.id, c.Status, c.Message, w.status)
		}
		if !strings.Contains(c.Fix, w.fix) || (w.fix == "" && c.Status == audit.Fail) {
			t.Errorf("%s: fix %q, want it to contain %q", w.id, c.Fix, w.fix)
		}
		if w.evidence != "" && !strings.Contains(strings.Join(c.Evidence, "\n"), w.evidence) {
			t.Errorf("%s: evidence %q, want %q", w.id, c.Evidence, w.evidence)
		}
	}
	for _, c := range rep.Checks {
		if (c.Status == audit.Fail || c.Status == audit.Warn) && c.Fix == "" {
			t.Errorf("%s fails without a fix: %s", c.ID, c.Message)
		}
		if c.Message == "" || c.Title == "" || c.Area == "" || !strings.HasPrefix(c.ID, c.Area+".") {
			t.Errorf("incomplete check %+v", c)
		}
	}
}

// hardened builds the fresh tree and applies every fix.
func hardened(t *testing.T) *audittest.Lab {
	t.Helper()
	l := audittest.Fresh(t)
	l.Harden()
	return l
}

// documented fails the test for every check id docs/audit.md does not
// list.
func documented(t *testing.T, rep *audit.Report) {
	t.Helper()
	doc, err := os.ReadFile("../../docs/audit.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range rep.Checks {
		if !strings.Contains(string(doc), "`"+c.ID+"`") {
			t.Errorf("docs/audit.md does not list %s", c.ID)
		}
	}
}

func TestHardenedServerScores100(t *testing.T) {
	l := hardened(t)
	before := l.Root.Hash()
	rep := run(t, l)
	if l.Root.Hash() != before {
		t.Error("the audit changed the tree")
	}
	documented(t, rep)
	if rep.Score != 100 || !rep.Passed {
		t.Fatalf("hardened server: score %d, passed %v\n%s", rep.Score, rep.Passed, dump(rep))
	}
	for _, c := range rep.Checks {
		if c.Status == audit.Fail || c.Status == audit.Warn {
			t.Errorf("%s: %s %s", c.ID, c.Status, c.Message)
		}
	}
	// The checks that must really have been evaluated, not skipped.
	for _, id := range []string{"ssh.password-auth", "ssh.jail", "firewall.in-kernel", "firewall.ports-intended", "firewall.ssh-limit",
		"firewall.flush-ruleset", "jails.sshd", "jails.nginx", "jails.ignoreip-admin", "cloudflare.lock", "cloudflare.fresh",
		"cloudflare.real-ip", "notify.bans", "updates.security", "daemon.backend"} {
		if c, _ := rep.Check(id); c.Status != audit.Pass {
			t.Errorf("%s: %s (%s), want pass", id, c.Status, c.Message)
		}
	}
}

// TestEachRegressionFlipsItsCheck breaks the hardened server one way at a
// time: exactly the check for that recommendation changes.
func TestEachRegressionFlipsItsCheck(t *testing.T) {
	l := hardened(t)
	base := run(t, l)
	if base.Score != 100 {
		t.Fatalf("baseline score %d\n%s", base.Score, dump(base))
	}
	r := l.Root
	tests := []struct {
		name    string
		id      string
		want    audit.Status
		breakIt func()
	}{
		{"cloud-init drop-in turns passwords back on", "ssh.password-auth", audit.Fail, func() {
			r.Write("/etc/ssh/sshd_config.d/50-cloud-init.conf", "PasswordAuthentication yes\n")
		}},
		{"MaxAuthTries back to the default", "ssh.max-auth-tries", audit.Fail, func() {
			r.Write("/etc/ssh/sshd_config", strings.Replace(r.Read("/etc/ssh/sshd_config"), "MaxAuthTries 3\n", "", 1))
		}},
		{"a Match block turns passwords back on", "ssh.match-passwordauthentication", audit.Fail, func() {
			r.Write("/etc/ssh/sshd_config", r.Read("/etc/ssh/sshd_config")+"Match Address 203.0.113.0/24\n\tPasswordAuthentication yes\n")
		}},
		{"a one-minute ban", "jails.values", audit.Fail, func() {
			r.Write("/etc/palisade/jail.local", strings.Replace(r.Read("/etc/palisade/jail.local"), "bantime = 1h", "bantime = 1m", 1))
		}},
		{"disabled jail", "jails.nginx", audit.Fail, func() {
			r.Write("/etc/palisade/jail.local", strings.Replace(r.Read("/etc/palisade/jail.local"), "[nginx-http-auth]\nenabled = true", "[nginx-http-auth]\nenabled = false", 1))
		}},
		{"admin address not ignored", "jails.ignoreip-admin", audit.Fail, func() {
			l.Env["SSH_CONNECTION"] = "203.0.113.9 50000 192.0.2.1 2222"
		}},
		{"no escalation for sshd", "jails.sshd-increment", audit.Fail, func() {
			r.Write("/etc/palisade/jail.local", strings.Replace(r.Read("/etc/palisade/jail.local"), "bantime.increment = true", "bantime.increment = false", 1))
		}},
		{"missing limit (palisade firewall allow 2222/tcp)", "firewall.ssh-limit", audit.Fail, func() {
			l.FirewallRule(policy.Allow, "2222/tcp")
		}},
		{"default allow", "firewall.default-deny", audit.Fail, func() {
			if _, err := l.Firewall().SetDefault(context.Background(), policy.DefaultAllow, policyctl.Options{}); err != nil {
				t.Fatal(err)
			}
		}},
		{"hand edit not applied", "firewall.applied", audit.Warn, func() {
			r.Write("/etc/palisade/firewall.rules", r.Read("/etc/palisade/firewall.rules")+"allow 8080/tcp\n")
		}},
		{"change waiting for confirmation", "firewall.applied", audit.Warn, func() {
			// A risky change (a deny) while enabled waits for confirmation.
			rl, given, err := policy.ParseRule(policy.Deny, []string{"from", "203.0.113.0/24"}, policy.Names{})
			if err != nil {
				t.Fatal(err)
			}
			res, err := l.Firewall().Add(context.Background(), rl, given, policyctl.Options{ConfirmWithin: time.Minute})
			if err != nil || res.Pending == nil {
				t.Fatalf("deny: %+v %v", res, err)
			}
		}},
		{"policy flushed from the kernel", "firewall.in-kernel", audit.Fail, func() {
			l.NFT = l.NFT.Without("pol_input")
			l.Sync()
		}},
		{"nftables.service flush without palisade-firewall.service", "firewall.flush-ruleset", audit.Warn, func() {
			removeLink(t, r.Path("/etc/systemd/system/multi-user.target.wants/palisade-firewall.service"))
		}},
		{"Docker publishes a port", "firewall.docker", audit.Fail, func() {
			l.NFT.Table("ip", "nat")
			l.NFT.Chain("ip", "nat", "DOCKER", "", 0, "")
			l.NFT.Rule("ip", "nat", "DOCKER", "", audittest.ExDport("tcp", 8080), `{"dnat": {"addr": "172.17.0.2", "port": 80}}`)
			l.Sync()
		}},
		{"stale Cloudflare list", "cloudflare.fresh", audit.Fail, func() {
			l.SetDaemon(func(_ *control.StatusReply, cf *cloudflare.Status) {
				old := time.Now().Add(-10 * 24 * time.Hour)
				cf.Fetched, cf.LastSuccess = &old, &old
			})
		}},
		{"Cloudflare lock flushed", "cloudflare.lock", audit.Fail, func() {
			l.SetDaemon(func(_ *control.StatusReply, cf *cloudflare.Status) {
				cf.Kernel.Installed, cf.Kernel.InSync = false, false
			})
		}},
		{"real-IP configuration removed", "cloudflare.real-ip", audit.Fail, func() {
			r.Write("/etc/nginx/conf.d/cloudflare-real-ip.conf", "# removed\n")
		}},
		{"route without health events", "notify.health", audit.Fail, func() {
			r.Write("/etc/palisade/palisade.local", strings.Replace(r.Read("/etc/palisade/palisade.local"), "events = ban, health", "events = ban", 1))
		}},
		{"security update pending", "updates.security", audit.Fail, func() {
			r.Write("/var/lib/apt/lists/deb.debian.org_debian-security_dists_bookworm-security_main_binary-amd64_Packages",
				"Package: openssl\nVersion: 3.0.15-1~deb12u1\nArchitecture: amd64\n")
		}},
		{"unattended upgrades switched off", "updates.unattended", audit.Fail, func() {
			r.Write("/etc/apt/apt.conf.d/20auto-upgrades", "APT::Periodic::Update-Package-Lists \"1\";\nAPT::Periodic::Unattended-Upgrade \"0\";\n")
		}},
		{"reload failed", "daemon.healthy", audit.Fail, func() {
			l.SetDaemon(func(st *control.StatusReply, _ *cloudflare.Status) {
				st.ReloadError = "jail.local:3: enabled: not a boolean"
			})
		}},
		{"not started at boot", "daemon.boot", audit.Fail, func() {
			removeLink(t, r.Path("/etc/systemd/system/multi-user.target.wants/palisade.service"))
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			restore := l.Snapshot()
			defer restore()
			tc.breakIt()
			rep := run(t, l)
			var changed []string
			for _, c := range rep.Checks {
				b, ok := base.Check(c.ID)
				if !ok || b.Status != c.Status {
					changed = append(changed, fmt.Sprintf("%s %s->%s (%s)", c.ID, b.Status, c.Status, c.Message))
				}
			}
			if len(changed) != 1 || !strings.HasPrefix(changed[0], tc.id+" ") {
				t.Errorf("changed: %q; want only %s", changed, tc.id)
			}
			c, _ := rep.Check(tc.id)
			if c.Status != tc.want || c.Fix == "" || rep.Score >= 100 {
				t.Errorf("%s: %s, fix %q, score %d; want %s with a fix and a lower score", tc.id, c.Status, c.Fix, rep.Score, tc.want)
			}
		})
	}
}

func removeLink(t *testing.T, p string) {
	t.Helper()
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
}
