package daemon

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/palisade-project/palisade/internal/ban"
	"github.com/palisade-project/palisade/internal/control"
	"github.com/palisade-project/palisade/internal/firewall"
	"github.com/palisade-project/palisade/internal/pipeline"
)

// syncBuffer is a log sink safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func running(d *Daemon, name string) *pipeline.Jail {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.jails[name]
}

func counted(t *testing.T, d *Daemon, jail, ip string) int {
	t.Helper()
	for _, j := range d.explain(netip.MustParseAddr(ip)).Jails {
		if j.Jail == jail {
			return j.Failures
		}
	}
	t.Fatalf("jail %s not in explain", jail)
	return 0
}

func waitCounted(t *testing.T, d *Daemon, jail string, total uint64) {
	t.Helper()
	waitFor(t, "failures counted", func() bool {
		st, err := d.status(jail)
		return err == nil && st.Jails[0].TotalFailed >= total
	})
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for i := 0; i < 1500 && !cond(); i++ {
		sleepTick()
	}
	if !cond() {
		t.Fatalf("timed out waiting for %s", what)
	}
}

// TestReloadSwapsOnlyWhatChanged: a changed filter keeps the counters, a
// changed counting option starts a new failure table with the totals
// carried over, a changed logpath reads the new file, an unchanged jail is
// untouched, a removed jail lifts its bans and says so, and a broken
// configuration is refused whole and logged.
func TestReloadSwapsOnlyWhatChanged(t *testing.T) {
	e := newAgreeEnv(t)
	var logs syncBuffer
	e.opts.Stderr = &logs
	other := filepath.Join(e.dir, "other.log")
	if err := os.WriteFile(other, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	web := "[web]\nenabled = true\nfilter = sshd\nlogpath = LOG\nmaxretry = 5\n"
	e.write(agreeBase + web)
	d, err := e.run()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	const ip = "192.0.2.55"
	appendFailures(t, e.logf, ip, 2)
	waitCounted(t, d, "sshd", 2)
	waitCounted(t, d, "web", 2)
	if _, err := d.manualBan(ctx, control.Request{Jail: "web", IP: "198.51.100.99"}); err != nil {
		t.Fatal(err)
	}
	sshd := running(d, "sshd")

	// 1. sshd's filter changes (mode=aggressive): counters stay.
	e.write(strings.Replace(agreeBase, "maxretry = 3", "maxretry = 3\nfilter = sshd[mode=aggressive]", 1) + web)
	rep, err := d.Reload()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(rep.Changed, ",") != "sshd" || len(rep.Added)+len(rep.Removed) != 0 {
		t.Fatalf("reload reply %+v", rep)
	}
	if running(d, "sshd") != sshd || counted(t, d, "sshd", ip) != 2 || running(d, "web") == nil {
		t.Fatal("a filter change lost the jail's counters")
	}
	appendFailures(t, e.logf, "192.0.2.60", 3) // maxretry 3: banned in sshd
	waitBanned(t, d, "sshd", "192.0.2.60")
	waitCounted(t, d, "sshd", 5)

	// 2. maxretry changes: a new failure table, totals carried over.
	e.write(strings.Replace(agreeBase, "maxretry = 3", "maxretry = 4\nfilter = sshd[mode=aggressive]", 1) + web)
	if _, err := d.Reload(); err != nil {
		t.Fatal(err)
	}
	st, _ := d.status("sshd")
	if running(d, "sshd") == sshd || counted(t, d, "sshd", ip) != 0 || st.Jails[0].TotalFailed != 5 ||
		st.Jails[0].TotalBanned != 1 || st.Jails[0].CurrentlyBanned != 1 {
		t.Fatalf("after a counting change: same jail %v, counted %d, status %+v", running(d, "sshd") == sshd, counted(t, d, "sshd", ip), st.Jails[0])
	}

	// 3. sshd's logpath changes: the new file is read, the old one not.
	e.write(strings.Replace(agreeBase, "logpath = LOG", "logpath = "+other, 1) + web)
	if _, err := d.Reload(); err != nil {
		t.Fatal(err)
	}
	appendFailures(t, other, "192.0.2.56", 1)
	waitCounted(t, d, "sshd", 6)
	appendFailures(t, e.logf, "192.0.2.57", 1)
	waitCounted(t, d, "web", 6)
	if st, _ := d.status("sshd"); st.Jails[0].TotalFailed != 6 {
		t.Fatalf("sshd still reads its old logpath: %+v", st.Jails[0])
	}

	// 4. A broken configuration is refused whole; the daemon logs it.
	e.write("[sshd]\nenabled = true\nlogpath = LOG\nmaxretry = many\n")
	if _, err := d.Reload(); err == nil || !strings.Contains(err.Error(), "jail.local:4") {
		t.Fatalf("broken reload: %v", err)
	}
	if !strings.Contains(logs.String(), "reload refused; the running configuration is kept") {
		t.Fatalf("refusal not logged:\n%s", logs.String())
	}
	if st, _ := d.status(""); len(st.Jails) != 2 {
		t.Fatalf("jails after a refused reload: %+v", st.Jails)
	}

	// 5. web is removed: its bans are lifted, and the reply and log say so.
	e.write(strings.Replace(agreeBase, "logpath = LOG", "logpath = "+other, 1))
	rep, err = d.Reload()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(rep.Removed, ",") != "web" || rep.Lifted["web"] != 1 || len(d.bans.List("web")) != 0 {
		t.Fatalf("reply %+v, web bans %v", rep, d.bans.List("web"))
	}
	bans, _ := e.opts.Backend.List(ctx)
	for _, b := range bans {
		if b.Jail == "web" {
			t.Fatalf("firewall still holds %v", bans)
		}
	}
	if !strings.Contains(logs.String(), "jail removed: its bans are lifted jail=web lifted=1") {
		t.Fatalf("removal not logged:\n%s", logs.String())
	}
	if _, err := d.status("web"); err == nil {
		t.Fatal("removed jail still in status")
	}
}

// TestReloadMovesBansWithTheRoute: a jail whose banaction changes is set up
// on its new backend and its bans move there; a changed port is set up
// again on the same backend; bans of a jail that is not running stay
// manageable by its name.
func TestReloadMovesBansWithTheRoute(t *testing.T) {
	e := newAgreeEnv(t)
	e.ufw.active.Store(true)
	fake := e.opts.Backend.(*firewall.Fake)
	e.write(agreeBase + "port = 22\n")
	d, err := e.run()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := d.manualBan(ctx, control.Request{Jail: "sshd", IP: "198.51.100.20"}); err != nil {
		t.Fatal(err)
	}

	// 1. The port changes: set up again, same backend.
	e.write(agreeBase + "port = 2222\n")
	if _, err := d.Reload(); err != nil {
		t.Fatal(err)
	}
	if p := fake.Jails()["sshd"].Scope.Ports; len(p) != 1 || p[0].From != 2222 {
		t.Fatalf("scope after reload: %+v", fake.Jails()["sshd"])
	}

	// 2. The banaction changes to ufw: the ban moves.
	e.write(agreeBase + "port = 2222\nbanaction = ufw\n")
	if _, err := d.Reload(); err != nil {
		t.Fatal(err)
	}
	if l, _ := fake.List(ctx); len(l) != 0 {
		t.Fatalf("old backend still holds %v", l)
	}
	if l, _ := e.ufw.List(ctx); len(l) != 1 || l[0].Prefix.Addr().String() != "198.51.100.20" {
		t.Fatalf("ufw holds %v, want the moved ban", l)
	}
	if _, ok := e.ufw.Jails()["sshd"]; !ok {
		t.Fatal("sshd not set up in ufw")
	}

	// 3. A ban of a jail that is not running (stored before its jail went
	// away) is listed and lifted by that jail's name.
	if _, err := d.bans.Ban(ctx, "gone", netip.MustParsePrefix("203.0.113.9/32"), time.Hour, "test"); err != nil && !errors.Is(err, ban.ErrNotEnforced) {
		t.Fatal(err)
	}
	h := handler{d}
	r, err := h.Handle(ctx, control.Request{Verb: control.VerbBanned, Jail: "gone"})
	if err != nil || len(slices.Collect(r.(control.BannedStream).Bans)) != 1 {
		t.Fatalf("banned gone: %+v %v", r, err)
	}
	u, err := h.Handle(ctx, control.Request{Verb: control.VerbUnban, Jail: "gone", IP: "203.0.113.9"})
	if err != nil || u.(control.UnbanReply).Removed != 1 {
		t.Fatalf("unban gone: %+v %v", u, err)
	}
	if _, err := h.Handle(ctx, control.Request{Verb: control.VerbBanned, Jail: "gone"}); err == nil {
		t.Fatal("a jail with neither a running jail nor bans is known")
	}
}

// TestReloadRestartOnlySettings: a reload applies a new loglevel at once,
// while socket, dbfile, logtarget and [firewall] changes wait for the next
// restart: the daemon keeps answering on its socket, keeps its database,
// and says so in its log.
func TestReloadRestartOnlySettings(t *testing.T) {
	e := newAgreeEnv(t)
	var logs syncBuffer
	e.opts.Stderr = &logs
	e.write(agreeBase)
	d, err := e.run()
	if err != nil {
		t.Fatal(err)
	}
	const warning = "take effect at the next restart"
	local := filepath.Join(e.etc, "palisade.local")
	cases := []struct {
		name, text string
		warn       bool
		debug      bool // the reloaded daemon logs at DEBUG
	}{
		{"loglevel only", "[Definition]\nloglevel = DEBUG\n", false, true},
		{"socket", "[Definition]\nsocket = " + filepath.Join(e.dir, "elsewhere.sock") + "\n", true, false},
		{"dbfile", "[Definition]\ndbfile = " + filepath.Join(e.dir, "elsewhere.db") + "\n", true, false},
		{"logtarget", "[Definition]\nlogtarget = " + filepath.Join(e.dir, "palisade.log") + "\n", true, false},
		{"firewall", "[firewall]\nblocktype = drop\n", true, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := len(logs.String())
			if err := os.WriteFile(local, []byte(tc.text), 0o644); err != nil {
				t.Fatal(err)
			}
			if _, err := d.Reload(); err != nil {
				t.Fatal(err)
			}
			got := logs.String()[before:]
			if strings.Contains(got, warning) != tc.warn {
				t.Errorf("restart warning logged = %v, want %v; log:\n%s", !tc.warn, tc.warn, got)
			}
			if on := d.level.Level() <= slog.LevelDebug; on != tc.debug {
				t.Errorf("DEBUG enabled = %v, want %v", on, tc.debug)
			}
			if _, err := control.NewClient(e.opts.Socket).Ping(context.Background()); err != nil {
				t.Errorf("the running socket stopped answering: %v", err)
			}
			for _, p := range []string{filepath.Join(e.dir, "elsewhere.sock"), filepath.Join(e.dir, "elsewhere.db")} {
				if _, err := os.Stat(p); err == nil {
					t.Errorf("%s was created before a restart", p)
				}
			}
		})
	}
}
