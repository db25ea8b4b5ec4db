package config

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/palisade-project/palisade/internal/config/ini"
	"github.com/palisade-project/palisade/internal/duration"
	"github.com/palisade-project/palisade/internal/firewall"
)

// reader reads typed options of one section, collecting errors with the
// file:line of the value.
type reader struct {
	c       *ini.Config
	section string
	errs    ErrorList
	warns   []string
	// overBuiltin leaves values that only the built-in files set to the
	// caller's default (fail2ban.conf's settings beat palisade's
	// built-in palisade.conf, the directory's own palisade.conf beats
	// both).
	overBuiltin bool
}

func (r *reader) fail(key, format string, args ...any) {
	e := &Error{Section: r.section, Key: key, Msg: fmt.Sprintf(format, args...)}
	if v, ok := r.c.Raw(r.section, key); ok {
		e.File, e.Line = v.File, v.Line
	}
	r.errs = append(r.errs, e)
}

// str returns the interpolated value of key, def when it is not set (or
// set only by the built-in files when r.overBuiltin).
func (r *reader) str(key, def string) string {
	if !r.c.HasOption(r.section, key, true) {
		return def
	}
	if r.overBuiltin {
		if v, ok := r.c.Raw(r.section, key); ok && strings.HasPrefix(v.File, BuiltinName) {
			return def
		}
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
	d, err := duration.Parse(s)
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

// loadDaemon reads the daemon settings. Later sources win, key by key:
// palisade's built-in palisade.conf; fail2ban.conf/fail2ban.local (and
// fail2ban.d) when the directory is a fail2ban tree, for loglevel,
// logtarget, socket, dbfile and dbpurgeage; the directory's own
// palisade.conf/palisade.local (and palisade.d).
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
	fail2banTree := exists(dir, "fail2ban.conf") || exists(dir, "fail2ban.local")
	apply := func(c *ini.Config, fromFail2ban bool) {
		r := &reader{c: c, section: "Definition", overBuiltin: fail2banTree && !fromFail2ban}
		if c.HasSection("Definition") || fromFail2ban {
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
			if s := r.str("socket", ""); s != "" {
				if !filepath.IsAbs(s) {
					r.fail("socket", "%q is not an absolute path", s)
				} else {
					d.Socket = filepath.Clean(s)
				}
			}
			if s := r.str("dbfile", ""); s != "" {
				switch {
				case fromFail2ban && (s == ":memory:" || strings.EqualFold(s, "none")):
					r.warns = append(r.warns, fmt.Sprintf("fail2ban.conf dbfile = %s: palisade always keeps its bans on disk, in %s", s, d.DBFile))
				case !filepath.IsAbs(s):
					r.fail("dbfile", "%q is not an absolute path", s)
				case fromFail2ban && isSQLite(s):
					// fail2ban's own database: palisade's store has another
					// format and would move it aside as corrupt.
					r.warns = append(r.warns, fmt.Sprintf("fail2ban.conf dbfile %s is fail2ban's SQLite database, left alone: palisade keeps its bans in %s (set dbfile in palisade.local to choose)", s, d.DBFile))
				default:
					d.DBFile = filepath.Clean(s)
				}
			}
			d.DBPurgeAge = r.duration("dbpurgeage", d.DBPurgeAge, false)
		}
		if !fromFail2ban && c.HasSection("firewall") {
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
		if !fromFail2ban && c.HasSection("cloudflare") {
			cerrs, cwarns := readCloudflare(c, &d.Cloudflare)
			errs, warns = append(errs, cerrs...), append(warns, cwarns...)
		}
		if !fromFail2ban && c.HasSection("fleet") {
			ferrs, fwarns := readFleet(c, &d.Fleet)
			errs, warns = append(errs, ferrs...), append(warns, fwarns...)
		}
		errs = append(errs, r.errs...)
		warns = append(warns, r.warns...)
		files = append(files, c.Files()...)
		warns = append(warns, c.Warnings()...)
	}
	if fail2banTree {
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

// isSQLite reports whether path is an SQLite database (fail2ban's
// fail2ban.sqlite3).
func isSQLite(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	head := make([]byte, 16)
	n, _ := f.Read(head)
	return n == 16 && string(head) == "SQLite format 3\x00"
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

// LoadDaemon reads only the daemon settings of dir (socket, dbfile, log
// settings, ...), as Load would, without building any jail: what a client
// command needs to find the daemon's socket. builtin is palisade's
// built-in configuration (nil: none). A missing dir gives the defaults.
func LoadDaemon(dir string, builtin fs.FS) (Daemon, error) {
	layers := []ini.Layer{ini.DirLayer(dir)}
	if builtin != nil {
		layers = append(layers, ini.Layer{FS: builtin, Name: BuiltinName})
	}
	d, _, _, errs := loadDaemon(dir, &ini.Loader{Layers: layers})
	if len(errs) > 0 {
		return d, errs
	}
	return d, nil
}
