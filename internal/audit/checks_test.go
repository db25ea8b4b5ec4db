package audit

import (
	"context"
	"crypto/sha256"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	defaults "github.com/palisade-project/palisade/config"
	"github.com/palisade-project/palisade/internal/cloudflare"
	"github.com/palisade-project/palisade/internal/config"
	"github.com/palisade-project/palisade/internal/control"
	"github.com/palisade-project/palisade/internal/daemon"
	"github.com/palisade-project/palisade/internal/firewall"
	"github.com/palisade-project/palisade/internal/harden/sshd"
	"github.com/palisade-project/palisade/internal/store"
	"github.com/palisade-project/palisade/internal/sysexec"
)

// tree writes files (system path -> content) under a new root.
func tree(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for p, s := range files {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func loadConfig(t *testing.T, root string) *config.Config {
	t.Helper()
	cfg, err := daemon.LoadConfig(daemon.Options{ConfigDir: filepath.Join(root, "etc/palisade"), Root: root, Builtin: defaults.FS()})
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestNotifyFromConfig(t *testing.T) {
	root := tree(t, map[string]string{
		"/etc/palisade/palisade.local": `[notify]
server = mail.example.org:587
from = palisade@example.org
events = ban

[notify:admin]
type = smtp
to = admin@example.org
events = ban, health

[notify:chat]
url = https://hooks.example.org/T000
jails = sshd

[notify:quiet]
enabled = no
to = nobody@example.org
events = all

[notify:nothing]
to = nobody@example.org
events = none
`,
		"/etc/palisade/jail.local": "[sshd]\nenabled = true\naction = nftables-multiport\n\tmail-whois[dest=root@example.org]\n",
	})
	cfg := loadConfig(t, root)
	routes, err := NotifyFromConfig{}.Routes(cfg)
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]NotifyRoute{}
	for _, r := range routes {
		byName[r.Name] = r
	}
	tests := []struct {
		name, typ    string
		ban, health  bool
		jails, where string
	}{
		{"admin", "smtp", true, true, "", "palisade.local:7"},
		{"chat", "webhook", true, false, "sshd", "palisade.local:12"},
		{"nothing", "smtp", false, false, "", "palisade.local:21"},
		{"fail2ban-mail", "smtp", true, false, "sshd", ""},
	}
	for _, tc := range tests {
		r, ok := byName[tc.name]
		if !ok {
			t.Errorf("route %s missing: %+v", tc.name, routes)
			continue
		}
		if r.Type != tc.typ || r.Sends("ban") != tc.ban || r.Sends("health") != tc.health || strings.Join(r.Jails, ",") != tc.jails || !strings.Contains(r.Where, tc.where) {
			t.Errorf("route %s: %+v", tc.name, r)
		}
	}
	if _, ok := byName["quiet"]; ok || len(routes) != 4 {
		t.Errorf("routes: %+v", routes)
	}
}

func TestNotifyChecks(t *testing.T) {
	tests := []struct {
		name         string
		local        string
		bans, health Status
	}{
		{"no route", "", Fail, Fail},
		{"bans only", "[notify:a]\nfrom = p@example.org\nto = a@example.org\nevents = ban\n", Pass, Fail},
		{"both", "[notify:a]\nfrom = p@example.org\nto = a@example.org\n", Pass, Pass},
		{"disabled", "[notify:a]\nenabled = false\nfrom = p@example.org\nto = a@example.org\n", Fail, Fail},
		{"health from the defaults", "[notify]\nevents = health\nfrom = p@example.org\nto = a@example.org\n[notify:a]\n[notify:b]\nevents = ban\n", Pass, Pass},
		{"broken route", "[notify:a]\nto = a@example.org\n", Skip, Skip},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root := tree(t, map[string]string{"/etc/palisade/palisade.local": "[Definition]\n" + tc.local})
			st := NewState(Sources{Root: root})
			got := map[string]Check{}
			for _, c := range (notifyChecker{}).Check(context.Background(), st) {
				got[c.ID] = c
			}
			if got["notify.bans"].Status != tc.bans || got["notify.health"].Status != tc.health {
				t.Errorf("bans %s, health %s; want %s, %s", got["notify.bans"].Status, got["notify.health"].Status, tc.bans, tc.health)
			}
			for _, c := range got {
				if c.Status == Fail && !strings.Contains(c.Fix, "palisade notify test") {
					t.Errorf("%s: fix %q", c.ID, c.Fix)
				}
			}
		})
	}
}

func TestSecondFactor(t *testing.T) {
	tests := []struct {
		name, eff, pam, want string
	}{
		{"keys only", "authenticationmethods any\nusepam yes\nkbdinteractiveauthentication no\n", "", "key only"},
		{"totp", "authenticationmethods publickey,keyboard-interactive\nusepam yes\nkbdinteractiveauthentication yes\n",
			"# PAM\n@include common-auth\nauth required pam_google_authenticator.so nullok\n", "a key and then a code from pam_google_authenticator.so"},
		{"alternatives, one with a code", "authenticationmethods publickey publickey,keyboard-interactive:pam\nusepam yes\nkbdinteractiveauthentication yes\n",
			"auth required /lib/x86_64-linux-gnu/security/pam_oath.so usersfile=/etc/users.oath\n", "a key and then a code"},
		{"module not required", "authenticationmethods any\nusepam yes\nkbdinteractiveauthentication yes\n",
			"auth required pam_google_authenticator.so\n", "key logins skip it"},
		{"kbd off", "authenticationmethods publickey,keyboard-interactive\nusepam yes\nkbdinteractiveauthentication no\n",
			"auth required pam_google_authenticator.so\n", "cannot succeed"},
		{"commented module", "authenticationmethods publickey,keyboard-interactive\nusepam yes\nkbdinteractiveauthentication yes\n",
			"#auth required pam_google_authenticator.so\n", "key only"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			files := map[string]string{"/etc/ssh/sshd_config": "Port 22\n"}
			if tc.pam != "" {
				files["/etc/pam.d/sshd"] = tc.pam
			}
			root := tree(t, files)
			run := &sysexec.Fake{}
			run.On("sshd -T", sysexec.Result{Stdout: []byte(tc.eff)}, nil)
			st := NewState(Sources{Root: root, SSHD: sshd.NewDaemon(run, root)})
			c := secondFactor(context.Background(), st)
			if c.Status != Info || !strings.Contains(c.Message, tc.want) {
				t.Errorf("%s: %s", c.Status, c.Message)
			}
		})
	}
}

// stubSockets returns fixed sockets.
type stubSockets struct {
	socks  []Socket
	owners bool
	err    error
}

func (s stubSockets) Sockets() ([]Socket, bool, error) { return s.socks, s.owners, s.err }

// stubRuleset returns a fixed ruleset or error.
type stubRuleset struct {
	rs  *Ruleset
	err error
}

func (s stubRuleset) Ruleset(context.Context) (*Ruleset, error) { return s.rs, s.err }

// stubDaemon answers with fixed replies.
type stubDaemon struct {
	st  *DaemonStatus
	cf  *cloudflare.Status
	err error
}

func (s stubDaemon) Status(context.Context) (*DaemonStatus, error) { return s.st, s.err }
func (s stubDaemon) Cloudflare(context.Context) (*cloudflare.Status, error) {
	if s.cf == nil {
		return nil, errors.New("no cloudflare status")
	}
	return s.cf, nil
}

func checksOf(cs []Check) map[string]Check {
	m := map[string]Check{}
	for _, c := range cs {
		m[c.ID] = c
	}
	return m
}

func TestDaemonChecks(t *testing.T) {
	rs, err := ParseRuleset([]byte(sampleRuleset))
	if err != nil {
		t.Fatal(err)
	}
	ok := control.JailHealth{Healthy: true}
	jails := []control.JailStatus{{Name: "sshd", Sources: []string{"/var/log/auth.log"}, Health: ok}}
	status := func(backend string, healthy bool, js ...control.JailStatus) *DaemonStatus {
		return &DaemonStatus{StatusReply: control.StatusReply{Backend: backend, Healthy: healthy, Jails: js}, PID: 812}
	}
	tests := []struct {
		name    string
		daemon  stubDaemon
		ruleset RulesetReader
		want    map[string]Status
	}{
		{"not running", stubDaemon{err: ErrDaemonNotRunning}, stubRuleset{rs: rs},
			map[string]Status{"daemon.running": Fail, "daemon.healthy": Skip, "daemon.backend": Skip}},
		{"socket root-only", stubDaemon{err: ErrNotReadable}, stubRuleset{rs: rs},
			map[string]Status{"daemon.running": Skip, "daemon.healthy": Skip}},
		{"running, nftables in the kernel", stubDaemon{st: status("nftables", true, jails...)}, stubRuleset{rs: rs},
			map[string]Status{"daemon.running": Pass, "daemon.healthy": Pass, "daemon.backend": Pass}},
		{"jail chain missing", stubDaemon{st: status("nftables", true, append(jails, control.JailStatus{Name: "nginx-http-auth", Health: ok})...)}, stubRuleset{rs: rs},
			map[string]Status{"daemon.backend": Fail, "daemon.healthy": Pass}},
		{"table missing", stubDaemon{st: status("nftables", true, jails...)}, stubRuleset{rs: &Ruleset{}},
			map[string]Status{"daemon.backend": Fail}},
		{"ufw not loaded", stubDaemon{st: status("ufw", true)}, stubRuleset{rs: rs},
			map[string]Status{"daemon.backend": Fail}},
		{"log only", stubDaemon{st: status("log", true)}, stubRuleset{rs: rs},
			map[string]Status{"daemon.backend": Fail}},
		{"mixed with exec", stubDaemon{st: status("nftables+exec:route", true, append(jails, control.JailStatus{Name: "route-jail", Health: ok})...)}, stubRuleset{rs: rs},
			map[string]Status{"daemon.backend": Pass}},
		{"ruleset unreadable", stubDaemon{st: status("nftables", true)}, stubRuleset{err: ErrNotReadable},
			map[string]Status{"daemon.backend": Skip}},
		{"unhealthy", stubDaemon{st: status("nftables", false, control.JailStatus{Name: "sshd", Health: control.JailHealth{Problems: []string{"idle: no line for 6h"}}})}, stubRuleset{rs: rs},
			map[string]Status{"daemon.healthy": Fail}},
		{"jail error", stubDaemon{st: status("nftables", true, control.JailStatus{Name: "sshd", Error: "no log file", Health: ok})}, stubRuleset{rs: rs},
			map[string]Status{"daemon.healthy": Fail, "daemon.backend": Pass}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st := NewState(Sources{Root: t.TempDir(), Daemon: tc.daemon, Ruleset: tc.ruleset})
			got := checksOf((daemonChecker{}).Check(context.Background(), st))
			for id, want := range tc.want {
				if got[id].Status != want {
					t.Errorf("%s: %s (%s), want %s", id, got[id].Status, got[id].Message, want)
				}
			}
			if got["daemon.boot"].Status != Fail {
				t.Errorf("daemon.boot without palisade.service: %s", got["daemon.boot"].Status)
			}
		})
	}
}

// TestUnprivileged runs the firewall and ports checks as a normal user
// sees them: no ruleset, no socket owners. Nothing may claim "no firewall"
// when it could not look.
func TestUnprivileged(t *testing.T) {
	root := tree(t, map[string]string{"/etc/ssh/sshd_config": "Port 22\n"})
	run := &sysexec.Fake{}
	run.On("sshd -T", sysexec.Result{ExitCode: 1}, &sysexec.ExitError{Cmd: "sshd -T", ExitCode: 1, Stderr: "sshd: no hostkeys available -- exiting."})
	socks := []Socket{{Proto: "tcp", Addr: netip.MustParseAddr("0.0.0.0"), Port: 22}}
	st := NewState(Sources{Root: root, SSHD: sshd.NewDaemon(run, root), Sockets: stubSockets{socks: socks},
		Ruleset: stubRuleset{err: ErrNotReadable}, Daemon: stubDaemon{err: ErrNotReadable}})
	rep := (&Auditor{Checkers: Checkers()}).Run(context.Background(), st)
	for id, want := range map[string]Status{"ssh.sshd": Skip, "firewall.enabled": Skip, "firewall.default-deny": Skip,
		"firewall.ports-intended": Skip, "firewall.ssh-limit": Skip, "daemon.running": Skip, "ports.ssh-default": Fail} {
		if c, _ := rep.Check(id); c.Status != want {
			t.Errorf("%s: %s (%s), want %s", id, c.Status, c.Message, want)
		}
	}
	if c, _ := rep.Check("ports.exposed"); !strings.Contains(c.Message, "0 reachable from outside, 1 not known") ||
		!strings.Contains(strings.Join(c.Evidence, "\n"), "tcp 0.0.0.0:22: not known (the kernel's ruleset could not be read (needs root))") {
		t.Errorf("ports.exposed without the ruleset: %s %q", c.Message, c.Evidence)
	}
	limits := strings.Join(rep.Limits, "\n")
	for _, want := range []string{"sshd -T", "processes owning sockets", "ruleset", "control socket"} {
		if !strings.Contains(limits, want) {
			t.Errorf("limits do not name %q:\n%s", want, limits)
		}
	}
}

func TestCloudflareOffline(t *testing.T) {
	root := tree(t, map[string]string{
		"/etc/palisade/palisade.local": "[cloudflare]\nenabled = true\n",
		"/cf.txt":                      "173.245.48.0/20\n103.21.244.0/22\n2400:cb00::/32\n",
	})
	cfg := loadConfig(t, root)
	db := filepath.Join(root, "var/lib/palisade/palisade.db")

	// Nothing stored yet: never turned on, and no database is created.
	st, err := CloudflareOffline{DBPath: db}.Status(context.Background(), cfg, &Ruleset{})
	if err != nil || st.State != cloudflare.StateNever {
		t.Fatalf("no database: %+v %v", st, err)
	}
	if _, err := os.Stat(db); err == nil {
		t.Fatal("the audit created the database")
	}

	// A sync by "palisade cloudflare sync" (the manager over the real
	// store), then the audit reads it back read-only.
	s, err := store.Open(db, store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	lock := &firewall.FakeLock{}
	sc := cfg.Daemon.Cloudflare
	m, err := cloudflare.New(cloudflare.Config{Enabled: sc.Enabled, Ports: sc.Ports, URL: sc.URL, Interval: sc.Interval, Block: sc.BlockType}, cloudflare.Deps{Lock: lock, Store: s})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Sync(context.Background(), cloudflare.SyncOptions{Source: filepath.Join(root, "cf.txt")}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	sum := func() [32]byte {
		b, _ := os.ReadFile(db)
		return sha256.Sum256(b)
	}
	before := sum()

	inKernel, err := ParseRuleset([]byte(`{"nftables": [
{"table": {"family": "inet", "name": "palisade"}},
{"set": {"family": "inet", "table": "palisade", "name": "cf_v4", "elem": [{"prefix": {"addr": "103.21.244.0", "len": 22}}, {"prefix": {"addr": "173.245.48.0", "len": 20}}]}},
{"set": {"family": "inet", "table": "palisade", "name": "cf_v6", "elem": [{"prefix": {"addr": "2400:cb00::", "len": 32}}]}},
{"set": {"family": "inet", "table": "palisade", "name": "cf_ports", "elem": [80, 443]}},
{"chain": {"family": "inet", "table": "palisade", "name": "cf_lock", "type": "filter", "hook": "prerouting", "prio": -300, "policy": "accept"}},
{"rule": {"family": "inet", "table": "palisade", "chain": "cf_lock", "expr": [{"counter": {"packets": 3, "bytes": 1}}, {"drop": null}]}}]}`))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		rs        *Ruleset
		installed bool
		inSync    bool
	}{
		{"in the kernel", inKernel, true, true},
		{"flushed", &Ruleset{}, false, false},
		{"ruleset unreadable", nil, false, false},
	}
	for _, tc := range tests {
		st, err := CloudflareOffline{DBPath: db}.Status(context.Background(), cfg, tc.rs)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if st.State != cloudflare.StateOn || st.Kernel.Installed != tc.installed || st.Kernel.InSync != tc.inSync || st.Fetched == nil || len(st.IPv4) != 2 {
			t.Errorf("%s: %+v", tc.name, st)
		}
	}
	if sum() != before {
		t.Error("the audit changed the database")
	}
	// While a daemon holds the database the read-only open times out
	// (the daemon is asked instead).
	s, err = store.Open(db, store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	start := time.Now()
	if _, err := (CloudflareOffline{DBPath: db}).Status(context.Background(), cfg, inKernel); err == nil || time.Since(start) > 10*time.Second {
		t.Errorf("held database: %v after %v", err, time.Since(start))
	}
}

func TestHostSourcesFollowsTheDaemon(t *testing.T) {
	root := t.TempDir()
	other := filepath.Join(root, "srv/palisade")
	sock := filepath.Join(t.TempDir(), "p.sock")
	srv, err := control.Listen(sock, control.Options{AllowUID: func(uint32) bool { return true }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(ctx, control.HandlerFunc(func(_ context.Context, req control.Request) (any, error) {
			if req.Verb == control.VerbPing {
				return control.PingReply{PID: 7}, nil
			}
			return control.StatusReply{Backend: "nftables", ConfigDir: other, Healthy: true}, nil
		}))
	}()
	defer func() { cancel(); <-done }()

	src := HostSources(context.Background(), Options{Root: root, Socket: sock, Runner: &sysexec.Fake{}})
	if src.ConfigDir != other {
		t.Errorf("config dir %s, want the daemon's %s", src.ConfigDir, other)
	}
	st, err := src.Daemon.Status(context.Background())
	if err != nil || st.PID != 7 || st.Backend != "nftables" || st.Socket != sock {
		t.Errorf("daemon status: %+v %v", st, err)
	}
	explicit := filepath.Join(root, "etc/candidate")
	if src := HostSources(context.Background(), Options{Root: root, ConfigDir: explicit, Socket: sock, Runner: &sysexec.Fake{}}); src.ConfigDir != explicit {
		t.Errorf("--config-dir %s not kept: %s", explicit, src.ConfigDir)
	}
	if src := HostSources(context.Background(), Options{Root: root, Socket: sock + ".none", Runner: &sysexec.Fake{}}); src.ConfigDir != filepath.Join(root, "etc/palisade") {
		t.Errorf("without a daemon: %s", src.ConfigDir)
	}
}

// TestServiceJails: a service the guide names is found by its package, its
// binary or a listening socket, and the message says which.
func TestServiceJails(t *testing.T) {
	dpkg := func(pkg string) string {
		return "Package: " + pkg + "\nStatus: install ok installed\nVersion: 1.0\nArchitecture: amd64\n"
	}
	vsftpd := []Socket{{Proto: "tcp", Addr: netip.MustParseAddr("0.0.0.0"), Port: 21, Process: "vsftpd", PID: 9}}
	tests := []struct {
		name    string
		files   map[string]string
		socks   []Socket
		id      string
		status  Status
		message string
	}{
		{"not there", nil, nil, "jails.proftpd", Skip, "proftpd is neither installed nor listening"},
		{"no configuration", nil, nil, "jails.config", Pass, "etc/palisade does not exist: the built-in defaults"},
		{"no configuration, fail2ban's", map[string]string{"/etc/fail2ban/jail.conf": "[DEFAULT]\n"}, nil, "jails.config", Pass, "etc/palisade does not exist"},
		{"configured", map[string]string{"/etc/palisade/jail.local": "[sshd]\nenabled = true\n"}, nil, "jails.config", Pass, "1 enabled"},
		{"installed only", map[string]string{"/var/lib/dpkg/status": dpkg("proftpd-core")}, nil, "jails.proftpd", Fail, "proftpd is installed but no enabled jail"},
		{"binary only", map[string]string{"/usr/sbin/dovecot": ""}, nil, "jails.dovecot", Fail, "dovecot is installed but no enabled jail"},
		{"listening", nil, vsftpd, "jails.vsftpd", Fail, "vsftpd listens but no enabled jail"},
		{"listening on loopback only", nil, []Socket{{Proto: "tcp", Addr: netip.MustParseAddr("127.0.0.1"), Port: 21, Process: "vsftpd"}}, "jails.vsftpd", Skip, "neither installed nor listening"},
		{"jail enabled", map[string]string{"/var/lib/dpkg/status": dpkg("vsftpd"), "/etc/palisade/jail.local": "[vsftpd]\nenabled = true\nlogpath = /var/log/vsftpd.log\n", "/var/log/vsftpd.log": ""},
			vsftpd, "jails.vsftpd", Fail, "the daemon is not running"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root := tree(t, tc.files)
			st := NewState(Sources{Root: root, Sockets: stubSockets{socks: tc.socks}, Daemon: stubDaemon{err: ErrDaemonNotRunning}})
			rep := (&Auditor{Checkers: []Checker{jailsChecker{}}}).Run(context.Background(), st)
			c, ok := rep.Check(tc.id)
			if !ok || c.Status != tc.status || !strings.Contains(c.Message, tc.message) {
				t.Errorf("%s: %s %q, want %s %q", tc.id, c.Status, c.Message, tc.status, tc.message)
			}
			if c.Status == Fail && c.Fix == "" {
				t.Errorf("%s fails without a fix", tc.id)
			}
			hint := strings.Contains(strings.Join(c.Evidence, "\n"), "palisade audit --config-dir "+filepath.Join(root, "etc/fail2ban"))
			if want := tc.files["/etc/fail2ban/jail.conf"] != ""; tc.id == "jails.config" && hint != want {
				t.Errorf("jails.config evidence %q: fail2ban hint %v, want %v", c.Evidence, hint, want)
			}
			if tc.name == "configured" && strings.Contains(c.Message, "does not exist") {
				t.Errorf("jails.config: %s", c.Message)
			}
		})
	}
}
