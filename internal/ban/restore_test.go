package ban

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/palisade-project/palisade/internal/firewall"
	"github.com/palisade-project/palisade/internal/firewall/nft"
	"github.com/palisade-project/palisade/internal/firewall/nstest"
	"github.com/palisade-project/palisade/internal/store"
)

// TestAdoptAfterLostDatabase: when the database lost its bans, Restore
// adopts what palisade's firewall still enforces (for configured jails,
// with the time left) instead of letting reconcile lift it; with an
// intact database, unknown firewall bans are still removed.
func TestAdoptAfterLostDatabase(t *testing.T) {
	tests := []struct {
		name    string
		prepare func(t *testing.T, path string)
		adopt   bool
	}{
		{"corrupt database moved aside", func(t *testing.T, path string) {
			if err := os.WriteFile(path, bytes.Repeat([]byte("garbage!"), 4096), 0o600); err != nil {
				t.Fatal(err)
			}
		}, true},
		{"database missing", func(*testing.T, string) {}, true},
		{"intact database", func(t *testing.T, path string) {
			st, err := store.Open(path, store.Options{NoSync: true})
			if err != nil {
				t.Fatal(err)
			}
			if err := st.AddBans([]store.Ban{{Jail: "sshd", Prefix: pfx("192.0.2.50"), Start: t0, Expires: t0.Add(time.Hour)}}); err != nil {
				t.Fatal(err)
			}
			_ = st.Close()
		}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			path := filepath.Join(t.TempDir(), "palisade.db")
			tc.prepare(t, path)
			st, err := store.Open(path, store.Options{NoSync: true, Now: func() time.Time { return t0 }})
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			fw := firewall.NewFake()
			kernel := []firewall.Ban{
				{Jail: "sshd", Prefix: pfx("198.51.100.7"), Expires: t0.Add(30 * time.Minute)},
				{Jail: "sshd", Prefix: pfx("2001:db8:7::/64")},                             // permanent
				{Jail: "sshd", Prefix: pfx("198.51.100.8"), Expires: t0.Add(-time.Minute)}, // the kernel would have dropped it
				{Jail: "gone", Prefix: pfx("198.51.100.9"), Expires: t0.Add(time.Hour)},    // jail no longer configured
			}
			if err := fw.Add(ctx, kernel); err != nil {
				t.Fatal(err)
			}
			clk := &clock{t: t0}
			m, err := New(Config{Jails: []string{"sshd"}}, Deps{Store: st, Backend: fw, Now: clk.Now})
			if err != nil {
				t.Fatal(err)
			}
			events, cancel := m.Subscribe(16)
			defer cancel()
			rs, err := m.Restore(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if !tc.adopt {
				if rs.Adopted != 0 {
					t.Fatalf("adopted %d from an intact database", rs.Adopted)
				}
				r, err := m.Reconcile(ctx)
				if err != nil || r.Removed != 4 {
					t.Fatalf("reconcile %+v %v: want the 4 unknown kernel bans removed", r, err)
				}
				return
			}
			if rs.Adopted != 2 {
				t.Fatalf("restore %+v: want 2 adopted", rs)
			}
			l := m.List("sshd")
			if len(l) != 2 || l[0].Prefix != pfx("198.51.100.7") || !l[0].Expires.Equal(t0.Add(30*time.Minute)) ||
				l[1].Prefix != pfx("2001:db8:7::/64") || !l[1].Permanent() {
				t.Fatalf("adopted %+v", l)
			}
			for _, e := range l {
				if e.Origin != OriginAdopted || e.Unsaved || !e.Enforced || e.Offence != 1 {
					t.Fatalf("adopted entry %+v", e)
				}
			}
			if got := storedPrefixes(t, st); !slices.Equal(got, []string{"sshd 198.51.100.7/32", "sshd 2001:db8:7::/64"}) {
				t.Fatalf("store after adoption %v", got)
			}
			for range 2 {
				if ev := <-events; !ev.Restored() || ev.Manual() {
					t.Fatalf("adoption event %+v: want Restored()", ev)
				}
			}
			// Reconcile keeps the adopted bans (only the unconfigured
			// jail's and the expired leftover go).
			r, err := m.Reconcile(ctx)
			if err != nil || r.Removed != 2 || r.ReAdded != 0 {
				t.Fatalf("reconcile after adoption %+v %v", r, err)
			}
			if got := fwPrefixes(t, fw); !slices.Equal(got, []string{"sshd 198.51.100.7/32", "sshd 2001:db8:7::/64"}) {
				t.Fatalf("firewall %v", got)
			}
			// They expire on schedule.
			clk.Add(30 * time.Minute)
			if n, _ := m.ExpireDue(ctx); n != 1 {
				t.Fatalf("expired %d", n)
			}
		})
	}
}

// TestAdoptNftables: with the real nftables backend, a corrupt database
// loses nothing: the kernel's elements (and their remaining timeouts) are
// adopted, stored again and survive a reconcile.
func TestAdoptNftables(t *testing.T) {
	nstest.RequireRoot(t)
	ns := nstest.New(t)
	ctx := context.Background()
	be, err := nft.New(nft.Options{NetNSFd: ns.Fd()})
	if err != nil {
		t.Fatal(err)
	}
	defer be.Close()
	if err := be.Setup(ctx, []firewall.JailSpec{{Name: "sshd", Scope: firewall.Scope{Protocol: "tcp"}}}); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	path := filepath.Join(t.TempDir(), "palisade.db")
	{
		// A first life: bans stored and enforced.
		st, err := store.Open(path, store.Options{NoSync: true})
		if err != nil {
			t.Fatal(err)
		}
		m, err := New(Config{}, Deps{Store: st, Backend: be})
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range []struct {
			p string
			d time.Duration
		}{{"192.0.2.1", time.Hour}, {"192.0.2.2", 2 * time.Hour}, {"2001:db8::/64", -1}, {"2001:db8:1::9", 3 * time.Hour}} {
			if _, err := m.Ban(ctx, "sshd", pfx(b.p), b.d, "first life"); err != nil {
				t.Fatal(err)
			}
		}
		_ = st.Close()
	}
	// The database is destroyed; the kernel still holds the sets.
	if err := os.WriteFile(path, bytes.Repeat([]byte{0xA5}, 1<<16), 0o600); err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(path, store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if a, _ := st.MovedAside(); a == "" {
		t.Fatal("corrupt database not moved aside")
	}
	m, err := New(Config{Jails: []string{"sshd"}}, Deps{Store: st, Backend: be})
	if err != nil {
		t.Fatal(err)
	}
	rs, err := m.Restore(ctx)
	if err != nil || rs.Adopted != 4 {
		t.Fatalf("restore %+v, %v: want 4 adopted", rs, err)
	}
	want := map[string]time.Duration{"192.0.2.1/32": time.Hour, "192.0.2.2/32": 2 * time.Hour, "2001:db8::/64": -1, "2001:db8:1::9/128": 3 * time.Hour}
	for _, e := range m.List("sshd") {
		d, ok := want[e.Prefix.String()]
		switch {
		case !ok:
			t.Fatalf("unexpected adopted ban %+v", e)
		case d < 0 && !e.Permanent():
			t.Fatalf("%s: permanent ban adopted as timed (%v)", e.Prefix, e.Expires)
		case d > 0 && (e.Expires.Before(now.Add(d-time.Minute)) || e.Expires.After(now.Add(d+time.Minute))):
			t.Fatalf("%s: adopted expiry %v, want about now+%v", e.Prefix, e.Expires, d)
		}
	}
	if n, _ := st.CountBans(); n != 4 {
		t.Fatalf("%d bans stored again, want 4", n)
	}
	r, err := m.Reconcile(ctx)
	if err != nil || r.Removed != 0 || r.ReAdded != 0 {
		t.Fatalf("reconcile %+v %v: adopted bans must stay as they are", r, err)
	}
	if l, err := be.List(ctx); err != nil || len(l) != 4 {
		t.Fatalf("kernel holds %d bans after reconcile (%v)", len(l), err)
	}
}
