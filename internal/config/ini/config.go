package ini

import (
	"fmt"
	"regexp"
	"strings"
)

// KnownPrefix prefixes the hidden sections that keep the values a later
// file overrode ("KNOWN/Definition"), read through %(known/name)s.
const KnownPrefix = "KNOWN/"

// MaxInterpolationDepth is Python configparser's limit on nested %(x)s.
const MaxInterpolationDepth = 10

// Config is a merged configuration.
type Config struct {
	defaults *Section
	sections map[string]*Section
	order    []string
	files    []string
	warnings []string
}

func newConfig() *Config {
	return &Config{defaults: newSection(DefaultSection), sections: map[string]*Section{}}
}

// New returns an empty configuration (useful to build one in a program).
func New() *Config { return newConfig() }

// merge adds one file on top of the configuration, like fail2ban's
// SafeConfigParserWithIncludes.read: defaults are updated, sections merged
// key by key, and overridden values saved in KNOWN/<section>.
func (c *Config) merge(f *File) {
	for _, k := range f.Defaults.keys {
		c.defaults.Set(k, f.Defaults.vals[k])
	}
	for _, s := range f.Sections {
		name := s.Name
		if m := conditionalRE.FindStringSubmatch(name); m != nil {
			name = m[1]
			cond := newSection(name)
			for _, k := range s.keys {
				cond.Set(k+m[2], s.vals[k])
			}
			s = cond
		}
		if old, ok := c.sections[name]; ok {
			known := c.section(KnownPrefix + name)
			for _, k := range old.keys {
				if _, over := s.vals[k]; over {
					known.Set(k, old.vals[k])
				}
			}
			for _, k := range s.keys {
				old.Set(k, s.vals[k])
			}
			continue
		}
		c.sections[name] = s.clone(name)
		c.order = append(c.order, name)
	}
}

// section returns the named section, creating it.
func (c *Config) section(name string) *Section {
	if s, ok := c.sections[name]; ok {
		return s
	}
	s := newSection(name)
	c.sections[name] = s
	c.order = append(c.order, name)
	return s
}

// Files returns the names of the files merged, in order (a file included
// twice appears twice).
func (c *Config) Files() []string { return append([]string(nil), c.files...) }

// Warnings returns problems that fail2ban tolerates (include cycles).
func (c *Config) Warnings() []string { return append([]string(nil), c.warnings...) }

// Sections returns the section names in the order first read, without
// DEFAULT and the KNOWN/ sections.
func (c *Config) Sections() []string {
	var out []string
	for _, n := range c.order {
		if !strings.HasPrefix(n, KnownPrefix) {
			out = append(out, n)
		}
	}
	return out
}

// HasSection reports whether the section exists (DEFAULT does not count).
func (c *Config) HasSection(name string) bool {
	_, ok := c.sections[name]
	return ok
}

// Section returns a section for direct access (nil when missing). Use
// DefaultSection for the defaults.
func (c *Config) Section(name string) *Section {
	if name == DefaultSection {
		return c.defaults
	}
	return c.sections[name]
}

// Options returns the option names of a section in order; withDefault adds
// the DEFAULT names the section does not set.
func (c *Config) Options(section string, withDefault bool) ([]string, error) {
	s, ok := c.sections[section]
	if !ok {
		return nil, fmt.Errorf("section [%s]: %w", section, ErrNoSection)
	}
	out := s.Keys()
	if withDefault {
		for _, k := range c.defaults.keys {
			if _, own := s.vals[k]; !own {
				out = append(out, k)
			}
		}
	}
	return out, nil
}

// HasOption reports whether section (or, withDefault, DEFAULT) sets opt.
func (c *Config) HasOption(section, opt string, withDefault bool) bool {
	opt = strings.ToLower(opt)
	if s, ok := c.sections[section]; ok {
		if _, ok := s.vals[opt]; ok {
			return true
		}
	} else if section != DefaultSection {
		return false
	}
	if withDefault || section == DefaultSection {
		_, ok := c.defaults.vals[opt]
		return ok
	}
	return false
}

// Raw returns the uninterpolated value of opt in section, falling back to
// DEFAULT.
func (c *Config) Raw(section, opt string) (Value, bool) {
	opt = strings.ToLower(opt)
	if s, ok := c.sections[section]; ok {
		if v, ok := s.vals[opt]; ok {
			return v, true
		}
	}
	v, ok := c.defaults.vals[opt]
	return v, ok
}

// SetDefault sets a DEFAULT option (fail2ban's merge_defaults).
func (c *Config) SetDefault(opt string, v Value) {
	c.defaults.Set(strings.ToLower(opt), v)
}

// MergeSection sets options in a section, creating it; each name gets
// prefix unless it already has it (fail2ban's merge_section, used to add a
// filter's options to a jail as "known/...").
func (c *Config) MergeSection(section string, opts []Option, prefix string) {
	s := c.section(section)
	for _, o := range opts {
		k := o.Name
		if prefix != "" {
			if strings.HasPrefix(k, prefix) || k == "__name__" {
				continue
			}
			k = prefix + k
		}
		s.Set(k, Value{Text: o.Value})
	}
}

// Vars are caller-supplied values that take precedence over the section
// and DEFAULT during lookups (Python configparser's vars).
type Vars map[string]string

// Get returns the interpolated value of opt in section, looking in vars,
// the section, then DEFAULT, like Python's ConfigParser.get with fail2ban's
// interpolation. Section DEFAULT reads the defaults alone.
func (c *Config) Get(section, opt string, vars Vars) (string, error) {
	v, err := c.lookupRaw(section, opt, vars)
	if err != nil {
		return "", err
	}
	return c.Interpolate(section, strings.ToLower(opt), v, vars)
}

// lookupRaw finds the raw value of opt in vars, section, DEFAULT.
func (c *Config) lookupRaw(section, opt string, vars Vars) (Value, error) {
	s, ok := c.sections[section]
	if !ok && section != DefaultSection {
		return Value{}, fmt.Errorf("section [%s]: %w", section, ErrNoSection)
	}
	opt = strings.ToLower(opt)
	for k, v := range vars {
		if strings.ToLower(k) == opt {
			return Value{Text: v}, nil
		}
	}
	if ok {
		if v, ok := s.vals[opt]; ok {
			return v, nil
		}
	}
	if v, ok := c.defaults.vals[opt]; ok {
		return v, nil
	}
	return Value{}, fmt.Errorf("section [%s] key %q: %w", section, opt, ErrNoOption)
}

// sectionOptRE mirrors fail2ban's SECTION_OPTNAME_CRE.
var sectionOptRE = regexp.MustCompile(`^([\w\-]+)/([^\s>]+)$`)

// GetEx is Get that also understands "section/option" names (fail2ban's
// get_ex): "known/opt" reads the value opt had before the last override
// (falling back to the current one), "default/opt" reads DEFAULT, and
// "sec/opt" reads another section; when that fails it is an ordinary Get.
func (c *Config) GetEx(section, opt string, vars Vars) (string, error) {
	if m := sectionOptRE.FindStringSubmatch(opt); m != nil {
		sec, o := m[1], m[2]
		var try []string
		switch strings.ToLower(sec) {
		case "known":
			try = []string{KnownPrefix + section, section}
		case "default":
			try = []string{DefaultSection}
		default:
			try = []string{sec}
		}
		for _, s := range try {
			v, err := c.lookupRaw(s, o, nil)
			if err != nil {
				continue
			}
			return c.Interpolate(s, strings.ToLower(o), v, nil)
		}
	}
	return c.Get(section, opt, vars)
}

// InterpolationError is an error of %(x)s interpolation.
type InterpolationError struct {
	Where   string // file:line of the value, "" when unknown
	Section string
	Key     string
	Msg     string
}

func (e *InterpolationError) Error() string {
	if e.Where != "" {
		return fmt.Sprintf("%s: key %q: %s", e.Where, e.Key, e.Msg)
	}
	return fmt.Sprintf("section [%s] key %q: %s", e.Section, e.Key, e.Msg)
}

// interp is one top-level interpolation: the lookup chain of Python's
// BasicInterpolation with fail2ban's additions (__name__, sec/opt).
type interp struct {
	c       *Config
	section string
	key     string
	origin  Value
	vars    map[string]string // lower-cased keys
	sec     *Section
	out     strings.Builder
	steps   int
}

// maxInterpolationSteps bounds the references one value may expand (the
// depth limit alone still allows exponential fan-out).
const maxInterpolationSteps = 100000

// Interpolate expands %(x)s and %% in value v of key opt as if it were read
// from section.
func (c *Config) Interpolate(section, opt string, v Value, vars Vars) (string, error) {
	if !strings.Contains(v.Text, "%") {
		return v.Text, nil
	}
	in := &interp{c: c, section: section, key: opt, origin: v, sec: c.sections[section]}
	if len(vars) > 0 {
		in.vars = make(map[string]string, len(vars))
		for k, x := range vars {
			in.vars[strings.ToLower(k)] = x
		}
	}
	if err := in.some(v.Text, 1, nil); err != nil {
		return "", err
	}
	return in.out.String(), nil
}

func (in *interp) fail(format string, args ...any) error {
	return &InterpolationError{Where: in.origin.Where(), Section: in.section, Key: in.key, Msg: fmt.Sprintf(format, args...)}
}

// chain looks name up in vars (with __name__ and the additions of this
// level), section and DEFAULT.
func (in *interp) chain(name string, extra map[string]string) (string, bool) {
	if name == "__name__" {
		return in.section, true
	}
	if v, ok := extra[name]; ok {
		return v, true
	}
	if v, ok := in.vars[name]; ok {
		return v, true
	}
	if in.sec != nil {
		if v, ok := in.sec.vals[name]; ok {
			return v.Text, true
		}
	}
	if v, ok := in.c.defaults.vals[name]; ok {
		return v.Text, true
	}
	return "", false
}

// sectionSubstRE mirrors fail2ban's SECTION_OPTSUBST_CRE.
var sectionSubstRE = regexp.MustCompile(`%\(([\w\-]+/([^\)]+))\)s`)

// mapSectionOptions mirrors fail2ban's _map_section_options: for each
// %(sec/opt)s in rest not already resolvable, add the raw value under the
// exact text "sec/opt".
func (in *interp) mapSectionOptions(rest string, parent map[string]string) map[string]string {
	if !strings.Contains(rest, "/") || !strings.Contains(rest, "%(") {
		return parent
	}
	var extra map[string]string
	for _, m := range sectionSubstRE.FindAllStringSubmatch(rest, -1) {
		sopt, opt := m[1], m[2]
		if extra != nil {
			if _, ok := extra[sopt]; ok {
				continue
			}
		}
		if _, ok := in.chain(sopt, parent); ok {
			continue
		}
		sec := sopt[:len(sopt)-len(opt)-1]
		var v Value
		found, usedef := false, false
		switch strings.ToLower(sec) {
		case "default":
			usedef = true
		case "known":
			if s, ok := in.c.sections[KnownPrefix+in.section]; ok {
				v, found = s.vals[opt]
			}
			usedef = !found
		default:
			s, ok := in.c.sections[sec]
			if !ok {
				continue
			}
			v, found = s.vals[opt]
			usedef = !found
		}
		if usedef {
			v, found = in.c.defaults.vals[opt]
		}
		if !found {
			continue
		}
		if extra == nil {
			extra = make(map[string]string, len(parent)+1)
			for k, x := range parent {
				extra[k] = x
			}
		}
		extra[sopt] = v.Text
	}
	if extra == nil {
		return parent
	}
	return extra
}

// some mirrors BasicInterpolation._interpolate_some.
func (in *interp) some(rest string, depth int, parent map[string]string) error {
	if depth > MaxInterpolationDepth {
		return in.fail("interpolation deeper than %d levels (recursive %%(...)s reference?)", MaxInterpolationDepth)
	}
	extra := in.mapSectionOptions(rest, parent)
	for rest != "" {
		if in.out.Len() > MaxValueSize {
			return in.fail("interpolated value longer than %d bytes", MaxValueSize)
		}
		p := strings.IndexByte(rest, '%')
		if p < 0 {
			in.out.WriteString(rest)
			return nil
		}
		in.out.WriteString(rest[:p])
		rest = rest[p:]
		switch {
		case strings.HasPrefix(rest, "%%"):
			in.out.WriteByte('%')
			rest = rest[2:]
		case strings.HasPrefix(rest, "%("):
			end := strings.IndexByte(rest, ')')
			if end < 3 || end+1 >= len(rest) || rest[end+1] != 's' {
				return in.fail("bad interpolation reference %q", shorten(rest))
			}
			in.steps++
			if in.steps > maxInterpolationSteps {
				return in.fail("interpolation needs more than %d expansions", maxInterpolationSteps)
			}
			name := strings.ToLower(rest[2:end])
			rest = rest[end+2:]
			v, ok := in.chain(name, extra)
			if !ok {
				return in.fail("%%(%s)s refers to a missing option", name)
			}
			if strings.Contains(v, "%") {
				if err := in.some(v, depth+1, extra); err != nil {
					return err
				}
			} else {
				in.out.WriteString(v)
			}
		default:
			return in.fail("'%%' must be followed by '%%' or '(', found %q", shorten(rest))
		}
	}
	return nil
}
