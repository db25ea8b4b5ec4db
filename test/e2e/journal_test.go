package e2e

import (
	endian "encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/palisade-project/palisade/internal/firewall/nstest"
	"github.com/palisade-project/palisade/internal/testutil/poll"
)

// journalEntry is one entry in the journal export format: the fields a
// test gives (trusted "_" fields included: systemd-journal-remote stores
// them as sent, as journald would have set them).
func journalEntry(t time.Time, fields map[string]string, msg string) []byte {
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b []byte
	b = fmt.Appendf(b, "__REALTIME_TIMESTAMP=%d\n__MONOTONIC_TIMESTAMP=%d\n_BOOT_ID=6c7c6013a8674f52b0a3bef6f6a09f4c\n_HOSTNAME=host1\n", t.UnixMicro(), t.UnixMicro()%1_000_000_000)
	for _, k := range keys {
		b = fmt.Appendf(b, "%s=%s\n", k, fields[k])
	}
	b = append(b, "MESSAGE\n"...)
	b = endian.LittleEndian.AppendUint64(b, uint64(len(msg)))
	b = append(b, msg...)
	return append(b, '\n', '\n')
}

// TestJournalForgedEntries runs the daemon with the built-in sshd jail on
// journal files (made by systemd-journal-remote, read by the real
// journalctl) that hold genuine sshd entries and the entries a local user
// can produce: `logger -t sshd`, a copy of logger named sshd, a shell left
// in sshd's cgroup (no pam_systemd), a user unit named sshd.service. Only
// the genuine ones ban. A second jail with fail2ban's stock match
// (_SYSTEMD_UNIT=sshd.service + _COMM=sshd) shows the reader's own rule:
// _COMM alone only counts root's entries.
func TestJournalForgedEntries(t *testing.T) {
	bin := palisadeBin(t)
	requirePrograms(t, "journalctl")
	const remote = "/lib/systemd/systemd-journal-remote"
	if _, err := os.Stat(remote); err != nil {
		t.Skip("e2e test: systemd-journal-remote is not installed")
	}
	dir := t.TempDir()
	jdir := filepath.Join(dir, "journal")
	if err := os.MkdirAll(jdir, 0o755); err != nil {
		t.Fatal(err)
	}
	fail := func(ip string) string { return "Failed password for root from " + ip + " port 22 ssh2" }
	sshd := func(extra map[string]string) map[string]string {
		f := map[string]string{"SYSLOG_IDENTIFIER": "sshd", "_PID": "812", "_COMM": "sshd", "_EXE": "/usr/sbin/sshd", "_UID": "0", "_TRANSPORT": "syslog"}
		for k, v := range extra {
			if v == "" {
				delete(f, k)
			} else {
				f[k] = v
			}
		}
		return f
	}
	session := map[string]string{"_SYSTEMD_UNIT": "session-3.scope", "_SYSTEMD_SLICE": "user-1000.slice", "_UID": "1000"}
	with := func(a, b map[string]string) map[string]string {
		out := map[string]string{}
		for k, v := range a {
			out[k] = v
		}
		for k, v := range b {
			out[k] = v
		}
		return out
	}
	cases := []struct {
		ip     string
		fields map[string]string
		bans   []string // jails that must ban ip
	}{
		// forged by a local user (uid 1000)
		{"198.51.100.1", sshd(with(session, map[string]string{"_COMM": "logger", "_EXE": "/usr/bin/logger"})), nil},       // logger -t sshd
		{"198.51.100.2", sshd(with(session, map[string]string{"_EXE": "/usr/bin/logger"})), nil},                          // ln -s /usr/bin/logger ~/sshd
		{"198.51.100.3", sshd(map[string]string{"_SYSTEMD_UNIT": "ssh.service", "_UID": "1000", "_COMM": "logger"}), nil}, // shell still in ssh.service
		{"198.51.100.4", sshd(map[string]string{"_SYSTEMD_UNIT": "user@1000.service", "_SYSTEMD_USER_UNIT": "sshd.service", "_UID": "1000"}), nil},
		{"198.51.100.5", sshd(map[string]string{"_SYSTEMD_UNIT": "sshd.service", "_UID": "1000", "_COMM": "sh"}), []string{"stock"}}, // the stock match trusts the unit alone
		// genuine
		{"203.0.113.1", sshd(map[string]string{"_SYSTEMD_UNIT": "ssh.service"}), []string{"sshd", "stock"}},
		{"203.0.113.2", sshd(map[string]string{"_SYSTEMD_UNIT": "ssh@0-192.0.2.1:22-203.0.113.2:5555.service", "_SYSTEMD_SLICE": "system-ssh.slice"}), []string{"sshd", "stock"}},
		{"203.0.113.3", sshd(map[string]string{"_SYSTEMD_UNIT": "sshd.service", "_COMM": "sshd-session"}), []string{"sshd", "stock"}},
		{"203.0.113.4", sshd(with(session, map[string]string{"_UID": "0"})), []string{"stock"}}, // root's sshd started by hand: _COMM=sshd, uid 0
	}
	base := time.Now().Add(-time.Minute).Truncate(time.Microsecond)
	var entries []byte
	for i, c := range cases {
		entries = append(entries, journalEntry(base.Add(time.Duration(i)*time.Millisecond), c.fields, fail(c.ip))...)
	}
	cmd := exec.Command(remote, "--output="+filepath.Join(jdir, "remote.journal"), "-")
	cmd.Stdin = strings.NewReader(string(entries))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("systemd-journal-remote: %v: %s", err, out)
	}

	etc := filepath.Join(dir, "etc")
	if err := os.MkdirAll(etc, 0o755); err != nil {
		t.Fatal(err)
	}
	backend := "systemd[journalpath=" + jdir + "]"
	files := map[string]string{
		"palisade.local": "[Definition]\nloglevel = INFO\nlogtarget = STDERR\n[firewall]\nbackend = log\n",
		"jail.local": "[DEFAULT]\nmaxretry = 1\nignoreself = false\n\n[sshd]\nbackend = " + backend + "\n\n" +
			"[stock]\nenabled = true\nfilter = sshd\nport = ssh\nbackend = " + backend + "\njournalmatch = _SYSTEMD_UNIT=sshd.service + _COMM=sshd\n",
	}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(etc, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ns := nstest.New(t)
	socket := filepath.Join(dir, "palisade.sock")
	startIn(t, ns, bin, "daemon", "--config-dir", etc, "--socket", socket, "--db", filepath.Join(dir, "palisade.db"))

	want := map[string][]string{}
	for _, c := range cases {
		for _, j := range c.bans {
			want[j] = append(want[j], c.ip)
		}
	}
	var got map[string][]string
	read := func() error {
		r := runIn(ns, 10*time.Second, nil, bin, "status", "--json", "--socket", socket)
		if r.Code != 0 {
			return fmt.Errorf("status: exit %d: %s", r.Code, r.Out)
		}
		var st struct {
			Jails []struct {
				Name   string   `json:"name"`
				Error  string   `json:"error"`
				Banned []string `json:"banned"`
			} `json:"jails"`
		}
		if err := json.Unmarshal([]byte(r.Out), &st); err != nil {
			return fmt.Errorf("status output %q: %v", r.Out, err)
		}
		got = map[string][]string{}
		for _, j := range st.Jails {
			if j.Error != "" {
				return fmt.Errorf("jail %s: %s", j.Name, j.Error)
			}
			got[j.Name] = j.Banned
		}
		// The genuine entries come last: once every one has banned, every
		// forged one before it has been read.
		for j, ips := range want {
			if len(got[j]) < len(ips) {
				return fmt.Errorf("jail %s banned %q so far, want %q", j, got[j], ips)
			}
		}
		return nil
	}
	poll.UntilNil(t, 30*time.Second, "the genuine entries banned", read)
	for j, ips := range want {
		slices.Sort(ips)
		b := slices.Clone(got[j])
		slices.Sort(b)
		if !slices.Equal(b, ips) {
			t.Errorf("jail %s banned %q, want exactly %q", j, b, ips)
		}
	}
}
