package policynft

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/palisade-project/palisade/internal/firewall/nstest"
	"github.com/palisade-project/palisade/internal/firewall/policy"
)

// bigPolicy is a policy of n rules: allows and denies for many sources
// and ports, every 50th a limit rule; variant changes one rule.
func bigPolicy(b *testing.B, n, variant int) policy.Policy {
	var sb strings.Builder
	sb.WriteString("enable\ndefault deny incoming\n")
	for i := 0; i < n; i++ {
		src := fmt.Sprintf("198.18.%d.%d", i/250, i%250+1)
		port := 1000 + i
		switch {
		case i == 0:
			fmt.Fprintf(&sb, "allow %d/tcp\n", 20000+variant)
		case i%50 == 0:
			fmt.Fprintf(&sb, "limit %d/tcp --conn %d --rate 10/1s\n", port, 2+i%7)
		case i%5 == 0:
			fmt.Fprintf(&sb, "deny from %s/32 to any port %d\n", src, port)
		case i%7 == 0:
			fmt.Fprintf(&sb, "allow from 2001:db8:%x::/48 to any port %d proto tcp\n", i, port)
		default:
			fmt.Fprintf(&sb, "allow from %s to any port %d proto tcp\n", src, port)
		}
	}
	f, err := policy.Parse("bench", []byte(sb.String()), policy.Names{})
	if err != nil {
		b.Fatal(err)
	}
	return f.Policy()
}

// BenchmarkApply1000Rules measures installing a 1,000-rule policy over
// another one (one transaction: flush and refill the policy's chains,
// keep the unchanged limit sets).
func BenchmarkApply1000Rules(b *testing.B) {
	nstest.RequireRoot(b)
	ns := nstest.New(b)
	k := New(Options{NetNSFd: ns.Fd()})
	ps := []policy.Policy{bigPolicy(b, 1000, 0), bigPolicy(b, 1000, 1)}
	ctx := context.Background()
	if err := k.Apply(ctx, ps[0]); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := k.Apply(ctx, ps[(i+1)%2]); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	if err := k.Installed(ctx, ps[b.N%2]); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(1000, "rules")
}

// BenchmarkLimitedPortConnections measures the new connections per second
// a port sustains from 32 sources that stay under its limits: plainly
// allowed, with --conn and --rate, and with ufw's plain limit (the
// per-packet cost of the limit rules: set lookups and updates, connlimit).
// The three setups are measured interleaved, one connection each in turn,
// so that a busy machine slows them alike.
func BenchmarkLimitedPortConnections(b *testing.B) {
	nstest.RequireRoot(b)
	type setup struct {
		name  string
		cli   *nstest.NS
		srcs  []netip.Addr
		spent time.Duration
	}
	var setups []*setup
	for _, tc := range []struct{ name, policy string }{
		{"allow", "enable\nallow 9000/tcp\n"},
		{"conn+rate", "enable\nlimit 9000/tcp --conn 1000 --rate 1000000/1s\n"},
		{"ufw-limit", "enable\nlimit 9000/tcp --rate 1000000/30s\n"},
	} {
		srv, cli := nstest.New(b), nstest.New(b)
		var cliAddrs []netip.Prefix
		var srcs []netip.Addr
		for i := 0; i < 32; i++ {
			a := netip.AddrFrom4([4]byte{198, 51, 100, byte(10 + i)})
			cliAddrs = append(cliAddrs, netip.PrefixFrom(a, 24))
			srcs = append(srcs, a)
		}
		nstest.Link(b, srv, cli, []netip.Prefix{netip.MustParsePrefix("198.51.100.1/24")}, cliAddrs)
		nstest.Listen(b, srv, ":9000")
		f, err := policy.Parse("bench", []byte(tc.policy), policy.Names{})
		if err != nil {
			b.Fatal(err)
		}
		if err := New(Options{NetNSFd: srv.Fd()}).Apply(context.Background(), f.Policy()); err != nil {
			b.Fatal(err)
		}
		setups = append(setups, &setup{name: tc.name, cli: cli, srcs: srcs})
	}
	dial := func(s *setup, i int) {
		o, err := nstest.DialFrom(s.cli, s.srcs[i%len(s.srcs)], "198.51.100.1:9000", time.Second)
		if err != nil || o != nstest.Connected {
			b.Fatalf("%s: connection %d: %s %v", s.name, i, o, err)
		}
	}
	for i := 0; i < 300; i++ { // warm up: the first connections are slower
		for _, s := range setups {
			dial(s, i)
		}
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for _, s := range setups {
			t0 := time.Now()
			dial(s, i)
			s.spent += time.Since(t0)
		}
	}
	b.StopTimer()
	for _, s := range setups {
		b.ReportMetric(float64(b.N)/s.spent.Seconds(), s.name+"-conn/s")
	}
	b.ReportMetric(setups[1].spent.Seconds()/setups[0].spent.Seconds(), "conn+rate/allow")
}
