package filters_test

import (
	"io/fs"
	"os"
	"testing"
	"time"

	"github.com/palisade-project/palisade/bench/authlog"
	"github.com/palisade-project/palisade/filters"
	"github.com/palisade-project/palisade/internal/config"
	"github.com/palisade-project/palisade/internal/datetime"
	"github.com/palisade-project/palisade/internal/filter"
)

// benchFilter processes the benchmark's synthetic auth.log (100,000 lines,
// repeated) with one filter; b.N counts lines.
func benchFilter(b *testing.B, name string, builtin fs.FS) {
	if builtin == nil {
		if _, err := os.Stat(name); err != nil {
			b.Skipf("%s: %v", name, err)
		}
	}
	start := time.Date(2026, 11, 24, 0, 0, 0, 0, time.UTC)
	now := func() time.Time { return start.Add(36 * time.Hour) }
	g := authlog.New(1, start, "web1")
	lines := make([]string, 100000)
	for i := range lines {
		l := g.Line()
		lines[i] = string(l[:len(l)-1])
	}
	def, err := config.LoadFilter(config.FilterSpec{Name: name}, nil, builtin)
	if err != nil {
		b.Fatal(err)
	}
	d, err := datetime.New(def.DatePattern, time.UTC)
	if err != nil {
		b.Fatal(err)
	}
	f, err := filter.New(def, filter.Options{Location: time.UTC, Now: now, Clock: now, RequireRE2: builtin != nil, Dates: dates{d}})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		f.Process(lines[i%len(lines)])
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "lines/s")
}

func BenchmarkAuthLogBuiltinSSHD(b *testing.B) { benchFilter(b, "sshd", filters.FS()) }

func BenchmarkAuthLogStockSSHD(b *testing.B) {
	benchFilter(b, "/etc/fail2ban/filter.d/sshd.conf", nil)
}
