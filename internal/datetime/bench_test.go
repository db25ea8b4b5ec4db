package datetime

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// benchMatch matches line, and variants of it with other times of day (so the
// per-hour zone cache is exercised like in a real log), in Europe/Zurich.
func benchMatch(b *testing.B, pattern, line string) {
	loc, err := time.LoadLocation("Europe/Zurich")
	if err != nil {
		loc = time.UTC
	}
	d, err := New(pattern, loc)
	if err != nil {
		b.Fatal(err)
	}
	now := time.Unix(testNow, 0)
	lines := []string{line}
	if i := strings.Index(line, "10:00:00"); i >= 0 {
		for h := 0; h < 24; h += 5 {
			for _, ms := range []string{"00:00", "17:42", "59:59"} {
				lines = append(lines, line[:i]+fmt.Sprintf("%02d:", h)+ms+line[i+8:])
			}
		}
	}
	for _, l := range lines {
		if m, ok := d.Match(l, now); !ok || !m.Valid {
			b.Fatalf("no valid date in %q", l)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		d.Match(lines[i%len(lines)], now)
	}
}

// BenchmarkMatchSyslog: the common {^LN-BEG} syslog line (fast path).
func BenchmarkMatchSyslog(b *testing.B) {
	benchMatch(b, "{^LN-BEG}", "Nov 24 10:00:00 host sshd[123]: Failed password for root from 192.0.2.1 port 22 ssh2")
}

// BenchmarkMatchISO: an ISO 8601 stamp with fraction and zone (fast path).
func BenchmarkMatchISO(b *testing.B) {
	benchMatch(b, "{^LN-BEG}", "2005-08-14T10:00:00.123+02:00 host sshd[123]: Failed password for root from 192.0.2.1")
}

// BenchmarkMatchSyslogDefault: syslog line with the full default list.
func BenchmarkMatchSyslogDefault(b *testing.B) {
	benchMatch(b, "", "Nov 24 10:00:00 host sshd[123]: Failed password for root from 192.0.2.1 port 22 ssh2")
}

// BenchmarkMatchApache: a {DATE} pattern (regex path).
func BenchmarkMatchApache(b *testing.B) {
	benchMatch(b, "^[^\\[]*\\[({DATE})\n{^LN-BEG}", `192.0.2.1 - - [14/Aug/2005:10:00:00 +0200] "GET / HTTP/1.1" 404 100`)
}

// BenchmarkMatchEpoch: the EPOCH keyword (regex path).
func BenchmarkMatchEpoch(b *testing.B) {
	benchMatch(b, "{^LN-BEG}Epoch\n{^LN-BEG}", "1124013600.123 host x")
}

// BenchmarkMatchCustom: a custom %-pattern (regex path).
func BenchmarkMatchCustom(b *testing.B) {
	benchMatch(b, "^%Y-%m-%d %H:%M:%S", "2005-08-14 10:00:00 x y z")
}

// BenchmarkNew: building a detector for the full default list.
func BenchmarkNew(b *testing.B) {
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := New("", time.UTC); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkMatchNoDate: a line without any date (every template is tried).
func BenchmarkMatchNoDate(b *testing.B) {
	for _, p := range []string{"{^LN-BEG}", ""} {
		b.Run(fmt.Sprintf("%q", p), func(b *testing.B) {
			d, _ := New(p, time.UTC)
			now := time.Unix(testNow, 0)
			line := "    at org.example.Handler.process(Handler.java:42) caused by something"
			d.Match("Nov 24 10:00:00 host x", now)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				d.Match(line, now)
			}
		})
	}
}

// BenchmarkMatchDefaultMidLine: the full default list on access-log lines
// whose date is not at the line start (traefik-auth and other filters
// without a datepattern): the last template is retried at its last position.
func BenchmarkMatchDefaultMidLine(b *testing.B) {
	benchMatch(b, "", `192.0.2.1 - - [14/Aug/2005:10:00:00 +0200] "GET / HTTP/1.1" 401 100`)
}
