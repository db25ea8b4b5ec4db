package ipset

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/palisade-project/palisade/internal/firewall"
	"github.com/palisade-project/palisade/internal/firewall/fwtest"
	"github.com/palisade-project/palisade/internal/firewall/nstest"
	"github.com/palisade-project/palisade/internal/sysexec"
)

// BenchmarkIpsetAdd100k adds then removes 100k address bans through one
// "ipset restore" each, in a fresh namespace. The addresses only ever sit
// in a set there; no packet uses them.
func BenchmarkIpsetAdd100k(b *testing.B) {
	nstest.RequireProgram(b, "ip", "ipset", "iptables", "ip6tables")
	ns := nstest.New(b)
	be, err := New(Options{Runner: nstest.Runner{NS: ns, Inner: sysexec.NewExec(time.Minute)}})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	if err := be.Setup(ctx, []firewall.JailSpec{fwtest.Jail("sshd", firewall.Reject, 22)}); err != nil {
		b.Fatal(err)
	}
	const n = 100_000
	exp := time.Now().Add(time.Hour)
	bans := make([]firewall.Ban, n)
	for i := range bans {
		bans[i] = firewall.Ban{Jail: "sshd", Prefix: netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), 32), Expires: exp}
	}
	var addT, rmT time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		if err := be.Add(ctx, bans); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if err := be.Remove(ctx, bans); err != nil {
			b.Fatal(err)
		}
		addT += t1.Sub(t0)
		rmT += time.Since(t1)
	}
	b.ReportMetric(float64(n*b.N)/addT.Seconds(), "adds/s")
	b.ReportMetric(float64(n*b.N)/rmT.Seconds(), "removes/s")
}
