package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/palisade-project/palisade/internal/config/stock"
)

// forgedSSH are OpenSSH 9.2's lines (as written by a real sshd -E) for a
// client that logs in from 203.0.113.9 with the user name
// "x from 198.51.100.2 on".
const forgedSSH = "Jan 10 12:00:00 host sshd[1234]: Invalid user x from 198.51.100.2 on from 203.0.113.9 port 4242\n" +
	"Jan 10 12:00:00 host sshd[1234]: Connection closed by invalid user x from 198.51.100.2 on 203.0.113.9 port 4242 [preauth]\n"

// stockCopy copies Debian's stock sshd.conf and common.conf into a new
// configuration directory (skips without them or without their dpkg
// sums).
func stockCopy(t *testing.T) string {
	t.Helper()
	sums, _ := stock.Load("")
	var files []string
	for _, n := range []string{"sshd.conf", "common.conf"} {
		p := "/etc/fail2ban/filter.d/" + n
		if !sums.MatchFile(p, p) {
			t.Skipf("%s is missing, edited or not in the dpkg database", p)
		}
		files = append(files, p)
	}
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "filter.d"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, p := range files {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(dir, "filter.d"), filepath.Base(p), string(data))
	}
	return dir
}

func hostsOf(t *testing.T, out string) []string {
	t.Helper()
	var hosts []string
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if l == "" {
			continue
		}
		var f struct{ Host string }
		if err := json.Unmarshal([]byte(l), &f); err != nil {
			t.Fatalf("%q: %v", l, err)
		}
		hosts = append(hosts, f.Host)
	}
	return hosts
}

// TestStockFilterReplaced: the stock sshd.conf takes the forged address
// when used as written (palisade regex --as-written, or a path), the
// built-in it is replaced by does not; config check says so; an edit or
// a .local keeps the file.
func TestStockFilterReplaced(t *testing.T) {
	dir := stockCopy(t)
	log := writeFile(t, t.TempDir(), "auth.log", forgedSSH)
	forged := func(hosts []string) bool {
		for _, h := range hosts {
			if h == "198.51.100.2" {
				return true
			}
		}
		return false
	}
	for _, tc := range []struct {
		name    string
		args    []string
		forged  bool
		noteHas string
	}{
		{"name: built-in", []string{"--config-dir", dir, log, "sshd"}, false, "is used instead"},
		{"name, as written", []string{"--as-written", "--config-dir", dir, log, "sshd"}, true, "used as written"},
		{"path", []string{log, filepath.Join(dir, "filter.d", "sshd.conf")}, true, "used as written"},
	} {
		code, out, errOut := runCLI(t, append([]string{"regex", "--json", "--now", "2026-01-10T13:00:00Z", "--tz", "UTC"}, tc.args...)...)
		if code != 0 {
			t.Fatalf("%s: exit %d: %s", tc.name, code, errOut)
		}
		hosts := hostsOf(t, out)
		if forged(hosts) != tc.forged || len(hosts) == 0 {
			t.Errorf("%s: hosts %v, want forged=%v", tc.name, hosts, tc.forged)
		}
		if !strings.Contains(errOut, tc.noteHas) {
			t.Errorf("%s: stderr %q, want a note with %q", tc.name, errOut, tc.noteHas)
		}
	}

	// config check: the jail's filter is the built-in, said in text and JSON
	logDir := t.TempDir()
	writeFile(t, logDir, "auth.log", "")
	writeFile(t, dir, "jail.local", "[sshd]\nenabled = true\nbackend = polling\nlogpath = "+filepath.Join(logDir, "auth.log")+"\n")
	code, out, errOut := runCLI(t, "config", "check", "--config-dir", dir, "--json")
	if code != 0 {
		t.Fatalf("config check: exit %d: %s %s", code, out, errOut)
	}
	type report struct {
		Jails []struct {
			Name          string   `json:"name"`
			StockReplaced string   `json:"stock_replaced"`
			Notes         []string `json:"notes"`
			Warnings      []string `json:"warnings"`
		}
	}
	var rep report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.Jails) != 1 || rep.Jails[0].StockReplaced != filepath.Join(dir, "filter.d", "sshd.conf") || len(rep.Jails[0].Notes) != 1 {
		t.Fatalf("config check --json: %+v", rep.Jails)
	}
	if len(rep.Jails[0].Warnings) != 0 {
		t.Errorf("built-in sshd warns: %q", rep.Jails[0].Warnings)
	}
	_, text, _ := runCLI(t, "config", "check", "--config-dir", dir)
	if !strings.Contains(text, "note: jail sshd: filter sshd: ") || !strings.Contains(text, "palisade's built-in filter sshd is used instead") {
		t.Errorf("config check text has no note:\n%s", text)
	}

	// an empty sshd.local: the stock file is used as written, and the
	// forged-address lint names its rules with file:line
	writeFile(t, filepath.Join(dir, "filter.d"), "sshd.local", "")
	_, out, _ = runCLI(t, "config", "check", "--config-dir", dir, "--json")
	rep = report{}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatal(err)
	}
	j := rep.Jails[0]
	if j.StockReplaced != "" || len(j.Notes) != 0 {
		t.Errorf("with sshd.local: still replaced: %+v", j)
	}
	lint := 0
	for _, w := range j.Warnings {
		if strings.Contains(w, filepath.Join(dir, "filter.d", "sshd.conf")+":") && strings.Contains(w, "captures an address after") {
			lint++
		}
	}
	if lint == 0 {
		t.Errorf("with sshd.local: no forged-address warning with file:line: %q", j.Warnings)
	}
}

// TestFilterErrorNamedOnce: a broken filter's error names the filter
// once, through palisade regex and through config check.
func TestFilterErrorNamedOnce(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "filter.d"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "filter.d"), "broken.conf", "[Definition]\nfailregex = ^fail from <HOST>(\n")
	writeFile(t, filepath.Join(dir, "filter.d"), "interp.conf", "[Definition]\nfailregex = ^x %(nope)s <HOST>\n")
	logf := writeFile(t, dir, "a.log", "")
	for _, tc := range []struct{ filter, want string }{
		{"broken", "filter broken: failregex 0: unable to compile regular expression"},
		{"interp", "filter interp: " + filepath.Join(dir, "filter.d", "interp.conf") + `:2: key "failregex": %(nope)s refers to a missing option`},
		{"nosuch", "filter nosuch: no configuration file filter.d/nosuch.conf"},
	} {
		writeFile(t, dir, "jail.local", "[j]\nenabled = true\nfilter = "+tc.filter+"\nbackend = polling\nlogpath = "+logf+"\n")
		_, _, regexErr := runCLI(t, "regex", "--config-dir", dir, logf, tc.filter)
		code, checkOut, _ := runCLI(t, "config", "check", "--config-dir", dir)
		if code != 2 {
			t.Errorf("%s: config check exit %d", tc.filter, code)
		}
		wantCheck := filepath.Join(dir, "jail.local") + ":2: [j] " + tc.want
		for _, got := range []struct{ path, text, want string }{
			{"regex", regexErr, "palisade: " + tc.want},
			{"config check", checkOut, "error: " + wantCheck},
		} {
			if !strings.Contains(got.text, got.want) {
				t.Errorf("%s %s: %q\nwant it to contain %q", got.path, tc.filter, got.text, got.want)
			}
			if n := strings.Count(got.text, "filter "+tc.filter+":"); n != 1 && got.path == "regex" {
				t.Errorf("%s %s: filter named %d times: %q", got.path, tc.filter, n, got.text)
			}
			if strings.Contains(got.text, "filter: filter") || strings.Contains(got.text, "filter "+tc.filter+": filter "+tc.filter) {
				t.Errorf("%s %s: doubled: %q", got.path, tc.filter, got.text)
			}
		}
	}
}
