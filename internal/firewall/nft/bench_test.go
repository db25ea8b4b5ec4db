package nft

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/palisade-project/palisade/internal/firewall"
	"github.com/palisade-project/palisade/internal/firewall/nstest"
)

// genBans returns n distinct IPv4 address bans. The documentation ranges
// are too small for 100k addresses; these only ever exist in a set inside a
// namespace the benchmark creates, and no packet uses them.
func genBans(n int, jail string, expires time.Time) []firewall.Ban {
	out := make([]firewall.Ban, n)
	for i := range out {
		a := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		out[i] = firewall.Ban{Jail: jail, Prefix: netip.PrefixFrom(a, 32), Expires: expires}
	}
	return out
}

func benchAddRemove(b *testing.B, n int, verify bool) {
	ns := nstest.New(b)
	be, err := New(Options{NetNSFd: ns.Fd(), Verify: verify, VerifyLimit: n})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { be.Close() })
	ctx := context.Background()
	if err := be.Setup(ctx, []firewall.JailSpec{sshd}); err != nil {
		b.Fatal(err)
	}
	bans := genBans(n, "sshd", time.Now().Add(time.Hour))
	var addTime, rmTime time.Duration
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
		addTime += t1.Sub(t0)
		rmTime += time.Since(t1)
	}
	b.StopTimer()
	b.ReportMetric(float64(n*b.N)/addTime.Seconds(), "adds/s")
	b.ReportMetric(float64(n*b.N)/rmTime.Seconds(), "removes/s")
}

func BenchmarkNftAdd100k(b *testing.B)       { benchAddRemove(b, 100_000, false) }
func BenchmarkNftAdd100kVerify(b *testing.B) { benchAddRemove(b, 100_000, true) }
func BenchmarkNftAdd1(b *testing.B)          { benchAddRemove(b, 1, false) }

// BenchmarkNftRefresh100k re-adds 100k bans that are already present.
func BenchmarkNftRefresh100k(b *testing.B) {
	ns := nstest.New(b)
	be, err := New(Options{NetNSFd: ns.Fd()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { be.Close() })
	ctx := context.Background()
	if err := be.Setup(ctx, []firewall.JailSpec{sshd}); err != nil {
		b.Fatal(err)
	}
	bans := genBans(100_000, "sshd", time.Now().Add(time.Hour))
	if err := be.Add(ctx, bans); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := be.Add(ctx, bans); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(bans)*b.N)/b.Elapsed().Seconds(), "adds/s")
}

// BenchmarkNftList100k reads back 100k bans.
func BenchmarkNftList100k(b *testing.B) {
	ns := nstest.New(b)
	be, err := New(Options{NetNSFd: ns.Fd()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { be.Close() })
	ctx := context.Background()
	if err := be.Setup(ctx, []firewall.JailSpec{sshd}); err != nil {
		b.Fatal(err)
	}
	if err := be.Add(ctx, genBans(100_000, "sshd", time.Now().Add(time.Hour))); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		got, err := be.List(ctx)
		if err != nil || len(got) != 100_000 {
			b.Fatalf("List: %d, %v", len(got), err)
		}
	}
}
