package config

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/palisade-project/palisade/internal/fleet"
)

func TestFleetDefaultsAndValues(t *testing.T) {
	cfg, err := loadPalisadeLocal(t, "[Definition]\nloglevel = INFO\n")
	if err != nil {
		t.Fatal(err)
	}
	f := cfg.Daemon.Fleet
	if f.Enabled || !slices.Equal(f.Servers, []string{fleet.DefaultServer}) || f.Key != DefaultFleetKey || f.Trust != DefaultFleetTrust ||
		f.Share != nil || f.Apply != nil || f.Quorum != 1 || f.Rate != fleet.DefaultRate || f.MaxBans != fleet.DefaultActive ||
		f.MaxTTL != fleet.DefaultTTL || f.Prefix4 != 24 || f.Prefix6 != 48 || f.Stream != fleet.DefaultStream ||
		f.Jail != fleet.DefaultJail || f.Queue != fleet.DefaultQueueMax {
		t.Errorf("defaults %+v", f)
	}
	cfg, err = loadPalisadeLocal(t, `[fleet]
enabled = true
servers = nats://10.0.0.1:4222, tls://nats.example.org:4222
name = web-1
key = /etc/palisade/k
trust = /etc/palisade/t
user = web-1
password = secret
tls_ca = /etc/palisade/ca.pem
share = sshd, recidive
apply = none
quorum = 2
max_rate = 100
max_bans = 5000
max_ttl = 2d
max_prefix4 = 32
max_prefix6 = 64
stream = bans
jail = remote
queue = 500
ignoreip = 192.0.2.0/24 2001:db8::1
`)
	if err != nil {
		t.Fatal(err)
	}
	f = cfg.Daemon.Fleet
	want := FleetSettings{Enabled: true, Where: f.Where, Servers: []string{"nats://10.0.0.1:4222", "tls://nats.example.org:4222"}, Name: "web-1",
		Key: "/etc/palisade/k", Trust: "/etc/palisade/t", User: "web-1", Password: "secret", TLSCA: "/etc/palisade/ca.pem",
		Share: []string{"sshd", "recidive"}, Apply: []string{}, Quorum: 2, Rate: 100, MaxBans: 5000, MaxTTL: 48 * time.Hour,
		Prefix4: 32, Prefix6: 64, Stream: "bans", Jail: "remote", Queue: 500,
		IgnoreIP: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24"), netip.MustParsePrefix("2001:db8::1/128")}}
	if !strings.HasSuffix(f.Where, "palisade.local:2") {
		t.Errorf("where %q", f.Where)
	}
	if d := cmp.Diff(want, f, cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); d != "" {
		t.Errorf("settings (-want +got):\n%s", d)
	}
	cfg, err = loadPalisadeLocal(t, "[fleet]\nenabled = true\nshare = *\napply = all\n")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Daemon.Fleet.Share != nil || cfg.Daemon.Fleet.Apply != nil {
		t.Errorf("* and all: %+v", cfg.Daemon.Fleet)
	}
}

func TestFleetErrors(t *testing.T) {
	for _, c := range []struct{ text, want string }{
		{"[fleet]\nenabled = maybe\n", "palisade.local:2: [fleet] enabled"},
		{"[fleet]\nservers = http://x:1\n", `palisade.local:2: [fleet] servers: "http://x:1": scheme "http"`},
		{"[fleet]\nservers = nats://u:p@x:1\n", "not in the URL"},
		{"[fleet]\nservers = x\n", "is not a URL"},
		{"[fleet]\nname = web.1\n", `palisade.local:2: [fleet] name: "web.1" is not an origin name`},
		{"[fleet]\nkey = fleet.key\n", "palisade.local:2: [fleet] key: \"fleet.key\" is not an absolute path"},
		{"[fleet]\nquorum = 0\n", "palisade.local:2: [fleet] quorum: 0 is out of range"},
		{"[fleet]\nmax_prefix4 = 4\n", "max_prefix4: 4 is out of range"},
		{"[fleet]\nmax_ttl = 10s\n", "shorter than 1m"},
		{"[fleet]\nshare = sshd, a/b\n", `share: "a/b" is not a jail name`},
		{"[fleet]\nstream = a.b\n", "is not a stream name"},
		{"[fleet]\ncreds = /a\nuser = u\n", "use one of creds, nkey, or user and password"},
		{"[fleet]\ntls_cert = /c\n", "tls_cert and tls_key go together"},
		{"[fleet]\nignoreip = nonsense!\n", "palisade.local:2: [fleet] ignoreip"},
	} {
		_, err := loadPalisadeLocal(t, c.text)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v\nwant %q", c.text, err, c.want)
		}
	}
	cfg, err := loadPalisadeLocal(t, "[fleet]\nenabld = true\n")
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Warnings) == 0 || !strings.Contains(strings.Join(cfg.Warnings, "\n"), `palisade.local:2: [fleet] unknown option "enabld"`) {
		t.Errorf("warnings %v", cfg.Warnings)
	}
}
