// Package config is palisade's typed, validated, immutable configuration
// model, read from a configuration directory in fail2ban's INI dialect
// (internal/config/ini): daemon settings (palisade.conf/.local, plus the
// log settings of fail2ban.conf when present), jails (jail.conf,
// jail.local, jail.d/*) and filters.
//
// Load reads everything or nothing: every problem is collected with the
// file, line and key that caused it and returned as an ErrorList, and no
// partial configuration is returned.
package config

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/netip"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/palisade-project/palisade/internal/config/ini"
	"github.com/palisade-project/palisade/internal/firewall"
)

// Defaults used when the configuration does not say otherwise.
const (
	DefaultConfigDir = "/etc/palisade"
	DefaultSocket    = "/run/palisade/palisade.sock"
	DefaultDBFile    = "/var/lib/palisade/palisade.db"
	// DefaultFailTableSize caps one jail's failure table.
	DefaultFailTableSize = 100000
	// DefaultMaxBans bounds one jail's active bans (maxbans).
	DefaultMaxBans = 250000
	// BuiltinName names the embedded built-in files in messages.
	BuiltinName = "(builtin)"
)

// Error is one configuration problem. File and Line locate it when known.
type Error struct {
	File    string `json:"file,omitempty"`
	Line    int    `json:"line,omitempty"`
	Section string `json:"section,omitempty"`
	Key     string `json:"key,omitempty"`
	Msg     string `json:"message"`
}

func (e *Error) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		if e.Line > 0 {
			fmt.Fprintf(&b, ":%d", e.Line)
		}
		b.WriteString(": ")
	}
	if e.Section != "" {
		fmt.Fprintf(&b, "[%s] ", e.Section)
	}
	// a message that starts with the key's own name names it already
	// ("filter sshd: ..." for key filter)
	if e.Key != "" && !strings.HasPrefix(e.Msg, e.Key+" ") {
		fmt.Fprintf(&b, "%s: ", e.Key)
	}
	b.WriteString(e.Msg)
	return b.String()
}

// ErrorList is every problem found while loading; Load returns it (and no
// configuration) when it is not empty.
type ErrorList []*Error

func (l ErrorList) Error() string {
	switch len(l) {
	case 0:
		return "no errors"
	case 1:
		return l[0].Error()
	}
	parts := make([]string, len(l))
	for i, e := range l {
		parts[i] = e.Error()
	}
	return fmt.Sprintf("%d configuration errors:\n  %s", len(l), strings.Join(parts, "\n  "))
}

// AsErrorList returns err's problems as a list (wrapping a plain error as
// one Error).
func AsErrorList(err error) ErrorList {
	if err == nil {
		return nil
	}
	var l ErrorList
	if errors.As(err, &l) {
		return l
	}
	var e *Error
	if errors.As(err, &e) {
		return ErrorList{e}
	}
	var pe *ini.ParseError
	if errors.As(err, &pe) {
		return ErrorList{{File: pe.File, Line: pe.Line, Key: pe.Key, Msg: pe.Msg}}
	}
	return ErrorList{{Msg: err.Error()}}
}

// Config is a loaded configuration. It is never modified after Load.
type Config struct {
	// Dir is the configuration directory.
	Dir    string
	Daemon Daemon
	// Jails are every jail section, enabled or not, sorted by name.
	Jails []Jail
	// Files are the files read, in order.
	Files []string
	// Warnings are problems that did not stop loading (include cycles,
	// options palisade records but does not act on).
	Warnings []string
	// Observe holds the notification, metrics and health settings
	// (observe.go).
	Observe Observe
	// loader reads filters from the same layers.
	loader *ini.Loader
}

// Enabled returns the enabled jails, sorted by name.
func (c *Config) Enabled() []Jail {
	var out []Jail
	for _, j := range c.Jails {
		if j.Enabled {
			out = append(out, j)
		}
	}
	return out
}

// Jail returns the named jail.
func (c *Config) Jail(name string) (Jail, bool) {
	for _, j := range c.Jails {
		if j.Name == name {
			return j, true
		}
	}
	return Jail{}, false
}

// Loader returns the INI loader over the configuration's layers (disk
// directory, then built-ins), for reading filter.d and action.d files.
func (c *Config) Loader() *ini.Loader { return c.loader }

// Daemon holds the daemon settings.
type Daemon struct {
	LogLevel slog.Level
	// LogTarget is "STDERR", "STDOUT" or a file path (SYSLOG and
	// SYSTEMD-JOURNAL mean STDERR: systemd collects it).
	LogTarget string
	Socket    string
	DBFile    string
	// DBPurgeAge is how long offence history is kept (fail2ban dbpurgeage).
	DBPurgeAge time.Duration
	Firewall   FirewallSettings
	// Cloudflare is the [cloudflare] section (cloudflare.go).
	Cloudflare CloudflareSettings
	// Fleet is the [fleet] section (fleet.go).
	Fleet FleetSettings
}

// FirewallSettings is the [firewall] section of palisade.conf.
type FirewallSettings struct {
	// Backend is auto, nftables, iptables, ufw or log (log-only: bans are
	// recorded and logged, nothing reaches the kernel).
	Backend string
	// BlockType is the default for jails that do not set blocktype.
	BlockType firewall.Block
	// RemoveOnStop lifts every ban from the kernel when the daemon stops
	// (the store keeps them; the next start re-installs them).
	RemoveOnStop bool
}

// FilterRef is a jail's filter: a name (or path) with arguments.
type FilterRef struct {
	// Name is the filter name ("sshd") or a path to a .conf file.
	Name string
	// Args are the bracketed arguments in order ("mode=aggressive").
	Args []ini.Option
	// Raw is the option as written after interpolation.
	Raw string
}

// LogPath is one logpath line.
type LogPath struct {
	// Pattern is a path or a glob.
	Pattern string
	// Tail starts a file seen for the first time at its end ("tail"
	// suffix). By default (or "head") a first-seen file is read from its
	// start and failures older than findtime are skipped by their dates,
	// so failures written just before the jail started count, as in
	// fail2ban.
	Tail bool
}

// Source is what a jail reads, from its backend, logpath and journalmatch
// options.
type Source struct {
	// Backend is the backend option's name as written (lower-cased): auto,
	// polling, pyinotify, gamin or systemd.
	Backend string
	// Journal reads the systemd journal (backend = systemd); otherwise the
	// jail tails Files.
	Journal bool
	// Files are the logpath lines (globs allowed); empty for journal jails.
	Files []LogPath
	// JournalMatch is the jail's journalmatch, one alternative per line
	// (JournalMatchLines; "" uses the filter's).
	JournalMatch string
	// JournalPath and JournalFiles are systemd[journalpath=DIR,
	// journalfiles=GLOBS]: read those journal files instead of the
	// system journal.
	JournalPath  string
	JournalFiles []string
	// JournalFallback is set when both backend (auto) and logpath come
	// from palisade's built-in jail.conf, i.e. the user configured neither:
	// the jail then reads the journal when none of its files exists at
	// start-up (palisade's no-configuration default). Every other auto
	// jail keeps watching its files, as fail2ban's auto does.
	JournalFallback bool
}

// Patterns returns the logpath patterns.
func (s Source) Patterns() []string {
	out := make([]string, len(s.Files))
	for i, p := range s.Files {
		out[i] = p.Pattern
	}
	return out
}

// IgnoreEntry is one ignoreip item: a prefix or a host name.
type IgnoreEntry struct {
	// Prefix is set for addresses and networks (an address is a full-length
	// prefix; IPv4-mapped forms are IPv4).
	Prefix netip.Prefix
	// Host is set for host names (lower case, no final dot), resolved
	// beside the jail.
	Host string
	// Text is the item as written (for explain).
	Text string
}

// ActionRef is one entry of a jail's action option (or its banaction):
// an action.d name with its bracketed arguments.
type ActionRef struct {
	Name string
	// Args are the arguments in order, names lower-cased.
	Args []ini.Option
	// Raw is the entry as written.
	Raw string
}

// Arg returns the argument name's value.
func (a ActionRef) Arg(name string) (string, bool) {
	for _, o := range a.Args {
		if o.Name == name {
			return o.Value, true
		}
	}
	return "", false
}

// Increment is bantime.increment and its companions.
type Increment struct {
	Enabled bool
	// Factor multiplies the exponential growth (bantime.factor, default 1).
	Factor float64
	// Formula is bantime.formula as written; palisade applies the default
	// formula (bantime * factor * 2^(offences-1)) and warns when another
	// formula is set.
	Formula string
	// Multipliers, when set, replace the formula: ban n lasts bantime *
	// Multipliers[min(n, len)-1].
	Multipliers []float64
	// MaxTime caps the ban time (0: no cap).
	MaxTime time.Duration
	// RndTime adds up to this much random time (0: none).
	RndTime time.Duration
	// OverallJails counts offences across every jail.
	OverallJails bool
}

// Encoding is a jail's logencoding.
type Encoding string

// Encodings palisade reads. UTF-8 (and auto, ascii) lines are passed
// through byte for byte; Latin-1 lines are converted to UTF-8 before
// matching.
const (
	EncodingUTF8   Encoding = "utf-8"
	EncodingLatin1 Encoding = "latin-1"
)

// Jail is one jail's validated settings: every value final and typed, so
// that nothing downstream parses configuration text again. Options is the
// only text kept, for filter interpolation.
type Jail struct {
	Name    string
	Enabled bool
	Filter  FilterRef
	// Source is what the jail reads.
	Source Source
	// PortSpec is the port option as written (for action.d files); Ports
	// the parsed ranges (empty: every port).
	PortSpec string
	Ports    []firewall.PortRange
	Protocol string
	MaxRetry int
	FindTime time.Duration
	// BanTime is negative for permanent bans (bantime = -1).
	BanTime   time.Duration
	Increment Increment
	IgnoreIP  []IgnoreEntry
	// IgnoreSelf exempts the host's own addresses (loopback always is).
	IgnoreSelf bool
	// IgnoreCommand is the ignorecommand's argument vector (no shell;
	// "<ip>" is substituted); nil when unset.
	IgnoreCommand []string
	MaxMatches    int
	// UseDNS is yes, warn, no or raw.
	UseDNS string
	// BanAction and Actions choose how the jail's bans are enforced
	// (internal/pipeline): a fail2ban ban action name maps to a native
	// backend, another action.d file runs through actionexec. Actions is
	// the action option; BanAction is used when it is empty.
	// (banaction_allports reaches them through interpolation, as in
	// fail2ban: "banaction = %(banaction_allports)s".)
	BanAction *ActionRef
	Actions   []ActionRef
	// BlockType overrides the daemon's default ("" inherits it).
	BlockType firewall.Block
	// FailTableSize caps the number of addresses tracked (failtable.size).
	FailTableSize int
	// MaxBans bounds the jail's active bans (maxbans; 0: no bound): past
	// it the ban manager merges neighbouring addresses into network bans.
	MaxBans int
	// IPv4Prefix and IPv6Prefix aggregate: an address is counted and
	// banned as its /N network (ipv4prefix default 32, ipv6prefix 128).
	IPv4Prefix int
	IPv6Prefix int
	// DatePattern overrides the filter's ("" keeps it).
	DatePattern string
	// LogEncoding is how the jail's log lines are decoded.
	LogEncoding Encoding
	// LogTimezone is the zone of zone-less log times (nil: local time).
	LogTimezone *time.Location
	// Options are every option visible in the jail's section (DEFAULT
	// included) after interpolation, including those palisade does not
	// know (kept, as fail2ban keeps them, for filters and actions).
	Options map[string]string
	// Where is the file:line of the jail's enabled option, for messages;
	// File and Line are its parts.
	Where string
	File  string
	Line  int
}

// Spec is the jail's firewall scope for the backends.
func (j Jail) Spec(defaultBlock firewall.Block) firewall.JailSpec {
	b := j.BlockType
	if b == "" {
		b = defaultBlock
	}
	if b == "" {
		b = firewall.Reject
	}
	return firewall.JailSpec{Name: j.Name, Scope: firewall.Scope{Ports: j.Ports, Protocol: j.Protocol}, Block: b}
}

// Errorf returns a configuration error located at the jail's enabled
// option (for problems found after loading, such as a filter that does
// not compile).
func (j Jail) Errorf(key, format string, args ...any) *Error {
	return &Error{File: j.File, Line: j.Line, Section: j.Name, Key: key, Msg: fmt.Sprintf(format, args...)}
}

// LoadOptions are Load's inputs besides the directory.
type LoadOptions struct {
	// Builtin holds palisade's built-in configuration files (jail.conf,
	// palisade.conf, filter.d/...), used where the directory lacks a file.
	// nil means none.
	Builtin fs.FS
	// Services resolves port names (the daemon passes /etc/services under
	// --root); nil accepts numeric ports only.
	Services firewall.Services
	// RequireDir makes a missing directory an error (an explicit
	// --config-dir); otherwise a missing directory means "no
	// configuration": the built-ins alone. A path that exists but is not a
	// directory is always an error.
	RequireDir bool
}

// Load reads the configuration in dir. On any error it returns an
// ErrorList and no configuration.
func Load(dir string, opts LoadOptions) (*Config, error) {
	if fi, err := os.Stat(dir); err != nil {
		if opts.RequireDir || !errors.Is(err, fs.ErrNotExist) {
			return nil, ErrorList{{File: dir, Msg: "configuration directory: " + statReason(err)}}
		}
	} else if !fi.IsDir() {
		return nil, ErrorList{{File: dir, Msg: "configuration directory: not a directory"}}
	}
	layers := []ini.Layer{ini.DirLayer(dir)}
	if opts.Builtin != nil {
		layers = append(layers, ini.Layer{FS: opts.Builtin, Name: BuiltinName})
	}
	loader := &ini.Loader{Layers: layers}
	cfg := &Config{Dir: dir, loader: loader}
	var errs ErrorList

	d, files, warns, derrs := loadDaemon(dir, loader)
	cfg.Daemon = d
	cfg.Files = append(cfg.Files, files...)
	cfg.Warnings = append(cfg.Warnings, warns...)
	errs = append(errs, derrs...)

	jc, err := loader.Read("jail")
	if err != nil {
		errs = append(errs, AsErrorList(err)...)
	} else {
		cfg.Files = append(cfg.Files, jc.Files()...)
		cfg.Warnings = append(cfg.Warnings, jc.Warnings()...)
		for _, name := range jc.Sections() {
			if name == "INCLUDES" || name == ini.DefaultSection || strings.HasPrefix(name, ini.KnownPrefix) {
				continue
			}
			j, jerrs, jwarns := buildJail(jc, name, opts.Services)
			errs = append(errs, jerrs...)
			cfg.Warnings = append(cfg.Warnings, jwarns...)
			cfg.Jails = append(cfg.Jails, j)
		}
	}
	obs, owarns, oerrs := loadObserve(dir, loader, jc, cfg.Jails)
	cfg.Observe, cfg.Warnings, errs = obs, append(cfg.Warnings, owarns...), append(errs, oerrs...)
	if len(errs) > 0 {
		return nil, errs
	}
	sort.Slice(cfg.Jails, func(a, b int) bool { return cfg.Jails[a].Name < cfg.Jails[b].Name })
	return cfg, nil
}

func statReason(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	if errors.Is(err, fs.ErrNotExist) {
		return "does not exist"
	}
	return err.Error()
}
