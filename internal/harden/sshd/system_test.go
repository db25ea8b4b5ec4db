package sshd

import (
	"context"
	"errors"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/palisade-project/palisade/internal/firewall"
	"github.com/palisade-project/palisade/internal/harden/hardentest"
	"github.com/palisade-project/palisade/internal/harden/ports"
	"github.com/palisade-project/palisade/internal/harden/rollback"
	"github.com/palisade-project/palisade/internal/sysexec"
)

// System tests: real sshd -t / -T on configurations under a temporary root.

const stateDir = "/var"

func baseConfig() string {
	return "# test sshd_config\nInclude {ROOT}/etc/ssh/sshd_config.d/*.conf\n\nPort 22\nPasswordAuthentication no\nUsePAM no\nPidFile {ROOT}/run/sshd.pid\nAuthorizedKeysFile .ssh/authorized_keys\n"
}

func newRoot(t *testing.T, main string) *hardentest.Root {
	t.Helper()
	hardentest.RequireSSHD(t)
	r := hardentest.New(t)
	r.SSHD(main)
	return r
}

func findings(rep *Report) map[string]Finding {
	m := map[string]Finding{}
	for _, f := range rep.Findings {
		if _, dup := m[f.ID]; !dup {
			m[f.ID] = f
		}
	}
	return m
}

func TestAuditSystem(t *testing.T) {
	r := newRoot(t, baseConfig()+"Match Address 192.0.2.0/24\n    PermitRootLogin yes\n")
	r.Write("/etc/ssh/sshd_config.d/50-cloud-init.conf", "PasswordAuthentication yes\n")
	r.Write("/etc/ssh/sshd_config.d/10-first.conf", "MaxAuthTries 3\nX11Forwarding yes\n")
	pub := r.Keygen("/keys/admin")
	r.User("root", "0", "/bin/bash", "")
	r.User("admin", "1000", "/bin/bash", pub)
	r.User("svc", "999", "/usr/sbin/nologin", "")
	r.User("bob", "1001", "/bin/sh", "")

	ctx := context.Background()
	a := &Auditor{Daemon: NewDaemon(sysexec.NewExec(30*time.Second), r.Dir), Root: r.Dir,
		Jail: &JailInfo{Found: true, Enabled: true, Ports: []firewall.PortRange{{From: 22, To: 22}}, Where: "jail.local:3"}}
	rep, err := a.Audit(ctx)
	if err != nil {
		t.Fatal(err)
	}
	f := findings(rep)
	check := func(id string, sev Severity, where string) {
		t.Helper()
		got, ok := f[id]
		if !ok {
			t.Errorf("no finding %s in %+v", id, rep.Findings)
			return
		}
		if got.Severity != sev || (where != "" && got.Where != where) {
			t.Errorf("%s = %+v, want severity %s at %s", id, got, sev, where)
		}
		if got.Explanation == "" || (sev != OK && sev != Info && got.Fix == "") {
			t.Errorf("%s lacks explanation or fix: %+v", id, got)
		}
	}
	dropIn := r.Path("/etc/ssh/sshd_config.d/50-cloud-init.conf")
	check("password-auth", High, dropIn+":1")
	check("x11-forwarding", Low, r.Path("/etc/ssh/sshd_config.d/10-first.conf")+":2")
	check("default-port", Low, r.Path("/etc/ssh/sshd_config")+":4")
	check("match-permitrootlogin", High, r.Path("/etc/ssh/sshd_config")+":10")
	check("jail", OK, "jail.local:3")
	if _, ok := f["max-auth-tries"]; ok {
		t.Error("MaxAuthTries 3 reported")
	}
	if _, ok := f["no-keys"]; ok {
		t.Error("no-keys reported although admin has a key")
	}
	if !slices.Equal(rep.Ports, []int{22}) {
		t.Errorf("ports = %v", rep.Ports)
	}
	users := map[string]int{}
	for _, u := range rep.Users {
		users[u.User] = u.Keys
	}
	if len(users) != 3 || users["admin"] != 1 || users["bob"] != 0 {
		t.Errorf("users = %v (svc has no login shell)", users)
	}
	if rep.Worst() != High {
		t.Errorf("worst = %s", rep.Worst())
	}

	// Jail on the wrong port.
	a.Jail.Ports = []firewall.PortRange{{From: 2222, To: 2222}}
	rep, err = a.Audit(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if j := findings(rep)["jail"]; j.Severity != Medium {
		t.Errorf("jail on another port: %+v", j)
	}
}

// fakeReloader records reloads.
type fakeReloader struct {
	mu    sync.Mutex
	calls []string
	fail  bool
}

func (f *fakeReloader) Detect(context.Context, Effective) string { return "pidfile:/nonexistent" }
func (f *fakeReloader) SocketActive(context.Context) bool        { return false }
func (f *fakeReloader) Reload(_ context.Context, m string, _ bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, m)
	if f.fail {
		return errors.New("reload failed")
	}
	return nil
}

func (f *fakeReloader) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.calls)
}

// failTest makes "sshd -t" fail and runs everything else for real.
type failTest struct{ inner sysexec.Runner }

func (f failTest) Run(ctx context.Context, c sysexec.Cmd) (sysexec.Result, error) {
	if len(c.Args) > 0 && c.Args[0] == "-t" {
		return sysexec.Result{ExitCode: 255}, &sysexec.ExitError{Cmd: c.String(), ExitCode: 255, Stderr: "test: bad configuration"}
	}
	return f.inner.Run(ctx, c)
}

func newHardener(r *hardentest.Root, run sysexec.Runner, env map[string]string) (*Hardener, *fakeReloader) {
	rl := &fakeReloader{}
	h := &Hardener{
		Daemon:   NewDaemon(run, r.Dir),
		Runner:   run,
		Reloader: rl,
		Store:    rollback.New(r.Dir),
		Root:     r.Dir,
		Getenv:   func(k string) string { return env[k] },
		StartWatcher: func(*rollback.State) (int, error) {
			return 0, nil
		},
	}
	return h, rl
}

func TestHardenSystem(t *testing.T) {
	r := newRoot(t, baseConfig())
	r.Write("/etc/ssh/sshd_config.d/50-cloud-init.conf", "PasswordAuthentication yes\n")
	r.Write("/etc/palisade/jail.local", "[DEFAULT]\nbantime = 1h\n\n[sshd]\nenabled = true\nport    = ssh\n")
	r.User("admin", "1000", "/bin/bash", r.Keygen("/keys/admin"))
	r.Write("/proc/net/tcp", "  sl  local_address rem_address   st\n   0: 00000000:0016 00000000:0000 0A\n")
	before := r.Hash(stateDir)
	run := sysexec.NewExec(30 * time.Second)
	h, rl := newHardener(r, run, map[string]string{"SUDO_USER": "admin"})
	ctx := context.Background()

	// Dry run: a diff, nothing written.
	res, err := h.Harden(ctx, Options{Settings: Settings{KeysOnly: true, Port: 2222}, DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(res.Diff, "+PasswordAuthentication no") || !strings.Contains(res.Diff, "+Port 2222") || !strings.Contains(res.Diff, "+port    = 2222") {
		t.Errorf("diff:\n%s", res.Diff)
	}
	if r.Hash() != before {
		t.Fatal("dry run changed the tree")
	}

	res, err = h.Harden(ctx, Options{Settings: Settings{KeysOnly: true, NoRootPassword: true, Port: 2222}, ConfirmWithin: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	eff, err := h.Daemon.Effective(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{"passwordauthentication": "no", "kbdinteractiveauthentication": "no", "port": "2222", "permitrootlogin": "without-password"} {
		if eff.Get(k) != v {
			t.Errorf("after harden sshd -T %s = %q, want %q", k, eff.Get(k), v)
		}
	}
	if got := r.Read("/etc/palisade/jail.local"); got != "[DEFAULT]\nbantime = 1h\n\n[sshd]\nenabled = true\nport    = 2222\n" {
		t.Errorf("jail.local:\n%s", got)
	}
	if rl.count() != 1 || !slices.Equal(res.NewPorts, []int{2222}) || !slices.Equal(res.OldPorts, []int{22}) {
		t.Errorf("reloads %d, result %+v", rl.count(), res)
	}
	// A second change waits for the first.
	if _, err := h.Harden(ctx, Options{Settings: Settings{KeysOnly: true}}); err == nil || !strings.Contains(err.Error(), "waits for confirmation") {
		t.Errorf("second harden while pending: %v", err)
	}

	// Manual rollback restores every file byte for byte and reloads.
	st, done, err := h.Rollback(ctx, false, "")
	if err != nil || !done || !st.RolledBack {
		t.Fatalf("rollback: %v %v %+v", done, err, st)
	}
	if r.Hash(stateDir) != before {
		t.Error("rollback did not restore the tree")
	}
	if rl.count() != 2 {
		t.Errorf("reloads = %d", rl.count())
	}
	if _, err := h.Confirm(ctx); err == nil {
		t.Error("confirm after rollback succeeded")
	}

	// Confirmed change stays.
	if _, err := h.Harden(ctx, Options{Settings: Settings{KeysOnly: true}}); err != nil {
		t.Fatal(err)
	}
	st, err = h.Confirm(ctx)
	if err != nil || !st.Confirmed {
		t.Fatalf("confirm: %v %+v", err, st)
	}
	if eff, _ := h.Daemon.Effective(ctx, nil); eff.Get("passwordauthentication") != "no" {
		t.Error("confirmed change lost")
	}
	// The backup is kept: rollback restores it even after confirmation.
	if _, done, err := h.Rollback(ctx, false, ""); err != nil || !done {
		t.Fatalf("rollback after confirm: %v", err)
	}
	if r.Hash(stateDir) != before {
		t.Error("rollback after confirm did not restore the tree")
	}
}

// The watcher rolls back an unconfirmed change at its deadline.
func TestHardenWatcherRollsBack(t *testing.T) {
	r := newRoot(t, baseConfig())
	r.User("admin", "1000", "/bin/bash", r.Keygen("/keys/admin"))
	before := r.Hash(stateDir)
	h, rl := newHardener(r, sysexec.NewExec(30*time.Second), map[string]string{"SUDO_USER": "admin"})
	done := make(chan error, 1)
	h.StartWatcher = func(st *rollback.State) (int, error) {
		id := st.ID
		go func() {
			_, _, err := h.Rollback(context.Background(), true, id)
			done <- err
		}()
		return 0, nil
	}
	ctx := context.Background()
	if _, err := h.Harden(ctx, Options{Settings: Settings{KeysOnly: true, Port: 2222}, ConfirmWithin: 300 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	if r.Hash(stateDir) == before {
		t.Fatal("harden changed nothing")
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("watcher did not finish within 10s")
	}
	if r.Hash(stateDir) != before {
		t.Error("watcher did not restore the tree")
	}
	st, _ := h.Store.Load()
	if st == nil || !st.RolledBack || rl.count() != 2 {
		t.Errorf("state %+v, reloads %d", st, rl.count())
	}

	// A confirmed change is left alone by its watcher.
	if _, err := h.Harden(ctx, Options{Settings: Settings{KeysOnly: true}, ConfirmWithin: 300 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Confirm(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if eff, _ := h.Daemon.Effective(ctx, nil); eff.Get("passwordauthentication") != "no" {
		t.Error("watcher rolled back a confirmed change")
	}
}

func TestHardenRefusalsWriteNothing(t *testing.T) {
	tests := []struct {
		name    string
		setup   func(r *hardentest.Root)
		env     map[string]string
		opts    Options
		failT   bool
		usage   bool
		message string
	}{
		{name: "no keys for the sudo user", env: map[string]string{"SUDO_USER": "bob"},
			opts: Options{Settings: Settings{KeysOnly: true}}, message: "you (bob) have no usable key"},
		{name: "no keys for anyone", setup: func(r *hardentest.Root) { r.Write("/home/admin/.ssh/authorized_keys", "# none\n") },
			opts: Options{Settings: Settings{KeysOnly: true}}, message: "no user allowed to log in has a usable authorized_keys entry"},
		{name: "ssh session user without keys", env: map[string]string{"SSH_CONNECTION": "192.0.2.9 5000 192.0.2.1 22", "USER": "bob"},
			opts: Options{Settings: Settings{KeysOnly: true}}, message: "you (bob)"},
		{name: "port below 1024", opts: Options{Settings: Settings{Port: 222}}, usage: true, message: "outside 1024-65535"},
		{name: "port above 65535", opts: Options{Settings: Settings{Port: 70000}}, usage: true, message: "outside"},
		{name: "port listening", setup: func(r *hardentest.Root) {
			r.Write("/proc/net/tcp6", "  sl  local_address                         rem_address                           st\n   0: 00000000000000000000000000000000:08AE 00000000000000000000000000000000:0000 0A\n")
		}, opts: Options{Settings: Settings{Port: 2222}}, message: "already in use: tcp [::]:2222"},
		{name: "port in /etc/services", setup: func(r *hardentest.Root) { r.Write("/etc/services", "rsync 873/tcp\nmysql 3306/tcp\n") },
			opts: Options{Settings: Settings{Port: 3306}}, message: "mysql/tcp"},
		{name: "sshd -t fails", failT: true, opts: Options{Settings: Settings{KeysOnly: true, Port: 2222}}, message: "the new configuration is rejected: sshd -t -f "},
		{name: "nothing asked", usage: true, message: "nothing to do"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newRoot(t, baseConfig())
			r.Write("/etc/ssh/sshd_config.d/50-cloud-init.conf", "PasswordAuthentication yes\n")
			r.Write("/etc/palisade/jail.local", "[sshd]\nenabled = true\n")
			r.User("admin", "1000", "/bin/bash", r.Keygen("/keys/admin"))
			r.User("bob", "1001", "/bin/bash", "")
			r.Write("/proc/net/tcp", "  sl  local_address rem_address   st\n")
			r.Write("/proc/net/tcp6", "  sl  local_address rem_address   st\n")
			if tc.setup != nil {
				tc.setup(r)
			}
			before := r.Hash()
			var run sysexec.Runner = sysexec.NewExec(30 * time.Second)
			if tc.failT {
				run = failTest{run}
			}
			h, rl := newHardener(r, run, tc.env)
			h.Firewall = ports.None{}
			_, err := h.Harden(context.Background(), tc.opts)
			if err == nil || !strings.Contains(err.Error(), tc.message) {
				t.Fatalf("err = %v, want %q", err, tc.message)
			}
			var re *RefusedError
			if isRefused := errors.As(err, &re); tc.usage && (!isRefused || !re.Usage) {
				t.Errorf("not a usage refusal: %v", err)
			}
			if after := r.Hash(); after != before {
				t.Error("the tree changed")
			}
			if _, err := os.Stat(r.Path(stateDir)); err == nil {
				t.Error("state directory created for a refusal")
			}
			if rl.count() != 0 {
				t.Error("sshd reloaded")
			}
			// --force overrides the key and /etc/services checks only.
			if strings.Contains(tc.name, "keys") || strings.Contains(tc.name, "services") {
				tc.opts.Force = true
				tc.opts.DryRun = true
				if _, err := h.Harden(context.Background(), tc.opts); err != nil {
					t.Errorf("with --force: %v", err)
				}
			}
		})
	}
}

func TestHardenMatchBlockVerified(t *testing.T) {
	r := newRoot(t, baseConfig()+"Match User deploy\n    PasswordAuthentication yes\n")
	r.User("admin", "1000", "/bin/bash", r.Keygen("/keys/admin"))
	h, _ := newHardener(r, sysexec.NewExec(30*time.Second), map[string]string{"SUDO_USER": "admin"})
	ctx := context.Background()
	if _, err := h.Harden(ctx, Options{Settings: Settings{KeysOnly: true}, ConfirmWithin: time.Hour}); err != nil {
		t.Fatal(err)
	}
	e, err := h.Daemon.Effective(ctx, &Conn{User: "deploy", Host: "h", Addr: "192.0.2.1"})
	if err != nil {
		t.Fatal(err)
	}
	if e.Get("passwordauthentication") != "no" {
		t.Errorf("Match User deploy still allows passwords")
	}
	if !strings.Contains(r.Read("/etc/ssh/sshd_config"), "Match User deploy\n    PasswordAuthentication no\n") {
		t.Errorf("config:\n%s", r.Read("/etc/ssh/sshd_config"))
	}
}

func TestAuditFindingsTable(t *testing.T) {
	tests := []struct {
		name   string
		config string
		setup  func(r *hardentest.Root)
		want   map[string]Severity // finding id -> severity
		where  map[string]string   // finding id -> system path:line
		absent []string
	}{
		{name: "root with password, empty passwords, no pubkey",
			config: "PermitRootLogin yes\nPermitEmptyPasswords yes\nPubkeyAuthentication no\nUsePAM no\n",
			want:   map[string]Severity{"root-login": High, "empty-passwords": Critical, "pubkey-auth": High, "password-auth": High}},
		{name: "keyboard-interactive through PAM",
			config: "PasswordAuthentication no\nKbdInteractiveAuthentication yes\nUsePAM yes\n",
			want:   map[string]Severity{"kbd-interactive": High, "password-auth": OK}},
		{name: "hardened",
			config: "Port 2222\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nPermitRootLogin no\nMaxAuthTries 3\nLoginGraceTime 30\nX11Forwarding no\nAllowUsers admin\nUsePAM no\n",
			want:   map[string]Severity{"root-login": OK, "allow-users": OK, "password-auth": OK},
			absent: []string{"default-port", "max-auth-tries", "login-grace-time", "x11-forwarding", "kbd-interactive", "no-keys", "socket-activation"}},
		{name: "login grace time 0 and socket activation",
			config: "LoginGraceTime 0\nUsePAM no\n",
			setup: func(r *hardentest.Root) {
				if err := os.MkdirAll(r.Path("/etc/systemd/system/sockets.target.wants"), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.Symlink("/lib/systemd/system/ssh.socket", r.Path("/etc/systemd/system/sockets.target.wants/ssh.socket")); err != nil {
					t.Fatal(err)
				}
			},
			want: map[string]Severity{"login-grace-time": Low, "socket-activation": Info}},
		{name: "nobody has a key",
			config: "UsePAM no\nAllowUsers bob\n",
			want:   map[string]Severity{"no-keys": High}},
		{name: "match all re-enables passwords",
			config: "PasswordAuthentication no\nUsePAM no\nMatch all\n  PasswordAuthentication yes\n",
			want:   map[string]Severity{"password-auth": High}, where: map[string]string{"password-auth": "/etc/ssh/sshd_config:4"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newRoot(t, tc.config)
			r.User("admin", "1000", "/bin/bash", r.Keygen("/keys/admin"))
			r.User("bob", "1001", "/bin/bash", "")
			if tc.setup != nil {
				tc.setup(r)
			}
			a := &Auditor{Daemon: NewDaemon(sysexec.NewExec(30*time.Second), r.Dir), Root: r.Dir}
			rep, err := a.Audit(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			f := findings(rep)
			for id, sev := range tc.want {
				if got, ok := f[id]; !ok || got.Severity != sev {
					t.Errorf("%s = %+v (present %v), want %s", id, got, ok, sev)
				}
			}
			for id, w := range tc.where {
				if got := f[id].Where; got != r.Path(w) {
					t.Errorf("%s where = %q, want %q", id, got, r.Path(w))
				}
			}
			for _, id := range tc.absent {
				if got, ok := f[id]; ok {
					t.Errorf("unexpected %+v", got)
				}
			}
		})
	}
}

// socketReloader reports ssh.socket active.
type socketReloader struct{ fakeReloader }

func (*socketReloader) SocketActive(context.Context) bool { return true }

func TestHardenSocketActivation(t *testing.T) {
	r := newRoot(t, baseConfig())
	r.User("admin", "1000", "/bin/bash", r.Keygen("/keys/admin"))
	h, _ := newHardener(r, sysexec.NewExec(30*time.Second), map[string]string{"SUDO_USER": "admin"})
	sr := &socketReloader{}
	h.Reloader = sr
	before := r.Hash(stateDir)
	if _, err := h.Harden(context.Background(), Options{Settings: Settings{Port: 2222}, ConfirmWithin: time.Hour}); err != nil {
		t.Fatal(err)
	}
	if got := r.Read(SocketUnitDropIn); got != "# Written by palisade ssh harden.\n[Socket]\nListenStream=\nListenStream=2222\n" {
		t.Errorf("socket drop-in:\n%s", got)
	}
	st, _ := h.Store.Load()
	if !strings.HasSuffix(st.Reload, "+socket") {
		t.Errorf("reload method %q", st.Reload)
	}
	if _, _, err := h.Rollback(context.Background(), false, ""); err != nil {
		t.Fatal(err)
	}
	if r.Hash(stateDir) != before {
		t.Error("rollback left the socket drop-in")
	}
}

func TestHardenRefusesPasswordOnlyAuthenticationMethods(t *testing.T) {
	r := newRoot(t, baseConfig()+"AuthenticationMethods password publickey,password\n")
	r.User("admin", "1000", "/bin/bash", r.Keygen("/keys/admin"))
	before := r.Hash()
	h, rl := newHardener(r, sysexec.NewExec(30*time.Second), map[string]string{"SUDO_USER": "admin"})
	_, err := h.Harden(context.Background(), Options{Settings: Settings{KeysOnly: true}, ConfirmWithin: time.Hour})
	if err == nil || !strings.Contains(err.Error(), "AuthenticationMethods") {
		t.Fatalf("err = %v", err)
	}
	if r.Hash() != before || rl.count() != 0 {
		t.Error("files changed or sshd reloaded")
	}
}

func TestKeyLoginPossible(t *testing.T) {
	for in, want := range map[string]bool{
		"": true, "any": true, "publickey": true, "password publickey,publickey": true,
		"password": false, "publickey,password": false, "keyboard-interactive publickey,keyboard-interactive": false,
	} {
		if got := KeyLoginPossible(in); got != want {
			t.Errorf("KeyLoginPossible(%q) = %v", in, got)
		}
	}
}

func TestRecoverPendingAfterReboot(t *testing.T) {
	r := newRoot(t, baseConfig())
	r.User("admin", "1000", "/bin/bash", r.Keygen("/keys/admin"))
	before := r.Hash(stateDir)
	h, _ := newHardener(r, sysexec.NewExec(30*time.Second), map[string]string{"SUDO_USER": "admin"})
	ctx := context.Background()
	if _, done, err := h.RecoverPending(ctx); err != nil || done {
		t.Fatalf("nothing recorded: RecoverPending = %v, %v; want nothing done", done, err)
	}
	// The watcher "dies with the reboot": it is never started.
	h.StartWatcher = func(*rollback.State) (int, error) { return 0, nil }
	if _, err := h.Harden(ctx, Options{Settings: Settings{KeysOnly: true, Port: 2222}, ConfirmWithin: 200 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	if r.Hash(stateDir) == before {
		t.Fatal("harden changed nothing")
	}
	st, done, err := h.RecoverPending(ctx)
	if err != nil || !done {
		t.Fatalf("RecoverPending = %v, %v; want a rollback", done, err)
	}
	if !st.RolledBack || r.Hash(stateDir) != before {
		t.Errorf("tree not restored (rolled back %v)", st.RolledBack)
	}
	if _, done, err := h.RecoverPending(ctx); err != nil || done {
		t.Errorf("second RecoverPending = %v, %v; want nothing to do", done, err)
	}
}
