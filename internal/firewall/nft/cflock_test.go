package nft

import (
	"context"
	"net/netip"
	"strings"
	"testing"

	"github.com/palisade-project/palisade/internal/firewall"
	"github.com/palisade-project/palisade/internal/firewall/nstest"
)

func newLock(t *testing.T, ns *nstest.NS) *CloudflareLock {
	t.Helper()
	l, err := NewCloudflareLock(Options{NetNSFd: ns.Fd()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func prefixes(ss ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParsePrefix(s)
	}
	return out
}

var web = []firewall.PortRange{{From: 80, To: 80}, {From: 443, To: 443}}

func TestLockLayoutAndReadBack(t *testing.T) {
	ns := nstest.New(t)
	l := newLock(t, ns)
	ctx := context.Background()
	if st, err := l.State(ctx); err != nil || st.Installed {
		t.Fatalf("State before Apply: %+v, %v", st, err)
	}
	spec := firewall.LockSpec{
		Ranges: prefixes("192.0.2.0/25", "198.51.100.0/24", "2001:db8:1::/48"),
		Allow:  prefixes("203.0.113.7/32", "2001:db8:f::/64"),
		Ports:  append([]firewall.PortRange{{From: 8000, To: 8100}, {From: 65000, To: 65535}}, web...),
		Block:  firewall.Drop,
	}
	if err := l.Apply(ctx, spec); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	st, err := l.State(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !st.Same(spec) {
		t.Fatalf("read back %+v, want %+v", st, spec)
	}
	out := nftCmd(t, ns, "list", "table", "inet", "palisade")
	for _, s := range []string{
		"chain cf_lock", "type filter hook prerouting priority raw; policy accept;",
		`iiftype loopback return`,
		"tcp dport @cf_ports ip saddr != @cf_v4 ip saddr != @cf_allow4 fib daddr type local counter packets 0 bytes 0 drop",
		"tcp dport @cf_ports ip6 saddr != @cf_v6 ip6 saddr != @cf_allow6 fib daddr type local counter packets 0 bytes 0 drop",
		"80, 443, 8000-8100, 65000-65535", "192.0.2.0/25", "2001:db8:1::/48", "203.0.113.7",
	} {
		if !strings.Contains(out, s) {
			t.Errorf("ruleset lacks %q:\n%s", s, out)
		}
	}
	// Reject replaces the rules; a second identical Apply changes nothing.
	spec.Block = firewall.Reject
	for i := 0; i < 2; i++ {
		if err := l.Apply(ctx, spec); err != nil {
			t.Fatalf("Apply reject #%d: %v", i, err)
		}
	}
	out = nftCmd(t, ns, "list", "chain", "inet", "palisade", LockChain)
	if n := strings.Count(out, "reject with tcp reset"); n != 2 {
		t.Errorf("chain has %d reject rules, want 2:\n%s", n, out)
	}
	if strings.Contains(out, " drop") {
		t.Errorf("drop rules left after switching to reject:\n%s", out)
	}
	// Refused: no ports, no ranges, unknown block type.
	for _, bad := range []firewall.LockSpec{
		{Ranges: spec.Ranges, Block: firewall.Drop},
		{Ports: web, Block: firewall.Drop},
		{Ranges: spec.Ranges, Ports: web, Block: "accept"},
	} {
		if err := l.Apply(ctx, bad); err == nil {
			t.Errorf("Apply(%+v) accepted", bad)
		}
	}
	if st, _ := l.State(ctx); !st.Same(spec) {
		t.Errorf("a refused Apply changed the lock: %+v", st)
	}
}

// The lock's updates touch its own objects only, and Remove takes away the
// lock and nothing else: the rest of the table lists the same before the
// lock is applied and after it is removed.
func TestLockRemoveTouchesNothingElse(t *testing.T) {
	ns := nstest.New(t)
	b := newBackend(t, ns)
	ctx := context.Background()
	web := firewall.JailSpec{Name: "nginx", Scope: firewall.Scope{Ports: web, Protocol: "tcp"}}
	if err := b.Setup(ctx, []firewall.JailSpec{sshd, web}); err != nil {
		t.Fatal(err)
	}
	if err := b.Add(ctx, []firewall.Ban{{Jail: "sshd", Prefix: pfx("203.0.113.9")}, {Jail: "nginx", Prefix: pfx("2001:db8:9::/48")}}); err != nil {
		t.Fatal(err)
	}
	// Someone else's chain in palisade's table (the hardening allow chain).
	nftCmd(t, ns, "add", "chain", "inet", "palisade", "allow")
	nftCmd(t, ns, "add", "rule", "inet", "palisade", "allow", "tcp", "dport", "2222", "accept")
	before := nftCmd(t, ns, "list", "ruleset")

	l := newLock(t, ns)
	spec := firewall.LockSpec{Ranges: prefixes("192.0.2.0/24", "2001:db8:1::/48"), Ports: firewall.MergePorts(web.Scope.Ports), Block: firewall.Drop}
	if err := l.Apply(ctx, spec); err != nil {
		t.Fatal(err)
	}
	spec.Ranges = prefixes("198.51.100.0/24", "2001:db8:2::/48")
	if err := l.Apply(ctx, spec); err != nil {
		t.Fatal(err)
	}
	if got := fwtestListed(t, b); len(got) != 2 {
		t.Errorf("bans after the lock: %v", got)
	}
	if err := l.Remove(ctx); err != nil {
		t.Fatal(err)
	}
	if after := nftCmd(t, ns, "list", "ruleset"); after != before {
		t.Errorf("Remove changed the rest of the ruleset:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	if err := l.Remove(ctx); err != nil {
		t.Errorf("second Remove: %v", err)
	}
	// Remove on a host without palisade's table is a no-op too.
	if err := b.Teardown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := l.Remove(ctx); err != nil {
		t.Errorf("Remove without the table: %v", err)
	}
}

// Apply re-creates what an external flush removed (table, rules or
// elements), and swaps overlapping ranges (the new list splits or joins
// old prefixes) in one batch.
func TestLockRepairsAndSwapsOverlapping(t *testing.T) {
	ns := nstest.New(t)
	l := newLock(t, ns)
	ctx := context.Background()
	spec := firewall.LockSpec{Ranges: prefixes("198.51.100.0/24", "2001:db8::/32"), Ports: web, Block: firewall.Reject}
	if err := l.Apply(ctx, spec); err != nil {
		t.Fatal(err)
	}
	for _, breakIt := range [][]string{
		{"flush", "set", "inet", "palisade", LockV4},
		{"flush", "chain", "inet", "palisade", LockChain},
		{"flush", "ruleset"},
	} {
		nftCmd(t, ns, breakIt...)
		st, err := l.State(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st.Same(spec) {
			t.Fatalf("after nft %v the lock still reads as intact: %+v", breakIt, st)
		}
		if err := l.Apply(ctx, spec); err != nil {
			t.Fatalf("Apply after nft %v: %v", breakIt, err)
		}
		if st, _ := l.State(ctx); !st.Same(spec) {
			t.Fatalf("not repaired after nft %v: %+v", breakIt, st)
		}
	}
	for _, next := range [][]netip.Prefix{
		prefixes("198.51.100.0/25", "198.51.100.128/26", "2001:db8::/33"), // split
		prefixes("198.51.100.0/24", "2001:db8::/31"),                      // join and widen
		prefixes("203.0.113.0/24", "2001:db8:8000::/33"),                  // move
	} {
		spec.Ranges = next
		if err := l.Apply(ctx, spec); err != nil {
			t.Fatalf("Apply %v: %v", next, err)
		}
		if st, _ := l.State(ctx); !st.Same(spec) {
			t.Fatalf("after Apply %v the kernel holds %v", next, st.Ranges)
		}
	}
}

func fwtestListed(t *testing.T, b *Backend) []firewall.Ban {
	t.Helper()
	got, err := b.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return got
}
