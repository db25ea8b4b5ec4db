package filter_test

import (
	"bufio"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/palisade-project/palisade/internal/config"
	"github.com/palisade-project/palisade/internal/datetime"
	"github.com/palisade-project/palisade/internal/filter"
)

// authLog builds a realistic auth.log: ~11% sshd failures, the rest other
// programs (CRON, systemd, sudo, kernel, postfix) and sshd non-failures.
func authLog(n int, seed int64) []string {
	rng := rand.New(rand.NewSource(seed))
	ip := func() string {
		nets := []string{"192.0.2", "198.51.100", "203.0.113"}
		return fmt.Sprintf("%s.%d", nets[rng.Intn(3)], 1+rng.Intn(254))
	}
	users := []string{"root", "admin", "test", "oracle", "ubuntu", "git", "postgres", "user"}
	start := time.Date(2026, 11, 24, 0, 0, 0, 0, time.UTC)
	lines := make([]string, 0, n)
	for i := 0; i < n; i++ {
		ts := start.Add(time.Duration(i) * 80 * time.Millisecond).Format("Jan _2 15:04:05")
		pid := 1000 + rng.Intn(60000)
		var msg string
		switch r := rng.Intn(100); {
		case r < 6:
			msg = fmt.Sprintf("sshd[%d]: Failed password for %s from %s port %d ssh2", pid, users[rng.Intn(len(users))], ip(), 1024+rng.Intn(60000))
		case r < 9:
			msg = fmt.Sprintf("sshd[%d]: Invalid user %s from %s port %d", pid, users[rng.Intn(len(users))], ip(), 1024+rng.Intn(60000))
		case r < 11:
			msg = fmt.Sprintf("sshd[%d]: Failed password for invalid user %s from %s port %d ssh2", pid, users[rng.Intn(len(users))], ip(), 1024+rng.Intn(60000))
		case r < 15:
			msg = fmt.Sprintf("sshd[%d]: Accepted publickey for admin from %s port %d ssh2: ED25519 SHA256:Qm9ndXNGaW5nZXJwcmludEZvclRlc3Rpbmc", pid, ip(), 1024+rng.Intn(60000))
		case r < 19:
			msg = fmt.Sprintf("sshd[%d]: pam_unix(sshd:session): session opened for user admin(uid=1000) by (uid=0)", pid)
		case r < 22:
			msg = fmt.Sprintf("sshd[%d]: Received disconnect from %s port %d:11: disconnected by user", pid, ip(), 1024+rng.Intn(60000))
		case r < 40:
			msg = fmt.Sprintf("CRON[%d]: pam_unix(cron:session): session opened for user root(uid=0) by (uid=0)", pid)
		case r < 55:
			msg = fmt.Sprintf("systemd-logind[%d]: New session %d of user admin.", pid, rng.Intn(9000))
		case r < 65:
			msg = "systemd[1]: Started session-" + fmt.Sprint(rng.Intn(9000)) + ".scope - Session of User admin."
		case r < 75:
			msg = fmt.Sprintf("sudo:    admin : TTY=pts/%d ; PWD=/home/admin ; USER=root ; COMMAND=/usr/bin/systemctl status nginx", rng.Intn(5))
		case r < 85:
			msg = fmt.Sprintf("kernel: [%d.%06d] [UFW BLOCK] IN=eth0 OUT= MAC=52:54:00:12:34:56 SRC=%s DST=198.51.100.1 LEN=40 TOS=0x00 PROTO=TCP SPT=%d DPT=23", rng.Intn(99999), rng.Intn(999999), ip(), rng.Intn(65535))
		default:
			msg = fmt.Sprintf("postfix/smtpd[%d]: connect from unknown[%s]", pid, ip())
		}
		lines = append(lines, ts+" web1 "+msg)
	}
	return lines
}

// TestWriteAuthLog writes the benchmark log for command-line measurements
// when PALISADE_WRITE_AUTHLOG names a file.
func TestWriteAuthLog(t *testing.T) {
	path := os.Getenv("PALISADE_WRITE_AUTHLOG")
	if path == "" {
		t.Skip("PALISADE_WRITE_AUTHLOG not set")
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriter(f)
	for _, l := range authLog(1000000, 1) {
		w.WriteString(l)
		w.WriteByte('\n')
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
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

func TestAuthLogShape(t *testing.T) {
	lines := authLog(10000, 2)
	n := 0
	for _, l := range lines {
		if strings.Contains(l, "Failed password") || strings.Contains(l, "Invalid user") {
			n++
		}
	}
	if n < 900 || n > 1300 {
		t.Fatalf("%d failure lines in 10000, want ~11%%", n)
	}
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
