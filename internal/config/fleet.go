package config

import (
	"fmt"
	"net/netip"
	"net/url"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/palisade-project/palisade/internal/config/ini"
	"github.com/palisade-project/palisade/internal/firewall"
	"github.com/palisade-project/palisade/internal/fleet"
)

// Defaults of the [fleet] section.
const (
	DefaultFleetKey   = "/etc/palisade/fleet.key"
	DefaultFleetTrust = "/etc/palisade/fleet.trust"
)

// FleetSettings is the [fleet] section of palisade.conf: fleet-wide bans
// over NATS JetStream (internal/fleet). Nothing of the fleet runs unless
// Enabled.
type FleetSettings struct {
	Enabled bool
	// Where is the file:line of the enabled option (for messages).
	Where string
	// Servers are the NATS URLs (nats://, tls://).
	Servers []string
	// Name is this server's origin name ("" = the host name).
	Name string
	// Key is the signing key file; Trust the trust file.
	Key, Trust string
	// NATS authentication: Creds (a credentials file), NKey (a seed
	// file), or User and Password; TLS with TLSCA, TLSCert, TLSKey.
	Creds, NKey    string
	User, Password string
	TLSCA          string
	TLSCert        string
	TLSKey         string
	// Share lists the local jails whose bans are published (nil: all).
	Share []string
	// Apply lists the origins' jails whose bans are applied here (nil:
	// all; empty non-nil: none).
	Apply []string
	// Quorum is the number of distinct origins an address needs.
	Quorum int
	// Caps per origin.
	Rate    int
	MaxBans int
	MaxTTL  time.Duration
	Prefix4 int
	Prefix6 int
	// Stream is the JetStream stream; Jail the local jail of remote bans;
	// Queue bounds the outgoing queue.
	Stream string
	Jail   string
	Queue  int
	// IgnoreIP are addresses never banned by the fleet, besides every
	// jail's ignoreip and the host's own addresses.
	IgnoreIP []netip.Prefix
}

func defaultFleet() FleetSettings {
	return FleetSettings{
		Servers: []string{fleet.DefaultServer}, Key: DefaultFleetKey, Trust: DefaultFleetTrust,
		Quorum: 1, Rate: fleet.DefaultRate, MaxBans: fleet.DefaultActive, MaxTTL: fleet.DefaultTTL,
		Prefix4: fleet.DefaultPrefix4, Prefix6: fleet.DefaultPrefix6,
		Stream: fleet.DefaultStream, Jail: fleet.DefaultJail, Queue: fleet.DefaultQueueMax,
	}
}

var fleetKeys = []string{"enabled", "servers", "name", "key", "trust", "creds", "nkey", "user", "password",
	"tls_ca", "tls_cert", "tls_key", "share", "apply", "quorum", "max_rate", "max_bans", "max_ttl",
	"max_prefix4", "max_prefix6", "stream", "jail", "queue", "ignoreip"}

// readFleet reads the [fleet] section of c into f, returning the errors
// (with file:line) and warnings.
func readFleet(c *ini.Config, f *FleetSettings) (ErrorList, []string) {
	const sec = "fleet"
	r := &reader{c: c, section: sec}
	var warns []string
	opts, _ := c.Options(sec, false)
	sort.Strings(opts)
	for _, o := range opts {
		if !slices.Contains(fleetKeys, o) {
			warns = append(warns, fmt.Sprintf("%s[fleet] unknown option %q (known: %s)", where(c, sec, o), o, strings.Join(fleetKeys, ", ")))
		}
	}
	f.Enabled = r.boolean("enabled", f.Enabled)
	if f.Enabled {
		f.Where = strings.TrimSuffix(where(c, sec, "enabled"), ": ")
	}
	if s := r.str("servers", ""); s != "" {
		f.Servers = nil
		for _, u := range splitList(s) {
			if err := checkNATSURL(u); err != nil {
				r.fail("servers", "%v", err)
				continue
			}
			f.Servers = append(f.Servers, u)
		}
	}
	if s := r.str("name", ""); s != "" {
		if !fleet.ValidName(s) {
			r.fail("name", "%q is not an origin name (1 to 64 letters, digits, - and _)", s)
		} else {
			f.Name = s
		}
	}
	for _, p := range []struct {
		key string
		dst *string
	}{{"key", &f.Key}, {"trust", &f.Trust}, {"creds", &f.Creds}, {"nkey", &f.NKey},
		{"tls_ca", &f.TLSCA}, {"tls_cert", &f.TLSCert}, {"tls_key", &f.TLSKey}} {
		if s := r.str(p.key, ""); s != "" {
			if !filepath.IsAbs(s) {
				r.fail(p.key, "%q is not an absolute path", s)
			} else {
				*p.dst = filepath.Clean(s)
			}
		}
	}
	f.User = r.str("user", f.User)
	f.Password = r.str("password", f.Password)
	if (f.TLSCert == "") != (f.TLSKey == "") {
		r.fail("tls_cert", "tls_cert and tls_key go together")
	}
	if n := btoi(f.Creds != "") + btoi(f.NKey != "") + btoi(f.User != ""); n > 1 {
		r.fail("creds", "use one of creds, nkey, or user and password")
	}
	if f.Password != "" && f.User == "" {
		r.fail("password", "password needs user")
	}
	readJails := func(key string) ([]string, bool) {
		if !c.HasOption(sec, key, true) {
			return nil, false
		}
		s := r.str(key, "")
		switch strings.ToLower(s) {
		case "*", "all":
			return nil, true
		case "", "none":
			return []string{}, true
		}
		list := []string{}
		for _, j := range splitList(s) {
			if firewall.CheckJailName(j) != nil {
				r.fail(key, "%q is not a jail name", j)
				continue
			}
			list = append(list, j)
		}
		return list, true
	}
	if l, ok := readJails("share"); ok {
		f.Share = l
	}
	if l, ok := readJails("apply"); ok {
		f.Apply = l
	}
	f.Quorum = r.integer("quorum", f.Quorum, 1, 100)
	f.Rate = r.integer("max_rate", f.Rate, 0, 1_000_000)
	f.MaxBans = r.integer("max_bans", f.MaxBans, 0, 10_000_000)
	f.MaxTTL = r.duration("max_ttl", f.MaxTTL, false)
	if f.MaxTTL != 0 && f.MaxTTL < time.Minute {
		r.fail("max_ttl", "%s is shorter than 1m", f.MaxTTL)
	}
	f.Prefix4 = r.integer("max_prefix4", f.Prefix4, 8, 32)
	f.Prefix6 = r.integer("max_prefix6", f.Prefix6, 16, 128)
	if s := r.str("stream", ""); s != "" {
		if strings.ContainsAny(s, " .*>\t/\\") || len(s) > 64 {
			r.fail("stream", "%q is not a stream name (no blanks, '.', '*', '>', slashes; at most 64)", s)
		} else {
			f.Stream = s
		}
	}
	if s := r.str("jail", ""); s != "" {
		if firewall.CheckJailName(s) != nil {
			r.fail("jail", "%q is not a jail name", s)
		} else {
			f.Jail = s
		}
	}
	f.Queue = r.integer("queue", f.Queue, 1, 1_000_000)
	if s := r.str("ignoreip", ""); s != "" {
		f.IgnoreIP = nil
		for _, item := range splitList(s) {
			p, err := parsePrefixOrAddr(item)
			if err != nil {
				r.fail("ignoreip", "%q: %v", item, err)
				continue
			}
			f.IgnoreIP = append(f.IgnoreIP, p)
		}
	}
	return r.errs, warns
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

func checkNATSURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		return fmt.Errorf("%q is not a URL (want nats://HOST:PORT or tls://HOST:PORT)", s)
	}
	switch u.Scheme {
	case "nats", "tls", "ws", "wss":
	default:
		return fmt.Errorf("%q: scheme %q (want nats, tls, ws or wss)", s, u.Scheme)
	}
	if u.User != nil {
		return fmt.Errorf("%q: put credentials in user/password, creds or nkey, not in the URL", u.Redacted())
	}
	return nil
}
