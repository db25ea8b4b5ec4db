package daemon

import (
	"bytes"
	"context"
	"crypto/sha256"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/palisade-project/palisade/bench/authlog"
	"github.com/palisade-project/palisade/internal/firewall"
	"github.com/palisade-project/palisade/internal/firewall/nft"
	"github.com/palisade-project/palisade/internal/firewall/nstest"
)

// The daemon's line-rate benchmarks (issue 11): log lines appended to
// watched files, through the running daemon (tailer, filter, failure
// journal, jail, ban manager, store) until every line is read. They report
// lines/s (or bans/s) of wall time, and the process's CPU time per line
// and the cores it kept busy (CPU time / wall time: other processes on a
// shared machine do not add to it, nor does the writing of the log, done
// by a child process), of which sys-cores in the kernel (file reads,
// fsync, futexes) and gc-cores in the garbage collector (the runtime's
// estimate); run them at -cpu 1 and at -cpu 2 to see how the daemon
// spreads over cores (-cpu bounds the goroutines running Go code at
// once, not the threads in system calls). One -cpu value per run: with
// -benchtime 1x and a list (-cpu 1,2) the testing package reports the
// first value's row from a run at the last value's GOMAXPROCS
// (checkProcs refuses it); the procs column says what a row ran at:
//
//	for c in 1 2; do go test -run '^$' -bench 'DaemonAttackLog|DaemonFiles' -benchtime 1x -cpu $c ./internal/daemon; done
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

// logSrc is a generated log kept in a file, so that the benchmark holds
// no log in its heap while the daemon runs (it would make the collector
// run less often than in the daemon alone).
type logSrc struct {
	path  string
	lines uint64
}

// logFile writes data to a new file under b's temporary directory.
func logFile(b *testing.B, data []byte) logSrc {
	b.Helper()
	f, err := os.CreateTemp(b.TempDir(), "log")
	if err != nil {
		b.Fatal(err)
	}
	if _, err := f.Write(data); err != nil {
		b.Fatal(err)
	}
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
	return logSrc{path: f.Name(), lines: uint64(bytes.Count(data, []byte("\n")))}
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

// cpuTime is the process's user and system CPU time so far.
func cpuTime(b *testing.B) time.Duration {
	ru := rusage(b)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// rusage is the process's resource usage so far.
func rusage(b *testing.B) syscall.Rusage {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return ru
}

// tailCounts are the tailer's reads and reader steps so far.
type tailCounts struct{ reads, steps uint64 }

func tailReads(d *Daemon) tailCounts {
	var c tailCounts
	for _, st := range d.tailer.Stats() {
		c.reads += st.Reads
		c.steps += st.Steps
	}
	return c
}

// gcStats are the Go runtime's counters of the collector and the heap.
type gcStats struct {
	cpu                 time.Duration // estimated CPU time in the collector
	cycles, objs, bytes uint64        // collections, heap allocations and their bytes
}

func readGC() gcStats {
	s := []metrics.Sample{{Name: "/cpu/classes/gc/total:cpu-seconds"}, {Name: "/gc/cycles/total:gc-cycles"},
		{Name: "/gc/heap/allocs:objects"}, {Name: "/gc/heap/allocs:bytes"}}
	metrics.Read(s)
	return gcStats{time.Duration(s[0].Value.Float64() * float64(time.Second)), s[1].Value.Uint64(), s[2].Value.Uint64(), s[3].Value.Uint64()}
}

// appendFile appends src's content to dst with cat(1) in a child process,
// as a program writing its log does: the copying is not the daemon's CPU
// time (RUSAGE_SELF does not count children).
func appendFile(dst, src string) error {
	fh, err := os.OpenFile(dst, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer fh.Close()
	cmd := exec.Command("cat", src)
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = fh, &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("cat %s >> %s: %w (%s)", src, dst, err, stderr.Bytes())
	}
	return nil
}

// lineRate is one line-rate run: logs[i] appended to files[i], read by
// the jails named in jails[i] (a jail may watch several of the files).
type lineRate struct {
	files []string
	logs  []logSrc
	jails []string
	// wantBans > 0: the run ends when that many bans were made too.
	wantBans uint64
	// backend makes each run's firewall backend (nil: a new Fake), so
	// that no run finds the bans of the one before in its "kernel" (they
	// would be adopted at start-up, and the lines would ban nothing).
	backend func() firewall.Backend
}

// runLineRate starts a daemon with opts, appends the logs to their files
// in parallel, waits (bounded) until every jail has read its lines and,
// when wantBans > 0, until that many bans were made, and reports lines/s,
// bans/s and the bans made, the CPU time per line and the cores used.
func runLineRate(b *testing.B, opts Options, lr lineRate) {
	b.Helper()
	var want uint64
	perJail := map[string]uint64{}
	for i, l := range lr.logs {
		perJail[lr.jails[i]] += l.lines
		want += l.lines
	}
	var total, cpu, sysCPU, gcTime, idleCPU time.Duration
	var bans, gcs, objs, allocBytes, reads, wakes uint64
	var faults, vcsw, ivcsw int64
	runtime.GC() // the generated logs' garbage is not the daemon's
	for it := 0; it < b.N; it++ {
		b.StopTimer()
		dir := b.TempDir()
		o := opts
		o.DB = filepath.Join(dir, "p.db")
		o.Socket = filepath.Join(dir, "p.sock")
		if lr.backend != nil {
			o.Backend = lr.backend()
		} else {
			o.Backend = firewall.NewFake()
		}
		files := lr.files
		for _, f := range files {
			if err := os.WriteFile(f, nil, 0o644); err != nil {
				b.Fatal(err)
			}
		}
		ready := make(chan struct{})
		var readyOnce sync.Once
		o.Notify = func(s string) {
			if s == "READY=1" {
				readyOnce.Do(func() { close(ready) })
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
		select {
		case <-ready:
		case <-time.After(time.Minute):
			b.Fatal("daemon not ready after a minute")
		}
		idle := cpuTime(b)
		time.Sleep(100 * time.Millisecond) // the subsystems' start-up
		idleCPU += cpuTime(b) - idle
		before := d.bans.Stats().Bans
		b.StartTimer()
		t0 := time.Now()
		ru0 := rusage(b)
		g0 := readGC()
		r0 := tailReads(d)
		var wr sync.WaitGroup
		for i, f := range files {
			wr.Add(1)
			go func() {
				defer wr.Done()
				if err := appendFile(f, lr.logs[i].path); err != nil {
					b.Error(err)
				}
			}()
		}
		wr.Wait()
		if b.Failed() {
			b.FailNow()
		}
		// Polled every 2 ms, without the jail's lock (Counters takes the
		// lock the reader takes per failure): on two Ps a 1 ms poll was
		// a thread wake-up and a contended lock per millisecond, counted
		// as the daemon's.
		deadline := time.Now().Add(5 * time.Minute)
		for name, n := range perJail {
			j := d.jails[name]
			for j.LineCount() < n {
				if time.Now().After(deadline) {
					b.Fatalf("%s read %d of %d lines", name, j.LineCount(), n)
				}
				time.Sleep(2 * time.Millisecond)
			}
		}
		for d.bans.Stats().Bans-before < lr.wantBans {
			if time.Now().After(deadline) {
				b.Fatalf("%d of %d bans made", d.bans.Stats().Bans-before, lr.wantBans)
			}
			time.Sleep(time.Millisecond)
		}
		total += time.Since(t0)
		ru1 := rusage(b)
		g1 := readGC()
		r1 := tailReads(d)
		u := time.Duration(ru1.Utime.Nano() - ru0.Utime.Nano())
		s := time.Duration(ru1.Stime.Nano() - ru0.Stime.Nano())
		cpu += u + s
		sysCPU += s
		faults += ru1.Minflt - ru0.Minflt
		vcsw += ru1.Nvcsw - ru0.Nvcsw
		ivcsw += ru1.Nivcsw - ru0.Nivcsw
		reads += r1.reads - r0.reads
		wakes += r1.steps - r0.steps
		gcTime += g1.cpu - g0.cpu
		gcs += g1.cycles - g0.cycles
		objs += g1.objs - g0.objs
		allocBytes += g1.bytes - g0.bytes
		b.StopTimer()
		bans += d.bans.Stats().Bans - before
		cancel()
		wg.Wait()
		b.StartTimer()
	}
	b.ReportMetric(float64(want)*float64(b.N)/total.Seconds(), "lines/s")
	b.ReportMetric(float64(bans)/float64(b.N), "bans/op")
	b.ReportMetric(float64(bans)/total.Seconds(), "bans/s")
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(want)/float64(b.N), "cpu-ns/line")
	b.ReportMetric(cpu.Seconds()/total.Seconds(), "cores")
	b.ReportMetric(sysCPU.Seconds()/total.Seconds(), "sys-cores")
	b.ReportMetric(gcTime.Seconds()/total.Seconds(), "gc-cores")
	b.ReportMetric(float64(gcs)/float64(b.N), "gcs/op")
	// Allocations per line, the machine's load does not change them.
	b.ReportMetric(float64(objs)/float64(want)/float64(b.N), "allocs/line")
	b.ReportMetric(float64(allocBytes)/float64(want)/float64(b.N), "B/line")
	b.ReportMetric(idleCPU.Seconds()/float64(b.N)/0.1, "idle-cores")
	// What the kernel did for the run, which load moves little: page
	// faults (heap growth after the runtime returned memory), context
	// switches (threads parking and waking: voluntary ones), the
	// tailer's reads and its readers' wake-ups.
	b.ReportMetric(float64(faults)/float64(b.N), "faults/op")
	b.ReportMetric(float64(vcsw)/float64(b.N), "vcsw/op")
	b.ReportMetric(float64(ivcsw)/float64(b.N), "ivcsw/op")
	b.ReportMetric(float64(reads)/float64(b.N), "reads/op")
	b.ReportMetric(float64(wakes)/float64(b.N), "wakes/op")
	b.ReportMetric(float64(runtime.GOMAXPROCS(0)), "procs")
	b.ReportMetric(0, "ns/op")
}

// checkProcs refuses a run whose first -cpu row would be measured at
// another GOMAXPROCS: the testing package runs each benchmark once with
// b.N = 1 before it sets GOMAXPROCS for the -cpu list's first value, at
// whatever GOMAXPROCS is in effect (the list's last value), and with
// -benchtime 1x that run is the one reported under the first value's
// name (golang.org/issue/49980). With -cpu 1,2 every "-cpu 1" row was a
// run on two Ps.
func checkProcs(b *testing.B) {
	b.Helper()
	cpu, bt := flag.Lookup("test.cpu"), flag.Lookup("test.benchtime")
	if cpu == nil || bt == nil || bt.Value.String() != "1x" {
		return
	}
	seen := map[string]bool{}
	for _, c := range strings.Split(cpu.Value.String(), ",") {
		if c = strings.TrimSpace(c); c != "" {
			seen[c] = true
		}
	}
	if len(seen) > 1 {
		b.Fatalf("-test.cpu %s with -test.benchtime 1x reports the first value's row from a run at GOMAXPROCS %d "+
			"(golang.org/issue/49980): run one -cpu value per go test invocation (or -benchtime 2x)",
			cpu.Value.String(), runtime.GOMAXPROCS(0))
	}
}

// BenchmarkDaemonAttackLog: 500,000 lines of an SSH attack log appended to
// one watched file, failure journal and store on (the daemon's defaults).
func BenchmarkDaemonAttackLog(b *testing.B) {
	checkProcs(b)
	opts, logf := benchOptions(b, "%s")
	if err := os.WriteFile(filepath.Join(opts.ConfigDir, "jail.local"), []byte(lineRateJails([]string{logf}, 5)), 0o644); err != nil {
		b.Fatal(err)
	}
	runLineRate(b, opts, lineRate{files: []string{logf}, logs: []logSrc{logFile(b, attackLines(b, 500000, 1, "web1"))}, jails: []string{"sshd0"}})
}

// BenchmarkDaemonFiles: two busy files (500,000 attack lines each, from
// two hosts); with -cpu 1,2 it shows whether the second core is used.
// "jails": one jail on each file; "onejail": one jail watching both (a
// fail2ban logpath of two files).
func BenchmarkDaemonFiles(b *testing.B) {
	checkProcs(b)
	logs := []logSrc{logFile(b, attackLines(b, 500000, 1, "web1")), logFile(b, attackLines(b, 500000, 2, "web2"))}
	b.Run("jails", func(b *testing.B) {
		opts, _ := benchOptions(b, "%s")
		dir := filepath.Dir(opts.ConfigDir)
		files := []string{filepath.Join(dir, "a.log"), filepath.Join(dir, "b.log")}
		if err := os.WriteFile(filepath.Join(opts.ConfigDir, "jail.local"), []byte(lineRateJails(files, 5)), 0o644); err != nil {
			b.Fatal(err)
		}
		runLineRate(b, opts, lineRate{files: files, logs: logs, jails: []string{"sshd0", "sshd1"}})
	})
	b.Run("onejail", func(b *testing.B) {
		opts, _ := benchOptions(b, "%s")
		dir := filepath.Dir(opts.ConfigDir)
		files := []string{filepath.Join(dir, "a.log"), filepath.Join(dir, "b.log")}
		conf := fmt.Sprintf("[sshd0]\nenabled = true\nfilter = sshd\nlogpath = %s\n          %s\nmaxretry = 5\nfindtime = 1d\nbantime = 1h\n", files[0], files[1])
		if err := os.WriteFile(filepath.Join(opts.ConfigDir, "jail.local"), []byte(conf), 0o644); err != nil {
			b.Fatal(err)
		}
		runLineRate(b, opts, lineRate{files: files, logs: logs, jails: []string{"sshd0", "sshd0"}})
	})
}

// BenchmarkDaemonBanStorm: every line a failure of a new address with
// maxretry 1, so each line is a new ban, into real nftables in a fresh
// network namespace. bans/s counts the bans made per second of wall time
// until every line was read.
func BenchmarkDaemonBanStorm(b *testing.B) {
	checkProcs(b)
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
	runLineRate(b, opts, lineRate{files: []string{logf}, logs: []logSrc{logFile(b, buf)}, jails: []string{"sshd0"}, wantBans: n,
		backend: func() firewall.Backend {
			// Each run starts with an empty table, as the Fake does.
			be.Teardown(context.Background())
			return be
		}})
	// The daemon's stop lifts nothing (bans survive restarts): the kernel
	// still holds every ban.
	got, err := be.List(context.Background())
	if err != nil || len(got) != n {
		b.Fatalf("kernel holds %d bans, want %d (%v)", len(got), n, err)
	}
}

// BenchmarkMachineCores is the yardstick for the cores columns: the same
// CPU-bound work (SHA-256 of a 64 KiB buffer, 64 MiB per goroutine) on
// GOMAXPROCS goroutines. Its MB/s at -cpu 2 over its MB/s at -cpu 1 is
// what two Ps can give on this machine at this moment (2 on two idle
// cores; less when other processes, or a host's sibling threads, take
// their share), so a daemon benchmark's lines/s at -cpu 2 is read next
// to it:
//
//	for c in 1 2; do go test -run '^$' -bench MachineCores -benchtime 1x -cpu $c ./internal/daemon; done
func BenchmarkMachineCores(b *testing.B) {
	checkProcs(b)
	procs := runtime.GOMAXPROCS(0)
	const perG = 64 << 20
	buf := make([]byte, 64<<10)
	var wall time.Duration
	for range b.N {
		t0 := time.Now()
		var wg sync.WaitGroup
		for range procs {
			wg.Go(func() {
				for n := 0; n < perG; n += len(buf) {
					sha256.Sum256(buf)
				}
			})
		}
		wg.Wait()
		wall += time.Since(t0)
	}
	b.ReportMetric(float64(procs*perG*b.N)/1e6/wall.Seconds(), "MB/s")
	b.ReportMetric(float64(procs), "procs")
	b.ReportMetric(0, "ns/op")
}
