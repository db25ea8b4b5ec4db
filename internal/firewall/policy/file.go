package policy

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// FileName is the policy file in the configuration directory.
const FileName = "firewall.rules"

// Policy is the effective content of a policy file.
type Policy struct {
	// Enabled says whether the policy is in force.
	Enabled bool
	// Default is the verdict for incoming connections no rule matches.
	Default Default
	// Rules in order; the first rule that matches a new connection decides.
	Rules []Rule
}

// Header is the comment a new policy file starts with.
const Header = `# palisade firewall policy: one command per line, in the grammar of
# "palisade firewall" (ufw's): enable|disable, default deny|reject|allow,
# allow|deny|reject|limit RULE [options]. The first matching rule decides.
# Comments and blank lines are kept. Applied at boot (palisade firewall
# apply) and when the daemon starts; edit with "palisade firewall ..." or
# by hand, then run "palisade firewall apply".
`

type lineKind int

const (
	kindText lineKind = iota // blank or comment
	kindState
	kindDefault
	kindOutgoing
	kindRule
)

type line struct {
	text     string
	kind     lineKind
	num      int // line number in the file read; 0 for added lines
	enabled  bool
	def      Default
	rule     Rule
	trailing string // a "# comment" after the command
	dirty    bool
}

func (l *line) render() string {
	if !l.dirty {
		return l.text
	}
	var s string
	switch l.kind {
	case kindState:
		s = "disable"
		if l.enabled {
			s = "enable"
		}
	case kindDefault:
		s = "default " + string(l.def) + " incoming"
	case kindOutgoing:
		s = "default allow outgoing"
	case kindRule:
		s = l.rule.String()
	default:
		return l.text
	}
	if l.trailing != "" {
		s += " " + l.trailing
	}
	return s
}

// File is a policy file: its lines, comments included, and the commands
// they hold. The zero File is an empty policy (disabled, default deny).
type File struct {
	// Path is the file's name, for messages.
	Path  string
	lines []*line
}

// NewFile returns the content of a fresh policy file: the header, disabled,
// default deny incoming.
func NewFile(path string) *File {
	f := &File{Path: path}
	for _, t := range strings.Split(strings.TrimSuffix(Header, "\n"), "\n") {
		f.lines = append(f.lines, &line{text: t})
	}
	f.lines = append(f.lines,
		&line{kind: kindState, dirty: true},
		&line{kind: kindDefault, def: DefaultDeny, dirty: true})
	return f
}

// LineError is a problem in one line of a policy file.
type LineError struct {
	File string
	Line int
	Err  error
}

func (e *LineError) Error() string { return fmt.Sprintf("%s:%d: %v", e.File, e.Line, e.Err) }
func (e *LineError) Unwrap() error { return e.Err }

// Parse reads a policy file. Every problem is reported (joined), each as a
// *LineError naming the file and line; nothing is returned then.
func Parse(path string, data []byte, names Names) (*File, error) {
	f := &File{Path: path}
	var errs []error
	fail := func(n int, err error) { errs = append(errs, &LineError{File: path, Line: n, Err: err}) }
	text := strings.TrimSuffix(strings.ReplaceAll(string(data), "\r\n", "\n"), "\n")
	if text == "" && len(data) == 0 {
		return f, nil
	}
	seen := map[lineKind]int{}
	rules := map[string]int{} // action and match -> line
	for i, raw := range strings.Split(text, "\n") {
		n := i + 1
		l := &line{text: raw, num: n}
		f.lines = append(f.lines, l)
		words, trailing, err := Split(raw)
		if err != nil {
			fail(n, err)
			continue
		}
		if len(words) == 0 {
			continue
		}
		l.trailing = trailing
		if err := l.parse(words, names); err != nil {
			fail(n, err)
			continue
		}
		if l.kind == kindState || l.kind == kindDefault {
			if first, dup := seen[l.kind]; dup {
				fail(n, fmt.Errorf("%s given twice (first at line %d)", words[0], first))
			}
			seen[l.kind] = n
		}
		if l.kind == kindRule {
			key := string(l.rule.Action) + " " + l.rule.Match()
			if first, dup := rules[key]; dup {
				fail(n, fmt.Errorf("the same rule as line %d (put limit options on one line)", first))
			} else {
				rules[key] = n
			}
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return f, nil
}

func (l *line) parse(words []string, names Names) error {
	switch words[0] {
	case "enable", "disable":
		if len(words) > 1 {
			return syntaxErr(words[1], "unexpected after %s", words[0])
		}
		l.kind, l.enabled = kindState, words[0] == "enable"
		return nil
	case "default":
		d, out, err := ParseDefaultArgs(words[1:])
		if err != nil {
			return err
		}
		if out {
			l.kind = kindOutgoing
			return nil
		}
		l.kind, l.def = kindDefault, d
		return nil
	}
	a, ok := ParseAction(words[0])
	if !ok {
		return syntaxErr(words[0], "unknown command (enable, disable, default, allow, deny, reject, limit)")
	}
	r, _, err := ParseRule(a, words[1:], names)
	if err != nil {
		return err
	}
	l.kind, l.rule = kindRule, r
	return nil
}

// ParseDefaultArgs parses the words after "default": "deny", "deny
// incoming", "allow outgoing" (accepted, and the only outgoing policy: it
// reports outgoing true).
func ParseDefaultArgs(words []string) (Default, bool, error) {
	if len(words) == 0 {
		return "", false, syntaxErr("default", "needs deny, reject or allow")
	}
	d, ok := ParseDefault(words[0])
	if !ok {
		return "", false, syntaxErr(words[0], "default policy: deny, reject or allow")
	}
	if len(words) > 2 {
		return "", false, syntaxErr(words[2], "unexpected")
	}
	if len(words) == 2 {
		switch words[1] {
		case "incoming":
		case "outgoing":
			if d != DefaultAllow {
				return "", false, syntaxErr("outgoing", "palisade filters incoming traffic only: outgoing is always allowed")
			}
			return d, true, nil
		case "routed":
			return "", false, syntaxErr("routed", "palisade does not filter routed traffic (only its limits apply to forwarded, DNATed ports)")
		default:
			return "", false, syntaxErr(words[1], "direction: incoming")
		}
	}
	return d, false, nil
}

// Split cuts a line into words: blanks separate words, '...' and "..."
// quote (no escapes), and a word starting with # begins a comment that runs
// to the end of the line (returned as trailing, "#" included).
func Split(s string) (words []string, trailing string, err error) {
	i := 0
	for i < len(s) {
		c := s[i]
		if c == ' ' || c == '\t' {
			i++
			continue
		}
		if c == '#' {
			return words, strings.TrimRight(s[i:], " \t"), nil
		}
		var w strings.Builder
		for i < len(s) && s[i] != ' ' && s[i] != '\t' {
			if q := s[i]; q == '\'' || q == '"' {
				end := strings.IndexByte(s[i+1:], q)
				if end < 0 {
					return nil, "", syntaxErr(s[i:], "unterminated quote")
				}
				w.WriteString(s[i+1 : i+1+end])
				i += end + 2
				continue
			}
			w.WriteByte(s[i])
			i++
		}
		words = append(words, w.String())
	}
	return words, "", nil
}

// Policy returns the file's effective policy. A file without a state line
// is disabled; without a default line it denies.
func (f *File) Policy() Policy {
	p := Policy{Default: DefaultDeny}
	for _, l := range f.lines {
		switch l.kind {
		case kindState:
			p.Enabled = l.enabled
		case kindDefault:
			p.Default = l.def
		case kindRule:
			p.Rules = append(p.Rules, l.rule)
		}
	}
	return p
}

// Bytes renders the file: unchanged lines exactly as read, changed and
// added ones in canonical form.
func (f *File) Bytes() []byte {
	var b strings.Builder
	for _, l := range f.lines {
		b.WriteString(l.render())
		b.WriteByte('\n')
	}
	return []byte(b.String())
}

// Clone returns an independent copy.
func (f *File) Clone() *File {
	c := &File{Path: f.Path, lines: make([]*line, len(f.lines))}
	for i, l := range f.lines {
		cp := *l
		c.lines[i] = &cp
	}
	return c
}

func (f *File) find(kind lineKind) *line {
	for _, l := range f.lines {
		if l.kind == kind {
			return l
		}
	}
	return nil
}

// insertDirective adds a state or default line before the first command.
func (f *File) insertDirective(l *line) {
	i := slices.IndexFunc(f.lines, func(x *line) bool { return x.kind != kindText })
	if i < 0 {
		i = len(f.lines)
	}
	f.lines = slices.Insert(f.lines, i, l)
}

// SetEnabled writes enable or disable; it reports whether anything changed.
func (f *File) SetEnabled(on bool) bool {
	if l := f.find(kindState); l != nil {
		if l.enabled == on {
			return false
		}
		l.enabled, l.dirty = on, true
		return true
	}
	f.insertDirective(&line{kind: kindState, enabled: on, dirty: true})
	return true
}

// SetDefault writes the default policy; it reports whether anything changed.
func (f *File) SetDefault(d Default) bool {
	if l := f.find(kindDefault); l != nil {
		if l.def == d {
			return false
		}
		l.def, l.dirty = d, true
		return true
	}
	f.insertDirective(&line{kind: kindDefault, def: d, dirty: true})
	return d != DefaultDeny
}

// Outcome of adding a rule.
type Outcome string

// Outcomes.
const (
	Added   Outcome = "added"
	Updated Outcome = "updated"
	Exists  Outcome = "exists"
)

func (f *File) ruleLines() []*line {
	var out []*line
	for _, l := range f.lines {
		if l.kind == kindRule {
			out = append(out, l)
		}
	}
	return out
}

// Add puts r into the policy the way ufw does: a rule for the same traffic
// is updated in place (its action replaced; for limit rules the options
// given are merged in), an identical rule is left alone, anything else is
// appended after the last rule. It returns the rule's number.
func (f *File) Add(r Rule, given []string) (Outcome, int) {
	for i, l := range f.ruleLines() {
		if l.rule.Match() != r.Match() {
			continue
		}
		upd := r
		if r.Action == Limit && l.rule.Action == Limit {
			upd.Limit = MergeLimits(l.rule.Limit, r.Limit, given)
		}
		if upd.Comment == "" {
			upd.Comment = l.rule.Comment
		}
		if upd.Action == l.rule.Action && upd.Limit == l.rule.Limit && upd.Comment == l.rule.Comment {
			return Exists, i + 1
		}
		l.rule, l.dirty = upd, true
		return Updated, i + 1
	}
	n := len(f.ruleLines())
	l := &line{kind: kindRule, rule: r, dirty: true}
	idx := len(f.lines)
	for i := len(f.lines) - 1; i >= 0; i-- {
		if f.lines[i].kind == kindRule {
			idx = i + 1
			break
		}
	}
	f.lines = slices.Insert(f.lines, idx, l)
	return Added, n + 1
}

// Insert puts r before rule number pos (1-based; past the end appends).
func (f *File) Insert(pos int, r Rule) {
	rules := f.ruleLines()
	l := &line{kind: kindRule, rule: r, dirty: true}
	if pos < 1 || pos > len(rules) {
		f.Add(r, nil)
		return
	}
	i := slices.Index(f.lines, rules[pos-1])
	f.lines = slices.Insert(f.lines, i, l)
}

// DeleteNumber removes rule number n (1-based, as `status numbered` shows).
func (f *File) DeleteNumber(n int) (Rule, error) {
	rules := f.ruleLines()
	if n < 1 || n > len(rules) {
		if len(rules) == 0 {
			return Rule{}, syntaxErr(fmt.Sprint(n), "there are no rules")
		}
		return Rule{}, syntaxErr(fmt.Sprint(n), "no such rule: numbers are 1-%d (palisade firewall status numbered)", len(rules))
	}
	l := rules[n-1]
	f.lines = slices.DeleteFunc(f.lines, func(x *line) bool { return x == l })
	return l.rule, nil
}

// ErrNoRule is returned by Delete when no rule matches.
var ErrNoRule = errors.New("no such rule")

// Delete removes the rule with r's action and match. For a limit rule
// given with options, those options must match too. It returns the
// deleted rule's number.
func (f *File) Delete(r Rule, given []string) (int, error) {
	for i, l := range f.ruleLines() {
		if l.rule.Action != r.Action || l.rule.Match() != r.Match() {
			continue
		}
		if r.Action == Limit && len(given) > 0 && MergeLimits(l.rule.Limit, r.Limit, given) != l.rule.Limit {
			continue
		}
		f.lines = slices.DeleteFunc(f.lines, func(x *line) bool { return x == l })
		return i + 1, nil
	}
	return 0, fmt.Errorf("%w: %s (palisade firewall status numbered lists them)", ErrNoRule, r)
}
