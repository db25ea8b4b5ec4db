package ban

import (
	"context"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/palisade-project/palisade/internal/store"
)

// nullStore accepts every write and holds nothing, so that a benchmark
// measures the manager's own memory.
type nullStore struct{}

func (nullStore) AddBans(b []store.Ban) error {
	for i := range b {
		b[i].Offence = 1
	}
	return nil
}
func (nullStore) UpdateBans([]store.Ban) error                       { return nil }
func (nullStore) DeleteBans([]store.BanKey) error                    { return nil }
func (nullStore) EachBan(func(store.Ban) error) (int, error)         { return 0, nil }
func (nullStore) PruneHistory(time.Time, time.Duration) (int, error) { return 0, nil }
func (nullStore) Offences(string, netip.Prefix, bool) (store.Offences, error) {
	return store.Offences{}, nil
}

func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

// stormAddr is the i-th attacker of a storm: distinct IPv6 addresses,
// each in its own /64 (as bench/daemon -storm generates them).
func stormAddr(i int) netip.Prefix {
	var a [16]byte
	copy(a[:], []byte{0x20, 0x01, 0x0d, 0xb8, 0, byte(i >> 16), byte(i >> 8), byte(i), 0x10, 0x01, byte(i * 7), byte(i * 13), 0, 0, byte(i >> 8), byte(i | 1)})
	return netip.PrefixFrom(netip.AddrFrom16(a), 128)
}

// BenchmarkMemory300kIPv6 reports the heap the manager holds for 300,000
// active IPv6 bans (one jail, one reason text), and what All and List
// add while they run.
func BenchmarkMemory300kIPv6(b *testing.B) {
	const n = 300_000
	for range b.N {
		base := heapInUse()
		m, err := New(Config{MaxBans: -1}, Deps{Store: nullStore{}, Backend: noopBackend{}})
		if err != nil {
			b.Fatal(err)
		}
		reqs := make([]Request, 1000)
		for i := 0; i < n; i += len(reqs) {
			for k := range reqs {
				reqs[k] = Request{Jail: "sshd", Prefix: stormAddr(i + k), Duration: 24 * time.Hour,
					Reason: "1 failures within 1h0m0s (maxretry 1); offence 1, banned for 24h0m0s"}
			}
			for _, r := range m.BanMany(context.Background(), reqs) {
				if r.Err != nil {
					b.Fatal(r.Err)
				}
			}
		}
		reqs = nil
		held := heapInUse() - base
		if got := m.Stats().Active; got != n {
			b.Fatalf("%d active", got)
		}
		b.ReportMetric(float64(held)/(1<<20), "heap-MB")
		b.ReportMetric(float64(held)/n, "B/ban")
		runtime.KeepAlive(m)
	}
}
