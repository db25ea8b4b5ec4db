package config

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/palisade-project/palisade/internal/config/ini"
	"github.com/palisade-project/palisade/internal/filter"
)

// FilterSpec says which filter to load and how.
type FilterSpec struct {
	// Name is a filter name looked up as filter.d/NAME in the
	// configuration directories and the built-ins ("sshd"; a ".conf" or
	// ".local" suffix is dropped), or, when it contains a '/', the path of
	// a filter file on disk ("./my.conf", "/etc/fail2ban/filter.d/sshd.conf"),
	// read with its NAME.local and NAME.d/ beside it; an include missing
	// beside it is then looked up in each dir's filter.d and the built-ins.
	Name string
	// Options are the filter's arguments in order: what
	// "filter = sshd[mode=aggressive]" or "palisade regex --opt" give.
	// They override [Init] values and become visible to %(x)s
	// interpolation and as <tags>.
	Options []ini.Option
	// JailOptions, when not nil, reads the filter for a jail, as fail2ban's
	// JailReader does: the jail's options (those fail2ban's jail knows:
	// failregex, maxlines, logpath, ...) are variables of [Definition]
	// interpolation below Options and [Init]; a filter key the jail sets
	// is not read from [Definition], and the jail's own value is applied
	// as fail2ban's server would (regex and journalmatch lines added after
	// the filter's, datepattern replaced, maxlines and prefregex only when
	// the filter has none from [Init] or its arguments). nil outside a jail
	// (palisade regex, fail2ban-regex).
	JailOptions ini.Vars
	// Backend is the jail's backend; when no logtype option is given and
	// the filter's [Definition] sets none, logtype is "journal" for a
	// "systemd..." backend and "file" otherwise.
	Backend string
	// All makes LoadedFilter.Options the jail's first reading instead:
	// every [Definition] option resolved and substituted, which fail2ban
	// merges into the jail section as "known/NAME" (for %(known/...)s in
	// jail options). The Definition is unaffected.
	All bool
}

// LoadedFilter is a filter after reading, interpolation and tag
// substitution.
type LoadedFilter struct {
	Definition filter.Definition
	// Options are fail2ban's combined options after substitution, in
	// fail2ban's order: the [Definition] keys read (see FilterSpec.All),
	// then the arguments, logtype, and the [Init] values (each also as
	// "known/NAME").
	Options []ini.Option
	// Files are the files read, in merge order; Warnings are tolerated
	// problems (include cycles).
	Files    []string
	Warnings []string
	// Raw are the options of [Definition] and [Init] (with [DEFAULT]) as
	// written, with file and line, for locating a regex in the files.
	Raw []RawOption
}

// RawOption is one filter option as written.
type RawOption struct {
	Section, Key string
	ini.Value
}

// Option returns a combined option's value.
func (f *LoadedFilter) Option(name string) (string, bool) {
	for _, o := range f.Options {
		if o.Name == name {
			return o.Value, true
		}
	}
	return "", false
}

// filterConfigOpts are the [Definition] keys fail2ban's FilterReader reads,
// in its order.
var filterConfigOpts = []string{"usedns", "prefregex", "ignoreregex", "failregex", "maxlines", "datepattern", "journalmatch"}

// LoadFilter loads a filter the way fail2ban's FilterReader does and
// returns its definition. dirs are configuration directories (each may
// hold filter.d/), the first holding a file wins; builtin holds the
// embedded filters as "filter.d/NAME.conf" and loses to any disk file of
// the same name (nil: no built-ins). See ReadFilter.
func LoadFilter(spec FilterSpec, dirs []string, builtin fs.FS) (filter.Definition, error) {
	f, err := ReadFilter(spec, dirs, builtin)
	if err != nil {
		return filter.Definition{}, err
	}
	return f.Definition, nil
}

// filterLoader builds the reader for spec and returns it with the name to
// read and the display name of the filter.
func filterLoader(spec FilterSpec, dirs []string, builtin fs.FS) (l *ini.Loader, read func() (*ini.Config, error), display string, err error) {
	name := strings.TrimSpace(spec.Name)
	if name == "" {
		return nil, nil, "", errors.New("empty filter name")
	}
	var layers []ini.Layer
	if strings.Contains(name, "/") {
		p, err := filepath.Abs(name)
		if err != nil {
			return nil, nil, "", fmt.Errorf("filter %q: %w", name, err)
		}
		dir, file := filepath.Split(p)
		layers = append(layers, ini.DirLayer(dir))
		// An include missing beside the file ("common.conf") is looked up
		// in the configuration directories' filter.d, then the built-ins.
		for _, d := range dirs {
			if fd := filepath.Join(d, "filter.d"); filepath.Clean(fd) != filepath.Clean(dir) {
				layers = append(layers, ini.DirLayer(fd))
			}
		}
		if builtin != nil {
			if sub, err := fs.Sub(builtin, "filter.d"); err == nil {
				layers = append(layers, ini.Layer{FS: sub, Name: BuiltinName + "/filter.d"})
			}
		}
		l = &ini.Loader{Layers: layers}
		if base, ok := strings.CutSuffix(file, ".conf"); ok {
			return l, func() (*ini.Config, error) { return l.Read(base) }, p, nil
		}
		return l, func() (*ini.Config, error) { return l.ReadFiles(file) }, p, nil
	}
	name = strings.TrimSuffix(strings.TrimSuffix(name, ".conf"), ".local")
	if !fs.ValidPath("filter.d/"+name) || strings.ContainsAny(name, `\`) {
		return nil, nil, "", fmt.Errorf("invalid filter name %q", spec.Name)
	}
	for _, d := range dirs {
		layers = append(layers, ini.DirLayer(d))
	}
	if builtin != nil {
		layers = append(layers, ini.Layer{FS: builtin, Name: BuiltinName})
	}
	l = &ini.Loader{Layers: layers}
	return l, func() (*ini.Config, error) { return l.Read("filter.d/" + name) }, name, nil
}

// ReadFilter loads a filter like fail2ban's FilterReader (read,
// applyAutoOptions, getOptions, getCombined, convert):
//
//  1. the files: filter.d/NAME.conf, NAME.d/*.conf, NAME.local,
//     NAME.d/*.local with their [INCLUDES]; for a path, the same around the
//     file in its own directory;
//  2. the [Definition] keys prefregex, failregex, ignoreregex, maxlines,
//     datepattern, journalmatch, usedns with %(x)s interpolation, where
//     spec.Options (and logtype) override [Init]/[DEFAULT] values;
//  3. [Init] values join spec.Options (which win), each also as
//     "known/NAME";
//  4. fail2ban's recursive <tag> substitution over the combined options,
//     resolving other tags from [Definition]/[DEFAULT] (including
//     <section/option> and <known/option> forms); tags that name nothing
//     (<HOST>, <F-USER>, <SKIPLINES>...) stay for the regex layer;
//  5. failregex and ignoreregex are split into one regex per non-empty
//     line, maxlines must be an integer.
func ReadFilter(spec FilterSpec, dirs []string, builtin fs.FS) (*LoadedFilter, error) {
	_, read, display, err := filterLoader(spec, dirs, builtin)
	if err != nil {
		return nil, err
	}
	cfg, err := read()
	if err != nil {
		return nil, fmt.Errorf("filter %s: %w", display, err)
	}
	// fail2ban's _initOpts: the arguments, then logtype, then [Init].
	args := newOptMap(spec.Options)
	if v, _ := args.get("logtype"); v == "" && !cfg.HasOption("Definition", "logtype", false) {
		lt := "file"
		if strings.HasPrefix(spec.Backend, "systemd") {
			lt = "journal"
		}
		args.set("logtype", lt)
	}
	initOpts := newOptMap(args.list)
	if cfg.HasSection("Init") {
		keys, _ := cfg.Options("Init", false)
		for _, k := range keys {
			if k == "__name__" {
				continue
			}
			v, err := cfg.Get("Init", k, nil)
			if err != nil {
				return nil, fmt.Errorf("filter %s: %w", display, err)
			}
			if !strings.HasPrefix(k, "known/") {
				initOpts.set("known/"+k, v)
			}
			if _, ok := initOpts.get(k); !ok {
				initOpts.set(k, v)
			}
		}
	}
	// pOpts, the variables of [Definition] interpolation. fail2ban-regex
	// reads the filter once, with the arguments only; a jail reads it twice
	// and keeps the second reading, made with the jail's options and the
	// [Init] values of the first one.
	var pOpts ini.Vars
	if spec.JailOptions == nil {
		pOpts = args.vars(nil)
	} else {
		pOpts = initOpts.vars(jailVars(spec.JailOptions, jailConfigOpts))
	}
	res := &LoadedFilter{Files: cfg.Files(), Warnings: cfg.Warnings()}
	for _, sec := range []string{"Definition", "Init"} {
		keys, _ := cfg.Options(sec, true)
		for _, k := range keys {
			if v, ok := cfg.Raw(sec, k); ok && v.File != "" && k != "__name__" {
				res.Raw = append(res.Raw, RawOption{Section: sec, Key: k, Value: v})
			}
		}
	}
	definition := func(pOpts ini.Vars, all bool) (*optMap, error) {
		opts := newOptMap(nil)
		if !cfg.HasSection("Definition") {
			return opts, nil
		}
		for _, k := range filterConfigOpts {
			if _, ok := pOpts[k]; ok {
				continue
			}
			v, err := cfg.Get("Definition", k, pOpts)
			if errors.Is(err, ini.ErrNoOption) {
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("filter %s: %w", display, err)
			}
			opts.set(k, v)
		}
		if all {
			keys, _ := cfg.Options("Definition", false)
			for _, k := range keys {
				if _, ok := opts.get(k); ok || k == "__name__" {
					continue
				}
				v, err := cfg.Get("Definition", k, nil)
				if err != nil {
					return nil, fmt.Errorf("filter %s: %w", display, err)
				}
				opts.set(k, v)
			}
		}
		return opts, nil
	}
	combine := func(opts *optMap, pOpts ini.Vars) ([]ini.Option, error) {
		combined := newOptMap(opts.list)
		for _, o := range initOpts.list {
			combined.set(o.Name, o.Value)
		}
		subst, err := substituteFilterTags(cfg, combined.list, pOpts)
		if err != nil {
			var te *ini.TagError
			if errors.As(err, &te) && te.Err == nil {
				for _, sec := range []string{"Definition", "Init"} {
					if v, ok := cfg.Raw(sec, te.Tag); ok && v.File != "" {
						return nil, &Error{File: v.File, Line: v.Line, Key: te.Tag, Msg: err.Error()}
					}
				}
			}
			return nil, fmt.Errorf("filter %s: %w", display, err)
		}
		return subst, nil
	}
	opts, err := definition(pOpts, false)
	if err != nil {
		return nil, err
	}
	subst, err := combine(opts, pOpts)
	if err != nil {
		return nil, err
	}
	res.Options = subst
	if spec.All {
		// The jail's first reading: only enabled, backend and filter are
		// known, every [Definition] option is resolved.
		p1 := args.vars(jailVars(spec.JailOptions, jailFirstOpts))
		all, err := definition(p1, true)
		if err != nil {
			return nil, err
		}
		if res.Options, err = combine(all, p1); err != nil {
			return nil, err
		}
	}
	def := filter.Definition{Name: display}
	for _, o := range subst {
		switch o.Name {
		case "prefregex":
			def.PrefRegex = o.Value
		case "failregex":
			def.FailRegex = splitRegexLines(o.Value)
		case "ignoreregex":
			def.IgnoreRegex = splitRegexLines(o.Value)
		case "datepattern":
			def.DatePattern = o.Value
		case "journalmatch":
			def.JournalMatch = o.Value
		case "maxlines":
			n, err := strconv.Atoi(strings.TrimSpace(o.Value))
			if err != nil || n < 0 {
				e := &Error{File: display, Section: "Definition", Key: "maxlines", Msg: fmt.Sprintf("not a non-negative integer: %q", o.Value)}
				if v, ok := cfg.Raw("Definition", "maxlines"); ok && v.File != "" {
					e.File, e.Line = v.File, v.Line
				}
				return nil, e
			}
			def.MaxLines = n
		}
	}
	if spec.JailOptions != nil {
		if err := applyJailStream(&def, subst, spec.JailOptions); err != nil {
			return nil, err
		}
	}
	res.Definition = def
	return res, nil
}

// applyJailStream adds what a jail sets itself for the filter keys, the
// way fail2ban's server receives the filter's commands then the jail's:
// regex and journalmatch lines accumulate (filter's first), datepattern
// is the jail's, and maxlines/prefregex stay the filter's when the filter
// still has them (from [Init] or its arguments; the jail's value is sent
// first and overwritten).
func applyJailStream(def *filter.Definition, filterOpts []ini.Option, jail ini.Vars) error {
	has := map[string]bool{}
	for _, o := range filterOpts {
		has[o.Name] = true
	}
	for _, k := range filterConfigOpts {
		v, ok := jail[k]
		if !ok {
			continue
		}
		switch k {
		case "failregex":
			def.FailRegex = append(def.FailRegex, splitRegexLines(v)...)
		case "ignoreregex":
			def.IgnoreRegex = append(def.IgnoreRegex, splitRegexLines(v)...)
		case "journalmatch":
			if v != "" {
				if def.JournalMatch != "" {
					def.JournalMatch += "\n"
				}
				def.JournalMatch += v
			}
		case "datepattern":
			def.DatePattern = v
		case "prefregex":
			if !has[k] {
				def.PrefRegex = v
			}
		case "maxlines":
			if !has[k] {
				n, err := strconv.Atoi(strings.TrimSpace(v))
				if err != nil || n < 0 {
					return &Error{Key: "maxlines", Msg: fmt.Sprintf("not a non-negative integer: %q", v)}
				}
				def.MaxLines = n
			}
		}
	}
	return nil
}

// substituteFilterTags is fail2ban's getCombined: the recursive <tag>
// substitution over the combined options, other tags resolved from
// [Definition] (getCombOption), conditional names ("port?family=inet6")
// neither substituted nor substituted into.
func substituteFilterTags(cfg *ini.Config, combined []ini.Option, pOpts ini.Vars) ([]ini.Option, error) {
	ignore := map[string]bool{}
	for _, o := range combined {
		if i := strings.IndexByte(o.Name, '?'); i > 0 && isWord(o.Name[:i]) && i+1 < len(o.Name) {
			ignore[o.Name[:i]] = true
		}
	}
	cache := map[string]*string{}
	lookup := func(name string) (string, bool, error) {
		if v, ok := cache[name]; ok {
			if v == nil {
				return "", false, nil
			}
			return *v, true, nil
		}
		v, err := cfg.GetEx("Definition", name, pOpts)
		if errors.Is(err, ini.ErrNoOption) || errors.Is(err, ini.ErrNoSection) {
			cache[name] = nil
			return "", false, nil
		}
		if err != nil {
			return "", false, err
		}
		cache[name] = &v
		return v, true, nil
	}
	return ini.SubstituteTags(combined, ini.TagOptions{Ignore: ignore, Lookup: lookup})
}

// jailConfigOpts are the jail options fail2ban's JailReader reads and
// passes to the filter; jailFirstOpts those of its first reading.
var (
	jailConfigOpts = map[string]bool{
		"action": true, "backend": true, "bantime": true, "bantime.factor": true, "bantime.formula": true,
		"bantime.increment": true, "bantime.maxtime": true, "bantime.multipliers": true,
		"bantime.overalljails": true, "bantime.rndtime": true, "datepattern": true, "enabled": true,
		"failregex": true, "filter": true, "findtime": true, "ignorecache": true, "ignorecommand": true,
		"ignoreip": true, "ignoreregex": true, "ignoreself": true, "journalmatch": true,
		"logencoding": true, "logpath": true, "logtimezone": true, "maxlines": true, "maxmatches": true,
		"maxretry": true, "prefregex": true, "usedns": true,
	}
	jailFirstOpts = map[string]bool{"enabled": true, "backend": true, "filter": true}
)

// jailVars keeps the jail options fail2ban would pass.
func jailVars(jail ini.Vars, keep map[string]bool) ini.Vars {
	out := ini.Vars{}
	for k, v := range jail {
		if keep[strings.ToLower(k)] {
			out[strings.ToLower(k)] = v
		}
	}
	return out
}

// splitRegexLines splits a multi-line regex option into its non-empty lines.
func splitRegexLines(v string) []string {
	var out []string
	for _, line := range strings.Split(v, "\n") {
		if line != "" {
			out = append(out, line)
		}
	}
	return out
}

func isWord(s string) bool {
	for _, r := range s {
		if !(r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r > 127) {
			return false
		}
	}
	return s != ""
}

// optMap is an insertion-ordered map, like a Python dict.
type optMap struct {
	list  []ini.Option
	index map[string]int
}

func newOptMap(init []ini.Option) *optMap {
	m := &optMap{index: map[string]int{}}
	for _, o := range init {
		m.set(o.Name, o.Value)
	}
	return m
}

func (m *optMap) get(k string) (string, bool) {
	if i, ok := m.index[k]; ok {
		return m.list[i].Value, true
	}
	return "", false
}

// vars returns base overridden by the map's values.
func (m *optMap) vars(base ini.Vars) ini.Vars {
	out := ini.Vars{}
	for k, v := range base {
		out[k] = v
	}
	for _, o := range m.list {
		out[o.Name] = o.Value
	}
	return out
}

func (m *optMap) set(k, v string) {
	if i, ok := m.index[k]; ok {
		m.list[i].Value = v
		return
	}
	m.index[k] = len(m.list)
	m.list = append(m.list, ini.Option{Name: k, Value: v})
}
