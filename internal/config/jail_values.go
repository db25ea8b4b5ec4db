package config

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/palisade-project/palisade/internal/config/ini"
	"github.com/palisade-project/palisade/internal/firewall"
	"github.com/palisade-project/palisade/internal/jail"
	"github.com/palisade-project/palisade/internal/source"
)

// reader reads typed options of one section, collecting errors with the
// file:line of the value.
type reader struct {
	c       *ini.Config
	section string
	errs    ErrorList
	warns   []string
}

func (r *reader) fail(key, format string, args ...any) {
	e := &Error{Section: r.section, Key: key, Msg: fmt.Sprintf(format, args...)}
	if v, ok := r.c.Raw(r.section, key); ok {
		e.File, e.Line = v.File, v.Line
	}
	r.errs = append(r.errs, e)
}

// str returns the interpolated value of key, def when it is not set.
func (r *reader) str(key, def string) string {
	if !r.c.HasOption(r.section, key, true) {
		return def
	}
	s, err := r.c.GetEx(r.section, key, nil)
	if err != nil {
		var ie *ini.InterpolationError
		if errors.As(err, &ie) {
			r.fail(key, "%s", ie.Msg)
		} else {
			r.fail(key, "%v", err)
		}
		return def
	}
	return strings.TrimSpace(s)
}

func (r *reader) boolean(key string, def bool) bool {
	s := r.str(key, "")
	if s == "" {
		return def
	}
	b, ok := parseBool(s)
	if !ok {
		r.fail(key, "%q is not a boolean (true/false, yes/no, on/off, 1/0)", s)
		return def
	}
	return b
}

func parseBool(s string) (bool, bool) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "true", "yes", "on", "1", "enabled", "enable":
		return true, true
	case "false", "no", "off", "0", "disabled", "disable":
		return false, true
	}
	return false, false
}

func (r *reader) integer(key string, def, min, max int) int {
	s := r.str(key, "")
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		r.fail(key, "%q is not an integer", s)
		return def
	}
	if n < min || n > max {
		r.fail(key, "%d is out of range [%d, %d]", n, min, max)
		return def
	}
	return n
}

func (r *reader) duration(key string, def time.Duration, allowNegative bool) time.Duration {
	s := r.str(key, "")
	if s == "" {
		return def
	}
	d, err := jail.ParseDuration(s)
	if err != nil {
		r.fail(key, "%v", err)
		return def
	}
	if d < 0 && !allowNegative {
		r.fail(key, "%q must not be negative", s)
		return def
	}
	if d < 0 {
		return -1
	}
	return d
}

func (r *reader) float(key string, def float64) float64 {
	s := r.str(key, "")
	if s == "" {
		return def
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f <= 0 || f > 1e6 {
		r.fail(key, "%q is not a positive number", s)
		return def
	}
	return f
}

// ---- daemon settings ----

var logLevels = map[string]slog.Level{
	"CRITICAL": slog.LevelError + 4, "ERROR": slog.LevelError, "WARNING": slog.LevelWarn,
	"WARN": slog.LevelWarn, "NOTICE": slog.LevelInfo, "INFO": slog.LevelInfo,
	"DEBUG": slog.LevelDebug, "TRACEDEBUG": slog.LevelDebug - 4, "HEAVYDEBUG": slog.LevelDebug - 8,
}

func parseLogLevel(s string) (slog.Level, bool) {
	if l, ok := logLevels[strings.ToUpper(s)]; ok {
		return l, true
	}
	// fail2ban also takes Python logging numbers (10 DEBUG ... 50 CRITICAL).
	if n, err := strconv.Atoi(s); err == nil {
		switch {
		case n >= 50:
			return slog.LevelError + 4, true
		case n >= 40:
			return slog.LevelError, true
		case n >= 30:
			return slog.LevelWarn, true
		case n >= 20:
			return slog.LevelInfo, true
		default:
			return slog.LevelDebug, true
		}
	}
	return 0, false
}

func exists(dir, name string) bool {
	_, err := os.Stat(filepath.Join(dir, name))
	return err == nil
}

// loadDaemon reads the daemon settings: palisade's built-in palisade.conf,
// then fail2ban.conf's log settings when the directory holds one, then
// the directory's palisade.conf/.local (and palisade.d).
func loadDaemon(dir string, loader *ini.Loader) (Daemon, []string, []string, ErrorList) {
	d := Daemon{
		LogLevel: slog.LevelInfo, LogTarget: "STDERR", Socket: DefaultSocket, DBFile: DefaultDBFile,
		DBPurgeAge: 24 * time.Hour,
		Firewall:   FirewallSettings{Backend: "auto", BlockType: firewall.Reject},
		Cloudflare: defaultCloudflare(),
	}
	var files, warns []string
	var errs ErrorList
	apply := func(c *ini.Config, logOnly bool) {
		r := &reader{c: c, section: "Definition"}
		if c.HasSection("Definition") {
			if s := r.str("loglevel", ""); s != "" {
				if l, ok := parseLogLevel(s); ok {
					d.LogLevel = l
				} else {
					r.fail("loglevel", "unknown log level %q", s)
				}
			}
			if s := r.str("logtarget", ""); s != "" {
				switch u := strings.ToUpper(s); u {
				case "STDERR", "STDOUT":
					d.LogTarget = u
				case "SYSLOG", "SYSTEMD-JOURNAL":
					d.LogTarget = "STDERR"
				default:
					if !filepath.IsAbs(s) {
						r.fail("logtarget", "%q: want STDERR, STDOUT, SYSLOG, SYSTEMD-JOURNAL or an absolute file path", s)
					} else {
						d.LogTarget = filepath.Clean(s)
					}
				}
			}
			if !logOnly {
				if s := r.str("socket", ""); s != "" {
					if !filepath.IsAbs(s) {
						r.fail("socket", "%q is not an absolute path", s)
					} else {
						d.Socket = filepath.Clean(s)
					}
				}
				if s := r.str("dbfile", ""); s != "" {
					if !filepath.IsAbs(s) {
						r.fail("dbfile", "%q is not an absolute path", s)
					} else {
						d.DBFile = filepath.Clean(s)
					}
				}
			}
			d.DBPurgeAge = r.duration("dbpurgeage", d.DBPurgeAge, false)
		}
		if !logOnly && c.HasSection("firewall") {
			fr := &reader{c: c, section: "firewall"}
			if s := strings.ToLower(fr.str("backend", "")); s != "" {
				switch s {
				case "auto", "nftables", "iptables", "ufw", "log":
					d.Firewall.Backend = s
				default:
					fr.fail("backend", "unknown firewall backend %q (want auto, nftables, iptables, ufw or log)", s)
				}
			}
			if s := fr.str("blocktype", ""); s != "" {
				if b, ok := parseBlock(s); ok {
					d.Firewall.BlockType = b
				} else {
					fr.fail("blocktype", "unknown block type %q (want reject or drop)", s)
				}
			}
			d.Firewall.RemoveOnStop = fr.boolean("remove-on-stop", false)
			errs = append(errs, fr.errs...)
		}
		if !logOnly && c.HasSection("cloudflare") {
			cerrs, cwarns := readCloudflare(c, &d.Cloudflare)
			errs, warns = append(errs, cerrs...), append(warns, cwarns...)
		}
		errs = append(errs, r.errs...)
		files = append(files, c.Files()...)
		warns = append(warns, c.Warnings()...)
	}
	if exists(dir, "fail2ban.conf") || exists(dir, "fail2ban.local") {
		// fail2ban's socket and database are fail2ban's own: only its log
		// settings carry over.
		fl := &ini.Loader{Layers: []ini.Layer{ini.DirLayer(dir)}}
		c, err := fl.Read("fail2ban")
		if err != nil {
			errs = append(errs, AsErrorList(err)...)
		} else {
			apply(c, true)
		}
	}
	c, err := loader.Read("palisade")
	if err != nil {
		var pe *ini.ParseError
		if errors.As(err, &pe) {
			errs = append(errs, AsErrorList(err)...)
		}
		// No palisade.conf anywhere (no built-ins given): defaults.
	} else {
		apply(c, false)
	}
	return d, files, warns, errs
}

func parseBlock(s string) (firewall.Block, bool) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "reject", "refuse", "unreachable", "prohibit", "port-unreachable", "icmp-port-unreachable":
		return firewall.Reject, true
	case "drop", "blackhole", "deny":
		return firewall.Drop, true
	}
	return "", false
}

// ---- jails ----

var hostnameRE = regexp.MustCompile(`^(?i)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*\.?$`)

// knownJailOptions are the options palisade reads; others are kept in
// Jail.Options without comment, as fail2ban does.
func buildJail(c *ini.Config, name string, services firewall.Services) (Jail, ErrorList, []string) {
	r := &reader{c: c, section: name}
	j := Jail{Name: name}
	if err := firewall.CheckJailName(name); err != nil {
		e := &Error{Section: name, Msg: err.Error()}
		if v, ok := c.Raw(name, "enabled"); ok {
			e.File, e.Line = v.File, v.Line
		}
		r.errs = append(r.errs, e)
	}
	if v, ok := c.Raw(name, "enabled"); ok {
		j.Where, j.File, j.Line = v.Where(), v.File, v.Line
	}
	j.Enabled = r.boolean("enabled", false)
	if !j.Enabled {
		// fail2ban does not read disabled jails further; neither do we,
		// so a half-written disabled jail is no error.
		return j, r.errs, r.warns
	}

	// filter
	raw := r.str("filter", "")
	if raw == "" {
		r.fail("filter", "an enabled jail needs a filter")
	} else {
		fname, args, err := ini.ExtractOptions(raw)
		if err != nil {
			r.fail("filter", "%v", err)
		}
		j.Filter = FilterRef{Name: strings.TrimSpace(fname), Args: args, Raw: raw}
		if j.Filter.Name == "" {
			r.fail("filter", "empty filter name in %q", raw)
		}
	}

	// backend and sources
	bs := r.str("backend", "auto")
	b, err := source.ParseBackend(bs)
	if err != nil {
		r.fail("backend", "%v", err)
	}
	j.BackendName, j.BackendOptions = b.Name, b.Options
	for _, line := range strings.Split(r.str("logpath", ""), "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		lp := LogPath{Pattern: line}
		if i := strings.LastIndexAny(line, " \t"); i > 0 {
			switch strings.ToLower(line[i+1:]) {
			case "head":
				lp = LogPath{Pattern: strings.TrimSpace(line[:i]), Head: true}
			case "tail":
				lp = LogPath{Pattern: strings.TrimSpace(line[:i])}
			}
		}
		if !filepath.IsAbs(lp.Pattern) {
			r.fail("logpath", "%q is not an absolute path", lp.Pattern)
			continue
		}
		if _, err := filepath.Match(lp.Pattern, ""); err != nil {
			r.fail("logpath", "%q: %v", lp.Pattern, err)
			continue
		}
		j.LogPaths = append(j.LogPaths, lp)
	}
	if b.Kind == source.BackendFile && len(j.LogPaths) == 0 {
		r.fail("logpath", "backend %s needs a logpath", b.Name)
	}
	j.JournalMatch = strings.Join(strings.Fields(r.str("journalmatch", "")), " ")

	// firewall scope
	j.Protocol = strings.ToLower(r.str("protocol", "tcp"))
	switch j.Protocol {
	case "tcp", "udp", "sctp", "all":
	default:
		r.fail("protocol", "unknown protocol %q (want tcp, udp, sctp or all)", j.Protocol)
	}
	j.PortSpec = r.str("port", "")
	proto := j.Protocol
	if proto == "all" || proto == "sctp" {
		proto = "tcp"
	}
	if ports, err := firewall.ParsePorts(j.PortSpec, proto, services); err != nil {
		r.fail("port", "%v", err)
	} else {
		j.Ports = ports
	}
	if s := r.str("blocktype", ""); s != "" {
		if bt, ok := parseBlock(s); ok {
			j.BlockType = bt
		} else if strings.HasPrefix(s, "<") || strings.Contains(s, "%") {
			// An action's own blocktype template: leave it to the action.
		} else {
			r.warns = append(r.warns, fmt.Sprintf("jail %s: blocktype %q is not reject or drop; using the daemon default", name, s))
		}
	}

	// counting
	j.MaxRetry = r.integer("maxretry", 5, 1, 1000000)
	j.FindTime = r.duration("findtime", 10*time.Minute, false)
	if j.FindTime == 0 {
		r.fail("findtime", "must be longer than 0")
	}
	j.BanTime = r.duration("bantime", 10*time.Minute, true)
	if j.BanTime == 0 {
		r.fail("bantime", "must be longer than 0 (or -1 for permanent)")
	}
	j.MaxMatches = r.integer("maxmatches", j.MaxRetry, 0, 1000000)
	j.FailTableSize = r.integer("failtable.size", DefaultFailTableSize, 1, 100000000)
	j.IPv4Prefix = r.integer("ipv4prefix", 32, 8, 32)
	j.IPv6Prefix = r.integer("ipv6prefix", 128, 16, 128)

	// escalation
	j.Increment = Increment{
		Enabled:      r.boolean("bantime.increment", false),
		Factor:       r.float("bantime.factor", 1),
		Formula:      r.str("bantime.formula", ""),
		MaxTime:      r.duration("bantime.maxtime", 0, false),
		RndTime:      r.duration("bantime.rndtime", 0, false),
		OverallJails: r.boolean("bantime.overalljails", false),
	}
	if s := r.str("bantime.multipliers", ""); s != "" {
		for _, f := range strings.Fields(s) {
			m, err := strconv.ParseFloat(f, 64)
			if err != nil || m <= 0 || m > 1e9 {
				r.fail("bantime.multipliers", "%q is not a positive number", f)
				break
			}
			j.Increment.Multipliers = append(j.Increment.Multipliers, m)
		}
	}
	if j.Increment.Enabled && j.Increment.Formula != "" && len(j.Increment.Multipliers) == 0 {
		r.warns = append(r.warns, fmt.Sprintf("jail %s: bantime.formula is not evaluated; palisade uses bantime * factor * 2^(n-1)", name))
	}

	// ignore rules
	j.IgnoreSelf = r.boolean("ignoreself", true)
	j.IgnoreCommand = r.str("ignorecommand", "")
	for _, item := range strings.FieldsFunc(r.str("ignoreip", ""), func(c rune) bool {
		return c == ' ' || c == ',' || c == '\t' || c == '\n'
	}) {
		e, err := parseIgnore(item)
		if err != nil {
			r.fail("ignoreip", "%v", err)
			continue
		}
		j.IgnoreIP = append(j.IgnoreIP, e)
	}
	j.UseDNS = strings.ToLower(r.str("usedns", "warn"))
	switch j.UseDNS {
	case "yes", "warn", "no", "raw":
	default:
		r.fail("usedns", "%q: want yes, warn, no or raw", j.UseDNS)
	}

	// actions (recorded)
	j.BanAction = r.str("banaction", "")
	j.BanActionAllPorts = r.str("banaction_allports", "")
	if s := r.str("action", ""); s != "" {
		items, err := ini.SplitWithOptions(s)
		if err != nil {
			// Tags such as %(action_)s may leave text palisade cannot
			// split; record it whole.
			items = []string{s}
		}
		for _, it := range items {
			if it = strings.TrimSpace(it); it != "" {
				j.Actions = append(j.Actions, it)
			}
		}
	}
	j.DatePattern = r.str("datepattern", "")
	j.LogEncoding = r.str("logencoding", "")
	j.LogTimezone = r.str("logtimezone", "")

	// every option, known or not
	keys, _ := c.Options(name, true)
	j.Options = make(map[string]string, len(keys))
	for _, k := range keys {
		if v, err := c.GetEx(name, k, nil); err == nil {
			j.Options[k] = v
		}
	}
	return j, r.errs, r.warns
}

func parseIgnore(s string) (IgnoreEntry, error) {
	if p, err := netip.ParsePrefix(s); err == nil {
		return IgnoreEntry{Prefix: p.Masked(), Text: s}, nil
	}
	if a, err := netip.ParseAddr(s); err == nil {
		a = a.Unmap().WithZone("")
		return IgnoreEntry{Prefix: netip.PrefixFrom(a, a.BitLen()), Text: s}, nil
	}
	// Dotted netmask: 192.0.2.0/255.255.255.0.
	if i := strings.IndexByte(s, '/'); i > 0 {
		a, err1 := netip.ParseAddr(s[:i])
		m, err2 := netip.ParseAddr(s[i+1:])
		if err1 == nil && err2 == nil && a.Is4() && m.Is4() {
			mb := m.As4()
			bits := 0
			v := uint32(mb[0])<<24 | uint32(mb[1])<<16 | uint32(mb[2])<<8 | uint32(mb[3])
			for v&0x80000000 != 0 {
				bits++
				v <<= 1
			}
			if v == 0 {
				p := netip.PrefixFrom(a, bits).Masked()
				return IgnoreEntry{Prefix: p, Text: s}, nil
			}
		}
		return IgnoreEntry{}, fmt.Errorf("%q is not an address or network", s)
	}
	if hostnameRE.MatchString(s) && len(s) <= 253 && strings.ContainsAny(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ") {
		return IgnoreEntry{Host: strings.TrimSuffix(strings.ToLower(s), "."), Text: s}, nil
	}
	return IgnoreEntry{}, fmt.Errorf("%q is not an address, network or host name", s)
}
