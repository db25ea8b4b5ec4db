package ban

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/palisade-project/palisade/internal/filter"
	"github.com/palisade-project/palisade/internal/firewall"
	"github.com/palisade-project/palisade/internal/jail"
	"github.com/palisade-project/palisade/internal/store"
)

var t0 = time.Date(2026, 11, 24, 19, 50, 1, 123456789, time.UTC)

func pfx(s string) netip.Prefix {
	if strings.Contains(s, "/") {
		return netip.MustParsePrefix(s)
	}
	a := netip.MustParseAddr(s)
	return netip.PrefixFrom(a, a.BitLen())
}

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type env struct {
	m     *Manager
	st    *store.Store
	fw    *firewall.Fake
	log   *syncBuf
	clock *clock
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newEnv(t testing.TB, cfg Config) *env {
	t.Helper()
	st, err := store.Open(filepath.Join(t.TempDir(), "palisade.db"), store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	e := &env{st: st, fw: firewall.NewFake(), log: &syncBuf{}, clock: &clock{t: t0}}
	if cfg.PID == 0 {
		cfg.PID = 1234
	}
	if cfg.Location == nil {
		cfg.Location = time.UTC
	}
	e.m, err = New(cfg, Deps{Store: st, Backend: e.fw, Now: e.clock.Now, BanLog: e.log})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func fwPrefixes(t testing.TB, fw *firewall.Fake) []string {
	t.Helper()
	l, err := fw.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, b := range l {
		out = append(out, b.Jail+" "+b.Prefix.String())
	}
	return out
}

func storedPrefixes(t testing.TB, st *store.Store) []string {
	t.Helper()
	bans, _, err := st.Bans()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, b := range bans {
		out = append(out, b.Jail+" "+b.Prefix.String())
	}
	return out
}

func TestBanLogLine(t *testing.T) {
	tests := []struct {
		verb, jail, prefix, want string
	}{
		{"Ban", "sshd", "192.0.2.1", "2026-11-24 19:50:01,123 fail2ban.actions        [1234]: NOTICE  [sshd] Ban 192.0.2.1\n"},
		{"Unban", "sshd", "192.0.2.1", "2026-11-24 19:50:01,123 fail2ban.actions        [1234]: NOTICE  [sshd] Unban 192.0.2.1\n"},
		{"Ban", "recidive", "2001:db8::1", "2026-11-24 19:50:01,123 fail2ban.actions        [1234]: NOTICE  [recidive] Ban 2001:db8::1\n"},
		{"Ban", "sshd", "2001:db8::/64", "2026-11-24 19:50:01,123 fail2ban.actions        [1234]: NOTICE  [sshd] Ban 2001:db8::/64\n"},
	}
	for _, tc := range tests {
		if got := BanLogLine(t0, 1234, tc.jail, tc.verb, pfx(tc.prefix)); got != tc.want {
			t.Errorf("got  %q\nwant %q", got, tc.want)
		}
	}
	// Local time: the zone's wall clock, not UTC.
	zone := time.FixedZone("X", 2*3600)
	if got := BanLogLine(t0.In(zone), 1, "j", "Ban", pfx("192.0.2.1")); !strings.HasPrefix(got, "2026-11-24 21:50:01,123 ") {
		t.Errorf("local time not used: %q", got)
	}
}

func TestBanUnban(t *testing.T) {
	e := newEnv(t, Config{})
	ctx := context.Background()
	events, cancel := e.m.Subscribe(8)
	defer cancel()
	got, err := e.m.Ban(ctx, "sshd", pfx("192.0.2.1"), time.Hour, "4 failures")
	if err != nil {
		t.Fatal(err)
	}
	if !got.Enforced || got.Offence != 1 || !got.Expires.Equal(t0.Add(time.Hour)) {
		t.Fatalf("entry %+v", got)
	}
	if fw := fwPrefixes(t, e.fw); !slices.Equal(fw, []string{"sshd 192.0.2.1/32"}) {
		t.Fatalf("firewall %v", fw)
	}
	fwl, _ := e.fw.List(ctx)
	if !fwl[0].Expires.Equal(t0.Add(time.Hour)) {
		t.Fatalf("firewall expiry %v", fwl[0].Expires)
	}
	if s := storedPrefixes(t, e.st); !slices.Equal(s, []string{"sshd 192.0.2.1/32"}) {
		t.Fatalf("store %v", s)
	}
	if ev := <-events; ev.Kind != EventBan || ev.Entry.Prefix != pfx("192.0.2.1") {
		t.Fatalf("event %+v", ev)
	}
	if l := e.m.Find(netip.MustParseAddr("192.0.2.1")); len(l) != 1 || l[0].Reason != "4 failures" {
		t.Fatalf("Find %+v", l)
	}
	e.clock.Add(time.Second)
	if _, err := e.m.Unban(ctx, "sshd", pfx("192.0.2.1")); err != nil {
		t.Fatal(err)
	}
	if fw := fwPrefixes(t, e.fw); len(fw) != 0 {
		t.Fatalf("firewall after unban %v", fw)
	}
	if s := storedPrefixes(t, e.st); len(s) != 0 {
		t.Fatalf("store after unban %v", s)
	}
	if ev := <-events; ev.Kind != EventUnban || ev.Cause != "manual" {
		t.Fatalf("event %+v", ev)
	}
	want := "2026-11-24 19:50:01,123 fail2ban.actions        [1234]: NOTICE  [sshd] Ban 192.0.2.1\n" +
		"2026-11-24 19:50:02,123 fail2ban.actions        [1234]: NOTICE  [sshd] Unban 192.0.2.1\n"
	if e.log.String() != want {
		t.Fatalf("ban log\n%q\nwant\n%q", e.log.String(), want)
	}
	if _, err := e.m.Unban(ctx, "sshd", pfx("192.0.2.1")); !errors.Is(err, ErrNotBanned) {
		t.Fatalf("second unban: %v", err)
	}
	// History survives the unban: the next ban is offence 2.
	got, _ = e.m.Ban(ctx, "sshd", pfx("192.0.2.1"), time.Hour, "")
	if got.Offence != 2 {
		t.Fatalf("offence %d, want 2", got.Offence)
	}
	if n, _, _ := e.m.Offences("sshd", pfx("192.0.2.1"), false); n != 2 {
		t.Fatalf("Offences = %d", n)
	}
}

func TestProtected(t *testing.T) {
	cfg := Config{Protected: []netip.Prefix{pfx("203.0.113.0/24"), pfx("2001:db8:aaaa::5")}}
	tests := []struct {
		prefix string
		ok     bool
	}{
		{"192.0.2.1", true},
		{"127.0.0.1", false},
		{"127.255.0.1", false},
		{"::1", false},
		{"::ffff:127.0.0.1", false},
		{"0.0.0.0", false},
		{"::", false},
		{"224.0.0.1", false},
		{"203.0.113.77", false},
		{"203.0.112.0/23", false},     // contains a protected prefix
		{"2001:db8:aaaa::/48", false}, // contains the admin's address
		{"2001:db8:aaaa::6", true},
		{"10.0.0.0/4", false}, // too broad
		{"10.0.0.0/8", true},
		{"2001::/15", false},
		{"2001:db8::/32", false}, // contains the admin's address
		{"2001:db8:bbbb::/48", true},
		{"::ffff:192.0.2.9", true},
	}
	e := newEnv(t, cfg)
	for _, tc := range tests {
		t.Run(tc.prefix, func(t *testing.T) {
			_, err := e.m.Ban(context.Background(), "sshd", pfx(tc.prefix), time.Hour, "")
			if tc.ok && err != nil {
				t.Fatalf("refused: %v", err)
			}
			if !tc.ok && !errors.Is(err, ErrProtected) {
				t.Fatalf("err = %v, want ErrProtected", err)
			}
		})
	}
	for _, b := range fwPrefixes(t, e.fw) {
		if strings.Contains(b, "127.") || strings.Contains(b, "203.0.11") || strings.Contains(b, "aaaa::/") {
			t.Fatalf("protected address reached the firewall: %s", b)
		}
	}
	if !slices.Contains(fwPrefixes(t, e.fw), "sshd 192.0.2.9/32") {
		t.Fatal("mapped address not normalized to IPv4")
	}
	if e.m.Stats().Refused != 13 {
		t.Fatalf("refused = %d", e.m.Stats().Refused)
	}
	// Reload: a new protected set applies to the next ban.
	if err := e.m.SetProtected([]netip.Prefix{pfx("198.51.100.0/24")}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.m.Ban(context.Background(), "sshd", pfx("198.51.100.1"), time.Hour, ""); !errors.Is(err, ErrProtected) {
		t.Fatalf("after SetProtected: %v", err)
	}
	if _, err := e.m.Ban(context.Background(), "sshd", pfx("203.0.113.77"), time.Hour, ""); err != nil {
		t.Fatalf("no longer protected: %v", err)
	}
	if err := e.m.SetProtected([]netip.Prefix{{}}); err == nil {
		t.Fatal("invalid protected prefix accepted")
	}
}

func TestAlreadyBannedAndExtend(t *testing.T) {
	e := newEnv(t, Config{})
	ctx := context.Background()
	ip := pfx("198.51.100.4")
	if _, err := e.m.Ban(ctx, "sshd", ip, time.Hour, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := e.m.Ban(ctx, "sshd", ip, 30*time.Minute, ""); !errors.Is(err, ErrAlreadyBanned) {
		t.Fatalf("shorter ban: %v", err)
	}
	got, err := e.m.Ban(ctx, "sshd", ip, 2*time.Hour, "")
	if err != nil || !got.Expires.Equal(t0.Add(2*time.Hour)) || got.Offence != 1 {
		t.Fatalf("extend: %+v %v", got, err)
	}
	if _, err := e.m.Ban(ctx, "sshd", ip, -1, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := e.m.Ban(ctx, "sshd", ip, 1000*time.Hour, ""); !errors.Is(err, ErrAlreadyBanned) {
		t.Fatalf("after permanent: %v", err)
	}
	if l := e.m.List(""); len(l) != 1 || !l[0].Permanent() {
		t.Fatalf("List %+v", l)
	}
	if bans, _, _ := e.st.Bans(); len(bans) != 1 || !bans[0].Permanent() || bans[0].Offence != 1 {
		t.Fatalf("stored %+v", bans)
	}
	if strings.Count(e.log.String(), " Ban ") != 1 {
		t.Fatalf("extensions written to the ban log: %q", e.log.String())
	}
	// Same address in another jail is a separate ban.
	if _, err := e.m.Ban(ctx, "recidive", ip, time.Hour, ""); err != nil {
		t.Fatal(err)
	}
	if n, _, _ := e.m.Offences("recidive", ip, true); n != 2 {
		t.Fatalf("overall offences %d", n)
	}
}

func TestExpiry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st, err := store.Open(filepath.Join(t.TempDir(), "p.db"), store.Options{NoSync: true})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		fw := firewall.NewFake()
		log := &syncBuf{}
		m, err := New(Config{PID: 7, Location: time.UTC, ReconcileInterval: -1}, Deps{Store: st, Backend: fw, BanLog: log})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { done <- m.Run(ctx) }()
		events, stop := m.Subscribe(16)
		defer stop()

		bg := context.Background()
		mustBan := func(ip string, d time.Duration) {
			t.Helper()
			if _, err := m.Ban(bg, "sshd", pfx(ip), d, ""); err != nil {
				t.Fatal(err)
			}
		}
		mustBan("192.0.2.1", time.Hour)
		mustBan("192.0.2.2", 2*time.Hour)
		mustBan("192.0.2.3", -1)
		mustBan("192.0.2.4", time.Hour) // same instant as .1: one batch

		check := func(step string, want ...string) {
			t.Helper()
			synctest.Wait()
			var got []string
			for _, e := range m.List("") {
				got = append(got, e.Prefix.Addr().String())
			}
			var fwGot []string
			l, _ := fw.List(bg)
			for _, b := range l {
				fwGot = append(fwGot, b.Prefix.Addr().String())
			}
			var stGot []string
			bans, _, _ := st.Bans()
			for _, b := range bans {
				stGot = append(stGot, b.Prefix.Addr().String())
			}
			if !slices.Equal(got, want) || !slices.Equal(fwGot, want) || !slices.Equal(stGot, want) {
				t.Fatalf("%s: manager %v firewall %v store %v, want %v", step, got, fwGot, stGot, want)
			}
		}
		check("start", "192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4")
		time.Sleep(time.Hour - time.Millisecond)
		check("just before 1h", "192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4")
		time.Sleep(time.Millisecond)
		check("at 1h", "192.0.2.2", "192.0.2.3")
		time.Sleep(time.Hour)
		check("at 2h", "192.0.2.3")
		time.Sleep(10000 * time.Hour)
		check("permanent stays", "192.0.2.3")

		removes := 0
		for _, c := range fw.Calls() {
			if c == "remove" {
				removes++
			}
		}
		if removes != 2 {
			t.Fatalf("%d firewall remove calls, want 2 (one per expiry instant)", removes)
		}
		unbans := 0
		for len(events) > 0 {
			if ev := <-events; ev.Kind == EventUnban {
				if ev.Cause != "expired" {
					t.Fatalf("cause %q", ev.Cause)
				}
				unbans++
			}
		}
		if unbans != 3 || strings.Count(log.String(), "NOTICE  [sshd] Unban ") != 3 {
			t.Fatalf("unban events %d, log:\n%s", unbans, log.String())
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	})
}

func TestRestore(t *testing.T) {
	e := newEnv(t, Config{Jails: []string{"sshd", "recidive"}})
	seed := []store.Ban{
		{Jail: "sshd", Prefix: pfx("192.0.2.1"), Start: t0.Add(-time.Hour), Expires: t0.Add(time.Hour)},
		{Jail: "sshd", Prefix: pfx("192.0.2.2"), Start: t0.Add(-time.Hour)}, // permanent
		{Jail: "recidive", Prefix: pfx("2001:db8::/64"), Start: t0.Add(-time.Hour), Expires: t0.Add(7 * 24 * time.Hour)},
		{Jail: "sshd", Prefix: pfx("192.0.2.3"), Start: t0.Add(-2 * time.Hour), Expires: t0.Add(-time.Hour)}, // expired
		{Jail: "sshd", Prefix: pfx("192.0.2.4"), Start: t0.Add(-2 * time.Hour), Expires: t0},                 // expires now
		{Jail: "oldjail", Prefix: pfx("192.0.2.5"), Start: t0.Add(-time.Hour), Expires: t0.Add(time.Hour)},   // not configured
	}
	if err := e.st.AddBans(seed); err != nil {
		t.Fatal(err)
	}
	stats, err := e.m.Restore(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if stats != (RestoreStats{Restored: 3, Expired: 2, Kept: 1}) {
		t.Fatalf("stats %+v", stats)
	}
	if c := e.fw.Calls(); !slices.Equal(c, []string{"add"}) {
		t.Fatalf("firewall calls %v, want one add", c)
	}
	want := []string{"recidive 2001:db8::/64", "sshd 192.0.2.1/32", "sshd 192.0.2.2/32"}
	if got := fwPrefixes(t, e.fw); !slices.Equal(got, want) {
		t.Fatalf("firewall %v", got)
	}
	if got := storedPrefixes(t, e.st); !slices.Equal(got, []string{"oldjail 192.0.2.5/32", "recidive 2001:db8::/64", "sshd 192.0.2.1/32", "sshd 192.0.2.2/32"}) {
		t.Fatalf("store %v", got)
	}
	// Restored bans expire on schedule.
	e.clock.Add(time.Hour)
	if n, err := e.m.ExpireDue(context.Background()); n != 1 || err != nil {
		t.Fatalf("ExpireDue = %d, %v", n, err)
	}
}

func genStoreBans(n int, start time.Time) []store.Ban {
	out := make([]store.Ban, n)
	for i := range out {
		a := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		out[i] = store.Ban{Jail: "sshd", Prefix: netip.PrefixFrom(a, 32), Start: start, Expires: start.Add(time.Duration(i%3600+1) * time.Second)}
	}
	return out
}

// TestRestore100kInSlices: 100,000 stored bans reach the firewall in
// bulk, one call per slice of restoreChunk (not one per ban).
func TestRestore100kInSlices(t *testing.T) {
	e := newEnv(t, Config{})
	const n = 100000
	if err := e.st.AddBans(genStoreBans(n, t0)); err != nil {
		t.Fatal(err)
	}
	st, err := e.m.Restore(context.Background())
	if err != nil || st.Restored != n {
		t.Fatalf("%+v %v", st, err)
	}
	want := slices.Repeat([]string{"add"}, (n+restoreChunk-1)/restoreChunk)
	if c := e.fw.Calls(); !slices.Equal(c, want) {
		t.Fatalf("firewall calls %v, want %d adds", c, len(want))
	}
	if st := e.m.Stats(); st.Active != n {
		t.Fatalf("active %d", st.Active)
	}
	for _, b := range e.m.List("") {
		if !b.Enforced || b.Origin != OriginRestored {
			t.Fatalf("restored ban %+v", b)
		}
	}
	if l, _ := e.fw.List(context.Background()); len(l) != n {
		t.Fatalf("firewall has %d bans", len(l))
	}
	// Half an hour later about half have expired, removed in one call.
	e.clock.Add(30 * time.Minute)
	got, err := e.m.ExpireDue(context.Background())
	// Expiries are start+1s .. start+3600s by i%3600: i%3600 < 1800 are due.
	const wantExpired = 100000/3600*1800 + 1800
	if err != nil || got != wantExpired {
		t.Fatalf("expired %d, %v", got, err)
	}
	if e.m.Stats().Active != n-got {
		t.Fatalf("active %d", e.m.Stats().Active)
	}
}

type unlistable struct{ *firewall.Fake }

func (unlistable) Name() string { return "unlistable" }
func (unlistable) List(context.Context) ([]firewall.Ban, error) {
	return nil, firewall.ErrNotListable
}

func TestReconcile(t *testing.T) {
	ctx := context.Background()
	t.Run("listable", func(t *testing.T) {
		e := newEnv(t, Config{})
		for _, ip := range []string{"192.0.2.1", "192.0.2.2"} {
			if _, err := e.m.Ban(ctx, "sshd", pfx(ip), time.Hour, ""); err != nil {
				t.Fatal(err)
			}
		}
		// Somebody flushed one ban and added a stray one.
		_ = e.fw.Remove(ctx, []firewall.Ban{{Jail: "sshd", Prefix: pfx("192.0.2.1")}})
		_ = e.fw.Add(ctx, []firewall.Ban{{Jail: "sshd", Prefix: pfx("198.51.100.9")}})
		st, err := e.m.Reconcile(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st != (ReconcileStats{Listed: true, ReAdded: 1, Removed: 1}) {
			t.Fatalf("stats %+v", st)
		}
		if got := fwPrefixes(t, e.fw); !slices.Equal(got, []string{"sshd 192.0.2.1/32", "sshd 192.0.2.2/32"}) {
			t.Fatalf("firewall %v", got)
		}
		if st, _ := e.m.Reconcile(ctx); st.ReAdded+st.Removed != 0 {
			t.Fatalf("second reconcile changed things: %+v", st)
		}
	})
	t.Run("not listable: retries refused bans", func(t *testing.T) {
		st, err := store.Open(filepath.Join(t.TempDir(), "p.db"), store.Options{NoSync: true})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		fake := firewall.NewFake()
		m, err := New(Config{}, Deps{Store: st, Backend: unlistable{fake}})
		if err != nil {
			t.Fatal(err)
		}
		fake.FailNext = errors.New("netlink: device busy")
		e, err := m.Ban(ctx, "sshd", pfx("192.0.2.1"), time.Hour, "")
		if !errors.Is(err, ErrNotEnforced) || e.Enforced {
			t.Fatalf("Ban: %+v %v", e, err)
		}
		if bans, _, _ := st.Bans(); len(bans) != 1 {
			t.Fatal("refused ban not kept in the store")
		}
		rs, err := m.Reconcile(ctx)
		if err != nil || rs.ReAdded != 1 || rs.Listed {
			t.Fatalf("reconcile %+v %v", rs, err)
		}
		if got := fwPrefixes(t, fake); !slices.Equal(got, []string{"sshd 192.0.2.1/32"}) {
			t.Fatalf("firewall %v", got)
		}
		if l := m.List(""); !l[0].Enforced {
			t.Fatal("still marked unenforced")
		}
	})
}

func TestUnbanAll(t *testing.T) {
	e := newEnv(t, Config{})
	ctx := context.Background()
	for i, j := range []string{"sshd", "sshd", "nginx", "recidive"} {
		if _, err := e.m.Ban(ctx, j, pfx(fmt.Sprintf("192.0.2.%d", i+1)), time.Hour, ""); err != nil {
			t.Fatal(err)
		}
	}
	if l := e.m.List("sshd"); len(l) != 2 || l[0].Prefix != pfx("192.0.2.1") {
		t.Fatalf("List(sshd) = %+v", l)
	}
	if a, tot := e.m.Count("sshd"); a != 2 || tot != 2 {
		t.Fatalf("Count(sshd) = %d, %d", a, tot)
	}
	n, err := e.m.UnbanAll(ctx, "sshd")
	if err != nil || n != 2 {
		t.Fatalf("UnbanAll(sshd) = %d, %v", n, err)
	}
	if got := fwPrefixes(t, e.fw); !slices.Equal(got, []string{"nginx 192.0.2.3/32", "recidive 192.0.2.4/32"}) {
		t.Fatalf("firewall %v", got)
	}
	if a, tot := e.m.Count("sshd"); a != 0 || tot != 2 {
		t.Fatalf("Count(sshd) after unban = %d, %d", a, tot)
	}
	n, err = e.m.UnbanAll(ctx, "")
	if err != nil || n != 2 || len(e.m.List("")) != 0 || len(storedPrefixes(t, e.st)) != 0 {
		t.Fatalf("UnbanAll() = %d, %v", n, err)
	}
	calls := e.fw.Calls()
	if removes := slices.Index(calls, "remove"); removes < 0 || len(calls)-removes != 2 {
		t.Fatalf("calls %v: want two bulk removes", calls)
	}
}

func TestEventsNeverBlock(t *testing.T) {
	e := newEnv(t, Config{})
	ch, cancel := e.m.Subscribe(1)
	for i := 1; i <= 5; i++ {
		if _, err := e.m.Ban(context.Background(), "sshd", pfx(fmt.Sprintf("192.0.2.%d", i)), time.Hour, ""); err != nil {
			t.Fatal(err)
		}
	}
	if len(ch) != 1 || e.m.Stats().EventsDropped != 4 {
		t.Fatalf("queued %d, dropped %d", len(ch), e.m.Stats().EventsDropped)
	}
	cancel()
	cancel()
	<-ch
	if _, ok := <-ch; ok {
		t.Fatal("channel not closed")
	}
}

// TestJailEscalation wires a jail to the manager's history: the guide's
// bantime.increment variant (factor 24, maxtime 5w).
func TestJailEscalation(t *testing.T) {
	e := newEnv(t, Config{})
	j, err := jail.New(jail.Config{
		Name: "sshd", MaxRetry: 4, FindTime: 10 * time.Minute, BanTime: time.Hour,
		IgnoreIP:  []jail.IgnoreEntry{{Prefix: netip.MustParsePrefix("127.0.0.1/8")}},
		Increment: jail.Increment{Enabled: true, Factor: 24, MaxTime: 5 * 7 * 24 * time.Hour},
	}, jail.Deps{History: e.m})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	ip := netip.MustParseAddr("203.0.113.50")
	want := []time.Duration{time.Hour, 48 * time.Hour, 96 * time.Hour, 192 * time.Hour, 384 * time.Hour, 768 * time.Hour, 840 * time.Hour, 840 * time.Hour}
	now := t0
	for round, w := range want {
		var v jail.Verdict
		for i := 0; i < 4 && v.Action != jail.Banned; i++ {
			now = now.Add(time.Second)
			v = j.Observe(filter.Failure{Addr: ip, Time: now}, now)
		}
		if v.Action != jail.Banned {
			t.Fatalf("round %d: no ban", round)
		}
		if v.Ban.Duration != w || v.Ban.Offence != round+1 {
			t.Fatalf("round %d: ban %v offence %d, want %v offence %d", round, v.Ban.Duration, v.Ban.Offence, w, round+1)
		}
		e.clock.t = now
		got, err := e.m.Ban(ctx, "sshd", v.Ban.Prefix, v.Ban.Duration, v.Ban.Reason)
		if err != nil || got.Offence != round+1 {
			t.Fatalf("round %d: manager offence %d, %v", round, got.Offence, err)
		}
		if _, err := e.m.Unban(ctx, "sshd", v.Ban.Prefix); err != nil {
			t.Fatal(err)
		}
		now = now.Add(time.Hour)
	}
}

// TestKill9 bans in a child process that then kills itself with SIGKILL
// (no Close, no cleanup); a new manager restores every ban.
func TestKill9(t *testing.T) {
	const n = 300
	if path := os.Getenv("PALISADE_BAN_KILL9_DB"); path != "" {
		// Child.
		st, err := store.Open(path, store.Options{})
		if err != nil {
			fmt.Println("open:", err)
			os.Exit(3)
		}
		m, _ := New(Config{}, Deps{Store: st, Backend: firewall.NewFake()})
		for i := 0; i < n; i++ {
			d := time.Hour
			if i%10 == 0 {
				d = -1
			}
			if _, err := m.Ban(context.Background(), "sshd", netip.PrefixFrom(netip.AddrFrom4([4]byte{192, 0, byte(2 + i/256), byte(i)}), 32), d, "kill9"); err != nil {
				fmt.Println("ban:", err)
				os.Exit(4)
			}
		}
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {}
	}
	path := filepath.Join(t.TempDir(), "palisade.db")
	cmd := exec.Command(os.Args[0], "-test.run=^TestKill9$", "-test.count=1")
	cmd.Env = append(os.Environ(), "PALISADE_BAN_KILL9_DB="+path)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("child did not die by SIGKILL: %v\n%s", err, out)
	}
	st, err := store.Open(path, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if a, _ := st.MovedAside(); a != "" {
		t.Fatal("database after kill -9 treated as corrupt")
	}
	fw := firewall.NewFake()
	m, _ := New(Config{}, Deps{Store: st, Backend: fw})
	rs, err := m.Restore(context.Background())
	if err != nil || rs.Restored != n {
		t.Fatalf("restored %+v, %v; want %d", rs, err, n)
	}
	if l, _ := fw.List(context.Background()); len(l) != n || !slices.Equal(fw.Calls(), []string{"add"}) {
		t.Fatalf("firewall has %d bans after %v", len(l), fw.Calls())
	}
}

// noopBackend accepts everything, to measure the manager without the fake.
type noopBackend struct{}

func (noopBackend) Name() string                                     { return "noop" }
func (noopBackend) Setup(context.Context, []firewall.JailSpec) error { return nil }
func (noopBackend) Add(context.Context, []firewall.Ban) error        { return nil }
func (noopBackend) Remove(context.Context, []firewall.Ban) error     { return nil }
func (noopBackend) List(context.Context) ([]firewall.Ban, error)     { return nil, firewall.ErrNotListable }
func (noopBackend) Teardown(context.Context) error                   { return nil }

func ipp(i int) netip.Prefix {
	return netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), 32)
}

func BenchmarkRestore100k(b *testing.B) {
	path := filepath.Join(b.TempDir(), "p.db")
	st, err := store.Open(path, store.Options{NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	if err := st.AddBans(genStoreBans(100000, t0)); err != nil {
		b.Fatal(err)
	}
	b.Run("load+add", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			fw := firewall.NewFake()
			m, _ := New(Config{}, Deps{Store: st, Backend: fw, Now: func() time.Time { return t0 }})
			rs, err := m.Restore(context.Background())
			if err != nil || rs.Restored != 100000 {
				b.Fatal(rs, err)
			}
		}
	})
	b.Run("load+add-noop-backend", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			m, _ := New(Config{}, Deps{Store: st, Backend: noopBackend{}, Now: func() time.Time { return t0 }})
			rs, err := m.Restore(context.Background())
			if err != nil || rs.Restored != 100000 {
				b.Fatal(rs, err)
			}
		}
	})
	_ = st.Close()
	b.Run("open+validate+load+add", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			st, err := store.Open(path, store.Options{})
			if err != nil {
				b.Fatal(err)
			}
			fw := firewall.NewFake()
			m, _ := New(Config{}, Deps{Store: st, Backend: fw, Now: func() time.Time { return t0 }})
			rs, err := m.Restore(context.Background())
			if err != nil || rs.Restored != 100000 {
				b.Fatal(rs, err)
			}
			_ = st.Close()
		}
	})
}

func BenchmarkBan(b *testing.B) {
	for _, sync := range []bool{false, true} {
		b.Run(fmt.Sprintf("fsync=%v", sync), func(b *testing.B) {
			st, err := store.Open(filepath.Join(b.TempDir(), "p.db"), store.Options{NoSync: !sync})
			if err != nil {
				b.Fatal(err)
			}
			defer st.Close()
			m, _ := New(Config{}, Deps{Store: st, Backend: firewall.NewFake()})
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := m.Ban(context.Background(), "sshd", ipp(i), time.Hour, ""); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestConcurrent drives the manager from many goroutines while Run expires
// bans (run with -race). Everything must end consistent: manager, store
// and firewall agree.
func TestConcurrent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st, err := store.Open(filepath.Join(t.TempDir(), "p.db"), store.Options{NoSync: true})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		fw := firewall.NewFake()
		m, err := New(Config{ReconcileInterval: time.Minute}, Deps{Store: st, Backend: fw, BanLog: &syncBuf{}})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { done <- m.Run(ctx) }()
		events, stop := m.Subscribe(4)
		defer stop()

		var wg sync.WaitGroup
		for g := 0; g < 8; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < 50; i++ {
					p := ipp(g*1000 + i%20) // overlapping keys within a goroutine
					jail := []string{"sshd", "nginx"}[i%2]
					d := time.Duration(1+i%7) * time.Minute
					if i%11 == 0 {
						d = -1
					}
					_, _ = m.Ban(ctx, jail, p, d, "")
					if i%5 == 0 {
						_, _ = m.Unban(ctx, jail, p)
					}
					_ = m.List("")
					_ = m.Find(p.Addr())
					time.Sleep(time.Duration(i%3) * time.Second)
				}
			}()
		}
		wg.Wait()
		time.Sleep(10 * time.Minute) // every timed ban is due
		synctest.Wait()

		var want []string
		for _, e := range m.List("") {
			if !e.Permanent() {
				t.Fatalf("timed ban left after expiry: %+v", e)
			}
			want = append(want, e.Jail+" "+e.Prefix.String())
		}
		slices.Sort(want)
		fwl := fwPrefixes(t, fw)
		stl := storedPrefixes(t, st)
		slices.Sort(fwl)
		slices.Sort(stl)
		if !slices.Equal(want, fwl) || !slices.Equal(want, stl) {
			t.Fatalf("manager %d, firewall %d, store %d bans disagree", len(want), len(fwl), len(stl))
		}
		if len(want) == 0 {
			t.Fatal("no permanent bans left: the test did not exercise anything")
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		_ = events
	})
}

func TestBanMany(t *testing.T) {
	e := newEnv(t, Config{})
	ctx := context.Background()
	if _, err := e.m.Ban(ctx, "sshd", pfx("192.0.2.9"), time.Hour, ""); err != nil {
		t.Fatal(err)
	}
	calls := len(e.fw.Calls())
	reqs := []Request{
		{Jail: "sshd", Prefix: pfx("192.0.2.1"), Duration: time.Hour},     // new
		{Jail: "sshd", Prefix: pfx("127.0.0.1"), Duration: time.Hour},     // protected
		{Jail: "sshd", Prefix: pfx("192.0.2.2"), Duration: time.Hour},     // new
		{Jail: "sshd", Prefix: pfx("192.0.2.2"), Duration: 2 * time.Hour}, // same key, longer: wins
		{Jail: "sshd", Prefix: pfx("192.0.2.9"), Duration: 3 * time.Hour}, // extends an existing ban
		{Jail: "sshd", Prefix: pfx("192.0.2.9"), Duration: time.Minute},   // shorter than that
		{Jail: "", Prefix: pfx("192.0.2.3"), Duration: time.Hour},         // bad request
		{Jail: "nginx", Prefix: pfx("192.0.2.1"), Duration: -1},           // other jail, permanent
	}
	res := e.m.BanMany(ctx, reqs)
	wantErr := []error{nil, ErrProtected, ErrAlreadyBanned, nil, nil, ErrAlreadyBanned, errors.New("any"), nil}
	for i, r := range res {
		switch want := wantErr[i]; {
		case want == nil && r.Err != nil:
			t.Errorf("%d: unexpected error %v", i, r.Err)
		case want != nil && r.Err == nil:
			t.Errorf("%d: no error, want %v", i, want)
		case want != nil && want.Error() != "any" && !errors.Is(r.Err, want):
			t.Errorf("%d: error %v, want %v", i, r.Err, want)
		}
	}
	if got := e.fw.Calls()[calls:]; !slices.Equal(got, []string{"add"}) {
		t.Fatalf("firewall calls for the batch: %v, want one add", got)
	}
	if !res[3].Entry.Expires.Equal(t0.Add(2*time.Hour)) || !res[4].Entry.Expires.Equal(t0.Add(3*time.Hour)) || res[4].Entry.Offence != 1 {
		t.Fatalf("entries %+v / %+v", res[3].Entry, res[4].Entry)
	}
	want := []string{"nginx 192.0.2.1/32", "sshd 192.0.2.1/32", "sshd 192.0.2.2/32", "sshd 192.0.2.9/32"}
	if got := fwPrefixes(t, e.fw); !slices.Equal(got, want) {
		t.Fatalf("firewall %v", got)
	}
	if got := storedPrefixes(t, e.st); !slices.Equal(got, want) {
		t.Fatalf("store %v", got)
	}
	if strings.Count(e.log.String(), " Ban ") != 4 {
		t.Fatalf("ban log:\n%s", e.log.String())
	}
}

// TestBanManyRepeatedExtension: one batch that extends more existing bans
// than it adds new ones and names an extended address twice (as a jail's
// ban queue does in a storm of repeat offenders).
func TestBanManyRepeatedExtension(t *testing.T) {
	e := newEnv(t, Config{})
	ctx := context.Background()
	for _, ip := range []string{"192.0.2.1", "192.0.2.2", "192.0.2.3"} {
		if _, err := e.m.Ban(ctx, "sshd", pfx(ip), time.Hour, ""); err != nil {
			t.Fatal(err)
		}
	}
	res := e.m.BanMany(ctx, []Request{
		{Jail: "sshd", Prefix: pfx("192.0.2.1"), Duration: 2 * time.Hour},
		{Jail: "sshd", Prefix: pfx("192.0.2.2"), Duration: 2 * time.Hour},
		{Jail: "sshd", Prefix: pfx("192.0.2.3"), Duration: 2 * time.Hour},
		{Jail: "sshd", Prefix: pfx("192.0.2.3"), Duration: 3 * time.Hour}, // same key, longer: wins
	})
	if res[2].Err == nil || res[3].Err != nil || !res[3].Entry.Expires.Equal(t0.Add(3*time.Hour)) {
		t.Fatalf("results %+v", res)
	}
}

// BenchmarkBanMany100 is the per-ban cost when a burst of 100 bans goes
// through one store transaction and one firewall call (fsync on).
func BenchmarkBanMany100(b *testing.B) {
	st, err := store.Open(filepath.Join(b.TempDir(), "p.db"), store.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	m, _ := New(Config{}, Deps{Store: st, Backend: firewall.NewFake()})
	reqs := make([]Request, 100)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for k := range reqs {
			reqs[k] = Request{Jail: "sshd", Prefix: ipp(i*100 + k), Duration: time.Hour}
		}
		for _, r := range m.BanMany(context.Background(), reqs) {
			if r.Err != nil {
				b.Fatal(r.Err)
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*100), "ns/ban")
}

// checkedFake is a Fake that can say whether it is intact, and counts
// its List calls.
type checkedFake struct {
	*firewall.Fake
	mu     sync.Mutex
	intact bool
	lists  int
}

func (c *checkedFake) Intact(context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.intact {
		return errors.New("a set is missing")
	}
	return nil
}

func (c *checkedFake) List(ctx context.Context) ([]firewall.Ban, error) {
	c.mu.Lock()
	c.lists++
	c.mu.Unlock()
	return c.Fake.List(ctx)
}

// TestReconcileListsOnlyWhenNeeded: a backend that checks itself is
// listed at the first reconcile, when a structure is missing, and once per
// full-reconcile interval; refused bans are retried every time.
func TestReconcileListsOnlyWhenNeeded(t *testing.T) {
	st, err := store.Open(filepath.Join(t.TempDir(), "p.db"), store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	fw := &checkedFake{Fake: firewall.NewFake(), intact: true}
	clk := &clock{t: t0}
	m, err := New(Config{FullReconcileInterval: time.Hour}, Deps{Store: st, Backend: fw, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := m.Ban(ctx, "sshd", pfx("192.0.2.1"), 24*time.Hour, ""); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		name    string
		advance time.Duration
		intact  bool
		refuse  bool // the next Add fails, then reconcile retries
		listed  bool
	}{
		{"first reconcile lists", 0, true, false, true},
		{"intact, recent: no list", 5 * time.Minute, true, false, false},
		{"a refused ban is retried without a list", 5 * time.Minute, true, true, false},
		{"structure missing: list", 5 * time.Minute, false, false, true},
		{"an hour later: list", time.Hour, true, false, true},
	}
	for _, s := range steps {
		clk.Add(s.advance)
		fw.mu.Lock()
		fw.intact = s.intact
		before := fw.lists
		fw.mu.Unlock()
		if s.refuse {
			fw.FailNext = errors.New("netlink: busy")
			if _, err := m.Ban(ctx, "sshd", pfx("192.0.2.2"), 24*time.Hour, ""); !errors.Is(err, ErrNotEnforced) {
				t.Fatalf("%s: %v", s.name, err)
			}
		}
		rs, err := m.Reconcile(ctx)
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if listed := fw.lists > before; listed != s.listed || rs.Listed != s.listed || rs.Intact == s.listed {
			t.Fatalf("%s: listed %v (stats %+v), want %v", s.name, listed, rs, s.listed)
		}
		if s.refuse && rs.ReAdded != 1 {
			t.Fatalf("%s: re-added %d", s.name, rs.ReAdded)
		}
	}
	if got := fwPrefixes(t, fw.Fake); !slices.Equal(got, []string{"sshd 192.0.2.1/32", "sshd 192.0.2.2/32"}) {
		t.Fatalf("firewall %v", got)
	}
}

// missingFake is a Fake with AddMissing that leaves held bans alone.
type missingFake struct {
	*firewall.Fake
	calls int
}

func (m *missingFake) AddMissing(ctx context.Context, bans []firewall.Ban) error {
	m.calls++
	have, _ := m.Fake.List(ctx)
	held := map[netip.Prefix]bool{}
	for _, h := range have {
		held[h.Prefix] = true
	}
	var add []firewall.Ban
	for _, b := range bans {
		if !held[b.Prefix] {
			add = append(add, b)
		}
	}
	return m.Fake.Add(ctx, add)
}

// TestRestoreAddMissingThenReconcile: restore uses the cheap bulk add; a
// ban the kernel kept with another expiry is refreshed by the reconcile.
func TestRestoreAddMissingThenReconcile(t *testing.T) {
	st, err := store.Open(filepath.Join(t.TempDir(), "p.db"), store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	seed := []store.Ban{
		{Jail: "sshd", Prefix: pfx("192.0.2.1"), Start: t0, Expires: t0.Add(2 * time.Hour)},
		{Jail: "sshd", Prefix: pfx("192.0.2.2"), Start: t0, Expires: t0.Add(time.Hour)},
		{Jail: "sshd", Prefix: pfx("192.0.2.3"), Start: t0},
	}
	if err := st.AddBans(seed); err != nil {
		t.Fatal(err)
	}
	fw := &missingFake{Fake: firewall.NewFake()}
	ctx := context.Background()
	// The kernel kept .1 with a stale (shorter) expiry, and .3 as timed.
	if err := fw.Fake.Add(ctx, []firewall.Ban{
		{Jail: "sshd", Prefix: pfx("192.0.2.1"), Expires: t0.Add(time.Hour)},
		{Jail: "sshd", Prefix: pfx("192.0.2.3"), Expires: t0.Add(time.Hour)},
	}); err != nil {
		t.Fatal(err)
	}
	m, err := New(Config{}, Deps{Store: st, Backend: fw, Now: (&clock{t: t0}).Now})
	if err != nil {
		t.Fatal(err)
	}
	if rs, err := m.Restore(ctx); err != nil || rs.Restored != 3 || fw.calls != 1 {
		t.Fatalf("restore %+v, %v, AddMissing calls %d", rs, err, fw.calls)
	}
	rs, err := m.Reconcile(ctx)
	if err != nil || rs.ReAdded != 2 || rs.Removed != 0 {
		t.Fatalf("reconcile %+v, %v: want the two bans with a wrong expiry refreshed", rs, err)
	}
	l, _ := fw.List(ctx)
	for _, b := range l {
		for _, s := range seed {
			if s.Prefix == b.Prefix && !s.Expires.Equal(b.Expires) {
				t.Fatalf("%s expires %v in the firewall, %v in the store", b.Prefix, b.Expires, s.Expires)
			}
		}
	}
	if rs, _ := m.Reconcile(ctx); rs.ReAdded != 0 {
		t.Fatalf("second reconcile re-added %d", rs.ReAdded)
	}
}

// TestListJails: only the accepted jails' bans, ordered by jail then
// prefix.
func TestListJails(t *testing.T) {
	e := newEnv(t, Config{})
	ctx := context.Background()
	for _, b := range []struct{ jail, prefix string }{
		{"sshd", "198.51.100.9/32"}, {"fleet", "192.0.2.1/32"}, {"nginx", "203.0.113.5/32"},
		{"sshd", "198.51.100.2/32"}, {"fleet", "192.0.2.2/32"},
	} {
		if _, err := e.m.Ban(ctx, b.jail, netip.MustParsePrefix(b.prefix), time.Hour, "test"); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name string
		keep func(string) bool
		want string
	}{
		{"all but fleet", func(j string) bool { return j != "fleet" }, "nginx 203.0.113.5/32, sshd 198.51.100.2/32, sshd 198.51.100.9/32"},
		{"one", func(j string) bool { return j == "fleet" }, "fleet 192.0.2.1/32, fleet 192.0.2.2/32"},
		{"none", func(string) bool { return false }, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, b := range e.m.ListJails(tc.keep) {
				got = append(got, b.Jail+" "+b.Prefix.String())
			}
			if s := strings.Join(got, ", "); s != tc.want {
				t.Errorf("got %q, want %q", s, tc.want)
			}
		})
	}
}

// TestNotStoredJail: a jail whose bans another component stores is
// enforced and listed like any other, and nothing of it reaches the
// store: no ban record, no offence history, nothing restored from it.
func TestNotStoredJail(t *testing.T) {
	per := map[string]JailConfig{"fleet": {NotStored: true}}
	e := newEnv(t, Config{PerJail: per})
	ctx := context.Background()
	reqs := []Request{
		{Jail: "fleet", Prefix: netip.MustParsePrefix("192.0.2.1/32"), Duration: time.Hour, Reason: "remote"},
		{Jail: "sshd", Prefix: netip.MustParsePrefix("198.51.100.1/32"), Duration: time.Hour, Reason: "local"},
		{Jail: "fleet", Prefix: netip.MustParsePrefix("192.0.2.2/32"), Duration: time.Hour, Reason: "remote"},
	}
	for i, r := range e.m.BanMany(ctx, reqs) {
		if r.Err != nil || r.Entry.Offence != 1 || !r.Entry.Enforced || r.Entry.Unsaved {
			t.Fatalf("request %d: %+v %v", i, r.Entry, r.Err)
		}
	}
	// An extension of a remote ban is not stored either.
	if _, err := e.m.Ban(ctx, "fleet", netip.MustParsePrefix("192.0.2.1/32"), 2*time.Hour, "remote"); err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(fwPrefixes(t, e.fw), ", "), "fleet 192.0.2.1/32, fleet 192.0.2.2/32, sshd 198.51.100.1/32"; got != want {
		t.Errorf("firewall %q, want %q", got, want)
	}
	if got, want := strings.Join(storedPrefixes(t, e.st), ", "), "sshd 198.51.100.1/32"; got != want {
		t.Errorf("stored %q, want %q", got, want)
	}
	if o, err := e.st.Offences("fleet", netip.MustParsePrefix("192.0.2.1/32"), false); err != nil || o.Count != 0 {
		t.Errorf("offence history of a remote ban: %+v %v", o, err)
	}
	if h := e.m.Health(); h.Unsaved != 0 {
		t.Errorf("health %+v", h)
	}
	// Lifting one works as for any jail.
	if _, err := e.m.Unban(ctx, "fleet", netip.MustParsePrefix("192.0.2.2/32")); err != nil {
		t.Fatal(err)
	}
	// A restarted manager restores the stored jail's ban only.
	m2, err := New(Config{PerJail: per, Location: time.UTC}, Deps{Store: e.st, Backend: firewall.NewFake(), Now: e.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	if st, err := m2.Restore(ctx); err != nil || st.Restored != 1 {
		t.Fatalf("restore %+v %v", st, err)
	}
	if l := m2.List(""); len(l) != 1 || l[0].Jail != "sshd" {
		t.Fatalf("restored %+v", l)
	}
}

// TestHolds: a jail's decision for an address its ban already serves is
// held back unless it reaches past the ban by d/extendShare (1/16 of an
// hour is 3m45s), asks for a permanent ban, or the ban is due to go.
func TestHolds(t *testing.T) {
	tests := []struct {
		name    string
		banned  time.Duration // the existing ban (0: none; <0: permanent)
		prefix  string        // the existing ban's prefix
		advance time.Duration // time since the ban
		jail    string
		ask     string
		d       time.Duration
		want    bool
	}{
		{"not banned", 0, "", 0, "sshd", "192.0.2.1", time.Hour, false},
		{"same length at once", time.Hour, "192.0.2.1/32", 0, "sshd", "192.0.2.1", time.Hour, true},
		{"shorter", time.Hour, "192.0.2.1/32", 0, "sshd", "192.0.2.1", time.Minute, true},
		{"a minute later: gains a minute", time.Hour, "192.0.2.1/32", time.Minute, "sshd", "192.0.2.1", time.Hour, true},
		{"3m44s later", time.Hour, "192.0.2.1/32", 3*time.Minute + 44*time.Second, "sshd", "192.0.2.1", time.Hour, true},
		{"3m46s later: extends", time.Hour, "192.0.2.1/32", 3*time.Minute + 46*time.Second, "sshd", "192.0.2.1", time.Hour, false},
		{"escalated: twice as long", time.Hour, "192.0.2.1/32", time.Minute, "sshd", "192.0.2.1", 2 * time.Hour, false},
		{"asked permanent", time.Hour, "192.0.2.1/32", 0, "sshd", "192.0.2.1", -1, false},
		{"banned permanently", -1, "192.0.2.1/32", 0, "sshd", "192.0.2.1", 1000 * time.Hour, true},
		{"permanent both", -1, "192.0.2.1/32", 0, "sshd", "192.0.2.1", -1, true},
		{"another jail", time.Hour, "192.0.2.1/32", 0, "recidive", "192.0.2.1", time.Hour, false},
		{"another address", time.Hour, "192.0.2.1/32", 0, "sshd", "192.0.2.2", time.Hour, false},
		{"covered by a network", time.Hour, "192.0.2.0/24", 0, "sshd", "192.0.2.77", time.Hour, true},
		{"IPv6 in a /64", time.Hour, "2001:db8::/64", 0, "sshd", "2001:db8::5", time.Hour, true},
		{"the ban is due", time.Hour, "192.0.2.1/32", time.Hour, "sshd", "192.0.2.1", time.Hour, false},
		{"zero duration", time.Hour, "192.0.2.1/32", 0, "sshd", "192.0.2.1", 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, Config{})
			ctx := context.Background()
			if tc.banned != 0 {
				if _, err := e.m.Ban(ctx, "sshd", netip.MustParsePrefix(tc.prefix), tc.banned, ""); err != nil {
					t.Fatal(err)
				}
			}
			e.clock.Add(tc.advance)
			p := pfx(tc.ask)
			if got := e.m.Holds(tc.jail, p, tc.d); got != tc.want {
				t.Fatalf("Holds(%s, %s, %v) = %v, want %v", tc.jail, p, tc.d, got, tc.want)
			}
			// BanMany keeps the exact rule: what Holds lets through
			// extends or bans; what it holds, BanMany calls already
			// banned unless it reaches later (it then extends).
			before := e.m.List(tc.jail)
			_, err := e.m.Ban(ctx, tc.jail, p, tc.d, "")
			if !tc.want && tc.d != 0 && err != nil {
				t.Fatalf("let through but not carried out: %v", err)
			}
			if tc.want && errors.Is(err, ErrAlreadyBanned) && !slices.Equal(before, e.m.List(tc.jail)) {
				t.Fatalf("already banned, yet the bans changed: %+v -> %+v", before, e.m.List(tc.jail))
			}
		})
	}
}

// TestNotStoredJailNeverWritten: a jail whose bans another component
// keeps (the fleet's) is written to the store by none of the manager's
// paths: new bans, aggregates past maxbans, and bans adopted from the
// firewall after the database was lost.
func TestNotStoredJailNeverWritten(t *testing.T) {
	ctx := context.Background()
	per := map[string]JailConfig{"fleet": {NotStored: true, MaxBans: 4}}
	e := newEnv(t, Config{PerJail: per})
	for i := 1; i <= 6; i++ {
		// (the last ones fall inside the aggregate: already banned)
		if _, err := e.m.Ban(ctx, "fleet", pfx(fmt.Sprintf("192.0.2.%d", i)), time.Hour, "remote"); err != nil && !errors.Is(err, ErrAlreadyBanned) {
			t.Fatal(err)
		}
	}
	var agg *Entry
	for _, b := range e.m.List("fleet") {
		if b.Prefix == netip.MustParsePrefix("192.0.2.0/24") {
			agg = &b
		}
	}
	if agg == nil || agg.Unsaved || agg.Offence != 1 {
		t.Fatalf("no stored-elsewhere aggregate: %+v", e.m.List("fleet"))
	}
	if got := storedPrefixes(t, e.st); len(got) != 0 {
		t.Fatalf("stored %v", got)
	}
	if h := e.m.Health(); h.Unsaved != 0 || h.PendingDeletes != 0 {
		t.Fatalf("health %+v", h)
	}

	// The database is lost; the firewall still holds a remote ban.
	st, err := store.Open(filepath.Join(t.TempDir(), "palisade.db"), store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	fw := firewall.NewFake()
	if err := fw.Add(ctx, []firewall.Ban{{Jail: "fleet", Prefix: pfx("198.51.100.7"), Expires: t0.Add(time.Hour)}}); err != nil {
		t.Fatal(err)
	}
	m, err := New(Config{Jails: []string{"fleet"}, PerJail: per}, Deps{Store: st, Backend: fw, Now: func() time.Time { return t0 }})
	if err != nil {
		t.Fatal(err)
	}
	rs, err := m.Restore(ctx)
	if err != nil || rs.Adopted != 1 {
		t.Fatalf("restore %+v %v", rs, err)
	}
	if l := m.List("fleet"); len(l) != 1 || l[0].Unsaved || !l[0].Enforced || l[0].Offence != 1 {
		t.Fatalf("adopted %+v", l)
	}
	if got := storedPrefixes(t, st); len(got) != 0 {
		t.Fatalf("stored after adoption %v", got)
	}
}
