package daemon

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/palisade-project/palisade/internal/control"
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

	// 2. maxretry changes: a new failure table, totals carried over.
	e.write(strings.Replace(agreeBase, "maxretry = 3", "maxretry = 4\nfilter = sshd[mode=aggressive]", 1) + web)
	if _, err := d.Reload(); err != nil {
		t.Fatal(err)
	}
	st, _ := d.status("sshd")
	if running(d, "sshd") == sshd || counted(t, d, "sshd", ip) != 0 || st.Jails[0].TotalFailed != 2 {
		t.Fatalf("after a counting change: same jail %v, counted %d, status %+v", running(d, "sshd") == sshd, counted(t, d, "sshd", ip), st.Jails[0])
	}

	// 3. sshd's logpath changes: the new file is read, the old one not.
	e.write(strings.Replace(agreeBase, "logpath = LOG", "logpath = "+other, 1) + web)
	if _, err := d.Reload(); err != nil {
		t.Fatal(err)
	}
	appendFailures(t, other, "192.0.2.56", 1)
	waitCounted(t, d, "sshd", 3)
	appendFailures(t, e.logf, "192.0.2.57", 1)
	waitCounted(t, d, "web", 3)
	if st, _ := d.status("sshd"); st.Jails[0].TotalFailed != 3 {
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
	if bans, _ := e.opts.Backend.List(ctx); len(bans) != 0 {
		t.Fatalf("firewall still holds %v", bans)
	}
	if !strings.Contains(logs.String(), "jail removed: its bans are lifted jail=web lifted=1") {
		t.Fatalf("removal not logged:\n%s", logs.String())
	}
	if _, err := d.status("web"); err == nil {
		t.Fatal("removed jail still in status")
	}
}
