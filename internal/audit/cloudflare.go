package audit

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/palisade-project/palisade/internal/cloudflare"
	"github.com/palisade-project/palisade/internal/config"
	"github.com/palisade-project/palisade/internal/firewall"
	"github.com/palisade-project/palisade/internal/harden/fsx"
)

// cloudflareChecker checks the Cloudflare origin lock where a web server
// listens.
type cloudflareChecker struct{}

func (cloudflareChecker) Area() string { return AreaCloudflare }

// webServers are the web servers the checks know, with their enabled
// configuration files (globs under the root).
func webServers() []struct {
	name  string
	files []string
} {
	return []struct {
		name  string
		files []string
	}{
		{"nginx", []string{"/etc/nginx/nginx.conf", "/etc/nginx/conf.d/*.conf", "/etc/nginx/sites-enabled/*"}},
		{"apache", []string{"/etc/apache2/apache2.conf", "/etc/apache2/conf-enabled/*.conf", "/etc/apache2/sites-enabled/*.conf", "/etc/apache2/mods-enabled/*.conf", "/etc/httpd/conf/httpd.conf", "/etc/httpd/conf.d/*.conf"}},
	}
}

func (cloudflareChecker) Check(ctx context.Context, st *State) []Check {
	lock := Check{ID: "cloudflare.lock", Severity: High, Title: "the web ports accept Cloudflare only (origin lock in force)"}
	fresh := Check{ID: "cloudflare.fresh", Severity: Medium, Title: "the lock's list of Cloudflare ranges is current"}
	realIP := Check{ID: "cloudflare.real-ip", Severity: Medium, Title: "the web server logs the visitor's address (CF-Connecting-IP), so web jails can ban"}
	pulls := Check{ID: "cloudflare.origin-pulls", Severity: Advice, Status: Info, Title: "Authenticated Origin Pulls (only your zone may reach the origin)"}
	all := []*Check{&lock, &fresh, &realIP, &pulls}
	result := func() []Check {
		out := make([]Check, len(all))
		for i, c := range all {
			out[i] = *c
		}
		return out
	}
	skipAll := func(msg string, ev ...string) []Check {
		for _, c := range all {
			c.Status, c.Message, c.Evidence = Skip, msg, ev
		}
		return result()
	}
	cfg, err := st.Config()
	if err != nil {
		return skipAll("the palisade configuration does not load (see jails.config)")
	}
	ports := cfg.Daemon.Cloudflare.Ports
	if len(ports) == 0 {
		ports = []firewall.PortRange{{From: 80, To: 80}, {From: 443, To: 443}}
	}
	socks, serr := st.Sockets()
	if serr != nil {
		return skipAll("the listening sockets cannot be read", serr.Error())
	}
	var web []string
	for _, s := range Exposed(socks) {
		if s.Proto == "tcp" && slices.ContainsFunc(ports, func(p firewall.PortRange) bool { return p.From <= s.Port && s.Port <= p.To }) {
			web = append(web, s.String())
		}
	}
	if len(web) == 0 {
		return skipAll("no web server listens on " + firewall.FormatPorts(ports) + " (the lock's ports)")
	}
	status, err := st.Cloudflare(ctx)
	if err != nil {
		return skipAll("the lock's state cannot be read: "+err.Error(), web...)
	}
	configured := status.Enabled || status.State == cloudflare.StateOn
	ev := append(slices.Clone(web), cfEvidence(status)...)
	lock.Evidence, fresh.Evidence = ev, cfEvidence(status)
	if !configured {
		lock.Status, lock.Severity = Info, Advice
		lock.Message = "a web server listens on " + firewall.FormatPorts(ports) + " and no Cloudflare lock is configured; if the site is behind Cloudflare, its origin is reachable around the proxy"
		lock.Fix = "palisade cloudflare sync (and enabled = true in [cloudflare] of " + st.src.ConfigDir + "/palisade.local)"
		for _, c := range []*Check{&fresh, &realIP, &pulls} {
			c.Status, c.Message = Skip, "no Cloudflare lock is configured"
		}
		return result()
	}
	switch {
	case status.State != cloudflare.StateOn:
		lock.Status = Fail
		lock.Message = "enabled in [cloudflare] but the lock is " + status.State + ": the web ports accept everybody"
		lock.Fix = "palisade cloudflare sync"
	case !status.Kernel.Installed:
		lock.Status = Fail
		lock.Message = "the lock is on but the kernel does not hold it (flushed?): the web ports accept everybody"
		lock.Fix = "palisade cloudflare sync (a running daemon re-installs it within seconds)"
	case !status.Kernel.InSync:
		lock.Status = Fail
		lock.Message = "the kernel does not hold the lock as applied"
		lock.Fix = "palisade cloudflare sync"
	default:
		lock.Status, lock.Message = Pass, "only Cloudflare's ranges reach "+status.Ports
	}
	cfFresh(&fresh, status, cfg, st.Now())
	cfRealIP(&realIP, st)
	cfOriginPulls(&pulls, st)
	return result()
}

func cfEvidence(s *cloudflare.Status) []string {
	var ev []string
	ev = append(ev, fmt.Sprintf("lock %s (enabled = %v, daemon answered: %v), ports %s", s.State, s.Enabled, s.Daemon, s.Ports))
	if s.Fetched != nil {
		ev = append(ev, fmt.Sprintf("list: %d IPv4 + %d IPv6 ranges from %s, fetched %s", len(s.IPv4), len(s.IPv6), s.Source, s.Fetched.UTC().Format(time.RFC3339)))
	}
	if s.LastSuccess != nil {
		ev = append(ev, "last successful sync "+s.LastSuccess.UTC().Format(time.RFC3339))
	}
	ev = append(ev, fmt.Sprintf("kernel: installed %v, in sync %v", s.Kernel.Installed, s.Kernel.InSync))
	for _, w := range s.Warnings {
		ev = append(ev, "warning: "+w)
	}
	return ev
}

// cfFresh judges the list's age: stale after three sync intervals (the
// status warning's own threshold) or while only the embedded snapshot is
// in force.
func cfFresh(c *Check, s *cloudflare.Status, cfg *config.Config, now time.Time) {
	if s.State != cloudflare.StateOn {
		c.Status, c.Message = Skip, "the lock is not on"
		return
	}
	interval := cfg.Daemon.Cloudflare.Interval
	if interval <= 0 {
		interval = 24 * time.Hour
	}
	last := s.LastSuccess
	if last == nil {
		last = s.Fetched
	}
	switch {
	case s.Snapshot.InUse:
		c.Status = Fail
		c.Message = fmt.Sprintf("the lock uses the embedded snapshot of %s (%d days old): no list was ever fetched, and Cloudflare may have added ranges since", s.Snapshot.Date, s.Snapshot.AgeDays)
		c.Fix = "palisade cloudflare sync"
	case last == nil:
		c.Status, c.Message, c.Fix = Fail, "the list in force has no fetch time", "palisade cloudflare sync"
	case now.Sub(*last) > 3*interval:
		c.Status = Fail
		c.Message = fmt.Sprintf("the list was last fetched %s ago (interval %s): Cloudflare's new ranges are refused", now.Sub(*last).Round(time.Hour), cloudflare.FormatInterval(interval))
		if s.LastError != "" {
			c.Message += "; the last sync failed: " + s.LastError
		}
		c.Fix = "palisade cloudflare sync (and keep the daemon running with enabled = true in [cloudflare], which syncs every interval)"
	case s.Failures > 0:
		c.Status = Warn
		c.Message = fmt.Sprintf("current, but the last %d sync(s) failed: %s", s.Failures, s.LastError)
		c.Fix = "palisade cloudflare sync"
	case !s.Enabled:
		c.Status = Warn
		c.Message = "current, but nothing keeps it current: enabled = false in [cloudflare]"
		c.Fix = "set enabled = true in [cloudflare] of " + cfg.Dir + "/palisade.local; then palisade reload"
	default:
		c.Status, c.Message = Pass, "fetched "+now.Sub(*last).Round(time.Minute).String()+" ago, synced every "+cloudflare.FormatInterval(interval)
	}
}

// configLines returns the lines of a web server's enabled configuration
// files that contain one of the words (case-insensitive), as file:line.
func configLines(st *State, globs []string, words ...string) (hits []string, files int) {
	seen := map[string]bool{}
	for _, g := range globs {
		matches, _ := filepath.Glob(st.Path(g))
		for _, m := range matches {
			if seen[m] || len(seen) >= 500 {
				continue
			}
			seen[m] = true
			if fi, err := os.Stat(m); err != nil || !fi.Mode().IsRegular() {
				continue
			}
			data, err := fsx.ReadFile(m)
			if err != nil {
				continue
			}
			files++
			for i, line := range fsx.SplitLines(data) {
				t := strings.TrimSpace(line)
				if strings.HasPrefix(t, "#") {
					continue
				}
				lt := strings.ToLower(t)
				for _, w := range words {
					if strings.Contains(lt, strings.ToLower(w)) {
						hits = append(hits, m+":"+strconv.Itoa(i+1)+": "+t)
						break
					}
				}
			}
		}
	}
	return hits, files
}

func cfRealIP(c *Check, st *State) {
	type found struct{ name, fix string }
	var missing []found
	for _, ws := range webServers() {
		hits, files := configLines(st, ws.files, "real_ip_header", "remoteipheader")
		if files == 0 {
			continue
		}
		ok := false
		for _, h := range hits {
			if strings.Contains(strings.ToLower(h), "cf-connecting-ip") {
				ok = true
				c.Evidence = append(c.Evidence, ws.name+": "+h)
			}
		}
		if !ok {
			fix := "palisade cloudflare real-ip nginx > /etc/nginx/conf.d/cloudflare-real-ip.conf && nginx -t && systemctl reload nginx"
			if ws.name == "apache" {
				fix = "palisade cloudflare real-ip apache > /etc/apache2/conf-available/cloudflare-real-ip.conf && a2enmod remoteip && a2enconf cloudflare-real-ip && apachectl configtest && systemctl reload apache2"
			}
			missing = append(missing, found{ws.name, fix})
			c.Evidence = append(c.Evidence, fmt.Sprintf("%s: no real_ip_header/RemoteIPHeader CF-Connecting-IP in its %d enabled configuration file(s)", ws.name, files))
		}
	}
	if len(c.Evidence) == 0 {
		c.Status = Skip
		c.Message = "no nginx or apache configuration found (configure the real-IP header of your web server by hand)"
		return
	}
	if len(missing) == 0 {
		c.Status, c.Message = Pass, "the web server takes the visitor's address from CF-Connecting-IP"
		return
	}
	c.Status = Fail
	c.Message = missing[0].name + " logs Cloudflare's addresses, not the visitors': web jails can only ever ban Cloudflare (which palisade refuses)"
	c.Fix = missing[0].fix
}

func cfOriginPulls(c *Check, st *State) {
	var hits []string
	for _, ws := range webServers() {
		h, _ := configLines(st, ws.files, "ssl_verify_client", "sslverifyclient")
		for _, l := range h {
			ll := strings.ToLower(l)
			if strings.Contains(ll, " on") || strings.Contains(ll, "require") {
				hits = append(hits, ws.name+": "+l)
			}
		}
	}
	c.Evidence = hits
	if len(hits) > 0 {
		c.Message = "the web server asks for a client certificate: with Cloudflare's origin-pull CA, only your zone's requests get through"
		return
	}
	c.Message = "the lock admits every Cloudflare customer's traffic: turn on Authenticated Origin Pulls (SSL/TLS > Origin Server) and verify Cloudflare's client certificate (nginx: ssl_client_certificate origin-pull-ca.pem; ssl_verify_client on;)"
}
