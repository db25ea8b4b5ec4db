package ban

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"
)

// checkConsistent fails unless manager, firewall and store hold the same
// bans, and returns them ("jail prefix").
func checkConsistent(t *testing.T, e *env) []string {
	t.Helper()
	var got []string
	for en := range e.m.All("") {
		got = append(got, en.Jail+" "+en.Prefix.String())
	}
	if fw := fwPrefixes(t, e.fw); !slices.Equal(fw, got) {
		t.Fatalf("firewall %v\nmanager  %v", fw, got)
	}
	if st := storedPrefixes(t, e.st); !slices.Equal(st, got) {
		t.Fatalf("store   %v\nmanager %v", st, got)
	}
	return got
}

func TestMaxBansAggregates(t *testing.T) {
	tests := []struct {
		name   string
		max    int
		addrs  []string
		want   []string // bans left, in order
		merged int
	}{
		{
			name: "IPv6 /64 first",
			max:  4,
			addrs: []string{"2001:db8:1:1::1", "2001:db8:1:1::2", "2001:db8:1:1::3", "2001:db8:2:2::1",
				"2001:db8:3:3::1"},
			want:   []string{"sshd 2001:db8:1:1::/64", "sshd 2001:db8:2:2::1/128", "sshd 2001:db8:3:3::1/128"},
			merged: 3,
		},
		{
			name:   "IPv4 /24, the largest group first",
			max:    5,
			addrs:  []string{"192.0.2.1", "192.0.2.2", "198.51.100.1", "198.51.100.2", "198.51.100.3", "203.0.113.9"},
			want:   []string{"sshd 192.0.2.1/32", "sshd 192.0.2.2/32", "sshd 198.51.100.0/24", "sshd 203.0.113.9/32"},
			merged: 3,
		},
		{
			name:   "wider when /64 has no neighbours",
			max:    3,
			addrs:  []string{"2001:db8:aa:1::1", "2001:db8:aa:2::1", "2001:db8:aa:3::1", "2001:db8:bb::1"},
			want:   []string{"sshd 2001:db8:aa::/56", "sshd 2001:db8:bb::1/128"},
			merged: 3,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, Config{PerJail: map[string]JailConfig{"sshd": {MaxBans: tc.max}}})
			events, cancel := e.m.Subscribe(64)
			defer cancel()
			ctx := context.Background()
			for i, a := range tc.addrs {
				e.clock.Add(time.Second)
				d := time.Duration(i+1) * time.Hour
				if _, err := e.m.Ban(ctx, "sshd", pfx(a), d, "rule"); err != nil {
					t.Fatalf("ban %s: %v", a, err)
				}
			}
			got := checkConsistent(t, e)
			if !slices.Equal(got, tc.want) {
				t.Fatalf("bans %v\nwant %v", got, tc.want)
			}
			if a, _ := e.m.Count("sshd"); a > tc.max {
				t.Fatalf("%d active bans, bound %d", a, tc.max)
			}
			// Every attacker is still blocked, for at least as long.
			for i, a := range tc.addrs {
				f := e.m.Find(netip.MustParseAddr(a))
				if len(f) == 0 {
					t.Fatalf("%s no longer banned", a)
				}
				if end := t0.Add(time.Duration(i+1)*time.Second + time.Duration(i+1)*time.Hour); f[0].Expires.Before(end) {
					t.Fatalf("%s: ban ends %v, before its own end %v", a, f[0].Expires, end)
				}
			}
			if st := e.m.Stats(); st.Aggregated != uint64(tc.merged) || st.Evicted != 0 {
				t.Fatalf("stats %+v", st)
			}
			var aggEvents, replaced int
			for len(events) > 0 {
				ev := <-events
				switch {
				case ev.Kind == EventBan && ev.Aggregated > 0:
					aggEvents++
					if ev.Aggregated != tc.merged {
						t.Errorf("aggregate event covers %d, want %d", ev.Aggregated, tc.merged)
					}
				case ev.Kind == EventUnban:
					if ev.Cause != CauseAggregated {
						t.Errorf("unban cause %q", ev.Cause)
					}
					replaced++
				}
			}
			if aggEvents != 1 || replaced != tc.merged {
				t.Fatalf("%d aggregate events, %d replaced-ban events", aggEvents, replaced)
			}
		})
	}
}

// TestMaxBansNeverCoversExempt: an aggregate never covers the host's own
// addresses or the jail's ignoreip; with no other neighbours, the bans
// closest to their end are lifted early instead.
func TestMaxBansNeverCoversExempt(t *testing.T) {
	e := newEnv(t, Config{
		Protected: []netip.Prefix{pfx("198.51.100.200")},
		PerJail:   map[string]JailConfig{"sshd": {MaxBans: 3, Exempt: []netip.Prefix{pfx("192.0.2.128/25")}}},
	})
	ctx := context.Background()
	for i, a := range []string{"192.0.2.1", "192.0.2.2", "198.51.100.1", "198.51.100.2"} {
		if _, err := e.m.Ban(ctx, "sshd", pfx(a), time.Duration(10-i)*time.Hour, ""); err != nil {
			t.Fatal(err)
		}
	}
	got := checkConsistent(t, e)
	for _, g := range got {
		p := netip.MustParsePrefix(g[len("sshd "):])
		if p.Contains(netip.MustParseAddr("198.51.100.200")) || p.Overlaps(pfx("192.0.2.128/25")) {
			t.Fatalf("aggregate %s covers a protected or exempt address", p)
		}
	}
	// 4 bans, bound 3 (target 3): nothing could merge, so the ban ending
	// first (198.51.100.2, 7h) was lifted.
	if !slices.Equal(got, []string{"sshd 192.0.2.1/32", "sshd 192.0.2.2/32", "sshd 198.51.100.1/32"}) {
		t.Fatalf("bans %v", got)
	}
	if st := e.m.Stats(); st.Evicted != 1 || st.Aggregated != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// TestMaxBansStorm: a storm well past the bound stays within it and every
// attacker stays blocked.
func TestMaxBansStorm(t *testing.T) {
	const max, n = 1000, 20000
	e := newEnv(t, Config{PerJail: map[string]JailConfig{"sshd": {MaxBans: max}}})
	ctx := context.Background()
	addr := func(i int) netip.Addr {
		// 20000 attackers in 40 /48s, each in its own /64.
		return netip.MustParseAddr(fmt.Sprintf("2001:db8:%x:%x::%x", i%40, i/40, 1+i%7))
	}
	for i := 0; i < n; i += 100 {
		reqs := make([]Request, 100)
		for k := range reqs {
			a := addr(i + k)
			reqs[k] = Request{Jail: "sshd", Prefix: netip.PrefixFrom(a, 128), Duration: 24 * time.Hour}
		}
		for _, r := range e.m.BanMany(ctx, reqs) {
			if r.Err != nil && !errors.Is(r.Err, ErrAlreadyBanned) {
				t.Fatal(r.Err)
			}
		}
		if a, _ := e.m.Count("sshd"); a > max {
			t.Fatalf("after %d bans: %d active, bound %d", i+100, a, max)
		}
	}
	checkConsistent(t, e)
	for i := 0; i < n; i++ {
		if len(e.m.Find(addr(i))) == 0 {
			t.Fatalf("attacker %d (%s) not banned", i, addr(i))
		}
	}
	if st := e.m.Stats(); st.Evicted != 0 {
		t.Fatalf("bans lifted early although neighbours existed: %+v", st)
	}
}

// TestCoveredIsAlreadyBanned: a ban inside a network ban that lasts at
// least as long is not added.
func TestCoveredIsAlreadyBanned(t *testing.T) {
	e := newEnv(t, Config{})
	ctx := context.Background()
	if _, err := e.m.Ban(ctx, "sshd", pfx("2001:db8:1:1::/64"), 2*time.Hour, ""); err != nil {
		t.Fatal(err)
	}
	got, err := e.m.Ban(ctx, "sshd", pfx("2001:db8:1:1::5"), time.Hour, "")
	if !errors.Is(err, ErrAlreadyBanned) || got.Prefix != pfx("2001:db8:1:1::/64") {
		t.Fatalf("covered ban: %+v, %v", got, err)
	}
	// Longer than the network ban: added.
	if _, err := e.m.Ban(ctx, "sshd", pfx("2001:db8:1:1::5"), 3*time.Hour, ""); err != nil {
		t.Fatal(err)
	}
	// Another jail is another matter.
	if _, err := e.m.Ban(ctx, "nginx", pfx("2001:db8:1:1::6"), time.Hour, ""); err != nil {
		t.Fatal(err)
	}
	if got := checkConsistent(t, e); len(got) != 3 {
		t.Fatalf("bans %v", got)
	}
}
