package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/palisade-project/palisade/internal/control"
)

// fakeDaemon answers the control socket with canned data and records the
// requests it got.
type fakeDaemon struct {
	mu   sync.Mutex
	reqs []control.Request
}

func (f *fakeDaemon) Handle(_ context.Context, req control.Request) (any, error) {
	f.mu.Lock()
	f.reqs = append(f.reqs, req)
	f.mu.Unlock()
	exp := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	b := control.BanEntry{Jail: "sshd", IP: "192.0.2.7", Since: exp.Add(-time.Hour), Expires: &exp, Offences: 2}
	switch req.Verb {
	case control.VerbStatus:
		if req.Jail == "nope" {
			return nil, errors.New(`no such jail "nope"`)
		}
		rep := control.StatusReply{Backend: "fake", ConfigDir: "/etc/palisade", Jails: []control.JailStatus{
			{Name: "sshd", Filter: "sshd", Sources: []string{"/var/log/auth.log"}, Watching: []string{"/var/log/auth.log"}, CurrentlyFailed: 2, TotalFailed: 9,
				CurrentlyBanned: 1, TotalBanned: 3, Evicted: 7, Banned: []string{"192.0.2.7"},
				Settings: control.JailSettings{MaxRetry: 4, FindTime: 600, BanTime: -1, IgnoreIP: []string{"127.0.0.1/8", "admin.example"}, IgnoreSelf: true}},
			{Name: "web", Filter: "nginx-http-auth", Sources: []string{"journal"}, Watching: []string{"journal: _SYSTEMD_UNIT=nginx.service"},
				Warnings: []string{"jail web: no journal files in /var/log/journal, /run/log/journal: the journal has nothing to read"}, Banned: []string{}}}}
		if req.Jail != "" {
			for _, j := range rep.Jails {
				if j.Name == req.Jail {
					rep.Jails = []control.JailStatus{j}
				}
			}
		}
		return rep, nil
	case control.VerbBanned:
		return control.BannedReply{Bans: []control.BanEntry{b}}, nil
	case control.VerbBan:
		b.IP = req.IP
		return control.BanReply{Ban: b}, nil
	case control.VerbUnban:
		return control.UnbanReply{Removed: 1}, nil
	case control.VerbExplain:
		return control.ExplainReply{IP: req.IP, Banned: []control.BanEntry{b}, Jails: []control.JailExplain{
			{Jail: "sshd", Failures: 1, MaxRetry: 4, FindTime: "10m0s", Offences: 2, NextBanTime: "96h0m0s",
				Lines: []control.ExplainLine{{Time: exp, Line: "Failed password for root from 192.0.2.7", Rule: "failregex #0"}}}}}, nil
	case control.VerbReload:
		return control.ReloadReply{Jails: []string{"sshd"}, Added: []string{"sshd"}}, nil
	}
	return control.PingReply{}, nil
}

func (f *fakeDaemon) requests() []control.Request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]control.Request(nil), f.reqs...)
}

func startFake(t *testing.T) (*fakeDaemon, string) {
	t.Helper()
	f := &fakeDaemon{}
	return f, serveFake(t, f)
}

// serveFake answers a control socket with h until the test ends.
func serveFake(t *testing.T, h control.Handler) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "p.sock")
	srv, err := control.Listen(path, control.Options{AllowUID: func(uint32) bool { return true }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ctx, h) }()
	t.Cleanup(func() { cancel(); <-done })
	return path
}

func runClient(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := Main(context.Background(), args, strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

func TestClientCommands(t *testing.T) {
	f, sock := startFake(t)
	tests := []struct {
		args []string
		code int
		want []string // substrings of stdout (or stderr when code != 0)
		verb control.Verb
	}{
		{[]string{"status"}, 0, []string{"sshd", "/var/log/auth.log", "Backend: fake", "journal: _SYSTEMD_UNIT=nginx.service", "\nJail list:\tsshd, web\n",
			"warning: jail web: no journal files", "warning: jail sshd: failure table full, 7 addresses evicted"}, control.VerbStatus},
		{[]string{"status", "sshd"}, 0, []string{"Status for the jail: sshd", "Currently failed:\t2", "Banned IP list:\t192.0.2.7",
			"Evicted (failure table full):\t7", "File list:\t/var/log/auth.log"}, control.VerbStatus},
		{[]string{"status", "web"}, 0, []string{"|- Warning: jail web: no journal files", "Journal matches:\t_SYSTEMD_UNIT=nginx.service"}, control.VerbStatus},
		{[]string{"status", "nope"}, 1, []string{"no such jail"}, control.VerbStatus},
		{[]string{"banned"}, 0, []string{"192.0.2.7", "2030-01-02T03:04:05Z"}, control.VerbBanned},
		{[]string{"ban", "sshd", "2001:DB8::1", "--for", "2h"}, 0, []string{"banned 2001:db8::1 in sshd"}, control.VerbBan},
		{[]string{"unban", "sshd", "192.0.2.7"}, 0, []string{"1 ban(s) lifted"}, control.VerbUnban},
		{[]string{"unban", "192.0.2.7"}, 0, []string{"1 ban(s) lifted"}, control.VerbUnban},
		{[]string{"ban", "sshd", "198.51.100.9/24"}, 0, []string{"banned 198.51.100.0/24 in sshd"}, control.VerbBan},
		{[]string{"unban", "--all"}, 0, []string{"1 ban(s) lifted"}, control.VerbUnban},
		{[]string{"explain", "192.0.2.7"}, 0, []string{"BANNED in sshd", "failures: 1 of maxretry 4", "failregex #0", "next ban would last 96h0m0s"}, control.VerbExplain},
		{[]string{"reload"}, 0, []string{"reloaded: 1 jail(s); added sshd"}, control.VerbReload},
		{[]string{"set", "sshd", "banip", "192.0.2.8", "192.0.2.9"}, 0, []string{"2"}, control.VerbBan},
		{[]string{"set", "sshd", "unbanip", "192.0.2.8"}, 0, []string{"1"}, control.VerbUnban},
		{[]string{"get", "sshd", "banned"}, 0, []string{"['192.0.2.7']"}, control.VerbBanned},
		{[]string{"get", "sshd", "bantime"}, 0, []string{"-1\n"}, control.VerbStatus},
		{[]string{"get", "sshd", "findtime"}, 0, []string{"600\n"}, control.VerbStatus},
		{[]string{"get", "sshd", "maxretry"}, 0, []string{"4\n"}, control.VerbStatus},
		{[]string{"get", "sshd", "ignoreself"}, 0, []string{"True\n"}, control.VerbStatus},
		{[]string{"get", "sshd", "ignoreip"}, 0, []string{"These IP addresses/networks are ignored:\n|- 127.0.0.1/8\n`- admin.example\n"}, control.VerbStatus},
		{[]string{"get", "sshd", "logpath"}, 0, []string{"Current monitored log file(s):\n`- /var/log/auth.log\n"}, control.VerbStatus},
		{[]string{"get", "web", "ignoreip"}, 0, []string{"No IP address/network is ignored\n"}, control.VerbStatus},
		{[]string{"get", "nope", "bantime"}, 1, []string{"no such jail"}, control.VerbStatus},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			n := len(f.requests())
			code, out, errs := runClient(append(tt.args, "--socket", sock)...)
			if code != tt.code {
				t.Fatalf("exit %d, want %d (stderr %q)", code, tt.code, errs)
			}
			text := out
			if code != 0 {
				text = errs
			}
			for _, w := range tt.want {
				if !strings.Contains(text, w) {
					t.Errorf("output %q lacks %q", text, w)
				}
			}
			reqs := f.requests()
			if len(reqs) <= n || reqs[len(reqs)-1].Verb != tt.verb {
				t.Errorf("requests %+v, want a %s", reqs[n:], tt.verb)
			}
		})
	}
	// The ban request carried the canonical address and the duration.
	var sawBan bool
	for _, r := range f.requests() {
		if r.Verb == control.VerbBan && r.IP == "2001:db8::1" && r.For == "2h" {
			sawBan = true
		}
	}
	if !sawBan {
		t.Error("ban request not canonicalised")
	}
}

func TestBadInputNeverSent(t *testing.T) {
	f, sock := startFake(t)
	for _, args := range [][]string{
		{"ban", "sshd", "192.0.2.300"},
		{"ban", "sshd", "192.0.2.0/33"},
		{"ban", "sshd", "0.0.0.0"},
		{"ban", "sshd", "::"},
		{"ban", "sshd", "127.0.0.1"},
		{"ban", "sshd", "::1"},
		{"ban", "sshd", "224.0.0.251"},
		{"ban", "sshd", "ff02::1"},
		{"ban", "sshd", "255.255.255.255"},
		{"ban", "sshd", "169.254.1.1"},
		{"ban", "sshd", "fe80::1"},
		{"ban", "sshd", "0.0.0.0/0"},
		{"unban", "192.0.2.0/33"},
		{"ban", "sshd", "192.0.2.1", "--for", "soon"},
		{"ban", "ss hd", "192.0.2.1"},
		{"unban", "sshd"},
		{"explain", "not-an-ip"},
		{"set", "sshd", "banip", "192.0.2.1", "bogus"},
		{"set", "sshd", "addignoreip", "192.0.2.1"},
		{"get", "sshd", "actions"},
	} {
		code, _, errs := runClient(append(args, "--socket", sock)...)
		if code != ExitUsage {
			t.Errorf("%v: exit %d, want 2 (stderr %q)", args, code, errs)
		}
	}
	if r := f.requests(); len(r) != 0 {
		t.Errorf("bad input reached the daemon: %+v", r)
	}
}

func TestJSONOutput(t *testing.T) {
	_, sock := startFake(t)
	code, out, _ := runClient("banned", "--json", "--socket", sock)
	if code != 0 {
		t.Fatal(code)
	}
	var got map[string][]map[string]any
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatal(err)
	}
	b := got["bans"][0]
	for _, k := range []string{"jail", "ip", "since", "expires", "permanent", "offences"} {
		if _, ok := b[k]; !ok {
			t.Errorf("banned --json lacks %q: %s", k, out)
		}
	}
	code, out, _ = runClient("status", "--json", "--socket", sock)
	if code != 0 || !strings.Contains(out, `"currently_failed": 2`) || !strings.Contains(out, `"total_banned": 3`) {
		t.Errorf("status --json = %d %s", code, out)
	}
}

func TestDaemonNotRunning(t *testing.T) {
	code, _, errs := runClient("status", "--socket", filepath.Join(t.TempDir(), "none.sock"))
	if code != ExitFailure || !strings.Contains(errs, "not running") {
		t.Fatalf("exit %d, stderr %q", code, errs)
	}
}

func TestConfigCheck(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("jail.local", "[sshd]\nenabled = true\nlogpath = /var/log/auth.log\nmaxretry = 4\n")
	code, out, errs := runClient("config", "check", "--config-dir", dir)
	if code != 0 || !strings.Contains(out, "configuration OK") {
		t.Fatalf("good config: exit %d\n%s%s", code, out, errs)
	}
	write("jail.local", "[sshd]\nenabled = true\nlogpath = /var/log/auth.log\nmaxretry = four\n\n[web]\nenabled = true\nfilter = no-such-filter\nlogpath = /var/log/x.log\n")
	code, out, _ = runClient("config", "check", "--config-dir", dir, "--json")
	if code != ExitUsage {
		t.Fatalf("bad config: exit %d\n%s", code, out)
	}
	var rep struct {
		OK     bool `json:"ok"`
		Errors []struct {
			File string `json:"file"`
			Line int    `json:"line"`
			Key  string `json:"key"`
		} `json:"errors"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if rep.OK || len(rep.Errors) == 0 || rep.Errors[0].Key != "maxretry" || rep.Errors[0].Line != 4 ||
		!strings.HasSuffix(rep.Errors[0].File, "jail.local") {
		t.Fatalf("report = %+v", rep)
	}
	// With the value fixed, the broken filter of the other jail is reported.
	write("jail.local", "[sshd]\nenabled = true\nlogpath = /var/log/auth.log\n\n[web]\nenabled = true\nfilter = no-such-filter\nlogpath = /var/log/x.log\n")
	code, out, _ = runClient("config", "check", "--config-dir", dir)
	if code != ExitUsage || !strings.Contains(out, "no-such-filter") {
		t.Fatalf("broken filter: exit %d\n%s", code, out)
	}
}
