package ban

import (
	"context"
	"errors"
	"net/netip"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/palisade-project/palisade/internal/firewall"
	"github.com/palisade-project/palisade/internal/store"
)

// TestEventOrigins: events tell automatic from manual bans, carry the
// offence number, and mark bans re-installed at start-up.
func TestEventOrigins(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "p.db")
	st, err := store.Open(path, store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	clk := &clock{t: t0}
	m, err := New(Config{}, Deps{Store: st, Backend: firewall.NewFake(), Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	events, cancel := m.Subscribe(16)
	ip := pfx("192.0.2.1")
	if _, err := m.Ban(ctx, "sshd", ip, time.Hour, "5 failures"); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Unban(ctx, "sshd", ip); err != nil {
		t.Fatal(err)
	}
	r := m.BanMany(ctx, []Request{{Jail: "sshd", Prefix: ip, Duration: time.Hour, Reason: "manual", Origin: OriginManual}})
	if r[0].Err != nil || r[0].Entry.Origin != OriginManual || r[0].Entry.Offence != 2 {
		t.Fatalf("manual ban %+v", r[0])
	}
	if _, err := m.Ban(ctx, "sshd", ip, 2*time.Hour, "longer"); err != nil {
		t.Fatal(err)
	}
	cancel()
	type seen struct {
		kind    EventKind
		origin  Origin
		offence int
		manual  bool
		cause   string
	}
	var got []seen
	for ev := range events {
		got = append(got, seen{ev.Kind, ev.Entry.Origin, ev.Entry.Offence, ev.Manual(), ev.Cause})
		if ev.Restored() {
			t.Fatalf("live event marked restored: %+v", ev)
		}
	}
	want := []seen{
		{EventBan, OriginJail, 1, false, ""},
		{EventUnban, OriginJail, 1, true, CauseManual},
		{EventBan, OriginManual, 2, true, ""},
		{EventExtend, OriginJail, 2, false, ""},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("events\n%+v\nwant\n%+v", got, want)
	}
	_ = st.Close()

	// A restart announces the ban again, marked as restored.
	st, err = store.Open(path, store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	m, err = New(Config{}, Deps{Store: st, Backend: firewall.NewFake(), Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	events, cancel = m.Subscribe(16)
	defer cancel()
	if _, err := m.Restore(ctx); err != nil {
		t.Fatal(err)
	}
	ev := <-events
	if !ev.Restored() || ev.Entry.Origin != OriginRestored || ev.Entry.Offence != 2 || ev.Entry.Prefix != ip {
		t.Fatalf("restored event %+v", ev)
	}
	if len(events) != 0 {
		t.Fatalf("%d more events", len(events))
	}
}

// TestNotAttacker: addresses no attacker can send from are refused with
// ErrNotAttacker (bad input), networks merely containing loopback or a
// protected address with ErrProtected only.
func TestNotAttacker(t *testing.T) {
	e := newEnv(t, Config{Protected: []netip.Prefix{pfx("203.0.113.5")}})
	tests := []struct {
		prefix      string
		notAttacker bool
	}{
		{"0.0.0.0", true},
		{"0.1.2.3", true},
		{"::", true},
		{"127.0.0.1", true},
		{"127.0.0.0/8", true},
		{"::1", true},
		{"::ffff:127.0.0.1", true},
		{"224.0.0.251", true},
		{"239.255.255.250", true},
		{"ff02::1", true},
		{"ff05::/16", true},
		{"255.255.255.255", true},
		{"126.0.0.0/7", false}, // contains loopback
		{"203.0.113.5", false}, // the host's own
		{"203.0.113.0/24", false},
	}
	for _, tc := range tests {
		t.Run(tc.prefix, func(t *testing.T) {
			err := e.m.Check(pfx(tc.prefix))
			if !errors.Is(err, ErrProtected) {
				t.Fatalf("Check = %v, want ErrProtected", err)
			}
			if errors.Is(err, ErrNotAttacker) != tc.notAttacker {
				t.Fatalf("Check = %v: ErrNotAttacker %v, want %v", err, !tc.notAttacker, tc.notAttacker)
			}
			if _, err := e.m.Ban(context.Background(), "sshd", pfx(tc.prefix), time.Hour, ""); !errors.Is(err, ErrProtected) {
				t.Fatalf("Ban = %v", err)
			}
		})
	}
	if got := fwPrefixes(t, e.fw); len(got) != 0 {
		t.Fatalf("refused prefixes reached the firewall: %v", got)
	}
}

// TestFindAndUnbanAcrossJails: an address is found in every jail, by its
// own ban or a network ban; UnbanOverlapping lifts what covers it or lies
// inside a network.
func TestFindAndUnbanAcrossJails(t *testing.T) {
	e := newEnv(t, Config{})
	ctx := context.Background()
	for _, b := range []struct{ jail, p string }{
		{"sshd", "2001:db8:1:1::5"},
		{"nginx", "2001:db8:1:1::/64"},
		{"recidive", "2001:db8:1::/48"},
		{"sshd", "2001:db8:1:2::7"},
		{"sshd", "192.0.2.1"},
	} {
		if _, err := e.m.Ban(ctx, b.jail, pfx(b.p), time.Hour, ""); err != nil {
			t.Fatal(err)
		}
	}
	var found []string
	for _, f := range e.m.Find(netip.MustParseAddr("2001:db8:1:1::5")) {
		found = append(found, f.Jail+" "+f.Prefix.String())
	}
	if want := []string{"nginx 2001:db8:1:1::/64", "recidive 2001:db8:1::/48", "sshd 2001:db8:1:1::5/128"}; !slices.Equal(found, want) {
		t.Fatalf("Find = %v, want %v", found, want)
	}
	// unban ADDRESS in every jail.
	l, err := e.m.UnbanOverlapping(ctx, "", pfx("2001:db8:1:1::5"))
	if err != nil || len(l) != 3 {
		t.Fatalf("UnbanOverlapping(address) = %+v, %v", l, err)
	}
	// unban NETWORK in one jail: what lies inside.
	if _, err := e.m.Ban(ctx, "sshd", pfx("2001:db8:1:3::8"), time.Hour, ""); err != nil {
		t.Fatal(err)
	}
	l, err = e.m.UnbanOverlapping(ctx, "sshd", pfx("2001:db8:1::/48"))
	if err != nil || len(l) != 2 {
		t.Fatalf("UnbanOverlapping(network) = %+v, %v", l, err)
	}
	if got := checkConsistent(t, e); !slices.Equal(got, []string{"sshd 192.0.2.1/32"}) {
		t.Fatalf("left %v", got)
	}
	if _, err := e.m.UnbanOverlapping(ctx, "sshd", pfx("198.51.100.1")); !errors.Is(err, ErrNotBanned) {
		t.Fatalf("unban of nothing: %v", err)
	}
}
