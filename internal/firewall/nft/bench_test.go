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

// genBans6 returns n distinct IPv6 address bans, each in its own /64 (a
// storm of IPv6 attackers).
func genBans6(n int, jail string, expires time.Time) []firewall.Ban {
	out := make([]firewall.Ban, n)
	for i := range out {
		a := [16]byte{0x20, 0x01, 0x0d, 0xb8, 0, byte(i >> 16), byte(i >> 8), byte(i), 0x10, 1, byte(i * 7), byte(i * 13), 0, 0, byte(i >> 8), byte(i | 1)}
		out[i] = firewall.Ban{Jail: jail, Prefix: netip.PrefixFrom(netip.AddrFrom16(a), 128), Expires: expires}
	}
	return out
}

// benchBackend returns a backend with the sshd jail set up in a fresh
// network namespace.
func benchBackend(b *testing.B, opts Options) *Backend {
	ns := nstest.New(b)
	opts.NetNSFd = ns.Fd()
	be, err := New(opts)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { be.Close() })
	if err := be.Setup(context.Background(), []firewall.JailSpec{sshd}); err != nil {
		b.Fatal(err)
	}
	return be
}

func benchAddRemove(b *testing.B, n int, verify bool) {
	be := benchBackend(b, Options{Verify: verify, VerifyLimit: n})
	ctx := context.Background()
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

// BenchmarkNftRefresh100k re-adds 100k bans that are already present
// (a restart: the kernel kept them).
func BenchmarkNftRefresh100k(b *testing.B) {
	benchReadd(b, genBans(100_000, "sshd", time.Now().Add(time.Hour)), 0, (*Backend).Add)
}

// BenchmarkNftRefresh100kIPv6Storm is the restart after an IPv6 ban storm:
// the set was filled a hundred bans per batch, as the attackers came.
func BenchmarkNftRefresh100kIPv6Storm(b *testing.B) {
	benchReadd(b, genBans6(100_000, "sshd", time.Now().Add(time.Hour)), 100, (*Backend).Add)
}

// BenchmarkNftAddMissing100kIPv6Storm is the same restart with
// AddMissing, which the ban manager restores with.
func BenchmarkNftAddMissing100kIPv6Storm(b *testing.B) {
	benchReadd(b, genBans6(100_000, "sshd", time.Now().Add(time.Hour)), 100, (*Backend).AddMissing)
}

// benchReadd fills the set (in batches of fill bans; 0: one batch) and
// measures readd of the same bans.
func benchReadd(b *testing.B, bans []firewall.Ban, fill int, readd func(*Backend, context.Context, []firewall.Ban) error) {
	be := benchBackend(b, Options{})
	ctx := context.Background()
	if fill <= 0 {
		fill = len(bans)
	}
	for i := 0; i < len(bans); i += fill {
		if err := be.Add(ctx, bans[i:min(i+fill, len(bans))]); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := readd(be, ctx, bans); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(bans)*b.N)/b.Elapsed().Seconds(), "adds/s")
}

// BenchmarkNftList100k reads back 100k bans.
func BenchmarkNftList100k(b *testing.B) {
	be := benchBackend(b, Options{})
	ctx := context.Background()
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
