package fleet

import (
	"crypto/ed25519"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

func brec(origin, prefix string, seq uint64, issued time.Time, d time.Duration) Verified {
	r := Record{Origin: origin, Kind: KindBan, Prefix: netip.MustParsePrefix(prefix), Jail: "sshd", Issued: issued, Seq: seq}
	if d > 0 {
		r.Expires = issued.Add(d)
	}
	return Verified{Record: r}
}

func tomb(origin, prefix string, seq uint64, expires time.Time) Verified {
	return Verified{Record: Record{Origin: origin, Kind: KindUnban, Prefix: netip.MustParsePrefix(prefix), Jail: "sshd", Issued: t0, Expires: expires, Seq: seq}}
}

// applyAll feeds records and returns the changes as "+PREFIX DUR" / "-PREFIX".
func applyAll(b *book, now time.Time, vs ...Verified) []string {
	for _, v := range vs {
		b.receive(v, 1, now)
	}
	var out []string
	for _, c := range b.changes(now) {
		switch {
		case c.Ban && c.Shorten:
			out = append(out, "~"+c.Prefix.String()+" "+c.Duration.String())
		case c.Ban:
			out = append(out, "+"+c.Prefix.String()+" "+c.Duration.String())
		default:
			out = append(out, "-"+c.Prefix.String())
		}
	}
	return out
}

func TestBookPolicy(t *testing.T) {
	exempt := func(p netip.Prefix) (string, bool) {
		if netip.MustParsePrefix("192.0.2.0/28").Overlaps(p) {
			return "ignoreip 192.0.2.0/28 (jail sshd)", true
		}
		return "", false
	}
	base := Policy{Self: "me", Exempt: exempt, Caps: Caps{Rate: 3, Active: 4, TTL: 2 * time.Hour}}
	for _, c := range []struct {
		name    string
		pol     func(*Policy)
		records []Verified
		want    string // changes
		refused string // reason=count, sorted
	}{
		{name: "applied", records: []Verified{brec("web1", "198.51.100.7/32", 1, t0, time.Hour)},
			want: "+198.51.100.7/32 1h0m0s"},
		{name: "own records are not applied", records: []Verified{brec("me", "198.51.100.7/32", 1, t0, time.Hour)}},
		{name: "verification refusals are counted", records: []Verified{{Record: Record{Origin: "evil"}, Refused: RefuseUntrusted}, {Refused: RefuseMalformed}},
			refused: "malformed=1 untrusted=1"},
		{name: "ttl capped", records: []Verified{brec("web1", "198.51.100.7/32", 1, t0, 48*time.Hour)},
			want: "+198.51.100.7/32 2h0m0s"},
		{name: "permanent capped", records: []Verified{brec("web1", "198.51.100.7/32", 1, t0, 0)},
			want: "+198.51.100.7/32 2h0m0s"},
		{name: "permanent without ttl cap", pol: func(p *Policy) { p.Caps.TTL = 0 }, records: []Verified{brec("web1", "198.51.100.7/32", 1, t0, 0)},
			want: "+198.51.100.7/32 -1ns"},
		{name: "exempt", records: []Verified{brec("web1", "192.0.2.5/32", 1, t0, time.Hour)}, refused: "exempt=1"},
		{name: "exempt network overlap", records: []Verified{brec("web1", "192.0.2.0/24", 1, t0, time.Hour)}, refused: "exempt=1"},
		{name: "prefix too wide v4", records: []Verified{brec("web1", "198.51.0.0/16", 1, t0, time.Hour)}, refused: "prefix=1"},
		{name: "prefix /24 ok", records: []Verified{brec("web1", "198.51.100.0/24", 1, t0, time.Hour)}, want: "+198.51.100.0/24 1h0m0s"},
		{name: "prefix too wide v6", records: []Verified{brec("web1", "2001:db8::/32", 1, t0, time.Hour)}, refused: "prefix=1"},
		{name: "prefix /48 ok", records: []Verified{brec("web1", "2001:db8:1::/48", 1, t0, time.Hour)}, want: "+2001:db8:1::/48 1h0m0s"},
		{name: "custom prefix cap", pol: func(p *Policy) { p.Caps.Prefix4 = 32 }, records: []Verified{brec("web1", "198.51.100.0/24", 1, t0, time.Hour)}, refused: "prefix=1"},
		{name: "expired", records: []Verified{brec("web1", "198.51.100.7/32", 1, t0.Add(-2*time.Hour), time.Hour)}, refused: "expired=1"},
		{name: "future", records: []Verified{brec("web1", "198.51.100.7/32", 1, t0.Add(time.Hour), time.Hour)}, refused: "clock_skew=1"},
		{name: "jail not applied", pol: func(p *Policy) { p.Apply = func(j string) bool { return j == "nginx" } },
			records: []Verified{brec("web1", "198.51.100.7/32", 1, t0, time.Hour)}, refused: "jail=1"},
		{name: "rate cap by issue minute", records: []Verified{
			brec("web1", "198.51.100.1/32", 1, t0, time.Hour), brec("web1", "198.51.100.2/32", 2, t0, time.Hour),
			brec("web1", "198.51.100.3/32", 3, t0, time.Hour), brec("web1", "198.51.100.4/32", 4, t0, time.Hour),
			// Issued an hour earlier: another minute, not refused.
			brec("web1", "198.51.100.5/32", 5, t0.Add(-time.Hour), 2*time.Hour),
			// Another origin has its own cap.
			brec("web2", "198.51.100.4/32", 1, t0, time.Hour),
		}, want: "+198.51.100.1/32 1h0m0s +198.51.100.2/32 1h0m0s +198.51.100.3/32 1h0m0s +198.51.100.4/32 1h0m0s +198.51.100.5/32 1h0m0s",
			refused: "rate=1"},
		{name: "active cap", pol: func(p *Policy) { p.Caps.Rate = 0 }, records: []Verified{
			brec("web1", "198.51.100.1/32", 1, t0, time.Hour), brec("web1", "198.51.100.2/32", 2, t0, time.Hour),
			brec("web1", "198.51.100.3/32", 3, t0, time.Hour), brec("web1", "198.51.100.4/32", 4, t0, time.Hour),
			brec("web1", "198.51.100.5/32", 5, t0, time.Hour),
			// An update of a ban in force is not a new one.
			brec("web1", "198.51.100.1/32", 6, t0, 90*time.Minute),
		}, want: "+198.51.100.1/32 1h30m0s +198.51.100.2/32 1h0m0s +198.51.100.3/32 1h0m0s +198.51.100.4/32 1h0m0s",
			refused: "max_bans=1"},
		{name: "stale sequence", records: []Verified{brec("web1", "198.51.100.7/32", 5, t0, time.Hour), brec("web1", "198.51.100.7/32", 4, t0, 3*time.Hour)},
			want: "+198.51.100.7/32 1h0m0s", refused: "stale=1"},
		{name: "tombstone lifts", records: []Verified{brec("web1", "198.51.100.7/32", 1, t0, time.Hour), tomb("web1", "198.51.100.7/32", 2, t0.Add(time.Hour))}},
		{name: "tombstone of another origin does not lift", records: []Verified{brec("web1", "198.51.100.7/32", 1, t0, time.Hour), tomb("web2", "198.51.100.7/32", 2, t0.Add(time.Hour))},
			want: "+198.51.100.7/32 1h0m0s"},
		{name: "two origins: longest wins", records: []Verified{brec("web1", "198.51.100.7/32", 1, t0, time.Hour), brec("web2", "198.51.100.7/32", 1, t0, 90*time.Minute)},
			want: "+198.51.100.7/32 1h30m0s"},
		{name: "quorum not reached", pol: func(p *Policy) { p.Quorum = 2 }, records: []Verified{brec("web1", "198.51.100.7/32", 1, t0, time.Hour), brec("web1", "198.51.100.7/32", 2, t0, time.Hour)}},
		{name: "quorum reached: the second longest", pol: func(p *Policy) { p.Quorum = 2 }, records: []Verified{
			brec("web1", "198.51.100.7/32", 1, t0, time.Hour), brec("web2", "198.51.100.7/32", 1, t0, 90*time.Minute),
			brec("web3", "198.51.100.8/32", 1, t0, 90*time.Minute)},
			want: "+198.51.100.7/32 1h0m0s"},
		{name: "quorum: permanent is the longest", pol: func(p *Policy) { p.Quorum, p.Caps.TTL = 2, 0 }, records: []Verified{
			brec("web1", "198.51.100.7/32", 1, t0, time.Hour), brec("web2", "198.51.100.7/32", 1, t0, 0), brec("web3", "198.51.100.7/32", 1, t0, 90*time.Minute)},
			want: "+198.51.100.7/32 1h30m0s"},
		{name: "quorum of permanent bans: permanent", pol: func(p *Policy) { p.Quorum, p.Caps.TTL = 2, 0 }, records: []Verified{
			brec("web1", "198.51.100.7/32", 1, t0, 0), brec("web2", "198.51.100.7/32", 1, t0, 0)},
			want: "+198.51.100.7/32 -1ns"},
		{name: "quorum ignores refused origins", pol: func(p *Policy) { p.Quorum = 2 }, records: []Verified{
			brec("web1", "192.0.2.1/32", 1, t0, time.Hour), brec("web2", "192.0.2.1/32", 1, t0, time.Hour)},
			refused: "exempt=2"},
	} {
		t.Run(c.name, func(t *testing.T) {
			pol := base
			if c.pol != nil {
				c.pol(&pol)
			}
			b := newBook(pol)
			got := strings.Join(applyAll(b, t0, c.records...), " ")
			if got != c.want {
				t.Errorf("changes %q, want %q", got, c.want)
			}
			var ref []string
			for _, r := range []string{RefuseActive, RefuseFuture, RefuseExempt, RefuseExpired, RefuseJail, RefuseMalformed, RefusePrefix, RefuseRate, RefuseSignature, RefuseStale, RefuseSubject, RefuseUntrusted} {
				if n := b.refused[r]; n > 0 {
					ref = append(ref, r+"="+itoa(n))
				}
			}
			if g := strings.Join(ref, " "); g != c.refused {
				t.Errorf("refused %q, want %q", g, c.refused)
			}
		})
	}
}

func itoa(n uint64) string {
	return strings.TrimSpace(strings.Replace(time.Duration(n).String(), "ns", "", 1))
}

func TestBookLifecycle(t *testing.T) {
	b := newBook(Policy{Self: "me", Quorum: 1})
	p := "198.51.100.7/32"
	steps := []struct {
		name string
		do   func() []string
		want string
	}{
		{"ban", func() []string { return applyAll(b, t0, brec("web1", p, 1, t0, time.Hour)) }, "+" + p + " 1h0m0s"},
		{"replayed again: nothing", func() []string { return applyAll(b, t0.Add(time.Minute), brec("web1", p, 1, t0, time.Hour)) }, ""},
		{"second origin, shorter: nothing", func() []string { return applyAll(b, t0, brec("web2", p, 1, t0, 30*time.Minute)) }, ""},
		{"first origin lifts: shortened to the second's", func() []string { return applyAll(b, t0, tomb("web1", p, 2, t0.Add(time.Hour))) }, "~" + p + " 30m0s"},
		{"second origin forgotten (trust): lifted", func() []string {
			b.forgetUntrusted(NewTrust(nil))
			return applyAll(b, t0)
		}, "-" + p},
		{"new ban, lifted by hand, replayed: not again", func() []string {
			applyAll(b, t0, brec("web3", p, 1, t0, time.Hour))
			b.liftedLocally(netip.MustParsePrefix(p))
			return applyAll(b, t0.Add(time.Second), brec("web3", p, 1, t0, time.Hour))
		}, ""},
		{"a newer record of it applies", func() []string { return applyAll(b, t0, brec("web3", p, 2, t0, 2*time.Hour)) }, "+" + p + " 2h0m0s"},
	}
	for _, s := range steps {
		if got := strings.Join(s.do(), " "); got != s.want {
			t.Fatalf("%s: changes %q, want %q", s.name, got, s.want)
		}
	}
	// Persisted and loaded into a new book: the same ban is wanted; the
	// records of an untrusted origin are not loaded.
	put, _, _ := b.save()
	if len(put) == 0 {
		t.Fatal("nothing to save")
	}
	pub, _ := testKey(t)
	nb := newBook(Policy{Self: "me"})
	stored := map[okey]entry{}
	for _, s := range put {
		stored[s.k] = s.e
	}
	recs := encodeEntries(stored)
	recs["web9 not-a-prefix"] = []byte("{}")
	if bad := nb.load(recs, NewTrust(map[string]ed25519.PublicKey{"web3": pub}), t0); bad != 1 {
		t.Fatalf("bad records %d, want 1", bad)
	}
	if until, ok, _ := nb.want(nb.slots[netip.MustParsePrefix(p)], t0); !ok || !until.Equal(t0.Add(2*time.Hour)) {
		t.Fatalf("loaded book wants %v %v", until, ok)
	}
	if nb.entries != 1 {
		t.Fatalf("loaded %d entries, want web3's only", nb.entries)
	}
	// The untrusted origins' records and the unreadable one are deleted
	// from the store by the next save; the loaded one is not written back.
	var want []string
	for k := range recs {
		if !strings.HasPrefix(k, "web3 ") {
			want = append(want, k)
		}
	}
	lput, ldel, junk := nb.save()
	slices.Sort(want)
	slices.Sort(junk)
	if len(lput) != 0 || len(ldel) != 0 || !slices.Equal(junk, want) {
		t.Fatalf("after load, save puts %d, deletes %v and %q; want only %q deleted", len(lput), ldel, junk, want)
	}
	// A full replay that no longer holds the record drops it.
	if _, unseen := nb.sweep(t0, 7); unseen != 1 {
		t.Fatalf("unseen %d", unseen)
	}
	if got := strings.Join(applyAll(nb, t0), " "); got != "" {
		t.Fatalf("after the sweep: %q (nothing was applied in the new book)", got)
	}
}

// TestBookReserveKeepsEntries: room made for a replay keeps what the
// book holds, and a replay smaller than the book changes nothing.
func TestBookReserveKeepsEntries(t *testing.T) {
	b := newBook(Policy{Self: "me"})
	applyAll(b, t0, brec("web1", "198.51.100.1/32", 1, t0, time.Hour), brec("web2", "198.51.100.1/32", 1, t0, 2*time.Hour))
	before := b.slots
	b.reserve(1)
	if fmt.Sprintf("%p", b.slots) != fmt.Sprintf("%p", before) {
		t.Fatal("a small replay replaced the index")
	}
	b.reserve(1000)
	if s := b.slots[netip.MustParsePrefix("198.51.100.1/32")]; b.entries != 2 || s == nil || len(s.entries) != 2 || !s.have {
		t.Fatalf("after reserve: %d entries, %+v", b.entries, s)
	}
	if got := strings.Join(applyAll(b, t0, brec("web3", "198.51.100.2/32", 1, t0, time.Hour)), " "); got != "+198.51.100.2/32 1h0m0s" {
		t.Fatalf("changes after reserve %q", got)
	}
}

// BenchmarkBookReplay: the book's share of a catch-up, on one core: a
// replay of 100,000 records of 100 origins, judged and committed (saved
// and turned into ban manager changes) in batches as the applier does.
func BenchmarkBookReplay(b *testing.B) {
	const total, origins, batch = 100_000, 100, maxBatch
	now := time.Now()
	vs := make([]Verified, total)
	for i := range vs {
		a := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		vs[i] = Verified{Record: Record{Origin: fmt.Sprintf("m%04d", i%origins), Kind: KindBan, Prefix: netip.PrefixFrom(a, 32),
			Jail: "sshd", Reason: "5 failures within 10m", Issued: now.Add(-time.Duration(i%3600) * time.Second),
			Expires: now.Add(6 * time.Hour), Seq: uint64(i + 1)}}
	}
	for b.Loop() {
		bk := newBook(Policy{Self: "me", Caps: Caps{Rate: DefaultRate, Active: DefaultActive, TTL: DefaultTTL}})
		bk.reserve(total)
		bans := 0
		for s := 0; s < total; s += batch {
			for _, v := range vs[s:min(s+batch, total)] {
				bk.receive(v, 1, now)
			}
			bk.save()
			bans += len(bk.changes(now))
		}
		if bans != total {
			b.Fatalf("%d bans, want %d", bans, total)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*total), "ns/record")
}

// TestBookEachDeletes: every entry is visited once even when the visit
// deletes it, and what is not deleted stays.
func TestBookEachDeletes(t *testing.T) {
	b := newBook(Policy{Self: "me"})
	applyAll(b, t0, brec("web1", "198.51.100.1/32", 1, t0, time.Hour), brec("web2", "198.51.100.1/32", 1, t0, time.Hour),
		brec("web3", "198.51.100.1/32", 1, t0, time.Hour), brec("web2", "198.51.100.2/32", 1, t0, time.Hour))
	seen := map[string]int{}
	b.each(func(k okey, _ *entry) {
		seen[k.String()]++
		if k.origin == "web2" || k.origin == "web3" {
			b.del(k)
		}
	})
	if len(seen) != 4 {
		t.Fatalf("visited %v", seen)
	}
	for k, n := range seen {
		if n != 1 {
			t.Fatalf("%s visited %d times", k, n)
		}
	}
	var left []string
	b.each(func(k okey, _ *entry) { left = append(left, k.String()) })
	if b.entries != 1 || len(left) != 1 || left[0] != "web1 198.51.100.1/32" {
		t.Fatalf("left %v (%d entries)", left, b.entries)
	}
	if b.slots[netip.MustParsePrefix("198.51.100.2/32")].get("web2") != nil {
		t.Fatal("web2's entry is still there")
	}
}
