package datetime

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/dlclark/regexp2"
)

// Template flags (the anchoring of a template's regex).
const (
	flagLineBegin = 8
	flagLineEnd   = 4
	flagWordBegin = 2
	flagWordEnd   = 1
)

type tplKind uint8

const (
	kindPattern tplKind = iota // %-directive pattern, time by strptime rules
	kindEpoch                  // seconds since the epoch (EPOCH, LEPOCH)
	kindTAI64N                 // @-prefixed TAI64N label
)

// beginMode is the wordBegin argument of fail2ban's setRegex: no boundary, a word
// boundary, or the line start ("start", with up to two leading non-word chars).
type beginMode uint8

const (
	beginNone beginMode = iota
	beginWord
	beginLine
)

// template is one compiled date template. Templates are owned by one Detector.
type template struct {
	name    string
	regex   string // Python-dialect regex, as fail2ban builds it
	flags   uint8
	weight  float64
	kind    tplKind
	long    bool // LEPOCH
	grp     int  // group holding the epoch/TAI64N text
	pattern string
	hasPat  bool // the template came from a %-pattern (fail2ban's DatePatternRegex)
	builtin bool // a default template: known to compile, compiled on first use
	// first lists what the date text of a line-anchored built-in template can
	// start with ('d' ASCII digit, 'a' ASCII letter, else the byte itself);
	// lnPrefix: up to two leading non-word chars may precede it.
	first    string
	lnPrefix bool

	re     *regexp2.Regexp // compiled lazily
	reErr  error
	groups []groupField // named groups that feed strptime, in pattern order
	fast   fastKind
}

type groupField struct {
	num int
	k   fieldKey
}

// directive is one strptime %-directive: its regex (Python dialect) and the
// display name fail2ban uses in template names.
type directive struct {
	re, name string
}

// directiveTable builds the %-directive table. %ExY accepts the centuries from
// 2000 up to three years after the given year (like fail2ban, whose test and
// production clocks both include 2000-2009).
func directiveTable(year int) map[string]directive {
	months := "jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec"
	days := "mon|tue|wed|thu|fri|sat|sun"
	dayX := `(?P<d>3[0-1]|[1-2]\d|0[1-9]|[1-9]| [1-9])`
	hmsX := `(?P<H>2[0-3]|[0-1]\d|\d):(?P<M>[0-5]\d|\d):(?P<S>6[0-1]|[0-5]\d|\d)`
	exY := `(?P<Y>` + yearCenturies(year) + `\d)`
	abbr := `[A-Z](?:[A-Z]{2,4})?`
	return map[string]directive{
		"a":   {`(?P<a>` + days + `)`, "DAY"},
		"A":   {`(?P<A>wednesday|thursday|saturday|tuesday|monday|friday|sunday)`, "DAYNAME"},
		"b":   {`(?P<b>` + months + `)`, "MON"},
		"B":   {`(?P<B>september|february|november|december|january|october|august|march|april|june|july|may)`, "MONTH"},
		"c":   {`(?P<a>` + days + `)\s+(?P<b>` + months + `)\s+` + dayX + `\s+` + hmsX + `\s+(?P<Y>\d\d\d\d)`, "%c"},
		"x":   {`(?P<m>1[0-2]|0[1-9]|[1-9])/` + dayX + `/(?P<y>\d\d)`, "%x"},
		"X":   {hmsX, "%X"},
		"d":   {`(?P<d>[1-2]\d|[0 ]?[1-9]|3[0-1])`, "Day"},
		"f":   {`(?P<f>[0-9]{1,6})`, "Microseconds"},
		"G":   {`(?P<G>\d\d\d\d)`, "%G"},
		"H":   {`(?P<H>[0-1]?\d|2[0-3])`, "24hour"},
		"I":   {`(?P<I>1[0-2]|0[1-9]|[1-9])`, "12hour"},
		"j":   {`(?P<j>36[0-6]|3[0-5]\d|[1-2]\d\d|0[1-9]\d|00[1-9]|[1-9]\d|0[1-9]|[1-9])`, "Yearday"},
		"k":   {` ?(?P<H>[0-2]?\d)`, "%k"},
		"l":   {` ?(?P<I>1?\d)`, "%l"},
		"m":   {`(?P<m>0?[1-9]|1[0-2])`, "Month"},
		"M":   {`(?P<M>[0-5]?\d)`, "Minute"},
		"p":   {`(?P<p>am|pm)`, "AMPM"},
		"S":   {`(?P<S>[0-5]?\d|6[0-1])`, "Second"},
		"U":   {`(?P<U>5[0-3]|[0-4]\d|\d)`, "Yearweek"},
		"u":   {`(?P<u>[1-7])`, "%u"},
		"V":   {`(?P<V>5[0-3]|0[1-9]|[1-4]\d|\d)`, "%V"},
		"w":   {`(?P<w>[0-6])`, "Weekday"},
		"W":   {`(?P<W>5[0-3]|[0-4]\d|\d)`, "Yearweek"},
		"y":   {`(?P<y>\d\d)`, "Year2"},
		"Y":   {`(?P<Y>\d{4})`, "Year"},
		"z":   {`(?P<z>Z|UTC|GMT|[+-][01]\d(?::?\d{2})?)`, "Zone offset"},
		"Z":   {`(?P<Z>Z|[A-Z]{3,5})`, "Zone name"},
		"%":   {`%`, "%"},
		"ExY": {exY, "ExYear"},
		"Exy": {`(?P<y>\d{2})`, "ExYear2"},
		"Exm": {`(?P<m>0[1-9]|1[0-2])`, "ExMonth"},
		"Exd": {`(?P<d>[1-2]\d|0[1-9]|3[0-1])`, "ExDay"},
		"ExH": {`(?P<H>[0-1]\d|2[0-3])`, "Ex24hour"},
		"Exk": {` ?(?P<H>[0-1]?\d|2[0-3])`, "%Exk"},
		"Exl": {` ?(?P<I>1[0-2]|\d)`, "%Exl"},
		"ExM": {`(?P<M>[0-5]\d)`, "ExMinute"},
		"ExS": {`(?P<S>[0-5]\d|6[0-1])`, "ExSecond"},
		"ExZ": {`(?P<Z>` + abbr + `)`, "ExZone name"},
		"Exz": {`(?P<z>(?:` + abbr + `)?[+-][01]\d(?::?\d{2})?|` + abbr + `)`, "ExZone offset"},
	}
}

// yearCenturies returns the regex for the first three digits of an %ExY year.
func yearCenturies(year int) string {
	last := (year + 3) / 10
	if last < 202 {
		last = 202
	}
	if last > 209 {
		// beyond 2099 list them; never reached in practice
		var alts []string
		for c := 200; c <= last; c++ {
			alts = append(alts, strconv.Itoa(c))
		}
		return "(?:" + strings.Join(alts, "|") + ")"
	}
	return fmt.Sprintf("20[0-%d]", last-200)
}

// expandPattern replaces the %-directives of pattern by regex (or by names).
func expandPattern(pattern string, table map[string]directive, names bool) (string, error) {
	var b strings.Builder
	for i := 0; i < len(pattern); i++ {
		c := pattern[i]
		if c != '%' {
			b.WriteByte(c)
			continue
		}
		key := ""
		if i+3 < len(pattern) && pattern[i+1] == 'E' && pattern[i+2] == 'x' {
			if _, ok := table[pattern[i+1:i+4]]; ok {
				key = pattern[i+1 : i+4]
			}
		}
		if key == "" && i+1 < len(pattern) {
			k := pattern[i+1 : i+2]
			if k != "E" { // a lone %E is not a directive
				if _, ok := table[k]; ok {
					key = k
				}
			}
		}
		if key == "" {
			return "", fmt.Errorf("datepattern %q: unsupported directive or unescaped %% at offset %d", pattern, i)
		}
		d := table[key]
		if names {
			b.WriteString(d.name)
		} else {
			b.WriteString(d.re)
		}
		i += len(key)
	}
	return b.String(), nil
}

// --- textual checks fail2ban applies to template regexes ---

// isWordByte reports a Python \w for ASCII (patterns are ASCII in practice).
func isWordByte(c byte) bool {
	return c == '_' || ('0' <= c && c <= '9') || ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z') || c >= 0x80
}

// flagGroupLen returns the length of a "(?flags)" group at the start of s
// (flags = one or more word chars), or 0.
func flagGroupLen(s string, lowerOnly bool) int {
	if !strings.HasPrefix(s, "(?") {
		return 0
	}
	i := 2
	for i < len(s) && (lowerOnly && 'a' <= s[i] && s[i] <= 'z' || !lowerOnly && isWordByte(s[i])) {
		i++
	}
	if i == 2 || i >= len(s) || s[i] != ')' {
		return 0
	}
	return i + 1
}

// cutGlobalFlags removes the first "(?letters)" group anywhere in regex.
func cutGlobalFlags(regex string) (rest, flags string) {
	for i := 0; i+1 < len(regex); i++ {
		if regex[i] == '(' {
			if n := flagGroupLen(regex[i:], true); n > 0 {
				return regex[:i] + regex[i+n:], regex[i : i+n]
			}
		}
	}
	return regex, ""
}

// noWordBoundBegin: the regex starts (after parentheses and flags) with ^ or **.
func noWordBoundBegin(regex string) bool {
	open := 0
	for open < len(regex) && regex[open] == '(' {
		open++
	}
	for k := open; k >= 0; k-- {
		rest := regex[k:]
		for _, skip := range []int{flagGroupLen(rest, false), 0} {
			r := rest[skip:]
			if strings.HasPrefix(r, "^") || strings.HasPrefix(strings.TrimLeft(r, "("), "**") ||
				strings.HasPrefix(r, "(^") || strings.HasPrefix(r, "(?:^") {
				return true
			}
		}
	}
	return false
}

// escapedAt reports whether regex[i] is preceded by a backslash.
func escapedAt(regex string, i int) bool { return i > 0 && regex[i-1] == '\\' }

// noWordBoundEnd: the regex ends with $, $), \b, \s or ** (plus parentheses).
func noWordBoundEnd(regex string) bool {
	switch {
	case strings.HasSuffix(regex, "$") && !escapedAt(regex, len(regex)-1):
		return true
	case strings.HasSuffix(regex, "$)") && !escapedAt(regex, len(regex)-2):
		return true
	case (strings.HasSuffix(regex, `\b`) || strings.HasSuffix(regex, `\s`)) && !escapedAt(regex, len(regex)-2):
		return true
	}
	t := strings.TrimRight(regex, ")")
	return strings.HasSuffix(t, "**") && !escapedAt(t, len(t)-2)
}

// hasCapturingGroup: a "(" that is not escaped, not "(?", not right after "(?".
func hasCapturingGroup(regex string) bool {
	for i := 0; i < len(regex); i++ {
		if regex[i] != '(' {
			continue
		}
		if i >= 2 && regex[i-2:i] == "(?" {
			continue
		}
		if escapedAt(regex, i) {
			continue
		}
		if i+1 < len(regex) && regex[i+1] == '?' {
			continue
		}
		return true
	}
	return false
}

// wrapGroup puts the body of regex (between a leading flags/^ prefix and a
// trailing $) into a capturing group.
func wrapGroup(regex string) string {
	p := flagGroupLen(regex, false)
	if strings.HasPrefix(regex[p:], "^") {
		p++
	}
	p += flagGroupLen(regex[p:], false)
	body, end := regex[p:], ""
	if strings.HasSuffix(body, "$") {
		body, end = body[:len(body)-1], "$"
	}
	return regex[:p] + "(" + body + ")" + end
}

// lineBoundBegin: the regex is anchored at the line start.
func lineBoundBegin(regex string) bool {
	r := regex[flagGroupLen(regex, false):]
	if strings.HasPrefix(r, "^") {
		return true
	}
	for _, p := range []string{"(^", "(?:^"} {
		if strings.HasPrefix(r, p) && !strings.HasPrefix(r[len(p):], "|") {
			return true
		}
	}
	return false
}

// lineBoundEnd: the regex ends with an unescaped $ (or $)).
func lineBoundEnd(regex string) bool {
	i := -1
	if strings.HasSuffix(regex, "$") {
		i = len(regex) - 1
	} else if strings.HasSuffix(regex, "$)") {
		i = len(regex) - 2
	}
	return i >= 0 && !(i > 0 && (regex[i-1] == '\\' || regex[i-1] == '|'))
}

// deleteStarBounds removes the "**" boundary markers at the start and end.
func deleteStarBounds(regex string) string {
	// leading: (* [(?flags)] (* **
	i := 0
	for i < len(regex) && regex[i] == '(' {
		i++
	}
	for k := i; k >= 0; k-- {
		j := k + flagGroupLen(regex[k:], false)
		for j < len(regex) && regex[j] == '(' {
			j++
		}
		if strings.HasPrefix(regex[j:], "**") {
			regex = regex[:j] + regex[j+2:]
			break
		}
	}
	t := strings.TrimRight(regex, ")")
	if strings.HasSuffix(t, "**") && !escapedAt(t, len(t)-2) {
		regex = t[:len(t)-2] + regex[len(t):]
	}
	return regex
}

// setRegex is fail2ban's DateTemplate.setRegex: adds boundaries, a group and
// computes the anchoring flags.
func (t *template) setRegex(regex string, begin beginMode, wordEnd bool) {
	regex = strings.TrimSpace(regex)
	regex, gf := cutGlobalFlags(regex)
	boundBegin := begin != beginNone && !noWordBoundBegin(regex)
	boundEnd := wordEnd && !noWordBoundEnd(regex)
	if !hasCapturingGroup(regex) {
		regex = wrapGroup(regex)
	}
	t.flags = 0
	if boundBegin {
		if begin == beginLine {
			t.flags |= flagLineBegin
			t.lnPrefix = true
			regex = `^(?:\W{0,2})?` + regex
			if !strings.HasPrefix(t.name, "{^LN-BEG}") {
				t.name = "{^LN-BEG}" + t.name
			}
		} else {
			t.flags |= flagWordBegin
			regex = `(?=^|\b|\W)` + regex
		}
	}
	if boundEnd {
		t.flags |= flagWordEnd
		regex += `(?=\b|\W|$)`
	}
	if t.flags&flagLineBegin == 0 && lineBoundBegin(regex) {
		t.flags |= flagLineBegin
	}
	if t.flags&flagLineEnd == 0 && lineBoundEnd(regex) {
		t.flags |= flagLineEnd
	}
	regex = deleteStarBounds(regex)
	t.regex = gf + regex
}

// newPatternTemplate is fail2ban's DatePatternRegex.
func newPatternTemplate(pattern string, table map[string]directive) (*template, error) {
	t := &template{pattern: pattern, hasPat: true, weight: 1, kind: kindPattern}
	begin, wordEnd := beginWord, true
	if strings.HasPrefix(pattern, "{UNB}") {
		pattern = pattern[len("{UNB}"):]
		begin, wordEnd = beginNone, false
	}
	if begin != beginNone && strings.HasPrefix(pattern, "{^LN-BEG}") {
		pattern = pattern[len("{^LN-BEG}"):]
		begin = beginLine
	}
	name, err := expandPattern(pattern, table, true)
	if err != nil {
		return nil, err
	}
	regex, err := expandPattern(pattern, table, false)
	if err != nil {
		return nil, err
	}
	t.name = name
	if hasAlphaDirective(pattern) {
		regex = `(?iu)` + regex
	}
	t.setRegex(regex, begin, wordEnd)
	return t, nil
}

// hasAlphaDirective: %a %A %b %B %p %c not preceded by another %.
func hasAlphaDirective(p string) bool {
	for i := 0; i+1 < len(p); i++ {
		if p[i] == '%' && (i == 0 || p[i-1] != '%') && strings.IndexByte("aAbBpc", p[i+1]) >= 0 {
			return true
		}
	}
	return false
}

const (
	epochRE     = `\d{10,11}\b(?:\.\d{3,6})?`
	longEpochRE = `\d{10,11}(?:\d{3}(?:\.\d{1,6}|\d{3})?)?`
)

// newEpochTemplate is fail2ban's DateEpoch.
func newEpochTemplate(lineBeginOnly bool, pattern string, long bool) *template {
	t := &template{kind: kindEpoch, long: long, grp: 1, weight: 1, name: "Epoch"}
	ere := epochRE
	if long {
		t.name = "LongEpoch"
		ere = longEpochRE
	}
	switch {
	case pattern != "":
		t.name = pattern
		t.grp = 2
		t.setRegex("("+replaceEpochMarker(pattern, "("+ere+")")+")", beginWord, true)
	case !lineBeginOnly:
		t.setRegex(`((?:^|(?P<square>(?<=^\[))|(?P<selinux>(?<=\baudit\()))`+ere+`)(?:(?(selinux)(?=:\d+\)))|(?(square)(?=\])))`, beginNone, true)
	default:
		t.setRegex(`((?P<square>(?<=^\[))?`+ere+`)(?(square)(?=\]))`, beginLine, true)
	}
	return t
}

// findEpochMarker locates an unescaped {EPOCH} or {LEPOCH} (any case).
func findEpochMarker(p string) (int, int) {
	u := strings.ToUpper(p)
	for i := 0; i < len(u); i++ {
		if u[i] != '{' || escapedAt(p, i) {
			continue
		}
		for _, m := range []string{"{EPOCH}", "{LEPOCH}"} {
			if strings.HasPrefix(u[i:], m) {
				return i, i + len(m)
			}
		}
	}
	return -1, -1
}

func replaceEpochMarker(p, repl string) string {
	var b strings.Builder
	for {
		s, e := findEpochMarker(p)
		if s < 0 {
			b.WriteString(p)
			return b.String()
		}
		b.WriteString(p[:s])
		b.WriteString(repl)
		p = p[e:]
	}
}

// newTAI64NTemplate is fail2ban's DateTai64n.
func newTAI64NTemplate(lineStart bool) *template {
	t := &template{kind: kindTAI64N, grp: 1, weight: 1, name: "TAI64N"}
	b := beginNone
	if lineStart {
		b = beginLine
	}
	t.setRegex(`@[0-9a-f]{24}`, b, true)
	return t
}

// patternKey is fail2ban's cache key: patterns without % are case-insensitive.
func patternKey(p string) string {
	if strings.Contains(p, "%") {
		return p
	}
	return strings.ToUpper(p)
}

// newTemplateFor is fail2ban's _getPatternTemplate: EPOCH/LEPOCH/TAI64N
// keywords, else a %-pattern.
func newTemplateFor(pattern, key string, table map[string]directive) (*template, error) {
	if strings.Contains(key, "EPOCH") {
		if s, _ := findEpochMarker(pattern); s >= 0 {
			return newEpochTemplate(false, pattern, strings.Contains(key, "LEPOCH")), nil
		}
		switch key {
		case "EPOCH", "{^LN-BEG}EPOCH", "^EPOCH":
			return newEpochTemplate(key != "EPOCH", "", false), nil
		case "LEPOCH", "{^LN-BEG}LEPOCH", "^LEPOCH":
			return newEpochTemplate(key != "LEPOCH", "", true), nil
		}
	}
	switch key {
	case "TAI64N", "{^LN-BEG}TAI64N", "^TAI64N":
		return newTAI64NTemplate(key != "TAI64N"), nil
	}
	return newPatternTemplate(pattern, table)
}

// unboundPattern strips the boundary markers of a default template before it
// is embedded into a {DATE} pattern.
func unboundPattern(p string) string {
	p = strings.TrimPrefix(p, "{UNB}")
	p = strings.TrimPrefix(p, "{^LN-BEG}")
	for _, pre := range []string{`(^|\b|\W)`, `(?:^|\b|\W)`} {
		if strings.HasPrefix(p, pre) {
			p = p[len(pre):]
			break
		}
	}
	return strings.TrimSuffix(p, `(?=\b|\W|$)`)
}

// replaceDateMarker replaces every unescaped {DATE} (any case) by repl.
func replaceDateMarker(p, repl string) string {
	var b strings.Builder
	u := strings.ToUpper(p)
	last := 0
	for i := 0; i+6 <= len(p); i++ {
		if u[i:i+6] == "{DATE}" && !escapedAt(p, i) {
			b.WriteString(p[last:i])
			b.WriteString(repl)
			last = i + 6
			i += 5
		}
	}
	b.WriteString(p[last:])
	return b.String()
}

// defaultPatterns is the default template list (fail2ban-compatible order).
// Each entry is a %-pattern or one of the keywords EPOCH / TAI64N.
var defaultPatterns = [...]string{
	// ISO 8601 and similar: 2005-01-23T21:59:59.981746+01:00, 2005/01/23 21:59:59, 2006.12.21 06:43:20
	`%ExY(?P<_sep>[-/.])%m(?P=_sep)%d(?:T|  ?)%H:%M:%S(?:[.,]%f)?(?:\s*%z)?`,
	// syslog / asctime: [Sun ]Jan 23 21:59:59[.011][ 2005]
	`(?:%a )?%b %d %k:%M:%S(?:\.%f)?(?: %ExY)?`,
	// [Sun ]Jan 23 2005 21:59:59[.011]
	`(?:%a )?%b %d %ExY %k:%M:%S(?:\.%f)?`,
	// 23/01/2005 21:59:59, 23/01/05 21:59:59, 17-07-2008 17:23:25
	`%d(?P<_sep>[-/])%m(?P=_sep)(?:%ExY|%Exy) %k:%M:%S`,
	// Apache/CLF 31/Oct/2006:09:22:55 -0000, 26-Jul-2007 15:20:52[.252][ +0200]
	`%d(?P<_sep>[-/])%b(?P=_sep)%ExY[ :]?%H:%M:%S(?:\.%f)?(?: %z)?`,
	// 05/20/2008:01:57:39
	`%m/%d/%ExY:%H:%M:%S`,
	// 01-27-2012 16:22:44[.252]
	`%m-%d-%ExY %k:%M:%S(?:\.%f)?`,
	// seconds since the epoch
	`EPOCH`,
	// a time only
	`{^LN-BEG}%H:%M:%S`,
	// <09/16/08@05:03:30>
	`^<%m/%d/%Exy@%H:%M:%S>`,
	// MySQL 130322 11:46:11
	`%Exy%Exm%Exd  ?%H:%M:%S`,
	// Tomcat: Jan 23, 2005 9:59:59 PM
	`%b %d, %ExY %I:%M:%S %p`,
	// ASSP: Apr-27-13 02:33:06
	`^%b-%d-%Exy %k:%M:%S`,
	// 20050123T215959[.011][+0100], 20050123 215959
	`%ExY%Exm%Exd(?:T|  ?)%ExH%ExM%ExS(?:[.,]%f)?(?:\s*%z)?`,
	// zone name first (monit): PDT Apr 16 21:05:29
	`(?:%Z )?(?:%a )?%b %d %k:%M:%S(?:\.%f)?(?: %ExY)?`,
	// zone offset first: +00:00 Jan 23 21:59:59.011 2005
	`(?:%z )?(?:%a )?%b %d %k:%M:%S(?:\.%f)?(?: %ExY)?`,
	`TAI64N`,
}

// defaultFirst gives, for each default pattern, the possible first bytes of
// its date text (see template.first).
var defaultFirst = [...]string{"d", "a", "a", "d ", "d ", "d", "d", "d", "d", "<", "d", "a", "a", "d", "a", "a+-", "@"}

// defaultOriginals builds the default templates as listed.
func defaultOriginals(table map[string]directive) []*template {
	out := make([]*template, 0, len(defaultPatterns))
	for i, p := range defaultPatterns {
		t, err := newTemplateFor(p, patternKey(p), table)
		if err != nil {
			panic("datetime: bad built-in template " + p + ": " + err.Error())
		}
		t.builtin = true
		t.first = defaultFirst[i]
		out = append(out, t)
	}
	return out
}

// defaultFull builds the full default list: the line-start anchored copies of
// the unanchored templates first (weight 100), then all originals.
func defaultFull(table map[string]directive) []*template {
	orig := defaultOriginals(table)
	var anchored []*template
	for _, t := range orig {
		if strings.HasPrefix(t.name, "{^LN-BEG}") || strings.HasPrefix(t.name, "^") {
			continue
		}
		var a *template
		if t.hasPat {
			a, _ = newTemplateFor("{^LN-BEG}"+t.pattern, patternKey("{^LN-BEG}"+t.pattern), table)
		} else {
			n := "{^LN-BEG}" + t.name
			a, _ = newTemplateFor(n, patternKey(n), table)
		}
		if a == nil || a.name == t.name {
			continue
		}
		a.weight = 100
		a.builtin = true
		a.first = t.first
		anchored = append(anchored, a)
	}
	return append(anchored, orig...)
}

// compile translates the Python-dialect regex and compiles it (once).
func (t *template) compile(timeout time.Duration) error {
	if t.re != nil || t.reErr != nil {
		return t.reErr
	}
	if err := checkGroupNames(t.regex); err != nil {
		t.reErr = fmt.Errorf("date template %q: %w", t.name, err)
		return t.reErr
	}
	if err := checkGlobalFlags(t.regex); err != nil {
		t.reErr = fmt.Errorf("date template %q: %w", t.name, err)
		return t.reErr
	}
	re, err := regexp2.Compile(pyToNet(t.regex), regexp2.None)
	if err != nil {
		t.reErr = fmt.Errorf("date template %q: %w", t.name, err)
		return t.reErr
	}
	re.MatchTimeout = timeout
	t.re = re
	for _, n := range re.GetGroupNames() {
		if k := keyOfGroup(n); k != fNone {
			t.groups = append(t.groups, groupField{num: re.GroupNumberFromName(n), k: k})
		}
	}
	return nil
}

// checkGroupNames rejects a group name defined twice (Python does; regexp2
// would accept it).
func checkGroupNames(re string) error {
	seen := map[string]bool{}
	for i := 0; i < len(re); i++ {
		if re[i] == '\\' {
			i++
			continue
		}
		if strings.HasPrefix(re[i:], "(?P<") {
			end := strings.IndexByte(re[i:], '>')
			if end < 0 {
				return nil
			}
			name := re[i+4 : i+end]
			if seen[name] {
				return fmt.Errorf("redefinition of group name %q", name)
			}
			seen[name] = true
		}
	}
	return nil
}

// checkGlobalFlags rejects a global flag group such as (?i) after the start of
// the expression, like Python 3.11's re does.
func checkGlobalFlags(re string) error {
	start := true
	inClass := false
	for i := 0; i < len(re); i++ {
		c := re[i]
		switch {
		case c == '\\':
			i++
			start = false
		case inClass:
			if c == ']' {
				inClass = false
			}
		case c == '[':
			inClass = true
			start = false
			if i+1 < len(re) && re[i+1] == '^' {
				i++
			}
			if i+1 < len(re) && re[i+1] == ']' {
				i++
			}
		case c == '(' && flagGroupLen(re[i:], false) > 0:
			if !start {
				return fmt.Errorf("global flags not at the start of the expression at position %d", i)
			}
			i += flagGroupLen(re[i:], false) - 1
		default:
			start = false
		}
	}
	return nil
}

// pyToNet translates the Python regex constructs used in date patterns to the
// dialect of regexp2: (?P<n>..) -> (?<n>..), (?P=n) -> \k<n>, flags a/u/L
// dropped, \Z -> \z, {,n} -> {0,n}, \s also matching \x1c-\x1f, and - under a
// global (?i) - the letters i and s also matching U+0131 and U+017F, which
// Python's case-insensitive matching folds onto them and regexp2's does not.
func pyToNet(re string) string {
	fold := false
	if n := flagGroupLen(re, false); n > 0 && strings.ContainsRune(re[2:n-1], 'i') {
		fold = true
	}
	var b strings.Builder
	classStart := -1 // output offset of the current class's content
	for i := 0; i < len(re); i++ {
		c := re[i]
		inClass := classStart >= 0
		if c == '\\' && i+1 < len(re) {
			switch e := re[i+1]; {
			case !inClass && e == 'Z':
				b.WriteString(`\z`)
			case !inClass && e == 's':
				b.WriteString(`[\s\x1c-\x1f]`)
			case !inClass && e == 'S':
				b.WriteString(`[^\s\x1c-\x1f]`)
			case inClass && e == 's':
				b.WriteString(`\s\x1c-\x1f`)
			default:
				b.WriteByte(c)
				b.WriteByte(e)
			}
			i++
			continue
		}
		if inClass {
			if c == ']' {
				if fold {
					b.WriteString(foldExtras(b.String()[classStart:]))
				}
				classStart = -1
			}
			b.WriteByte(c)
			continue
		}
		switch {
		case c == '[':
			b.WriteByte(c)
			if i+1 < len(re) && re[i+1] == '^' {
				b.WriteByte('^')
				i++
			}
			classStart = b.Len()
			if i+1 < len(re) && re[i+1] == ']' {
				b.WriteByte(']')
				i++
			}
		case strings.HasPrefix(re[i:], "(?P<"), strings.HasPrefix(re[i:], "(?("):
			// group name or condition name: copied verbatim
			closer := byte('>')
			if re[i+2] == '(' {
				closer = ')'
			}
			end := strings.IndexByte(re[i:], closer)
			if end < 0 {
				b.WriteString(re[i:])
				i = len(re)
				continue
			}
			if re[i+2] == 'P' {
				b.WriteString("(?<" + re[i+4:i+end+1])
			} else {
				b.WriteString(re[i : i+end+1])
			}
			i += end
		case strings.HasPrefix(re[i:], "(?P="):
			end := strings.IndexByte(re[i:], ')')
			if end < 0 {
				b.WriteString(re[i:])
				i = len(re)
				continue
			}
			b.WriteString(`\k<` + re[i+4:i+end] + `>`)
			i += end
		case c == '(' && flagGroupLen(re[i:], false) > 0:
			n := flagGroupLen(re[i:], false)
			fl := strings.Map(func(r rune) rune {
				if r == 'a' || r == 'u' || r == 'L' {
					return -1
				}
				return r
			}, re[i+2:i+n-1])
			if fl != "" {
				b.WriteString("(?" + fl + ")")
			}
			i += n - 1
		case c == '{' && strings.HasPrefix(re[i:], "{,"):
			b.WriteString("{0,")
			i++
		case fold && (c == 'i' || c == 'I'):
			b.WriteString("[i\u0131]")
		case fold && (c == 's' || c == 'S'):
			b.WriteString("[s\u017f]")
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// foldExtras returns the extra class members for a character class (its
// content as written) that covers i or s: U+0131 and U+017F.
func foldExtras(class string) string {
	covers := func(lo, hi byte) bool {
		return lo <= 'i' && 'i' <= hi || lo <= 'I' && 'I' <= hi
	}
	coversS := func(lo, hi byte) bool {
		return lo <= 's' && 's' <= hi || lo <= 'S' && 'S' <= hi
	}
	hasI, hasS := false, false
	for j := 0; j < len(class); j++ {
		lo := class[j]
		if lo == '\\' {
			j++
			continue
		}
		hi := lo
		if j+2 < len(class) && class[j+1] == '-' && class[j+2] != '\\' {
			hi = class[j+2]
			j += 2
		}
		hasI = hasI || covers(lo, hi)
		hasS = hasS || coversS(lo, hi)
	}
	extra := ""
	if hasI {
		extra += "\u0131"
	}
	if hasS {
		extra += "\u017f"
	}
	return extra
}
