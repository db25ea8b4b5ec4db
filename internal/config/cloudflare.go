package config

import (
	"fmt"
	"net/netip"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/palisade-project/palisade/internal/cloudflare"
	"github.com/palisade-project/palisade/internal/cloudflare/edge"
	"github.com/palisade-project/palisade/internal/config/ini"
	"github.com/palisade-project/palisade/internal/duration"
	"github.com/palisade-project/palisade/internal/firewall"
)

// Defaults of the [cloudflare] section.
const (
	DefaultCloudflareURL      = "https://api.cloudflare.com/client/v4/ips"
	DefaultCloudflareAPI      = "https://api.cloudflare.com/client/v4"
	DefaultCloudflareInterval = 24 * time.Hour
)

// CloudflareSettings is the [cloudflare] section of palisade.conf: the
// origin lock (web ports reachable only from Cloudflare) and edge bans.
type CloudflareSettings struct {
	// Enabled turns the lock on when the daemon starts and keeps it in
	// sync with Cloudflare's list.
	Enabled bool
	// Ports are the locked TCP ports (default 80,443; never every port).
	Ports []firewall.PortRange
	// URL is Cloudflare's JSON API of its ranges (https; http warns).
	URL string
	// Interval between syncs (default 1d).
	Interval time.Duration
	// Allow are extra sources that may reach the locked ports.
	Allow []netip.Prefix
	// BlockType is what other sources get: drop (default) or reject.
	BlockType firewall.Block
	// EdgeBans mirrors the bans of jails on locked ports into the zone's
	// IP Access Rules; TokenFile (root-only) holds the API token and Zone
	// is the zone id. APIURL is Cloudflare's API root (for tests or a
	// relay on a loopback address).
	EdgeBans  bool
	TokenFile string
	Zone      string
	APIURL    string
}

func defaultCloudflare() CloudflareSettings {
	return CloudflareSettings{
		Ports:     []firewall.PortRange{{From: 80, To: 80}, {From: 443, To: 443}},
		URL:       DefaultCloudflareURL,
		Interval:  DefaultCloudflareInterval,
		BlockType: firewall.Drop,
		APIURL:    DefaultCloudflareAPI,
	}
}

var cloudflareKeys = map[string]bool{
	"enabled": true, "ports": true, "url": true, "interval": true, "allow": true, "blocktype": true,
	"edge_bans": true, "token_file": true, "zone": true, "api_url": true,
}

// readCloudflare reads the [cloudflare] section of c into cf, returning
// the errors (with file:line) and warnings.
func readCloudflare(c *ini.Config, cf *CloudflareSettings) (ErrorList, []string) {
	const sec = "cloudflare"
	r := &reader{c: c, section: sec}
	var warns []string
	opts, _ := c.Options(sec, false)
	sort.Strings(opts)
	for _, o := range opts {
		if !cloudflareKeys[o] {
			warns = append(warns, fmt.Sprintf("%s[cloudflare] unknown option %q (known: enabled, ports, url, interval, allow, blocktype, edge_bans, token_file, zone, api_url)", where(c, sec, o), o))
		}
	}
	cf.Enabled = r.boolean("enabled", cf.Enabled)
	if s := r.str("ports", ""); s != "" {
		if ports, err := cloudflare.ParsePorts(s); err != nil {
			r.fail("ports", "%v", err)
		} else {
			cf.Ports = ports
		}
	}
	if s := r.str("url", ""); s != "" {
		w, err := cloudflare.CheckSource(s)
		if err == nil && !cloudflare.IsURL(s) {
			err = fmt.Errorf("%q is not an https:// URL (a file is given with palisade cloudflare sync --source)", s)
		}
		if err != nil {
			r.fail("url", "%v", err)
		} else {
			cf.URL = s
			if w != "" {
				warns = append(warns, where(c, sec, "url")+"[cloudflare] url "+w)
			}
		}
	}
	if s := r.str("interval", ""); s != "" {
		d, err := duration.Parse(s)
		switch {
		case err != nil:
			r.fail("interval", "%v", err)
		case d < time.Minute || d > 90*24*time.Hour:
			r.fail("interval", "%q must be between 1m and 90d", s)
		default:
			cf.Interval = d
		}
	}
	if s := r.str("allow", ""); s != "" {
		cf.Allow = nil
		for _, item := range splitList(s) {
			p, err := parsePrefixOrAddr(item)
			if err != nil {
				r.fail("allow", "%q: %v", item, err)
				continue
			}
			cf.Allow = append(cf.Allow, p)
		}
	}
	if s := r.str("blocktype", ""); s != "" {
		if b, ok := parseBlock(s); ok {
			cf.BlockType = b
		} else {
			r.fail("blocktype", "unknown block type %q (want drop or reject)", s)
		}
	}
	cf.EdgeBans = r.boolean("edge_bans", cf.EdgeBans)
	if s := r.str("token_file", ""); s != "" {
		if !filepath.IsAbs(s) {
			r.fail("token_file", "%q is not an absolute path", s)
		} else {
			cf.TokenFile = filepath.Clean(s)
		}
	}
	if s := r.str("zone", ""); s != "" {
		if !edge.ValidZone(s) {
			r.fail("zone", "%q is not a zone id (32 lower-case hexadecimal digits, shown on the zone's overview page)", s)
		} else {
			cf.Zone = s
		}
	}
	if s := r.str("api_url", ""); s != "" {
		if _, err := edge.CheckBaseURL(s); err != nil {
			r.fail("api_url", "%v", err)
		} else {
			cf.APIURL = strings.TrimSuffix(s, "/")
		}
	}
	if cf.EdgeBans {
		if cf.TokenFile == "" && !c.HasOption(sec, "token_file", false) {
			r.fail("edge_bans", "edge_bans = true needs token_file (a root-only file holding the API token)")
		}
		if cf.Zone == "" && !c.HasOption(sec, "zone", false) {
			r.fail("edge_bans", "edge_bans = true needs zone (the zone id)")
		}
	}
	return r.errs, warns
}

func where(c *ini.Config, sec, key string) string {
	if v, ok := c.Raw(sec, key); ok {
		return v.Where() + ": "
	}
	return ""
}

// parsePrefixOrAddr parses an address (a full-length prefix) or a CIDR
// prefix; host bits are cleared.
func parsePrefixOrAddr(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("not an address or CIDR prefix")
		}
		p, err = firewall.Canonical(p)
		if err != nil {
			return netip.Prefix{}, err
		}
		if p.Bits() == 0 {
			return netip.Prefix{}, fmt.Errorf("the default route would open the ports to everyone")
		}
		return p, nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Prefix{}, fmt.Errorf("not an address or CIDR prefix")
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}
