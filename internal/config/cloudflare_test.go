package config

import (
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/palisade-project/palisade/internal/firewall"
)

func loadPalisadeLocal(t *testing.T, text string) (*Config, error) {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "palisade.local"), []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return Load(dir, LoadOptions{Builtin: builtin, Services: testServices})
}

func TestCloudflareDefaultsAndValues(t *testing.T) {
	cfg, err := loadPalisadeLocal(t, "[Definition]\nloglevel = INFO\n")
	if err != nil {
		t.Fatal(err)
	}
	cf := cfg.Daemon.Cloudflare
	if cf.Enabled || firewall.FormatPorts(cf.Ports) != "80,443" || cf.URL != DefaultCloudflareURL ||
		cf.Interval != 24*time.Hour || cf.BlockType != firewall.Drop || cf.EdgeBans || cf.APIURL != DefaultCloudflareAPI {
		t.Errorf("defaults %+v", cf)
	}
	cfg, err = loadPalisadeLocal(t, `[cloudflare]
enabled = yes
ports = https, 8443, 8000-8010
url = https://mirror.example.org/ips
interval = 6h
allow = 192.0.2.7, 198.51.100.0/24
        2001:db8::/48
blocktype = reject
edge_bans = true
token_file = /etc/palisade/cloudflare.token
zone = 023e105f4ecef8ad9ca31a8372d0c353
api_url = http://127.0.0.1:8080/client/v4/
`)
	if err != nil {
		t.Fatal(err)
	}
	cf = cfg.Daemon.Cloudflare
	wantAllow := []netip.Prefix{netip.MustParsePrefix("192.0.2.7/32"), netip.MustParsePrefix("198.51.100.0/24"), netip.MustParsePrefix("2001:db8::/48")}
	if !cf.Enabled || firewall.FormatPorts(cf.Ports) != "443,8000:8010,8443" || cf.URL != "https://mirror.example.org/ips" ||
		cf.Interval != 6*time.Hour || !slices.Equal(cf.Allow, wantAllow) || cf.BlockType != firewall.Reject ||
		!cf.EdgeBans || cf.TokenFile != "/etc/palisade/cloudflare.token" || cf.Zone != "023e105f4ecef8ad9ca31a8372d0c353" ||
		cf.APIURL != "http://127.0.0.1:8080/client/v4" {
		t.Errorf("values %+v", cf)
	}
	if len(cfg.Warnings) != 0 {
		t.Errorf("warnings %v", cfg.Warnings)
	}
}

func TestCloudflareErrorsNameFileAndLine(t *testing.T) {
	_, err := loadPalisadeLocal(t, `[cloudflare]
enabled = maybe
ports = all
url = ftp://example.org/ips
interval = 10s
allow = 192.0.2.0/24, not-an-ip, 0.0.0.0/0
blocktype = accept
zone = 023E105F
api_url = http://api.example.org/client/v4
edge_bans = true
token_file = relative/token
`)
	if err == nil {
		t.Fatal("bad [cloudflare] accepted")
	}
	list := AsErrorList(err)
	want := map[string]int{ // key -> line
		"enabled": 2, "ports": 3, "url": 4, "interval": 5, "blocktype": 7, "zone": 8, "api_url": 9, "token_file": 11,
	}
	got := map[string]int{}
	allows := 0
	for _, e := range list {
		if e.Section != "cloudflare" || !strings.HasSuffix(e.File, "palisade.local") {
			t.Errorf("error without section or file: %v", e)
		}
		if e.Key == "allow" {
			allows++
			if e.Line != 6 {
				t.Errorf("allow error on line %d: %v", e.Line, e)
			}
			continue
		}
		got[e.Key] = e.Line
	}
	for k, line := range want {
		if got[k] != line {
			t.Errorf("%s: error line %d, want %d (errors: %v)", k, got[k], line, err)
		}
	}
	if allows != 2 {
		t.Errorf("%d allow errors, want 2 (not-an-ip, the default route): %v", allows, err)
	}

	if _, err := loadPalisadeLocal(t, "[cloudflare]\nports = 80,443,20-30\n"); err == nil || !strings.Contains(err.Error(), "port 22") {
		t.Errorf("ports covering SSH: %v", err)
	}
	_, err = loadPalisadeLocal(t, "[cloudflare]\nedge_bans = true\n")
	if err == nil || !strings.Contains(err.Error(), "needs token_file") || !strings.Contains(err.Error(), "needs zone") {
		t.Errorf("edge_bans without token and zone: %v", err)
	}
}

func TestCloudflareWarnings(t *testing.T) {
	cfg, err := loadPalisadeLocal(t, "[cloudflare]\nenabled = true\ninterva = 1h\nurl = http://127.0.0.1:9/ips\n")
	if err != nil {
		t.Fatal(err)
	}
	joined := strings.Join(cfg.Warnings, "\n")
	if !strings.Contains(joined, `palisade.local:3: [cloudflare] unknown option "interva"`) || !strings.Contains(joined, "plain http") {
		t.Errorf("warnings %q", joined)
	}
}
