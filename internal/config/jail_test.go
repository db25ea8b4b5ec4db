package config

import (
	"errors"
	"log/slog"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	defaults "github.com/palisade-project/palisade/config"
	"github.com/palisade-project/palisade/internal/firewall"
)

var testServices = firewall.Services{"ssh/tcp": 22, "ftp/tcp": 21, "ftp-data/tcp": 20, "ftps/tcp": 990, "ftps-data/tcp": 989}

var builtin = fstest.MapFS{
	"jail.conf": {Data: []byte(`[DEFAULT]
bantime = 10m
findtime = 10m
maxretry = 5
filter = %(__name__)s
[sshd]
enabled = true
logpath = /var/log/auth.log
[proftpd]
logpath = /var/log/proftpd.log
`)},
	"palisade.conf": {Data: []byte("[Definition]\nloglevel = INFO\ndbfile = /var/lib/palisade/palisade.db\n[firewall]\nbackend = auto\n")},
}

func TestLoadGood(t *testing.T) {
	cfg, err := Load(filepath.Join("testdata", "jailgood"), LoadOptions{Builtin: builtin, Services: testServices})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Daemon.LogLevel != slog.LevelDebug || cfg.Daemon.Socket != "/run/p/p.sock" ||
		cfg.Daemon.DBFile != DefaultDBFile || cfg.Daemon.Firewall.Backend != "log" || cfg.Daemon.Firewall.BlockType != firewall.Drop {
		t.Errorf("daemon = %+v", cfg.Daemon)
	}
	en := cfg.Enabled()
	if len(en) != 2 || en[0].Name != "proftpd" || en[1].Name != "sshd" {
		t.Fatalf("enabled = %v", en)
	}
	s := en[1]
	if s.MaxRetry != 4 || s.FindTime != 10*time.Minute || s.BanTime != time.Hour {
		t.Errorf("sshd counting = %d %v %v", s.MaxRetry, s.FindTime, s.BanTime)
	}
	if s.Filter.Name != "sshd" || len(s.Filter.Args) != 1 || s.Filter.Args[0].Name != "mode" || s.Filter.Args[0].Value != "aggressive" {
		t.Errorf("filter = %+v", s.Filter)
	}
	if fs := s.Source.Files; len(fs) != 2 || fs[0] != (LogPath{Pattern: "/var/log/auth.log"}) || fs[1] != (LogPath{Pattern: "/var/log/secure*", Tail: true}) {
		t.Errorf("logpaths = %+v", s.Source.Files)
	}
	if s.Source.Backend != "auto" || s.Source.Journal || s.Source.JournalFallback {
		t.Errorf("source = %+v: a logpath set in jail.local is watched, never replaced by the journal", s.Source)
	}
	if len(s.Ports) != 1 || s.Ports[0] != (firewall.PortRange{From: 22, To: 22}) {
		t.Errorf("ports = %+v", s.Ports)
	}
	inc := s.Increment
	if !inc.Enabled || inc.Factor != 24 || inc.MaxTime != 5*7*24*time.Hour || len(inc.Multipliers) != 3 {
		t.Errorf("increment = %+v", inc)
	}
	if s.IPv6Prefix != 64 || s.Options["some.unknown.option"] != "kept" {
		t.Errorf("ipv6prefix %d, unknown option %q", s.IPv6Prefix, s.Options["some.unknown.option"])
	}
	wantIgnore := []IgnoreEntry{
		{Prefix: netip.MustParsePrefix("127.0.0.0/8"), Text: "127.0.0.1/8"},
		{Prefix: netip.MustParsePrefix("192.0.2.0/24"), Text: "192.0.2.0/255.255.255.0"},
		{Prefix: netip.MustParsePrefix("::1/128"), Text: "::1"},
		{Host: "admin.example.org", Text: "admin.example.org"},
	}
	if len(s.IgnoreIP) != len(wantIgnore) {
		t.Fatalf("ignoreip = %+v", s.IgnoreIP)
	}
	for i, w := range wantIgnore {
		if s.IgnoreIP[i] != w {
			t.Errorf("ignoreip[%d] = %+v, want %+v", i, s.IgnoreIP[i], w)
		}
	}
	if !strings.HasSuffix(s.Where, "jail.local:8") {
		t.Errorf("where = %q", s.Where)
	}
	p := en[0]
	if p.BanTime >= 0 || len(p.Ports) != 2 || p.Filter.Name != "proftpd" {
		t.Errorf("proftpd = bantime %v ports %+v filter %+v", p.BanTime, p.Ports, p.Filter)
	}
	if spec := p.Spec(firewall.Reject); spec.Block != firewall.Reject || spec.Scope.Protocol != "tcp" {
		t.Errorf("spec = %+v", spec)
	}
	// The disabled jail with a bad value is no error.
	if j, ok := cfg.Jail("nginx-http-auth"); !ok || j.Enabled {
		t.Errorf("nginx-http-auth = %+v, %v", j, ok)
	}
}

func TestLoadBadNamesFileLineKey(t *testing.T) {
	cfg, err := Load(filepath.Join("testdata", "jailbad"), LoadOptions{Builtin: builtin, Services: testServices})
	if cfg != nil {
		t.Fatal("a configuration with errors was returned")
	}
	var list ErrorList
	if !errors.As(err, &list) {
		t.Fatalf("err = %v, want ErrorList", err)
	}
	want := map[string]int{"maxretry": 3, "findtime": 4, "ignoreip": 5, "port": 6}
	got := map[string]int{}
	for _, e := range list {
		if !strings.HasSuffix(e.File, filepath.Join("jailbad", "jail.local")) {
			t.Errorf("error %v: file %q", e, e.File)
		}
		got[e.Key] = e.Line
	}
	for k, line := range want {
		if got[k] != line {
			t.Errorf("key %s: line %d, want %d (errors: %v)", k, got[k], line, list)
		}
	}
}

func TestNoConfigUsesBuiltin(t *testing.T) {
	cfg, err := Load(filepath.Join(t.TempDir(), "missing"), LoadOptions{Builtin: builtin, Services: testServices})
	if err != nil {
		t.Fatal(err)
	}
	en := cfg.Enabled()
	if len(en) != 1 || en[0].Name != "sshd" || en[0].MaxRetry != 5 || en[0].Source.Files[0].Pattern != "/var/log/auth.log" {
		t.Fatalf("enabled = %+v", en)
	}
	if !en[0].Source.JournalFallback {
		t.Errorf("built-in sshd source = %+v, want the journal fallback", en[0].Source)
	}
	if cfg.Daemon.Socket != DefaultSocket || cfg.Daemon.Firewall.Backend != "auto" {
		t.Errorf("daemon = %+v", cfg.Daemon)
	}
}

func TestParseIgnore(t *testing.T) {
	tests := []struct {
		in   string
		want string
		ok   bool
	}{
		{"192.0.2.7", "192.0.2.7/32", true},
		{"2001:db8::/32", "2001:db8::/32", true},
		{"198.51.100.9/24", "198.51.100.0/24", true},
		{"10.0.0.0/255.0.0.0", "10.0.0.0/8", true},
		{"10.0.0.0/255.0.255.0", "", false},
		{"host.example.org", "host.example.org", true},
		{"bad_host!", "", false},
		{"300.1.1.1", "", false},
	}
	for _, tt := range tests {
		e, err := parseIgnore(tt.in)
		if (err == nil) != tt.ok {
			t.Errorf("%q: err %v", tt.in, err)
			continue
		}
		if !tt.ok {
			continue
		}
		got := e.Host
		if e.Prefix.IsValid() {
			got = e.Prefix.String()
		}
		if got != tt.want {
			t.Errorf("%q = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestShippedDefaults(t *testing.T) {
	services, err := firewall.LoadServices("/etc/services")
	if err != nil {
		t.Skip("no /etc/services:", err)
	}
	cfg, err := Load(t.TempDir(), LoadOptions{Builtin: defaults.FS(), Services: services})
	if err != nil {
		t.Fatal(err)
	}
	en := cfg.Enabled()
	if len(en) != 1 || en[0].Name != "sshd" || en[0].Source.Backend != "auto" || en[0].Source.JournalMatch == "" || !en[0].Source.JournalFallback ||
		len(en[0].Ports) != 1 || en[0].Ports[0].From != 22 {
		t.Fatalf("shipped defaults enable %+v", en)
	}
	if _, ok := cfg.Jail("recidive"); !ok {
		t.Error("no recidive jail")
	}
}
