package jail

import (
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/palisade-project/palisade/internal/filter"
)

// fakeBans is the ban manager's view of the bans in force.
type fakeBans struct {
	bans  map[netip.Prefix]fakeActive
	calls int
}

type fakeActive struct {
	start   time.Time
	offence int
}

func (f *fakeBans) ActiveBan(_ string, p netip.Prefix) (time.Time, int, bool) {
	f.calls++
	b, ok := f.bans[p]
	return b.start, b.offence, ok
}

// nthAddr is the i-th of many distinct documentation-range IPv6 addresses.
func nthAddr(i int) netip.Addr {
	return netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0, byte(i >> 16), byte(i >> 8), byte(i), 15: 1})
}

// TestBanSpendsFailures: a ban removes the address's entry from the
// failure table. Failures logged up to the ban's time do not count again,
// whether the jail still remembers the decision itself (its recent list)
// or only the ban manager knows the ban; later ones count afresh; Forget
// (a manual unban) makes the next failures count at once.
func TestBanSpendsFailures(t *testing.T) {
	ip := "192.0.2.1"
	key := netip.MustParsePrefix(ip + "/32")
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	type step struct {
		at     int // seconds after t0 (failure and observation time)
		want   Action
		failed int
	}
	tests := []struct {
		name string
		// overflow bans recentMax other addresses after the first ban, so
		// that the jail's recent list no longer holds it.
		overflow bool
		// managerStart, when set, is the start the ban manager reports for
		// the ban (seconds after t0).
		managerStart *int
		forget       bool
		steps        []step
	}{
		{name: "recent list: same second skipped, later counts afresh", steps: []step{
			{3, Skipped, 0}, {3, Skipped, 0}, {4, Counted, 1},
		}},
		{name: "manager: before the ban's start skipped", overflow: true, managerStart: ptr(10), steps: []step{
			{9, Skipped, 0}, {10, Skipped, 0}, {11, Counted, 1}, {12, Counted, 2},
		}},
		{name: "neither knows the ban: counts afresh", overflow: true, steps: []step{
			{3, Counted, 1},
		}},
		{name: "forgotten: counts afresh", forget: true, steps: []step{
			{3, Counted, 1}, {3, Counted, 2},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fb := &fakeBans{bans: map[netip.Prefix]fakeActive{}}
			j := mustNew(t, guide(), Deps{Bans: fb})
			var v Verdict
			for s := 0; s < 4; s++ {
				v = j.Observe(fail(ip, at(s)), at(s))
			}
			if v.Action != Banned || v.Ban.Prefix != key {
				t.Fatalf("fourth failure: %v", v.Action)
			}
			if st := j.Stats(); st.Tracked != 0 || st.Failing != 0 || j.Tracked(key.Addr()) {
				t.Fatalf("after the ban: %+v", st)
			}
			if tc.managerStart != nil {
				fb.bans[key] = fakeActive{start: at(*tc.managerStart), offence: 1}
			}
			if tc.overflow {
				for i := range recentMax {
					a := nthAddr(i)
					for s := 0; s < 4; s++ {
						j.Observe(filter.Failure{Addr: a, Time: at(2)}, at(2))
					}
				}
				if st := j.Stats(); st.Bans != recentMax+1 || st.Tracked != 0 {
					t.Fatalf("after the other bans: %+v", st)
				}
			}
			if tc.forget {
				j.Forget(key)
			}
			for i, s := range tc.steps {
				v := j.Observe(fail(ip, at(s.at)), at(s.at))
				if v.Action != s.want || v.Failures != s.failed {
					t.Fatalf("step %d (at +%ds): %v with %d failures (%s), want %v with %d", i, s.at, v.Action, v.Failures, v.Reason, s.want, s.failed)
				}
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

// TestEscalationAfterEntryDropped: with bantime.increment the next ban of
// an address escalates though its entry was removed by the first ban and
// the offence history does not count that ban yet: the jail's recent list
// knows it, and once the list has moved on, the ban manager's offence
// number does; the history, when it counts more, wins.
func TestEscalationAfterEntryDropped(t *testing.T) {
	ip := "203.0.113.9"
	key := netip.MustParsePrefix(ip + "/32")
	tests := []struct {
		name     string
		overflow bool
		manager  int // the offence number the ban manager reports (0: no ban in force)
		history  int // the offence history's count
		wantTime time.Duration
		offence  int
	}{
		{"recent list, stale history", false, 0, 0, 48 * time.Hour, 2},
		{"manager's offence, stale history", true, 1, 0, 48 * time.Hour, 2},
		{"history counts more", true, 1, 2, 96 * time.Hour, 3},
		{"ban lifted, history counts it", true, 0, 1, 48 * time.Hour, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := guide()
			cfg.Increment = Increment{Enabled: true, Factor: 24}
			h := &fakeHistory{n: map[netip.Prefix]int{}}
			fb := &fakeBans{bans: map[netip.Prefix]fakeActive{}}
			j := mustNew(t, cfg, Deps{History: h, Bans: fb})
			at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
			var v Verdict
			for s := 0; s < 4; s++ {
				v = j.Observe(fail(ip, at(s)), at(s))
			}
			if v.Action != Banned || v.Ban.Offence != 1 || v.Ban.Duration != time.Hour {
				t.Fatalf("first ban: %v %+v", v.Action, v.Ban)
			}
			if tc.overflow {
				for i := range recentMax {
					for s := 0; s < 4; s++ {
						j.Observe(filter.Failure{Addr: nthAddr(i), Time: at(4)}, at(4))
					}
				}
			}
			if tc.manager > 0 {
				fb.bans[key] = fakeActive{start: at(3), offence: tc.manager}
			}
			h.n[key] = tc.history
			// A known offender's failures weigh more: two are enough.
			for s := 10; s < 12; s++ {
				v = j.Observe(fail(ip, at(s)), at(s))
			}
			if v.Action != Banned || v.Ban.Duration != tc.wantTime || v.Ban.Offence != tc.offence {
				t.Fatalf("second ban: %v %+v, want %v offence %d", v.Action, v.Ban, tc.wantTime, tc.offence)
			}
		})
	}
}

// TestBanStormLeavesNoEntries: a storm of distinct attackers banned at
// their first failure (maxretry 1) leaves the failure table empty, the
// jail's recent list at its bound and nothing evicted; the heap the jail
// keeps does not grow with the number of bans.
func TestBanStormLeavesNoEntries(t *testing.T) {
	cfg := Config{Name: "sshd", MaxRetry: 1, FindTime: time.Hour, BanTime: 24 * time.Hour, MaxEntries: 1000}
	heap := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	j := mustNew(t, cfg, Deps{Bans: &fakeBans{}})
	line := []string{"Failed password for root from 2001:db8::1 port 22 ssh2"}
	storm := func(from, to int) {
		for i := from; i < to; i++ {
			if v := j.Observe(filter.Failure{Addr: nthAddr(i), Time: t0, Matches: line}, t0); v.Action != Banned {
				t.Fatalf("attacker %d: %v", i, v.Action)
			}
		}
	}
	storm(0, 2*recentMax)
	base := heap()
	storm(2*recentMax, 30*recentMax)
	grown := int64(heap()) - int64(base)
	st := j.Stats()
	if st.Tracked != 0 || st.Evicted != 0 || st.Bans != 30*recentMax {
		t.Fatalf("after the storm: %+v", st)
	}
	if n := len(j.recent.idx); n != recentMax {
		t.Fatalf("recent list holds %d, want %d", n, recentMax)
	}
	// 229,376 more bans; an entry kept per ban would be tens of MB.
	if grown > 1<<20 {
		t.Fatalf("the jail's heap grew by %d bytes over %d bans", grown, 28*recentMax)
	}
	runtime.KeepAlive(j)
}
