package daemon

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"sync"
	"testing"
	"time"

	defaults "github.com/palisade-project/palisade/config"
	"github.com/palisade-project/palisade/filters"
	"github.com/palisade-project/palisade/internal/failjournal"
	"github.com/palisade-project/palisade/internal/firewall"
	"github.com/palisade-project/palisade/internal/firewall/nft"
	"github.com/palisade-project/palisade/internal/firewall/nstest"
	"github.com/palisade-project/palisade/internal/store"
)

func benchOptions(b *testing.B, jailLocal string) (Options, string) {
	dir := b.TempDir()
	etc := filepath.Join(dir, "etc")
	if err := os.MkdirAll(etc, 0o755); err != nil {
		b.Fatal(err)
	}
	logf := filepath.Join(dir, "auth.log")
	if err := os.WriteFile(logf, nil, 0o644); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(etc, "jail.local"), []byte(fmt.Sprintf(jailLocal, logf)), 0o644); err != nil {
		b.Fatal(err)
	}
	devnull, _ := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	b.Cleanup(func() { devnull.Close() })
	return Options{
		ConfigDir: etc, Socket: filepath.Join(dir, "run", "p.sock"), DB: filepath.Join(dir, "p.db"),
		Builtin: defaults.FS(), Filters: filters.FS(),
		Backend: firewall.NewFake(), Stderr: devnull, Notify: func(string) {}, AllowUID: testerUID(),
	}, logf
}

// BenchmarkBanLatency measures the time from a failure line appended to
// the watched file to the ban decision (maxretry = 1: every line bans a
// new address). Reports median and p99 over the bans made.
func BenchmarkBanLatency(b *testing.B) { benchBanLatency(b, nil, nil) }

// benchBanLatency runs the ban-latency measurement; setup may change the
// options (configuration) first, after looks at the daemon at the end.
func benchBanLatency(b *testing.B, setup func(*Options), after func(*Daemon)) {
	opts, logf := benchOptions(b, "[sshd]\nenabled = true\nfilter = sshd\nlogpath = %s\nmaxretry = 1\nbantime = 1h\n")
	if setup != nil {
		setup(&opts)
	}
	banned := make(chan time.Time, 16)
	opts.OnBan = func(string, netip.Prefix) { banned <- time.Now() }
	ctx, cancel := context.WithCancel(context.Background())
	d, err := New(ctx, opts)
	if err != nil {
		b.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = d.Serve(ctx) }()
	defer func() { cancel(); wg.Wait() }()
	f, err := os.OpenFile(logf, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	n := b.N
	if n < 1000 {
		n = 1000
	}
	lat := make([]time.Duration, 0, n)
	b.ResetTimer()
	for i := 0; i < n; i++ {
		ip := netip.AddrFrom4([4]byte{198, 18, byte(i >> 8), byte(i)})
		if i >= 65000 {
			break
		}
		line := fmt.Sprintf("%s host sshd[%d]: Failed password for root from %s port %d ssh2\n",
			time.Now().Format("Jan _2 15:04:05"), 100+i%900, ip, 1024+i)
		t0 := time.Now()
		if _, err := f.WriteString(line); err != nil {
			b.Fatal(err)
		}
		select {
		case t1 := <-banned:
			lat = append(lat, t1.Sub(t0))
		case <-time.After(10 * time.Second):
			b.Fatalf("no ban for line %d", i)
		}
	}
	b.StopTimer()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "median-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(len(lat)), "bans")
	if after != nil {
		after(d)
	}
}

// BenchmarkStartup100kBans measures New (configuration, store, bulk
// restore of 100,000 stored bans into the firewall, sources, socket): the
// time until the daemon can say READY.
func BenchmarkStartup100kBans(b *testing.B) {
	opts, _ := benchOptions(b, "[sshd]\nenabled = true\nfilter = sshd\nlogpath = %s\n")
	storeBans(b, opts.DB, 100000)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		opts.Backend = firewall.NewFake()
		ctx := context.Background()
		d, err := New(ctx, opts)
		if err != nil {
			b.Fatal(err)
		}
		if n := len(d.bans.List("")); n != 100000 {
			b.Fatalf("restored %d bans", n)
		}
		b.StopTimer()
		d.close(ctx)
		b.StartTimer()
	}
}

// BenchmarkFailureThroughput measures end-to-end processing of failure
// lines from distinct addresses (each fails once; maxretry 5).
func BenchmarkFailureThroughput(b *testing.B) {
	opts, logf := benchOptions(b, "[sshd]\nenabled = true\nfilter = sshd\nlogpath = %s\nmaxretry = 5\n")
	ctx, cancel := context.WithCancel(context.Background())
	d, err := New(ctx, opts)
	if err != nil {
		b.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = d.Serve(ctx) }()
	defer func() { cancel(); wg.Wait() }()
	const lines = 100000
	var buf []byte
	ts := time.Now().Format("Jan _2 15:04:05")
	for i := 0; i < lines; i++ {
		buf = fmt.Appendf(buf, "%s host sshd[%d]: Failed password for root from 10.%d.%d.%d port %d ssh2\n",
			ts, 100+i%900, byte(i>>16), byte(i>>8), byte(i), 1024+i%60000)
	}
	b.ResetTimer()
	start := time.Now()
	var want uint64
	for i := 0; i < b.N; i++ {
		f, err := os.OpenFile(logf, os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			b.Fatal(err)
		}
		f.Write(buf)
		f.Close()
		want += lines
		deadline := time.Now().Add(5 * time.Minute)
		for d.jails["sshd"].Counters().Failures < want {
			if time.Now().After(deadline) {
				b.Fatal("lines not processed")
			}
			time.Sleep(time.Millisecond)
		}
	}
	b.ReportMetric(float64(want)/time.Since(start).Seconds(), "lines/s")
}

// BenchmarkStartup100kBansNftables is BenchmarkStartup100kBans with the
// real nftables backend in a fresh network namespace: the 100,000 bans go
// into the kernel in one batch before READY.
func BenchmarkStartup100kBansNftables(b *testing.B) {
	nstest.RequireRoot(b)
	ns := nstest.New(b)
	opts, _ := benchOptions(b, "[sshd]\nenabled = true\nfilter = sshd\nlogpath = %s\n")
	storeBans(b, opts.DB, 100000)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		be, err := nft.New(nft.Options{NetNSFd: ns.Fd()})
		if err != nil {
			b.Fatal(err)
		}
		opts.Backend = be
		ctx := context.Background()
		d, err := New(ctx, opts)
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		got, err := be.List(ctx)
		if err != nil || len(got) != 100000 {
			b.Fatalf("kernel holds %d bans, %v", len(got), err)
		}
		d.close(ctx)
		be.Teardown(ctx)
		be.Close()
		b.StartTimer()
	}
}

// storeBans writes n day-long sshd bans of distinct addresses into the
// database at path (set elements only: no traffic is ever sent to them).
func storeBans(b *testing.B, path string, n int) {
	b.Helper()
	st, err := store.Open(path, store.Options{NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	now := time.Now()
	bans := make([]store.Ban, n)
	for i := range bans {
		a := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		bans[i] = store.Ban{Jail: "sshd", Prefix: netip.PrefixFrom(a, 32), Start: now, Expires: now.Add(24 * time.Hour)}
	}
	if err := st.AddBans(bans); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkRestartAfterFlood measures New with the failure journal a flood
// of distinct attackers leaves at its size bound (failjournal's
// DefaultMaxBytes; every record inside findtime): the time until READY
// and the heap it needs. The file is written again before each start (a
// start rewrites it).
func BenchmarkRestartAfterFlood(b *testing.B) {
	opts, _ := benchOptions(b, "[sshd]\nenabled = true\nfilter = sshd\nlogpath = %s\nmaxretry = 5\nfindtime = 1h\n")
	journal := opts.DB + ".failures"
	now := time.Now()
	var recs []byte
	n := 0
	for ; len(recs) < failjournal.DefaultMaxBytes; n++ {
		t := now.Add(-30*time.Minute + time.Duration(n)*time.Microsecond).UnixNano()
		recs = fmt.Appendf(recs, "sshd\t%x\t%d.%d.%d.%d\t%d\t%d\n", uint64(n)*0x9e3779b97f4a7c15,
			11+(n>>24), byte(n>>16), byte(n>>8), byte(n), t, t)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		if err := os.WriteFile(journal, recs, 0o600); err != nil {
			b.Fatal(err)
		}
		runtime.GC()
		b.StartTimer()
		ctx := context.Background()
		t0 := time.Now()
		d, err := New(ctx, opts)
		if err != nil {
			b.Fatal(err)
		}
		took := time.Since(t0)
		b.StopTimer()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		c := d.jails["sshd"].Counters()
		b.ReportMetric(float64(took.Milliseconds()), "ms-to-ready")
		b.ReportMetric(float64(ms.HeapInuse)/(1<<20), "heap-MB")
		b.ReportMetric(float64(n), "records")
		b.ReportMetric(float64(c.Tracked), "tracked")
		d.close(ctx)
		b.StartTimer()
	}
}
