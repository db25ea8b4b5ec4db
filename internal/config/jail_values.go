package config

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/palisade-project/palisade/internal/config/ini"
	"github.com/palisade-project/palisade/internal/firewall"
	"github.com/palisade-project/palisade/internal/jail"
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
		Fleet:      defaultFleet(),
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
		if !logOnly && c.HasSection("fleet") {
			ferrs, fwarns := readFleet(c, &d.Fleet)
			errs, warns = append(errs, ferrs...), append(warns, fwarns...)
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
