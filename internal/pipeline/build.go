package pipeline

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/palisade-project/palisade/internal/ban"
	"github.com/palisade-project/palisade/internal/config"
	"github.com/palisade-project/palisade/internal/config/ini"
	"github.com/palisade-project/palisade/internal/config/stock"
	"github.com/palisade-project/palisade/internal/firewall"
	"github.com/palisade-project/palisade/internal/jail"
	"github.com/palisade-project/palisade/internal/source/journal"
	"github.com/palisade-project/palisade/internal/sysexec"
)

// Default timings of the stage beside the jail.
const (
	DefaultCommandTimeout = 10 * time.Second
	DefaultCacheTTL       = 5 * time.Minute
)

// Env is what building needs from the host besides the configuration.
type Env struct {
	// Filters holds palisade's built-in filters as filter.d/NAME.conf
	// (filters.FS()); nil: none.
	Filters fs.FS
	// Root prefixes every log path (--root).
	Root string
	// LookPath finds programs (journalctl), for warnings (default
	// sysexec.LookPath).
	LookPath func(string) (string, error)
	// JournalDirs are where the system journal's files live (default
	// /var/log/journal and /run/log/journal).
	JournalDirs []string
	// Stock recognises fail2ban's unmodified stock filter files, which
	// are replaced by palisade's built-in of the same name (nil: never).
	Stock *stock.Sums
}

func (e Env) rooted(p string) string {
	if e.Root == "" || p == "" {
		return p
	}
	return filepath.Join(e.Root, p)
}

// SourcePlan is what a jail reads.
type SourcePlan struct {
	// Journal reads the systemd journal (JournalSpec); otherwise Files.
	Journal bool
	// Files are the log paths and globs (under Env.Root).
	Files []string
	// Head reads a file seen for the first time from its start (the
	// jail then skips failures older than findtime by their dates), so
	// failures written just before the jail started count. False when
	// every logpath says "tail".
	Head        bool
	JournalSpec journal.Spec
	// Why says how the source was chosen.
	Why string
}

// Watch describes exactly what is read, for status and config check:
// the file paths and globs, or "journal: MATCH".
func (s SourcePlan) Watch() []string {
	if !s.Journal {
		return append([]string(nil), s.Files...)
	}
	w := "journal"
	words, err := journal.ParseMatch(s.JournalSpec.Match)
	if err != nil { // not built: Build refuses such a match
		words = strings.Fields(s.JournalSpec.Match)
	}
	if m := strings.Join(words, " "); m != "" {
		w += ": " + m
	} else {
		w += " (every entry)"
	}
	if s.JournalSpec.Directory != "" {
		w += " in " + s.JournalSpec.Directory
	}
	if len(s.JournalSpec.Files) > 0 {
		w += " in " + strings.Join(s.JournalSpec.Files, " ")
	}
	return []string{w}
}

// StageConfig is what the stage beside the jail does.
type StageConfig struct {
	// Command is the ignorecommand ("<ip>" substituted; nil: none).
	Command        []string
	CommandTimeout time.Duration
	// CacheTTL is how long a command answer or a host name's addresses
	// are reused.
	CacheTTL time.Duration
	// UseDNS is the jail's usedns: yes and warn resolve host-name
	// failure ids, no and raw do not.
	UseDNS string
	// Hosts are the ignoreip host names to resolve.
	Hosts []string
}

// FilterSettings are the filter's compile settings beyond its definition.
type FilterSettings struct {
	Location string
	Journal  bool
	UseDNS   string
	Encoding config.Encoding
	RE2      bool
}

// Plan is one jail built from its configuration: everything it needs to
// run, resolved and validated. A Plan's compiled filter is handed to the
// first Jail made from it.
type Plan struct {
	Jail     config.Jail
	Filter   *BuiltFilter
	Settings FilterSettings
	Logic    jail.Config
	Source   SourcePlan
	Stage    StageConfig
	Route    Route
	// Spec is the jail's firewall scope (all ports when the route's
	// banaction blocks every port).
	Spec firewall.JailSpec
	// Bans is what the ban manager holds the jail's bans to: maxbans and
	// the ignoreip networks a merged network ban must not cover.
	Bans ban.JailConfig
	// Warnings are problems that do not stop the jail: a log file that
	// does not exist yet, a journal with nothing to read, actions that
	// are not run, failregexes that may take a forged address, journal
	// matches a local user can forge.
	Warnings []string
	// Notes say what was decided for the jail that a user should know:
	// a stock filter replaced by the built-in.
	Notes []string
}

// Name is the jail's name.
func (p *Plan) Name() string { return p.Jail.Name }

// Parts are the fingerprints of a plan's independent parts: a reload
// compares them to swap only what changed.
type Parts struct {
	Filter  string // definition, date and zone settings, encoding
	Source  string // what is read
	Logic   string // counting, ignore rules, ban time
	Stage   string // ignorecommand, usedns, ignoreip host names
	Enforce string // route and firewall scope
	Bans    string // the ban manager's bound
}

// Parts returns the plan's fingerprints.
func (p *Plan) Parts() Parts {
	fp := func(v ...any) string {
		b, err := json.Marshal(v)
		if err != nil {
			return fmt.Sprintf("%#v", v)
		}
		return string(b)
	}
	route := p.Route.String() + fmt.Sprintf("|%v|%v", p.Route.AllPorts, p.Route.Ignored)
	if p.Route.Action != nil {
		route += fmt.Sprintf("|%v", *p.Route.Action)
	}
	return Parts{
		Filter:  fp(p.Filter.Definition, p.Settings),
		Source:  fp(p.Source),
		Logic:   fp(p.Logic),
		Stage:   fp(p.Stage),
		Enforce: fp(route, p.Spec),
		Bans:    fp(p.Bans),
	}
}

// BuildAll builds every enabled jail. Any error fails the whole
// configuration: the list says what is wrong with file and line, and no
// plan is returned.
func BuildAll(cfg *config.Config, env Env) ([]*Plan, config.ErrorList) {
	var plans []*Plan
	var errs config.ErrorList
	for _, j := range cfg.Enabled() {
		p, err := Build(cfg, j, env)
		if err != nil {
			errs = append(errs, config.AsErrorList(err)...)
			continue
		}
		plans = append(plans, p)
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return plans, nil
}

// Build builds one enabled jail. Errors are configuration errors with
// file and line (config.ErrorList): a filter that cannot be read or
// compiled, an action that cannot be compiled, a journal match that does
// not parse. Problems of the running system (a missing log file, no
// journal) are Warnings.
func Build(cfg *config.Config, j config.Jail, env Env) (*Plan, error) {
	if !j.Enabled {
		return nil, j.Errorf("enabled", "jail is not enabled")
	}
	p := &Plan{Jail: j}
	var errs config.ErrorList
	located := func(key string, err error) {
		for _, e := range config.AsErrorList(err) {
			if e.File == "" {
				e.File, e.Line, e.Section = j.File, j.Line, j.Name
				if e.Key == "" {
					e.Key = key
				}
			}
			errs = append(errs, e)
		}
	}

	// filter
	useJournal := j.Source.Journal
	src := buildSource(j, env, &useJournal)
	loc := time.Local
	if j.LogTimezone != nil {
		loc = j.LogTimezone
	}
	vars := ini.Vars{}
	for k, v := range j.Options {
		vars[k] = v
	}
	backend := j.Source.Backend
	if useJournal {
		backend = "systemd"
	}
	bf, err := BuildFilter(FilterInput{
		Spec:    config.FilterSpec{Name: j.Filter.Name, Options: j.Filter.Args, JailOptions: vars, Backend: backend},
		Dirs:    []string{cfg.Dir},
		Builtin: env.Filters,
		// (the filter reader applies the jail's datepattern from
		// JailOptions too, as fail2ban's server does; the same value)
		DatePattern: j.DatePattern,
		Location:    loc,
		Journal:     useJournal,
		UseDNS:      j.UseDNS,
		Stock:       env.Stock,
	})
	if err != nil {
		located("filter", err)
	} else {
		if bf.Stock != nil && bf.Stock.Replaced {
			p.Notes = append(p.Notes, "jail "+j.Name+": "+bf.Stock.String())
		}
		for _, n := range bf.Lint {
			if n.Where == "" {
				n.Where = fmt.Sprintf("%s:%d", j.File, j.Line)
			}
			p.Warnings = append(p.Warnings, "jail "+j.Name+": "+n.String())
		}
		p.Filter = bf
		p.Settings = FilterSettings{Location: loc.String(), Journal: useJournal, UseDNS: j.UseDNS, Encoding: j.LogEncoding, RE2: bf.RE2}
	}

	// source
	if useJournal {
		match := j.Source.JournalMatch
		if match == "" && bf != nil {
			match = bf.Definition.JournalMatch
		}
		if _, err := journal.ParseMatch(match); err != nil {
			located("journalmatch", err)
		}
		src.JournalSpec.Match = match
		if match == "" {
			p.Warnings = append(p.Warnings, fmt.Sprintf("jail %s: no journalmatch: every journal entry is read", j.Name))
		} else if alts, err := journal.Untrusted(match); err == nil {
			for _, a := range alts {
				p.Warnings = append(p.Warnings, fmt.Sprintf("jail %s: journalmatch alternative %q names no field journald sets itself "+
					"(_COMM, _EXE, SYSLOG_IDENTIFIER are chosen by whoever starts the program): read only from root's entries (%s); "+
					"match on _SYSTEMD_UNIT= instead", j.Name, a, journal.RootOnly))
			}
		}
	}
	p.Source = src
	p.Warnings = append(p.Warnings, p.SourceWarnings(env)...)

	// logic and stage
	p.Logic = jail.Config{
		Name: j.Name, MaxRetry: j.MaxRetry, FindTime: j.FindTime, BanTime: j.BanTime,
		IgnoreSelf: j.IgnoreSelf, MaxMatches: j.MaxMatches, MaxEntries: j.FailTableSize,
		IPv4Prefix: j.IPv4Prefix, IPv6Prefix: j.IPv6Prefix,
		Increment: jail.Increment{
			Enabled: j.Increment.Enabled, Factor: j.Increment.Factor, Multipliers: j.Increment.Multipliers,
			MaxTime: j.Increment.MaxTime, RndTime: j.Increment.RndTime, OverallJails: j.Increment.OverallJails,
		},
	}
	p.Stage = StageConfig{Command: j.IgnoreCommand, CommandTimeout: DefaultCommandTimeout, CacheTTL: DefaultCacheTTL, UseDNS: j.UseDNS}
	for _, e := range j.IgnoreIP {
		if e.Host != "" {
			p.Stage.Hosts = append(p.Stage.Hosts, e.Host)
			p.Logic.IgnoreHosts = append(p.Logic.IgnoreHosts, e.Host)
		} else {
			p.Logic.IgnoreIP = append(p.Logic.IgnoreIP, jail.IgnoreEntry{Prefix: e.Prefix, Text: e.Text})
		}
	}
	if _, err := jail.New(p.Logic, jail.Deps{}); err != nil {
		located("", err)
	}
	if j.Increment.Enabled && j.Increment.Formula != "" && len(j.Increment.Multipliers) == 0 {
		p.Warnings = append(p.Warnings, fmt.Sprintf("jail %s: bantime.formula %q is not evaluated; palisade uses bantime * factor * 2^(n-1)", j.Name, j.Increment.Formula))
	}

	// enforcement
	rt, err := chooseRoute(cfg, j)
	if err != nil {
		located("action", err)
	}
	p.Route = rt
	p.Spec = j.Spec(cfg.Daemon.Firewall.BlockType)
	if rt.AllPorts {
		p.Spec.Scope.Ports = nil
	}
	p.Bans = banLimits(j)
	for _, ig := range rt.Ignored {
		p.Warnings = append(p.Warnings, "jail "+j.Name+": action "+ig+" is not run (palisade runs one ban action per jail)")
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return p, nil
}

// withFilterName makes a filter error say which filter, once.
func withFilterName(name string, err error) error {
	var ce *config.Error
	var cl config.ErrorList
	if errors.As(err, &ce) || errors.As(err, &cl) || strings.Contains(err.Error(), name) {
		return err
	}
	return fmt.Errorf("filter %s: %w", name, err)
}

// buildSource chooses what the jail reads: the journal for backend =
// systemd; for palisade's own no-configuration default (JournalFallback)
// the journal when none of the log files exists now; otherwise the log
// files, watched until they appear (fail2ban's auto). journal is set when
// the journal is chosen.
func buildSource(j config.Jail, env Env, useJournal *bool) SourcePlan {
	s := SourcePlan{Head: false}
	for _, lp := range j.Source.Files {
		s.Files = append(s.Files, env.rooted(lp.Pattern))
		s.Head = s.Head || !lp.Tail
	}
	spec := journal.Spec{Directory: j.Source.JournalPath, Files: j.Source.JournalFiles, Lookback: j.FindTime}
	switch {
	case j.Source.Journal:
		*useJournal = true
		return SourcePlan{Journal: true, JournalSpec: spec, Why: "backend = systemd"}
	case j.Source.JournalFallback && !anyExists(s.Files):
		*useJournal = true
		return SourcePlan{Journal: true, JournalSpec: spec,
			Why: fmt.Sprintf("no %s: the systemd journal (palisade's default source)", strings.Join(s.Files, ", "))}
	}
	s.Why = "backend = " + j.Source.Backend
	return s
}

func anyExists(patterns []string) bool {
	for _, p := range patterns {
		if m, err := filepath.Glob(p); err == nil && len(m) > 0 {
			return true
		}
	}
	return false
}

// SourceWarnings say when the jail's source has nothing to read now: a log
// file that does not exist (it is watched), journalctl absent, no journal
// files.
func (p *Plan) SourceWarnings(env Env) []string {
	name, s := p.Name(), p.Source
	var out []string
	if !s.Journal {
		for _, p := range s.Files {
			if !anyExists([]string{p}) {
				out = append(out, fmt.Sprintf("jail %s: log file %s does not exist (watched: read from its start when it appears)", name, p))
			}
		}
		return out
	}
	look := env.LookPath
	if look == nil {
		look = sysexec.LookPath
	}
	if _, err := look("journalctl"); err != nil {
		out = append(out, fmt.Sprintf("jail %s: journalctl not found: the journal cannot be read", name))
	}
	var where []string
	switch {
	case len(s.JournalSpec.Files) > 0:
		where = s.JournalSpec.Files
	case s.JournalSpec.Directory != "":
		where = []string{s.JournalSpec.Directory}
	default:
		where = env.JournalDirs
		if where == nil {
			where = []string{"/var/log/journal", "/run/log/journal"}
		}
	}
	if !journalFilesIn(where, len(s.JournalSpec.Files) > 0) {
		out = append(out, fmt.Sprintf("jail %s: no journal files in %s: the journal has nothing to read", name, strings.Join(where, ", ")))
	}
	return out
}

// journalFilesIn reports whether any *.journal file exists: the globs
// themselves (files) or in the directories and their sub-directories (the
// machine-id level).
func journalFilesIn(where []string, files bool) bool {
	for _, w := range where {
		if files {
			if anyExists([]string{w}) {
				return true
			}
			continue
		}
		for _, pat := range []string{"*.journal", "*/*.journal", "*.journal~", "*/*.journal~"} {
			if m, _ := filepath.Glob(filepath.Join(w, pat)); len(m) > 0 {
				return true
			}
		}
		if fi, err := os.Stat(w); err == nil && !fi.IsDir() {
			return true
		}
	}
	return false
}

// banLimits is the jail's part of the ban manager's configuration: its
// maxbans (0 in the configuration: no bound) and its ignoreip networks.
func banLimits(j config.Jail) ban.JailConfig {
	bc := ban.JailConfig{MaxBans: j.MaxBans}
	if j.MaxBans == 0 {
		bc.MaxBans = -1
	}
	for _, e := range j.IgnoreIP {
		if e.Prefix.IsValid() {
			bc.Exempt = append(bc.Exempt, e.Prefix)
		}
	}
	return bc
}
