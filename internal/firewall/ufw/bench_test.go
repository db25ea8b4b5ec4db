package ufw

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/palisade-project/palisade/internal/firewall"
	"github.com/palisade-project/palisade/internal/firewall/nstest"
)

// BenchmarkUFWAdd20 adds and then removes 20 bans through ufw in a fresh
// namespace with a private /etc/ufw, and reports bans per second each way.
// ufw has no bulk path: every ban is one ufw run.
func BenchmarkUFWAdd20(b *testing.B) {
	nstest.RequireRoot(b)
	ns := nstest.New(b)
	be, err := New(Options{Runner: nstest.PrivateUFW(b, ns)})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	jail := firewall.JailSpec{Name: "bench", Scope: firewall.Scope{Ports: []firewall.PortRange{{From: 22, To: 22}}, Protocol: "tcp"}, Block: firewall.Reject}
	if err := be.Setup(ctx, []firewall.JailSpec{jail}); err != nil {
		b.Fatal(err)
	}
	bans := make([]firewall.Ban, 20)
	for i := range bans {
		bans[i] = firewall.Ban{Jail: "bench", Prefix: netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 51, 100, byte(i + 1)}), 32)}
	}
	var addT, delT time.Duration
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		if err := be.Add(ctx, bans); err != nil {
			b.Fatal(err)
		}
		addT += time.Since(start)
		start = time.Now()
		if err := be.Remove(ctx, bans); err != nil {
			b.Fatal(err)
		}
		delT += time.Since(start)
	}
	n := float64(len(bans) * b.N)
	b.ReportMetric(n/addT.Seconds(), "adds/s")
	b.ReportMetric(n/delT.Seconds(), "removes/s")
}
