package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/palisade-project/palisade/internal/source"
	"github.com/palisade-project/palisade/internal/source/sourcetest"
)

// runCLI runs the command line and returns exit code, stdout, stderr.
func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Main(context.Background(), args, strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

const testFilter = `[Definition]
failregex = ^\s*\S+ app\[\d+\]: auth failed for <F-USER>\S+</F-USER> from <HOST>$
            ^\s*\S+ app\[\d+\]: bad token from <HOST>$
ignoreregex = from 192\.0\.2\.99$
`

const testLog = "Aug 14 09:00:00 h app[1]: auth failed for root from 192.0.2.1\r\n" +
	"Aug 14 09:00:01 h app[1]: hello\n" +
	"Aug 14 09:00:02 h app[1]: bad token from 2001:db8::7\n" +
	"Aug 14 09:00:03 h app[1]: auth failed for b\xffd from 198.51.100.3\n" +
	"Aug 14 09:00:04 h app[1]: auth failed for x from 192.0.2.99" // no final newline

// jsonFailures decodes palisade regex --json output: an object a line.
func jsonFailures(t *testing.T, out string) []map[string]any {
	t.Helper()
	var got []map[string]any
	for l := range strings.SplitSeq(strings.TrimSpace(out), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("bad JSON line %q: %v", l, err)
		}
		got = append(got, m)
	}
	return got
}

func TestRegexJSON(t *testing.T) {
	dir := t.TempDir()
	flt := writeFile(t, dir, "app.conf", testFilter)
	log := writeFile(t, dir, "app.log", testLog)
	code, out, errs := runCLI(t, "regex", "--json", "--now", "2005-08-14T10:00:00Z", "--tz", "Europe/Zurich", log, flt)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	got := jsonFailures(t, out)
	want := []map[string]any{
		{"line": 1.0, "host": "192.0.2.1", "time": "2005-08-14T09:00:00", "user": "root", "ip4": "192.0.2.1", "attempts": 1.0, "regex": 0.0},
		{"line": 3.0, "host": "2001:db8::7", "time": "2005-08-14T09:00:02", "ip6": "2001:db8::7", "attempts": 1.0, "regex": 1.0},
		{"line": 4.0, "host": "198.51.100.3", "time": "2005-08-14T09:00:03", "user": "b\uFFFDd", "ip4": "198.51.100.3", "attempts": 1.0, "regex": 0.0},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d objects, want %d:\n%s", len(got), len(want), out)
	}
	for i := range want {
		for k, v := range want[i] {
			if got[i][k] != v {
				t.Errorf("object %d: %s = %v, want %v", i, k, got[i][k], v)
			}
		}
	}
}

func TestRegexSummary(t *testing.T) {
	dir := t.TempDir()
	flt := writeFile(t, dir, "app.conf", testFilter)
	log := writeFile(t, dir, "app.log", testLog)
	code, out, errs := runCLI(t, "regex", "--now", "2005-08-14T10:00:00Z", "--tz", "UTC", log, flt)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	for _, s := range []string{"Lines: 5 lines, 1 ignored, 3 matched, 1 missed", "Failures: 3 from 3 hosts", "[2] ^", "[1] ^", "lines/s"} {
		if !strings.Contains(out, s) {
			t.Errorf("summary lacks %q:\n%s", s, out)
		}
	}
}

func TestRegexJournalOption(t *testing.T) {
	dir := t.TempDir()
	flt := writeFile(t, dir, "j.conf", "[Definition]\nfailregex = ^app\\[\\d+\\]: bad token from <HOST>$\n")
	log := writeFile(t, dir, "j.log", "app[1]: bad token from 203.0.113.5\n")
	code, out, errs := runCLI(t, "regex", "--json", "--opt", "logtype=journal", "--now", "2005-08-14T10:00:00Z", "--tz", "UTC", log, flt)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	if !strings.Contains(out, `"time":"2005-08-14T10:00:00"`) || !strings.Contains(out, `"host":"203.0.113.5"`) {
		t.Fatalf("journal output: %s", out)
	}
}

func TestRegexBuiltinSSHD(t *testing.T) {
	dir := t.TempDir()
	log := writeFile(t, dir, "auth.log",
		"Aug 14 09:00:00 h sshd[7]: Failed password for invalid user admin from 192.0.2.10 port 4242 ssh2\n"+
			"Aug 14 09:00:01 h CRON[8]: pam_unix(cron:session): session opened for user root(uid=0) by (uid=0)\n")
	code, out, errs := runCLI(t, "--root", dir, "regex", "--json", "--now", "2005-08-14T10:00:00Z", "--tz", "UTC", log, "sshd")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	if strings.Count(out, "\n") != 1 || !strings.Contains(out, `"host":"192.0.2.10"`) || !strings.Contains(out, `"user":"admin"`) {
		t.Fatalf("output: %s", out)
	}
}

func TestRegexErrors(t *testing.T) {
	dir := t.TempDir()
	good := writeFile(t, dir, "good.conf", testFilter)
	badRe := writeFile(t, dir, "bad.conf", "[Definition]\nfailregex = ^(unclosed <HOST>\n")
	noID := writeFile(t, dir, "noid.conf", "[Definition]\nfailregex = ^no id here$\n")
	log := writeFile(t, dir, "a.log", "x\n")
	tests := []struct {
		name string
		args []string
		msg  string
	}{
		{"missing filter", []string{log, filepath.Join(dir, "nope.conf")}, "filter"},
		{"unknown built-in", []string{log, "no-such-filter"}, "no-such-filter"},
		{"bad regex", []string{log, badRe}, "failregex 0"},
		{"no id group", []string{log, noID}, "no failure-id group"},
		{"missing log", []string{filepath.Join(dir, "none.log"), good}, "none.log"},
		{"log is a directory", []string{dir, good}, "directory"},
		{"bad tz", []string{"--tz", "Mars/Olympus", log, good}, "--tz"},
		{"bad now", []string{"--now", "yesterday", log, good}, "--now"},
		{"bad opt", []string{"--opt", "novalue", log, good}, "--opt"},
		{"arg count", []string{log}, "arg"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, errs := runCLI(t, append([]string{"--root", dir, "regex"}, tt.args...)...)
			if code != ExitUsage || !strings.Contains(errs, tt.msg) {
				t.Fatalf("exit %d, stderr %q; want 2 and %q", code, errs, tt.msg)
			}
		})
	}
}

// TestRegexLongLine: a line over the cap is skipped and counted, never
// matched on its head (here a forged failure padded past the cap), and
// the lines after it keep their numbers in the file.
func TestRegexLongLine(t *testing.T) {
	dir := t.TempDir()
	flt := writeFile(t, dir, "app.conf", testFilter)
	forged := "Aug 14 09:00:01 h app[1]: bad token from 203.0.113.9" + strings.Repeat(" ", source.MaxLineLen) + "and more\n"
	log := writeFile(t, dir, "app.log", "Aug 14 09:00:00 h app[1]: bad token from 192.0.2.1\n"+forged+"Aug 14 09:00:02 h app[1]: bad token from 192.0.2.3\n")
	code, out, errs := runCLI(t, "regex", "--json", "--now", "2005-08-14T10:00:00Z", log, flt)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var lines []string
	for _, m := range jsonFailures(t, out) {
		lines = append(lines, fmt.Sprintf("%v %v", m["line"], m["host"]))
	}
	if want := []string{"1 192.0.2.1", "3 192.0.2.3"}; !slices.Equal(lines, want) {
		t.Errorf("failures %q, want %q", lines, want)
	}
	if !strings.Contains(errs, "1 line(s) longer than 65536 bytes skipped") {
		t.Errorf("stderr %q does not report the skipped line", errs)
	}
	code, out, _ = runCLI(t, "regex", "--now", "2005-08-14T10:00:00Z", log, flt)
	if code != 0 || !strings.Contains(out, "Lines: 2 lines") || !strings.Contains(out, "Too long: 1 line(s) longer than 65536 bytes skipped") {
		t.Errorf("summary (exit %d):\n%s", code, out)
	}
}

// TestRegexArgumentForms: LOG and FILTER take what fail2ban-regex takes:
// a log line instead of a file, a failregex instead of a filter, a
// filter's arguments in brackets, and an IGNOREREGEX third argument.
func TestRegexArgumentForms(t *testing.T) {
	dir := t.TempDir()
	flt := writeFile(t, dir, "app.conf", testFilter)
	log := writeFile(t, dir, "app.log", testLog)
	const failed = "Aug 14 09:00:00 h sshd[1]: Failed password for root from 192.0.2.1 port 22 ssh2"
	const ddos = "Aug 14 09:00:00 h sshd[1]: Did not receive identification string from 192.0.2.7 port 5000"
	const twoLines = "Aug 14 09:00:00 h app[1]: login attempt user bob\nAug 14 09:00:01 h app[1]: rejected from 192.0.2.5"
	const twoLineRegex = `login attempt user \S+\n.*rejected from <HOST>`
	tests := []struct {
		name  string
		args  []string
		hosts []string // the failures' hosts, in order
	}{
		{"a line, a filter name", []string{failed, "sshd"}, []string{"192.0.2.1"}},
		{"a line, a failregex", []string{failed, `Failed password for \S+ from <HOST>`}, []string{"192.0.2.1"}},
		{"a line, a failregex and an ignoreregex", []string{failed, `Failed password for \S+ from <HOST>`, `for root from`}, nil},
		{"a filter name with arguments", []string{ddos, "sshd[mode=aggressive]"}, []string{"192.0.2.7"}},
		{"the same name without them", []string{ddos, "sshd"}, nil},
		{"--opt after the brackets wins", []string{"--opt", "mode=normal", ddos, "sshd[mode=aggressive]"}, nil},
		{"a filter file and an ignoreregex", []string{log, flt, `from 2001:db8::7$`}, []string{"192.0.2.1", "198.51.100.3"}},
		{"a built-in and an ignoreregex", []string{failed, "sshd", `192\.0\.2\.1`}, nil},
		{"two lines, a two-line failregex, -L 2", []string{"-L", "2", twoLines, twoLineRegex}, []string{"192.0.2.5"}},
		{"the same without -L", []string{twoLines, twoLineRegex}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"regex", "--json", "--now", "2005-08-14T10:00:00Z", "--tz", "UTC", "--config-dir", dir}, tc.args...)
			code, out, errs := runCLI(t, args...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errs)
			}
			var hosts []string
			for _, m := range jsonFailures(t, out) {
				hosts = append(hosts, m["host"].(string))
			}
			if !slices.Equal(hosts, tc.hosts) {
				t.Fatalf("failures from %v, want %v\n%s", hosts, tc.hosts, out)
			}
		})
	}
}

func TestRegexArgumentErrors(t *testing.T) {
	dir := t.TempDir()
	const failed = "Aug 14 09:00:00 h sshd[1]: Failed password for root from 192.0.2.1 port 22 ssh2"
	tests := []struct {
		name string
		args []string
		want string // in stderr
	}{
		{"a journal option", []string{"systemd-journal[colour=yes]", "sshd"}, `unknown option "colour"`},
		{"a missing file", []string{filepath.Join(dir, "auth.log"), "sshd"}, "no such file"},
		{"a failregex without a host", []string{failed, "Failed password for .*"}, "no failure-id group"},
		{"a failregex that does not compile", []string{failed, "Failed (password"}, "missing )"},
		{"an unknown filter name", []string{failed, "nosuchfilter"}, "filter.d/nosuchfilter.conf"},
		{"four arguments", []string{failed, "sshd", "x", "y"}, "accepts between 2 and 3 arg(s)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, _, errs := runCLI(t, append([]string{"regex", "--config-dir", dir}, tc.args...)...)
			if code != 2 || !strings.Contains(errs, tc.want) {
				t.Fatalf("exit %d, stderr %q; want exit 2 and %q", code, errs, tc.want)
			}
		})
	}
}

func TestIsFilterRef(t *testing.T) {
	for s, want := range map[string]bool{
		"sshd":                             true,
		"sshd[mode=aggressive]":            true,
		"sshd.conf":                        true,
		"/etc/fail2ban/filter.d/sshd.conf": true,
		"./my-filter.local":                true,
		"filter.d/zugriff-verweigert.conf": true,
		"filtre-été":                       true,
		"////etc/x.conf":                   false,
		"":                                 false,
		"sshd[mode=aggressive":             false,
		"Failed .* from <HOST>":            false,
		`^\S+ from <HOST>$`:                false,
		"from <HOST>":                      false,
		"sshd[mode=aggressive] trailing":   false,
		"a+b":                              false,
	} {
		if got := isFilterRef(s); got != want {
			t.Errorf("isFilterRef(%q) = %v, want %v", s, got, want)
		}
	}
}

// TestRegexPrintAllAndDatePattern: --print-all-* list each kind of line
// after the summary; -d replaces the filter's date pattern.
func TestRegexPrintAllAndDatePattern(t *testing.T) {
	dir := t.TempDir()
	flt := writeFile(t, dir, "app.conf", testFilter)
	log := writeFile(t, dir, "app.log", testLog)
	code, out, errs := runCLI(t, "regex", "--print-all-missed", "--print-all-ignored", "--now", "2005-08-14T10:00:00Z", log, flt)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	for _, want := range []string{
		"\nMissed lines: 1\n  Aug 14 09:00:01 h app[1]: hello\n",
		"\nIgnored lines: 1\n  Aug 14 09:00:04 h app[1]: auth failed for x from 192.0.2.99\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("summary lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "Matched lines:") {
		t.Errorf("matched lines listed unasked:\n%s", out)
	}

	const line = "Aug 13 09:00:00 h sshd[1]: Failed password for root from 192.0.2.1 port 22 ssh2"
	for _, tc := range []struct {
		args []string
		time string
	}{
		{nil, "2005-08-13T09:00:00"},
		{[]string{"-d", "%H:%M:%S"}, "2005-08-14T09:00:00"}, // a time alone: the day of --now
	} {
		args := append([]string{"regex", "--json", "--now", "2005-08-14T10:00:00Z", "--tz", "UTC"}, tc.args...)
		code, out, errs := runCLI(t, append(args, line, `Failed password for \S+ from <HOST>`)...)
		var m struct{ Time string }
		if code != 0 || json.Unmarshal([]byte(out), &m) != nil || m.Time != tc.time {
			t.Errorf("%v: exit %d, %q %s; want time %s", tc.args, code, out, errs, tc.time)
		}
	}
}

// TestRegexOutAndAliases: -o prints one token or template per failure
// instead of the summary; fail2ban-regex's -c/--config and
// --timezone name the same settings as --config-dir and --tz.
func TestRegexOutAndAliases(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "filter.d"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "filter.d"), "app.conf", testFilter)
	log := writeFile(t, dir, "app.log", testLog)
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"-o", "id"}, "192.0.2.1\n2001:db8::7\n198.51.100.3\n"},
		{[]string{"--out", "ip"}, "192.0.2.1\n2001:db8::7\n198.51.100.3\n"},
		{[]string{"-o", "F-USER"}, "root\n\nb\uFFFDd\n"},
		{[]string{"-o", "<user>@<ip> (<nosuch>)"}, "root@192.0.2.1 ()\n@2001:db8::7 ()\nb\uFFFDd@198.51.100.3 ()\n"},
		{[]string{"-o", "msg"}, "Aug 14 09:00:00 h app[1]: auth failed for root from 192.0.2.1\nAug 14 09:00:02 h app[1]: bad token from 2001:db8::7\n" +
			"Aug 14 09:00:03 h app[1]: auth failed for b\uFFFDd from 198.51.100.3\n"},
	}
	for _, tc := range tests {
		for _, flags := range [][]string{{"-c", dir, "--timezone", "UTC"}, {"--config", dir, "--tz", "UTC"}} {
			args := append(append([]string{"regex", "--now", "2005-08-14T10:00:00Z"}, flags...), tc.args...)
			code, out, errs := runCLI(t, append(args, log, "app")...)
			if code != 0 || out != tc.want {
				t.Errorf("%v: exit %d, stdout %q (%s), want %q", args, code, out, errs, tc.want)
			}
		}
	}
	if code, _, errs := runCLI(t, "regex", "--json", "-o", "id", "-c", dir, log, "app"); code != 2 || !strings.Contains(errs, "choose one") {
		t.Errorf("--json with -o: exit %d, %s", code, errs)
	}
}

// TestRegexSystemdJournal: LOG systemd-journal reads the journal once with
// the filter's journalmatch (or -m's), as a jail would, each line at its
// entry's time; journalpath= names the journal directory.
func TestRegexSystemdJournal(t *testing.T) {
	sourcetest.RequireJournalTools(t)
	dir := t.TempDir()
	at := time.Date(2026, 11, 24, 19, 50, 1, 0, time.UTC)
	sourcetest.WriteJournal(t, filepath.Join(dir, "a.journal"),
		sourcetest.ExportEntry("6c7c6013a8674f52b0a3bef6f6a09f4c", at, 1_000_001, 41, "Failed password for root from 192.0.2.1 port 22 ssh2"),
		sourcetest.ExportEntry("6c7c6013a8674f52b0a3bef6f6a09f4c", at.Add(time.Second), 1_000_002, 42, "Connection closed by 192.0.2.9 port 4000"),
	)
	log := "systemd-journal[journalpath=" + dir + "]"
	tests := []struct {
		args  []string
		hosts []string
		times []string
	}{
		{[]string{log, "sshd"}, []string{"192.0.2.1"}, []string{"2026-11-24T19:50:01"}},
		{[]string{"-m", "_SYSTEMD_UNIT=sshd.service", log, `closed by <HOST> port \d+$`}, []string{"192.0.2.9"}, []string{"2026-11-24T19:50:02"}},
		{[]string{"-m", "_SYSTEMD_UNIT=nginx.service", log, "sshd"}, nil, nil},
	}
	for _, tc := range tests {
		args := append([]string{"regex", "--json", "--tz", "UTC", "--config-dir", t.TempDir()}, tc.args...)
		code, out, errs := runCLI(t, args...)
		if code != 0 {
			t.Fatalf("%v: exit %d: %s", tc.args, code, errs)
		}
		var hosts, times []string
		for _, m := range jsonFailures(t, out) {
			hosts, times = append(hosts, m["host"].(string)), append(times, m["time"].(string))
		}
		if !slices.Equal(hosts, tc.hosts) || !slices.Equal(times, tc.times) {
			t.Errorf("%v: failures %v at %v, want %v at %v\n%s", tc.args, hosts, times, tc.hosts, tc.times, errs)
		}
	}
	// a file of that name is a file
	named := writeFile(t, t.TempDir(), "systemd-journal", "Aug 14 09:00:00 h sshd[1]: Failed password for root from 192.0.2.3 port 22 ssh2\n")
	t.Chdir(filepath.Dir(named))
	if code, out, errs := runCLI(t, "regex", "-o", "id", "systemd-journal", "sshd"); code != 0 || out != "192.0.2.3\n" {
		t.Errorf("a file named systemd-journal: exit %d, %q %s", code, out, errs)
	}
	for _, bad := range [][]string{
		{"systemd-journal[journalpath=" + dir, "sshd"},
		{"systemd-journal[color=yes]", "sshd"},
		{"-m", "_SYSTEMD_UNIT=sshd.service", filepath.Join(dir, "a.journal"), "sshd"},
	} {
		if code, _, errs := runCLI(t, append([]string{"regex"}, bad...)...); code != 2 {
			t.Errorf("%v: exit %d (%s), want 2", bad, code, errs)
		}
	}
}
