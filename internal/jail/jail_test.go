package jail

import (
	"errors"
	"fmt"
	"net/netip"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/palisade-project/palisade/internal/filter"
)

var t0 = time.Date(2026, 11, 24, 19, 0, 0, 0, time.UTC)

type fakeHistory struct {
	n       map[netip.Prefix]int
	last    time.Time
	overall []bool
}

func (h *fakeHistory) Offences(_ string, p netip.Prefix, overall bool) (int, time.Time, error) {
	h.overall = append(h.overall, overall)
	return h.n[p], h.last, nil
}

func fail(ip string, at time.Time) filter.Failure {
	a := netip.MustParseAddr(ip)
	return filter.Failure{ID: ip, Addr: a, Time: at, Matches: []string{"Failed password for root from " + ip}, Regex: 2}
}

// guide is the jail.local of a typical hardening guide:
//
//	[DEFAULT] ignoreip = 127.0.0.1/8  bantime = 1h  findtime = 10m  maxretry = 5
//	[sshd]    maxretry = 4
func guide() Config {
	return Config{Name: "sshd", IgnoreIP: ignore("127.0.0.1/8"), BanTime: time.Hour, FindTime: 10 * time.Minute, MaxRetry: 4}
}

// ignore makes ignoreip entries from prefixes or addresses.
func ignore(list ...string) []IgnoreEntry {
	var out []IgnoreEntry
	for _, s := range list {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			a := netip.MustParseAddr(s)
			p = netip.PrefixFrom(a, a.BitLen())
		}
		out = append(out, IgnoreEntry{Prefix: p, Text: s})
	}
	return out
}

func mustNew(t testing.TB, cfg Config, deps Deps) *Jail {
	t.Helper()
	j, err := New(cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	return j
}

func TestGuideJail(t *testing.T) {
	type step struct {
		ip     string
		at     time.Duration // failure time, after t0
		now    time.Duration // observation time; 0 means same as at
		want   Action
		failed int
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"three failures do not ban", []step{
			{"192.0.2.1", 0, 0, Counted, 1},
			{"192.0.2.1", time.Minute, 0, Counted, 2},
			{"192.0.2.1", 2 * time.Minute, 0, Counted, 3},
		}},
		{"the fourth within findtime bans", []step{
			{"192.0.2.1", 0, 0, Counted, 1},
			{"192.0.2.1", 3 * time.Minute, 0, Counted, 2},
			{"192.0.2.1", 6 * time.Minute, 0, Counted, 3},
			{"192.0.2.1", 9 * time.Minute, 0, Banned, 4},
		}},
		{"failures older than findtime slide out", []step{
			{"192.0.2.1", 0, 0, Counted, 1},
			{"192.0.2.1", 4 * time.Minute, 0, Counted, 2},
			{"192.0.2.1", 8 * time.Minute, 0, Counted, 3},
			{"192.0.2.1", 12 * time.Minute, 0, Counted, 3}, // the first is 12m old
			{"192.0.2.1", 13 * time.Minute, 0, Banned, 4},
		}},
		{"a failure logged more than findtime ago is not counted", []step{
			{"192.0.2.1", 0, 11 * time.Minute, Skipped, 0},
		}},
		{"addresses are counted separately", []step{
			{"192.0.2.1", 0, 0, Counted, 1},
			{"192.0.2.2", 0, 0, Counted, 1},
			{"192.0.2.1", time.Second, 0, Counted, 2},
			{"192.0.2.2", time.Second, 0, Counted, 2},
		}},
		{"ignoreip 127.0.0.1/8", []step{
			{"127.0.0.5", 0, 0, Ignored, 0},
			{"127.0.0.5", 1, 0, Ignored, 0},
			{"127.0.0.5", 2, 0, Ignored, 0},
			{"127.0.0.5", 3, 0, Ignored, 0},
		}},
		{"IPv4-mapped IPv6 is the IPv4 address", []step{
			{"::ffff:192.0.2.1", 0, 0, Counted, 1},
			{"192.0.2.1", 1, 0, Counted, 2},
			{"::ffff:127.0.0.1", 2, 0, Ignored, 0},
		}},
		{"counting restarts after a ban", []step{
			{"192.0.2.1", 0, 0, Counted, 1},
			{"192.0.2.1", 1, 0, Counted, 2},
			{"192.0.2.1", 2, 0, Counted, 3},
			{"192.0.2.1", 3, 0, Banned, 4},
			{"192.0.2.1", time.Minute, 0, Counted, 1},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			j := mustNew(t, guide(), Deps{})
			for i, s := range tc.steps {
				now := s.now
				if now == 0 {
					now = s.at
				}
				v := j.Observe(fail(s.ip, t0.Add(s.at)), t0.Add(now))
				if v.Action != s.want || v.Failures != s.failed {
					t.Fatalf("step %d (%s at %v): %v with %d failures (%s), want %v with %d", i, s.ip, s.at, v.Action, v.Failures, v.Reason, s.want, s.failed)
				}
				if v.Action == Banned {
					d := v.Ban
					if d.Duration != time.Hour || d.Offence != 1 || d.Step != 0 || d.Prefix != netip.MustParsePrefix(s.ip+"/32") {
						t.Fatalf("ban decision %+v", d)
					}
					if len(d.Matches) != 4 || !strings.Contains(d.Reason, "4 failures within 10m0s") {
						t.Fatalf("ban details: matches %d, reason %q", len(d.Matches), d.Reason)
					}
				}
				if v.Action == Ignored && (v.Ignore.Rule != RuleIP || v.Ignore.Entry != "127.0.0.1/8") {
					t.Fatalf("ignore match %+v", v.Ignore)
				}
			}
		})
	}
}

func TestBanTimeIncrement(t *testing.T) {
	inc := guide()
	inc.Increment = Increment{Enabled: true, Factor: 24, MaxTime: 5 * 7 * 24 * time.Hour}
	mult := guide()
	mult.BanTime = time.Minute
	mult.Increment = Increment{Enabled: true, Multipliers: []float64{1, 5, 30, 60}}
	rnd := guide()
	rnd.Increment = Increment{Enabled: true, RndTime: 10 * time.Minute}
	perm := guide()
	perm.BanTime = -time.Second
	perm.Increment = Increment{Enabled: true, Factor: 24}
	off := guide()
	tests := []struct {
		name     string
		cfg      Config
		prev     int
		want     time.Duration
		wantStep int
	}{
		{"first ban is the base time", inc, 0, time.Hour, 0},
		{"second ban: 1h*2*24", inc, 1, 48 * time.Hour, 1},
		{"third ban", inc, 2, 96 * time.Hour, 2},
		{"fifth ban: 16 days", inc, 4, 384 * time.Hour, 4},
		{"sixth ban: 32 days", inc, 5, 768 * time.Hour, 5},
		{"maxtime caps at 5w", inc, 6, 5 * 7 * 24 * time.Hour, 6},
		{"cap holds for huge counts", inc, 1000, 5 * 7 * 24 * time.Hour, 1000},
		{"multipliers step 1", mult, 1, 5 * time.Minute, 1},
		{"multipliers beyond the list use the last", mult, 9, 60 * time.Minute, 9},
		{"rndtime adds up to rndtime", rnd, 1, 2*time.Hour + 5*time.Minute, 1},
		{"permanent stays permanent", perm, 3, -1, 0},
		{"increment off", off, 7, time.Hour, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			j := mustNew(t, tc.cfg, Deps{Rand: func() float64 { return 0.5 }})
			got, step := j.BanTime(tc.prev)
			if got != tc.want || step != tc.wantStep {
				t.Fatalf("BanTime(%d) = %v step %d, want %v step %d", tc.prev, got, step, tc.want, tc.wantStep)
			}
		})
	}
}

func TestRepeatOffender(t *testing.T) {
	cfg := guide()
	cfg.Increment = Increment{Enabled: true, Factor: 24, MaxTime: 5 * 7 * 24 * time.Hour, OverallJails: true}
	ip := "203.0.113.9"
	key := netip.MustParsePrefix(ip + "/32")
	tests := []struct {
		prev       int
		wantWeight int
		failsToBan int
		wantTime   time.Duration
	}{
		{0, 1, 4, time.Hour},
		{1, 2, 2, 48 * time.Hour},         // each failure counts 2
		{2, 3, 2, 96 * time.Hour},         // 3, then 6 >= 4
		{3, 4, 1, 192 * time.Hour},        // 5 capped at maxretry
		{9, 4, 1, 5 * 7 * 24 * time.Hour}, // capped
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("after %d bans", tc.prev), func(t *testing.T) {
			h := &fakeHistory{n: map[netip.Prefix]int{key: tc.prev}, last: t0.Add(-24 * time.Hour)}
			j := mustNew(t, cfg, Deps{History: h})
			var v Verdict
			for i := 1; i <= tc.failsToBan; i++ {
				v = j.Observe(fail(ip, t0.Add(time.Duration(i)*time.Second)), t0.Add(time.Duration(i)*time.Second))
				if v.Weight != tc.wantWeight {
					t.Fatalf("failure %d weight %d, want %d", i, v.Weight, tc.wantWeight)
				}
				if i < tc.failsToBan && v.Action != Counted {
					t.Fatalf("failure %d: %v, want counted", i, v.Action)
				}
			}
			if v.Action != Banned || v.Ban.Duration != tc.wantTime || v.Ban.Offence != tc.prev+1 || v.Ban.Step != tc.prev {
				t.Fatalf("verdict %v %+v, want ban for %v", v.Action, v.Ban, tc.wantTime)
			}
			if !slices.Contains(h.overall, true) || slices.Contains(h.overall, false) {
				t.Fatalf("overalljails not passed to history: %v", h.overall)
			}
		})
	}
	// Failures logged before the last ban are not counted again (log
	// re-read after a restart).
	h := &fakeHistory{n: map[netip.Prefix]int{key: 1}, last: t0}
	j := mustNew(t, cfg, Deps{History: h})
	if v := j.Observe(fail(ip, t0.Add(-time.Second)), t0.Add(time.Second)); v.Action != Skipped {
		t.Fatalf("failure before the last ban: %v", v.Action)
	}
}

func TestIgnoreRules(t *testing.T) {
	self := []netip.Addr{netip.MustParseAddr("203.0.113.1"), netip.MustParseAddr("2001:db8:1::1")}
	hosts := []ResolvedHost{
		{Host: "admin.example.org", Addrs: []netip.Addr{netip.MustParseAddr("198.51.100.7"), netip.MustParseAddr("2001:db8::7")}},
		{Host: "gone.example.org", Err: errors.New("no such host")},
	}
	cfg := guide()
	cfg.IgnoreIP = ignore("127.0.0.1/8", "192.0.2.0/28", "2001:db8:ffff::1", "::ffff:198.51.100.128/121")
	cfg.IgnoreHosts = []string{"admin.example.org", "gone.example.org"}
	tests := []struct {
		name       string
		ignoreSelf bool
		ip         string
		rule       string
		entry      string
	}{
		{"loopback via ignoreip", false, "127.1.2.3", RuleIP, "127.0.0.1/8"},
		{"CIDR", false, "192.0.2.15", RuleIP, "192.0.2.0/28"},
		{"outside CIDR", false, "192.0.2.16", "", ""},
		{"mapped CIDR is IPv4", false, "198.51.100.130", RuleIP, "::ffff:198.51.100.128/121"},
		{"host name v4", false, "198.51.100.7", RuleIP, "admin.example.org (198.51.100.7)"},
		{"host name v6", false, "2001:db8::7", RuleIP, "admin.example.org (2001:db8::7)"},
		{"single v6", false, "2001:db8:ffff::1", RuleIP, "2001:db8:ffff::1"},
		{"own address without ignoreself", false, "203.0.113.1", "", ""},
		{"own address with ignoreself", true, "203.0.113.1", RuleSelf, "own address 203.0.113.1"},
		{"own v6 with ignoreself", true, "2001:db8:1::1", RuleSelf, "own address 2001:db8:1::1"},
		{"::1 with ignoreself", true, "::1", RuleSelf, "loopback"},
		{"other address", true, "203.0.113.2", "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := cfg
			c.IgnoreSelf = tc.ignoreSelf
			j := mustNew(t, c, Deps{})
			j.SetIgnoreExtra(self, hosts)
			v := j.Observe(fail(tc.ip, t0), t0)
			if tc.rule == "" {
				if v.Action != Counted {
					t.Fatalf("%v (%+v), want counted", v.Action, v.Ignore)
				}
				return
			}
			if v.Action != Ignored || v.Ignore.Rule != tc.rule || v.Ignore.Entry != tc.entry {
				t.Fatalf("%v %+v, want ignored by %s %q", v.Action, v.Ignore, tc.rule, tc.entry)
			}
			if m := j.Exempt(netip.MustParseAddr(tc.ip)); m == nil || *m != *v.Ignore {
				t.Fatalf("Exempt = %+v, Observe = %+v", m, v.Ignore)
			}
			ex := j.Explain(netip.MustParseAddr(tc.ip), t0)
			if ex.Ignore == nil || ex.Ignore.Rule != tc.rule {
				t.Fatalf("Explain ignore = %+v", ex.Ignore)
			}
			if len(ex.IgnoreErrors) != 1 || !strings.HasPrefix(ex.IgnoreErrors[0], "gone.example.org") {
				t.Fatalf("IgnoreErrors = %q", ex.IgnoreErrors)
			}
		})
	}
}

// TestHostsUntilResolved: an ignoreip host name exempts nothing until its
// addresses are handed in, and Explain says it is not resolved yet.
func TestHostsUntilResolved(t *testing.T) {
	cfg := guide()
	cfg.IgnoreHosts = []string{"admin.example.org"}
	j := mustNew(t, cfg, Deps{})
	if ex := j.Explain(netip.MustParseAddr("198.51.100.7"), t0); len(ex.IgnoreErrors) != 1 || !strings.Contains(ex.IgnoreErrors[0], "not resolved yet") {
		t.Fatalf("IgnoreErrors before resolution = %q", ex.IgnoreErrors)
	}
	if v := j.Observe(fail("198.51.100.7", t0), t0); v.Action != Counted {
		t.Fatalf("before resolution: %v", v.Action)
	}
	j.SetIgnoreExtra(nil, []ResolvedHost{{Host: "admin.example.org", Addrs: []netip.Addr{netip.MustParseAddr("198.51.100.7")}}})
	if v := j.Observe(fail("198.51.100.7", t0), t0); v.Action != Ignored {
		t.Fatalf("after resolution: %v", v.Action)
	}
}

// TestCommandFact: the ignorecommand's answer comes in as a fact and is
// applied after ignoreself and ignoreip.
func TestCommandFact(t *testing.T) {
	j := mustNew(t, guide(), Deps{})
	cmd := CommandMatch([]string{"/usr/local/bin/is-friend", "<ip>"}, false)
	v := j.ObserveWith(fail("192.0.2.50", t0), t0, Facts{Command: cmd})
	if v.Action != Ignored || v.Ignore.Rule != RuleCommand || v.Ignore.Entry != "/usr/local/bin/is-friend <ip>" {
		t.Fatalf("%v %+v", v.Action, v.Ignore)
	}
	if v := j.ObserveWith(fail("127.0.0.1", t0), t0, Facts{Command: cmd}); v.Ignore == nil || v.Ignore.Rule != RuleIP {
		t.Fatalf("ignoreip must win over the command: %+v", v.Ignore)
	}
	if v := j.Observe(fail("192.0.2.50", t0), t0); v.Action != Counted {
		t.Fatalf("without the fact: %v", v.Action)
	}
	if st := j.Stats(); st.Ignored != 2 || st.Failures != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// blockingHistory blocks Offences until released, to show the jail's lock
// is not held while the history is read.
type blockingHistory struct {
	entered chan struct{}
	release chan struct{}
}

func (h *blockingHistory) Offences(string, netip.Prefix, bool) (int, time.Time, error) {
	h.entered <- struct{}{}
	<-h.release
	return 1, time.Time{}, nil
}

func TestHistoryReadWithoutLock(t *testing.T) {
	cfg := guide()
	cfg.Increment = Increment{Enabled: true}
	h := &blockingHistory{entered: make(chan struct{}), release: make(chan struct{})}
	j := mustNew(t, cfg, Deps{History: h})
	done := make(chan Verdict)
	go func() { done <- j.Observe(fail("192.0.2.60", t0), t0) }()
	select {
	case <-h.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("history not read")
	}
	// The jail answers while the history read is pending.
	answered := make(chan Stats)
	go func() {
		if m := j.Exempt(netip.MustParseAddr("127.0.0.1")); m == nil {
			t.Error("loopback not exempt")
		}
		answered <- j.Stats()
	}()
	select {
	case st := <-answered:
		if st.Tracked != 0 {
			t.Errorf("stats %+v", st)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the jail's lock is held while the history is read")
	}
	close(h.release)
	v := <-done
	if v.Action != Counted || v.Weight != 2 {
		t.Fatalf("%v weight %d, want counted with weight 2 (one earlier ban)", v.Action, v.Weight)
	}
}

func TestBoundedTable(t *testing.T) {
	cfg := guide()
	cfg.MaxEntries = 1000
	j := mustNew(t, cfg, Deps{})
	const n = 5000
	for i := 0; i < n; i++ {
		a := netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)})
		if v := j.Observe(filter.Failure{Addr: a, Time: t0}, t0); v.Action != Counted {
			t.Fatalf("%s: %v", a, v.Action)
		}
	}
	st := j.Stats()
	if st.Tracked != 1000 || st.Evicted != n-1000 || st.Failures != n {
		t.Fatalf("stats %+v, want 1000 tracked, %d evicted", st, n-1000)
	}
	// The most recent survive, the oldest were evicted.
	last := n - 1
	if !j.Explain(netip.AddrFrom4([4]byte{10, 0, byte(last >> 8), byte(last)}), t0).Tracked {
		t.Fatal("newest entry evicted")
	}
	if j.Explain(netip.MustParseAddr("10.0.0.0"), t0).Tracked {
		t.Fatal("oldest entry kept")
	}
	// Entries older than findtime are purged as time moves on (8 per
	// failure observed). 192.0.2.1 is banned by its fourth failure, which
	// removes its entry; the rest fall at the time of its ban and do not
	// count again.
	later := t0.Add(time.Hour)
	for i := 0; i < 200; i++ {
		j.Observe(fail("192.0.2.1", later), later)
	}
	if st := j.Stats(); st.Tracked != 0 || st.Bans != 1 {
		t.Fatalf("old entries not purged: %+v", st)
	}
}

func TestAggregation(t *testing.T) {
	tests := []struct {
		name     string
		v4       int
		prefix   int
		ignore   []IgnoreEntry
		ips      []string
		wantBan  string // "" = no ban after the sequence
		wantKeys string
	}{
		{"off: per address", 0, 0, nil, []string{"2001:db8::1", "2001:db8::2", "2001:db8::3", "2001:db8::4"}, "", "2001:db8::4/128"},
		{"on: /64", 0, 64, nil, []string{"2001:db8::1", "2001:db8::2", "2001:db8::3", "2001:db8::4"}, "2001:db8::/64", "2001:db8::/64"},
		{"on: other /64 separate", 0, 64, nil, []string{"2001:db8::1", "2001:db8:0:1::2", "2001:db8::3", "2001:db8::4"}, "", "2001:db8::/64"},
		{"on: never covers an ignored address", 0, 64, ignore("2001:db8::99"), []string{"2001:db8::1", "2001:db8::2", "2001:db8::3", "2001:db8::4"}, "2001:db8::4/128", "2001:db8::/64"},
		{"IPv4 unaffected", 0, 64, nil, []string{"192.0.2.1", "192.0.2.1", "192.0.2.1", "192.0.2.1"}, "192.0.2.1/32", "192.0.2.1/32"},
		{"ipv4prefix 24", 24, 0, nil, []string{"192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.200"}, "192.0.2.0/24", "192.0.2.0/24"},
		{"ipv4prefix 24: other /24 separate", 24, 0, nil, []string{"192.0.2.1", "192.0.3.2", "192.0.2.3", "192.0.2.4"}, "", "192.0.2.0/24"},
		{"ipv4prefix never covers an ignored address", 24, 0, ignore("192.0.2.99"), []string{"192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4"}, "192.0.2.4/32", "192.0.2.0/24"},
		{"ipv4prefix 32 = per address", 32, 0, nil, []string{"192.0.2.1", "192.0.2.2", "192.0.2.1", "192.0.2.1"}, "", "192.0.2.1/32"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := guide()
			cfg.IPv4Prefix = tc.v4
			cfg.IPv6Prefix = tc.prefix
			cfg.IgnoreIP = tc.ignore
			j := mustNew(t, cfg, Deps{})
			var v Verdict
			for i, ip := range tc.ips {
				v = j.Observe(fail(ip, t0.Add(time.Duration(i))), t0.Add(time.Duration(i)))
			}
			if v.Key.String() != tc.wantKeys {
				t.Fatalf("key %s, want %s", v.Key, tc.wantKeys)
			}
			if tc.wantBan == "" {
				if v.Action == Banned {
					t.Fatalf("unexpected ban %+v", v.Ban)
				}
				return
			}
			if v.Action != Banned || v.Ban.Prefix.String() != tc.wantBan {
				t.Fatalf("%v %+v, want ban of %s", v.Action, v.Ban, tc.wantBan)
			}
		})
	}
}

// TestHostNameIDSkipped: the jail does no DNS; a failure identified by a
// host name reaches it resolved (internal/pipeline) or not at all.
func TestHostNameIDSkipped(t *testing.T) {
	j := mustNew(t, guide(), Deps{})
	for _, tc := range []struct{ id, reason string }{
		{"bad.example.net", "not an address"},
		{"", "no address"},
	} {
		v := j.Observe(filter.Failure{ID: tc.id, Time: t0}, t0)
		if v.Action != Skipped || !strings.Contains(v.Reason, tc.reason) {
			t.Errorf("%q: %v %q", tc.id, v.Action, v.Reason)
		}
	}
	if v := j.Skip("usedns = no"); v.Action != Skipped || j.Stats().Skipped != 3 {
		t.Fatalf("Skip: %+v, stats %+v", v, j.Stats())
	}
}

func TestExplain(t *testing.T) {
	cfg := guide()
	cfg.Increment = Increment{Enabled: true, Factor: 2}
	h := &fakeHistory{n: map[netip.Prefix]int{}}
	j := mustNew(t, cfg, Deps{History: h})
	ip := netip.MustParseAddr("192.0.2.9")
	j.Observe(fail("192.0.2.9", t0), t0)
	j.Observe(fail("192.0.2.9", t0.Add(5*time.Minute)), t0.Add(5*time.Minute))
	ex := j.Explain(ip, t0.Add(12*time.Minute))
	if !ex.Tracked || len(ex.Failures) != 2 || ex.Counting != 1 || ex.Failures[0].InWindow || !ex.Failures[1].InWindow || ex.Failures[1].Regex != 2 {
		t.Fatalf("explain %+v", ex)
	}
	if len(ex.Matches) != 2 || ex.NextBanTime != time.Hour || ex.NextStep != 0 || ex.Ignore != nil {
		t.Fatalf("explain %+v", ex)
	}
	for i := 0; i < 4; i++ {
		j.Observe(fail("192.0.2.9", t0.Add(6*time.Minute)), t0.Add(6*time.Minute))
	}
	// The ban spent the failures: the entry is gone, and the next ban
	// escalates, whether or not the history is updated yet.
	ex = j.Explain(ip, t0.Add(7*time.Minute))
	if ex.Tracked || ex.Counting != 0 || len(ex.Matches) != 0 {
		t.Fatalf("after the ban: %+v", ex)
	}
	if ex.NextBanTime != 4*time.Hour || ex.NextStep != 1 {
		t.Fatalf("next ban %v step %d, want 4h step 1", ex.NextBanTime, ex.NextStep)
	}
	if ex := j.Explain(netip.MustParseAddr("198.51.100.1"), t0); ex.Tracked {
		t.Fatal("unknown address tracked")
	}
	j.Forget(netip.PrefixFrom(ip, 32))
	if j.Explain(ip, t0).Tracked {
		t.Fatal("Forget kept the entry")
	}
}

func TestNewRejects(t *testing.T) {
	tests := []struct {
		name string
		mod  func(*Config)
	}{
		{"invalid ignoreip", func(c *Config) { c.IgnoreIP = []IgnoreEntry{{Text: "300.1.1.1"}} }},
		{"negative maxretry", func(c *Config) { c.MaxRetry = -1 }},
		{"negative findtime", func(c *Config) { c.FindTime = -time.Second }},
		{"bad v4 prefix", func(c *Config) { c.IPv4Prefix = 33 }},
		{"bad v6 prefix", func(c *Config) { c.IPv6Prefix = 129 }},
		{"negative factor", func(c *Config) { c.Increment.Factor = -1 }},
		{"negative multiplier", func(c *Config) { c.Increment.Multipliers = []float64{1, -2} }},
		{"no name", func(c *Config) { c.Name = "" }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := guide()
			tc.mod(&c)
			if _, err := New(c, Deps{}); err == nil {
				t.Fatal("accepted")
			}
		})
	}
	j := mustNew(t, Config{Name: "x"}, Deps{})
	c := j.Config()
	if c.MaxRetry != 5 || c.FindTime != 10*time.Minute || c.BanTime != 10*time.Minute || c.MaxEntries != DefaultMaxEntries || c.MaxMatches != 5 {
		t.Fatalf("defaults %+v", c)
	}
}

func BenchmarkObserve(b *testing.B) {
	cases := []struct {
		name  string
		addrs int
		max   int
	}{
		{"counted/1k-addresses-maxretry-1000", 1000, 1000},
		{"flood/unique-addresses-table-full", 1 << 22, 5},
		{"bans/maxretry-4", 1000, 4},
	}
	for _, bc := range cases {
		b.Run(bc.name, func(b *testing.B) {
			cfg := guide()
			cfg.MaxRetry = bc.max
			cfg.MaxEntries = 100000
			j := mustNew(b, cfg, Deps{})
			fs := make([]filter.Failure, 4096)
			for i := range fs {
				fs[i] = filter.Failure{Matches: []string{"Failed password for root from 192.0.2.1 port 22 ssh2"}}
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				f := &fs[i&4095]
				k := i % bc.addrs
				f.Addr = netip.AddrFrom4([4]byte{10, byte(k >> 16), byte(k >> 8), byte(k)})
				now := t0.Add(time.Duration(i) * time.Microsecond)
				f.Time = now
				j.Observe(*f, now)
			}
		})
	}
}

// BenchmarkTableMemory reports the heap held per failure-table entry when a
// flood of unique addresses fills the table (one failure and one 80-byte
// matched line each).
func BenchmarkTableMemory(b *testing.B) {
	const n = 100000
	line := strings.Repeat("x", 80)
	for i := 0; i < b.N; i++ {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		cfg := guide()
		cfg.MaxEntries = n
		j := mustNew(b, cfg, Deps{})
		for k := 0; k < n; k++ {
			a := netip.AddrFrom4([4]byte{10, byte(k >> 16), byte(k >> 8), byte(k)})
			j.Observe(filter.Failure{Addr: a, Time: t0, Matches: []string{line}}, t0)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		if j.Stats().Tracked != n {
			b.Fatal(j.Stats())
		}
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "B/entry")
		runtime.KeepAlive(j)
	}
}

// FuzzObserve feeds arbitrary failure sequences and checks the jail's
// invariants: the table stays bounded, an exempt address is never banned
// nor covered by a ban, and counts never exceed maxretry.
func FuzzObserve(f *testing.F) {
	f.Add([]byte{0, 1, 0, 0, 1, 0, 0, 1, 0, 0, 1, 0}, true)
	f.Add([]byte{5, 0, 1, 5, 0, 1, 5, 0, 1, 200, 255, 0}, false)
	f.Add([]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}, true)
	f.Fuzz(func(t *testing.T, data []byte, v6agg bool) {
		cfg := Config{Name: "fz", MaxRetry: 3, FindTime: time.Minute, BanTime: time.Hour, MaxEntries: 16,
			IgnoreIP: ignore("192.0.2.0/30", "2001:db8::3"), Increment: Increment{Enabled: true, Factor: 2}}
		if v6agg {
			cfg.IPv6Prefix = 64
		}
		j, err := New(cfg, Deps{History: &fakeHistory{n: map[netip.Prefix]int{}}})
		if err != nil {
			t.Fatal(err)
		}
		exempt := []netip.Prefix{netip.MustParsePrefix("192.0.2.0/30"), netip.MustParsePrefix("2001:db8::3/128")}
		now := t0
		for i := 0; i+2 < len(data) && i < 3*500; i += 3 {
			var a netip.Addr
			if data[i]&0x80 != 0 {
				a = netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 15: data[i] & 0x0f})
			} else {
				a = netip.AddrFrom4([4]byte{192, 0, 2, data[i] & 0x1f})
			}
			now = now.Add(time.Duration(data[i+1]) * time.Second)
			ft := now.Add(-time.Duration(data[i+2]) * time.Second)
			v := j.Observe(filter.Failure{Addr: a, Time: ft, Regex: int(data[i+2] & 3)}, now)
			if v.Failures > cfg.MaxRetry {
				t.Fatalf("%d failures counted, maxretry %d", v.Failures, cfg.MaxRetry)
			}
			for _, e := range exempt {
				if e.Contains(a) && v.Action != Ignored && v.Action != Skipped {
					t.Fatalf("exempt %s: %v", a, v.Action)
				}
				if v.Action == Banned && e.Overlaps(v.Ban.Prefix) {
					t.Fatalf("ban %s covers exempt %s", v.Ban.Prefix, e)
				}
			}
			if st := j.Stats(); st.Tracked > cfg.MaxEntries {
				t.Fatalf("%d entries tracked, max %d", st.Tracked, cfg.MaxEntries)
			}
			_ = j.Explain(a, now)
		}
	})
}
