package filter_test

import (
	"bufio"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/palisade-project/palisade/bench/authlog"
	"github.com/palisade-project/palisade/filters"
	"github.com/palisade-project/palisade/internal/config"
	"github.com/palisade-project/palisade/internal/datetime"
	"github.com/palisade-project/palisade/internal/filter"
)

// profileLog returns n lines of a bench/authlog profile, without newlines.
func profileLog(b *testing.B, profile string, n int) []string {
	g, err := authlog.NewProfile(profile, 1, time.Date(2026, 11, 24, 0, 0, 0, 0, time.UTC), "web1")
	if err != nil {
		b.Fatal(err)
	}
	lines := make([]string, n)
	for i := range lines {
		l := g.Line()
		lines[i] = string(l[:len(l)-1])
	}
	return lines
}

// sampleLog returns the lines of fail2ban's sample log for a filter (the
// Debian package's test files, read where installed), without comments.
func sampleLog(b *testing.B, name string) []string {
	dirs, _ := filepath.Glob("/usr/lib/python3/dist-packages/fail2ban/tests/files/logs")
	if len(dirs) == 0 {
		b.Skip("fail2ban's sample logs are not installed")
	}
	fh, err := os.Open(filepath.Join(dirs[0], name))
	if err != nil {
		b.Skip(err)
	}
	defer fh.Close()
	var lines []string
	sc := bufio.NewScanner(fh)
	for sc.Scan() {
		if l := sc.Text(); l != "" && !strings.HasPrefix(l, "#") {
			lines = append(lines, l)
		}
	}
	return lines
}

// runFilter measures one filter over lines (repeated); b.N counts lines.
func runFilter(b *testing.B, spec config.FilterSpec, builtin bool, lines []string) {
	var def filter.Definition
	var err error
	if builtin {
		def, err = config.LoadFilter(spec, nil, filters.FS())
	} else {
		if _, err := os.Stat(spec.Name); err != nil {
			b.Skip(err)
		}
		def, err = config.LoadFilter(spec, nil, nil)
	}
	if err != nil {
		b.Fatal(err)
	}
	d, err := datetime.New(def.DatePattern, time.UTC)
	if err != nil {
		b.Fatal(err)
	}
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	f, err := filter.New(def, filter.Options{Location: time.UTC, Now: func() time.Time { return now },
		Clock: func() time.Time { return now }, Dates: dtAdapter{d}, RequireRE2: builtin})
	if err != nil {
		b.Fatal(err)
	}
	fails := 0
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		fails += len(f.Process(lines[i%len(lines)]).Failures)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "lines/s")
	b.ReportMetric(float64(fails)/float64(b.N), "failures/line")
	st := f.Stats()
	b.ReportMetric(float64(st.DFAStates), "dfa-states")
	b.ReportMetric(float64(st.DFAResets), "dfa-resets")
}

// BenchmarkFilter runs every built-in filter on a log of its own service
// under attack (bench/authlog profiles; fail2ban's sample logs for the
// services the generator does not write), and the stock fail2ban filters
// of the generated services on the same logs.
func BenchmarkFilter(b *testing.B) {
	gen := map[string][]string{}
	log := func(profile string) []string {
		if gen[profile] == nil {
			gen[profile] = profileLog(b, profile, 100000)
		}
		return gen[profile]
	}
	for _, tc := range []struct {
		name, profile, sample string
	}{
		{"sshd", "attack", ""},
		{"postfix", "mail", ""},
		{"dovecot", "mail", ""},
		{"nginx-http-auth", "web", ""},
		{"apache-auth", "web", ""},
		{"proftpd", "", "proftpd"},
		{"vsftpd", "", "vsftpd"},
		{"lighttpd-auth", "", "lighttpd-auth"},
		{"qmail", "", "qmail"},
		{"courier-auth", "", "courier-auth"},
		{"recidive", "", "recidive"},
	} {
		b.Run(tc.name, func(b *testing.B) {
			var lines []string
			if tc.profile != "" {
				lines = log(tc.profile)
			} else {
				lines = sampleLog(b, tc.sample)
			}
			runFilter(b, config.FilterSpec{Name: tc.name}, true, lines)
		})
	}
	// fail2ban's own filters (where installed) on the same logs
	for _, tc := range []struct{ name, profile string }{
		{"sshd", "attack"},
		{"postfix", "mail"},
		{"dovecot", "mail"},
		{"nginx-http-auth", "web"},
		{"apache-auth", "web"},
	} {
		b.Run("stock-"+tc.name, func(b *testing.B) {
			runFilter(b, config.FilterSpec{Name: "/etc/fail2ban/filter.d/" + tc.name + ".conf"}, false, log(tc.profile))
		})
	}
}
