package daemon

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/palisade-project/palisade/internal/control"
	"github.com/palisade-project/palisade/internal/firewall"
)

// inactiveUFW is a ufw that is installed but not enabled: it refuses its
// jails' set-up and bans until enabled.
type inactiveUFW struct {
	*firewall.Fake
	active atomic.Bool
}

func (u *inactiveUFW) Name() string { return "ufw" }

func (u *inactiveUFW) Setup(ctx context.Context, j []firewall.JailSpec) error {
	if !u.active.Load() {
		return errors.New("ufw setup: ufw is not active")
	}
	return u.Fake.Setup(ctx, j)
}

func (u *inactiveUFW) Add(ctx context.Context, b []firewall.Ban) error {
	if !u.active.Load() {
		return errors.New("ufw is not active")
	}
	return u.Fake.Add(ctx, b)
}

// agreeEnv is a configuration directory with a daemon's options.
type agreeEnv struct {
	t    *testing.T
	dir  string
	etc  string
	logf string
	ufw  *inactiveUFW
	opts Options
}

func newAgreeEnv(t *testing.T) *agreeEnv {
	t.Helper()
	dir := t.TempDir()
	e := &agreeEnv{t: t, dir: dir, etc: filepath.Join(dir, "etc"), logf: filepath.Join(dir, "auth.log"),
		ufw: &inactiveUFW{Fake: firewall.NewFake()}}
	if err := os.MkdirAll(e.etc, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(e.logf, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	devnull, _ := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	t.Cleanup(func() { devnull.Close() })
	e.opts = checkOpts(e.etc)
	e.opts.RequireConfigDir = true
	e.opts.Socket = filepath.Join(dir, "run", "p.sock")
	e.opts.DB = filepath.Join(dir, "p.db")
	e.opts.Backend = firewall.NewFake()
	e.opts.NewBackend = func(kind string) (firewall.Backend, error) {
		if kind == "ufw" {
			return e.ufw, nil
		}
		return nil, fmt.Errorf("no %s here", kind)
	}
	e.opts.Probe = func(kind string) error {
		if kind == "ufw" && !e.ufw.active.Load() {
			return fmt.Errorf("ufw is %w", errNotActive)
		}
		return nil
	}
	e.opts.Stderr = devnull
	e.opts.Notify = func(string) {}
	e.opts.PollInterval = 20 * time.Millisecond
	return e
}

func (e *agreeEnv) write(jailLocal string) {
	e.t.Helper()
	text := strings.ReplaceAll(jailLocal, "LOG", e.logf)
	if err := os.WriteFile(filepath.Join(e.etc, "jail.local"), []byte(text), 0o644); err != nil {
		e.t.Fatal(err)
	}
}

// run starts the daemon; it stops at the end of the test, or when stop
// is called.
func (e *agreeEnv) run() (*Daemon, error) {
	d, _, err := e.runStop()
	return d, err
}

func (e *agreeEnv) runStop() (*Daemon, func(), error) {
	e.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	d, err := New(ctx, e.opts)
	if err != nil {
		cancel()
		return nil, nil, err
	}
	done := make(chan error, 1)
	go func() { done <- d.Serve(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			select {
			case <-done:
			case <-time.After(20 * time.Second):
				e.t.Error("daemon did not stop")
			}
		})
	}
	e.t.Cleanup(stop)
	return d, stop, nil
}

const agreeBase = "[sshd]\nenabled = true\nlogpath = LOG\nmaxretry = 3\n"

// noSSHD turns off the built-in sshd jail.
const noSSHD = "[sshd]\nenabled = false\n"

// TestConfigCheckStartReloadAgree feeds configuration text through
// `config check`, daemon start-up and reload: they accept and refuse the
// same configurations, refusals name the same file:line, and what check
// warns about is what status shows.
func TestConfigCheckStartReloadAgree(t *testing.T) {
	cases := []struct {
		name     string
		jail     string
		ok       bool
		where    string // file:line (suffix) every refusal names
		warn     string // a check warning, and the jail's status (error or warnings)
		jailName string
		verify   func(t *testing.T, e *agreeEnv, d *Daemon)
	}{
		{name: "mask-form ignoreip", ok: true, jailName: "sshd",
			jail: agreeBase + "ignoreip = 192.0.2.0/255.255.255.0\n",
			verify: func(t *testing.T, e *agreeEnv, d *Daemon) {
				ex := d.explain(netip.MustParseAddr("192.0.2.77"))
				if len(ex.Jails) != 1 || !ex.Jails[0].Ignored || !strings.Contains(ex.Jails[0].IgnoreRule, "192.0.2.0/255.255.255.0") {
					t.Fatalf("explain %+v", ex)
				}
			}},
		{name: "jail name web@x", ok: true, jailName: "web@x",
			jail: noSSHD + "[web@x]\nenabled = true\nfilter = sshd\nlogpath = LOG\nmaxretry = 3\n",
			verify: func(t *testing.T, e *agreeEnv, d *Daemon) {
				appendFailures(t, e.logf, "198.51.100.4", 3)
				waitBanned(t, d, "web@x", "198.51.100.4")
			}},
		{name: "inactive ufw", ok: true, jailName: "sshd", warn: "ufw",
			jail: agreeBase + "banaction = ufw\n",
			verify: func(t *testing.T, e *agreeEnv, d *Daemon) {
				st, _ := d.status("sshd")
				if !strings.Contains(st.Jails[0].Error, "ufw is not active") {
					t.Fatalf("status error %q", st.Jails[0].Error)
				}
				// Bans are recorded meanwhile; once ufw is enabled the
				// jail is set up again and its status clears.
				appendFailures(t, e.logf, "198.51.100.5", 3)
				waitBanned(t, d, "sshd", "198.51.100.5")
				e.ufw.active.Store(true)
				d.retrySetup(context.Background())
				if st, _ := d.status("sshd"); st.Jails[0].Error != "" {
					t.Fatalf("status error after ufw enable: %q", st.Jails[0].Error)
				}
			}},
		{name: "broken filter", ok: false, where: "jail.local:2",
			jail: "[web]\nenabled = true\nfilter = broken\nlogpath = LOG\n" + noSSHD},
		{name: "missing filter", ok: false, where: "jail.local:2",
			jail: "[web]\nenabled = true\nfilter = no-such-filter\nlogpath = LOG\n" + noSSHD},
		{name: "bantime garbage", ok: false, where: "jail.local:4",
			jail: agreeBase[:len(agreeBase)-len("maxretry = 3\n")] + "bantime = forever\n"},
		{name: "missing logpath, backend auto", ok: true, jailName: "sshd", warn: "does not exist",
			jail: "[sshd]\nenabled = true\nbackend = auto\nlogpath = LOG.missing\nmaxretry = 3\n",
			verify: func(t *testing.T, e *agreeEnv, d *Daemon) {
				st, _ := d.status("sshd")
				if w := st.Jails[0].Watching; len(w) != 1 || w[0] != e.logf+".missing" {
					t.Fatalf("watching %q, want the missing file (never the journal)", w)
				}
				// The file appears: it is read from its start.
				if err := os.WriteFile(e.logf+".missing", nil, 0o644); err != nil {
					t.Fatal(err)
				}
				appendFailures(t, e.logf+".missing", "198.51.100.6", 3)
				waitBanned(t, d, "sshd", "198.51.100.6")
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newAgreeEnv(t)
			if tc.name == "broken filter" {
				if err := os.MkdirAll(filepath.Join(e.etc, "filter.d"), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(e.etc, "filter.d", "broken.conf"), []byte("[Definition]\nfailregex = ^(unclosed <HOST>\n"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			// 1. config check
			e.write(tc.jail)
			rep := Check(e.opts)
			if rep.OK != tc.ok {
				t.Fatalf("check ok=%v, want %v: %+v", rep.OK, tc.ok, rep.Errors)
			}
			if !tc.ok && !strings.Contains(rep.Errors.Error(), tc.where) {
				t.Fatalf("check errors %q do not name %s", rep.Errors.Error(), tc.where)
			}
			if w := strings.Join(rep.Warnings, "; "); (tc.warn == "") != (w == "") || !strings.Contains(w, tc.warn) {
				t.Fatalf("check warnings %q, want %q", w, tc.warn)
			}

			// 2. reload into it, from a running good configuration
			e.write(agreeBase)
			d, stop, err := e.runStop()
			if err != nil {
				t.Fatal(err)
			}
			e.write(tc.jail)
			_, rerr := d.Reload()
			if (rerr == nil) != tc.ok {
				t.Fatalf("reload err=%v, want ok=%v", rerr, tc.ok)
			}
			if !tc.ok {
				if !strings.Contains(rerr.Error(), tc.where) {
					t.Fatalf("reload error %q does not name %s", rerr, tc.where)
				}
				st, _ := d.status("")
				if len(st.Jails) != 1 || st.Jails[0].Name != "sshd" || !strings.Contains(st.ReloadError, tc.where) {
					t.Fatalf("after the refused reload: %+v", st)
				}
			}

			// 3. start with it
			if tc.ok {
				stop() // restart on the same files
			}
			e2 := newAgreeEnv(t)
			e2.etc, e2.opts.ConfigDir = e.etc, e.etc
			e2.logf = e.logf
			d2, err := e2.run()
			if (err == nil) != tc.ok {
				t.Fatalf("start err=%v, want ok=%v", err, tc.ok)
			}
			if !tc.ok {
				if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tc.where) {
					t.Fatalf("start error %v: want a configuration error naming %s", err, tc.where)
				}
				return
			}
			st, err := d2.status(tc.jailName)
			if err != nil {
				t.Fatal(err)
			}
			js := st.Jails[0]
			got := js.Error + " " + strings.Join(js.Warnings, " ")
			if tc.warn != "" && !strings.Contains(got, tc.warn) {
				t.Fatalf("status %+v does not show the check's warning %q", js, tc.warn)
			}
			if tc.verify != nil {
				tc.verify(t, e2, d2)
			}
		})
	}
}

func waitBanned(t *testing.T, d *Daemon, jail, ip string) control.BanEntry {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		for _, b := range d.bans.List(jail) {
			if banAddr(b.Prefix) == ip {
				return entry(b)
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not banned in %s (bans %v)", ip, jail, d.bans.List(""))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func sleepTick() { time.Sleep(10 * time.Millisecond) }
