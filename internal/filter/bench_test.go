package filter_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/palisade-project/palisade/bench/authlog"

	"github.com/palisade-project/palisade/internal/config"
	"github.com/palisade-project/palisade/internal/datetime"
	"github.com/palisade-project/palisade/internal/filter"
)

// authLog returns n lines of the project's benchmark auth.log (bench/authlog:
// ~11% sshd failures among CRON, systemd, sudo, kernel, postfix and sshd
// non-failures), without their newlines.
func authLog(n int, seed uint64) []string {
	g := authlog.New(seed, time.Date(2026, 11, 24, 0, 0, 0, 0, time.UTC), "web1")
	lines := make([]string, n)
	for i := range lines {
		l := g.Line()
		lines[i] = string(l[:len(l)-1])
	}
	return lines
}

// syslogDetector is a minimal date detector for benchmarks of the engine
// alone (internal/datetime has its own benchmarks).
type syslogDetector struct{}

func (syslogDetector) Detect(line string, now time.Time) (filter.DateMatch, bool) {
	if len(line) < 15 || line[3] != ' ' || line[9] != ':' {
		return filter.DateMatch{}, false
	}
	t, err := time.Parse("Jan _2 15:04:05", line[:15])
	if err != nil {
		return filter.DateMatch{Start: 0, End: 15}, true
	}
	return filter.DateMatch{Start: 0, End: 15, Time: t.AddDate(now.Year(), 0, 0), Valid: true}, true
}

func loadDef(b testing.TB, name string, dirs []string) filter.Definition {
	def, err := config.LoadFilter(config.FilterSpec{Name: name}, dirs, nil)
	if err != nil {
		b.Skipf("cannot load %s: %v", name, err)
	}
	return def
}

func benchProcess(b *testing.B, def filter.Definition, re2 bool) {
	lines := authLog(100000, 1)
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	f, err := filter.New(def, filter.Options{Location: time.UTC, Now: func() time.Time { return now }, Dates: syslogDetector{}, RequireRE2: re2})
	if err != nil {
		b.Fatal(err)
	}
	fails := 0
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		fails += len(f.Process(lines[i%len(lines)]).Failures)
	}
	b.ReportMetric(float64(fails)/float64(b.N), "failures/line")
}

// BenchmarkProcessBuiltinSSHD runs palisade's built-in sshd filter.
func BenchmarkProcessBuiltinSSHD(b *testing.B) {
	dir, _ := filepath.Abs("../../filters")
	benchProcess(b, loadDef(b, filepath.Join(dir, "filter.d", "sshd.conf"), nil), true)
}

// BenchmarkProcessStockSSHD runs fail2ban's own sshd filter.
func BenchmarkProcessStockSSHD(b *testing.B) {
	if _, err := os.Stat("/etc/fail2ban/filter.d/sshd.conf"); err != nil {
		b.Skip("fail2ban's sshd.conf not installed")
	}
	benchProcess(b, loadDef(b, "/etc/fail2ban/filter.d/sshd.conf", nil), false)
}

// dtAdapter serves a datetime.Detector as the filter's detector.
type dtAdapter struct{ d *datetime.Detector }

func (a dtAdapter) Detect(line string, now time.Time) (filter.DateMatch, bool) {
	m, ok := a.d.Match(line, now)
	return filter.DateMatch(m), ok
}

// BenchmarkProcessBuiltinSSHDRealDates is the full path of `palisade regex
// LOG sshd` minus reading: palisade's date detector and built-in filter.
func BenchmarkProcessBuiltinSSHDRealDates(b *testing.B) {
	dir, _ := filepath.Abs("../../filters")
	def := loadDef(b, filepath.Join(dir, "filter.d", "sshd.conf"), nil)
	d, err := datetime.New(def.DatePattern, time.UTC)
	if err != nil {
		b.Fatal(err)
	}
	lines := authLog(100000, 1)
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	f, err := filter.New(def, filter.Options{Location: time.UTC, Now: func() time.Time { return now }, Dates: dtAdapter{d}, RequireRE2: true})
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("datepattern %q", def.DatePattern)
	fails := 0
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		fails += len(f.Process(lines[i%len(lines)]).Failures)
	}
	b.ReportMetric(float64(fails)/float64(b.N), "failures/line")
}
