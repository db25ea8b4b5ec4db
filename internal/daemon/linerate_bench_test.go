package daemon

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/palisade-project/palisade/bench/authlog"
	"github.com/palisade-project/palisade/internal/firewall/nft"
	"github.com/palisade-project/palisade/internal/firewall/nstest"
)

// The daemon's line-rate benchmarks (issue 11): log lines appended to
// watched files, through the running daemon (tailer, filter, failure
// journal, jail, ban manager, store) until every line is read. They report
// lines/s (or bans/s) of wall time; run them with -cpu 1,2 to see how the
// daemon spreads over cores:
//
//	go test -run '^$' -bench 'DaemonAttackLog|DaemonFiles' -benchtime 1x -cpu 1,2 ./internal/daemon
//	go test -run '^$' -bench DaemonBanStorm -benchtime 1x ./internal/daemon   # root: nftables in a namespace

// attackLines is n lines of bench/authlog's attack profile (over 90% sshd)
// written by host, ending about now so that their failures count.
func attackLines(b *testing.B, n int, seed uint64, host string) []byte {
	b.Helper()
	// The profile's lines are about 20 ms apart.
	g, err := authlog.NewProfile("attack", seed, time.Now().Add(-time.Duration(n)*20*time.Millisecond), host)
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 0, n*110)
	for i := 0; i < n; i++ {
		buf = append(buf, g.Line()...)
	}
	return buf
}

// lineRateJails is a jail.local with one sshd jail per log file (jail
// names sshd0, sshd1, ...), counting as a default Debian jail does but with
// a findtime that holds the whole generated log.
func lineRateJails(files []string, maxretry int) string {
	var sb strings.Builder
	for i, f := range files {
		fmt.Fprintf(&sb, "[sshd%d]\nenabled = true\nfilter = sshd\nlogpath = %s\nmaxretry = %d\nfindtime = 1d\nbantime = 1h\n\n", i, f, maxretry)
	}
	return sb.String()
}

// runLineRate starts a daemon with opts, appends logs[i] to files[i] in
// parallel, waits (bounded) until every jail has read its lines and, when
// wantBans > 0, until that many bans were made, and reports lines/s, bans/s
// and the bans made.
func runLineRate(b *testing.B, opts Options, files []string, logs [][]byte, wantBans uint64) {
	b.Helper()
	var want uint64
	lines := make([]uint64, len(logs))
	for i, l := range logs {
		lines[i] = uint64(strings.Count(string(l), "\n"))
		want += lines[i]
	}
	var total time.Duration
	var bans uint64
	for it := 0; it < b.N; it++ {
		b.StopTimer()
		dir := b.TempDir()
		o := opts
		o.DB = filepath.Join(dir, "p.db")
		o.Socket = filepath.Join(dir, "p.sock")
		for _, f := range files {
			if err := os.WriteFile(f, nil, 0o644); err != nil {
				b.Fatal(err)
			}
		}
		ctx, cancel := context.WithCancel(context.Background())
		d, err := New(ctx, o)
		if err != nil {
			b.Fatal(err)
		}
		var wg sync.WaitGroup
		wg.Add(1)
		go func() { defer wg.Done(); _ = d.Serve(ctx) }()
		before := d.bans.Stats().Bans
		b.StartTimer()
		t0 := time.Now()
		var wr sync.WaitGroup
		for i, f := range files {
			wr.Add(1)
			go func() {
				defer wr.Done()
				fh, err := os.OpenFile(f, os.O_APPEND|os.O_WRONLY, 0)
				if err != nil {
					b.Error(err)
					return
				}
				defer fh.Close()
				if _, err := fh.Write(logs[i]); err != nil {
					b.Error(err)
				}
			}()
		}
		wr.Wait()
		deadline := time.Now().Add(5 * time.Minute)
		for i := range files {
			j := d.jails[fmt.Sprintf("sshd%d", i)]
			for j.Counters().Lines < lines[i] {
				if time.Now().After(deadline) {
					b.Fatalf("sshd%d read %d of %d lines", i, j.Counters().Lines, lines[i])
				}
				time.Sleep(time.Millisecond)
			}
		}
		for d.bans.Stats().Bans-before < wantBans {
			if time.Now().After(deadline) {
				b.Fatalf("%d of %d bans made", d.bans.Stats().Bans-before, wantBans)
			}
			time.Sleep(time.Millisecond)
		}
		total += time.Since(t0)
		b.StopTimer()
		bans += d.bans.Stats().Bans - before
		cancel()
		wg.Wait()
		b.StartTimer()
	}
	b.ReportMetric(float64(want)*float64(b.N)/total.Seconds(), "lines/s")
	b.ReportMetric(float64(bans)/float64(b.N), "bans/op")
	b.ReportMetric(float64(bans)/total.Seconds(), "bans/s")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkDaemonAttackLog: 500,000 lines of an SSH attack log appended to
// one watched file, failure journal and store on (the daemon's defaults).
func BenchmarkDaemonAttackLog(b *testing.B) {
	opts, logf := benchOptions(b, "%s")
	if err := os.WriteFile(filepath.Join(opts.ConfigDir, "jail.local"), []byte(lineRateJails([]string{logf}, 5)), 0o644); err != nil {
		b.Fatal(err)
	}
	runLineRate(b, opts, []string{logf}, [][]byte{attackLines(b, 500000, 1, "web1")}, 0)
}

// BenchmarkDaemonFiles: two busy files (250,000 attack lines each), one
// jail on each; with -cpu 1,2 it shows whether the second core is used.
func BenchmarkDaemonFiles(b *testing.B) {
	opts, _ := benchOptions(b, "%s")
	dir := filepath.Dir(opts.ConfigDir)
	files := []string{filepath.Join(dir, "a.log"), filepath.Join(dir, "b.log")}
	if err := os.WriteFile(filepath.Join(opts.ConfigDir, "jail.local"), []byte(lineRateJails(files, 5)), 0o644); err != nil {
		b.Fatal(err)
	}
	runLineRate(b, opts, files, [][]byte{attackLines(b, 250000, 1, "web1"), attackLines(b, 250000, 2, "web2")}, 0)
}

// BenchmarkDaemonBanStorm: every line a failure of a new address with
// maxretry 1, so each line is a new ban, into real nftables in a fresh
// network namespace. bans/s counts the bans made per second of wall time
// until every line was read.
func BenchmarkDaemonBanStorm(b *testing.B) {
	nstest.RequireRoot(b)
	ns := nstest.New(b)
	opts, logf := benchOptions(b, "%s")
	if err := os.WriteFile(filepath.Join(opts.ConfigDir, "jail.local"), []byte(lineRateJails([]string{logf}, 1)), 0o644); err != nil {
		b.Fatal(err)
	}
	const n = 100000
	var buf []byte
	ts := time.Now().Format(time.Stamp)
	for i := 0; i < n; i++ {
		buf = fmt.Appendf(buf, "%s web1 sshd[%d]: Failed password for root from 10.%d.%d.%d port %d ssh2\n",
			ts, 100+i%900, byte(i>>16), byte(i>>8), byte(i), 1024+i%60000)
	}
	be, err := nft.New(nft.Options{NetNSFd: ns.Fd()})
	if err != nil {
		b.Fatal(err)
	}
	defer func() { be.Teardown(context.Background()); be.Close() }()
	opts.Backend = be
	runLineRate(b, opts, []string{logf}, [][]byte{buf}, n)
	// The daemon's stop lifts nothing (bans survive restarts): the kernel
	// still holds every ban.
	got, err := be.List(context.Background())
	if err != nil || len(got) != n {
		b.Fatalf("kernel holds %d bans, want %d (%v)", len(got), n, err)
	}
}
