package filter

import (
	"fmt"
	"regexp"
	"regexp/syntax"
	"slices"
	"strings"
)

// LintWarning is a failregex that may take an address from text a client
// chose (see Lint).
type LintWarning struct {
	// Regex is the index in Definition.FailRegex; Source the regex as
	// given (tags not expanded).
	Regex  int
	Source string
	// Span is the unbounded part before the address ("(?s:.)*?"), Tail
	// the reason the text after the address does not pin it.
	Span, Tail string
}

func (w LintWarning) String() string {
	return fmt.Sprintf("failregex %d captures an address after %s, which can hold text a client chose (a user name such as \"x from 198.51.100.2 on\"), and %s: "+
		"a forged address can be taken for the real one; anchor the rule after the address with the fixed text the service writes there",
		w.Regex+1, w.Span, w.Tail)
}

// Lint finds the failregexes of def that capture an address (<HOST>,
// <ADDR>, <IP4>, <IP6>, <DNS>, <SUBNET>: the groups ip4, ip6, dns) after
// client-controlled text in a way the client can exploit. The heuristic,
// on the regex's syntax tree (the RE2 form of the pattern; look-arounds
// and back-references widened, as for the literal pre-filter):
//
//   - a span is an unbounded repetition (*, +, {n,}) whose body can match
//     a space, a digit and a dot: it can hold several words, among them
//     "from 198.51.100.2" (.*, .+, .*?, (?:\S+ )*; not \S+, \d+, \s*);
//   - an address capture preceded on some path by a span is exposed when
//     the rest of the regex after it is loose on some path: the regex can
//     end there without an end anchor ($), or an unbounded repetition
//     after it can absorb an address (its body matches a digit and a dot
//     or a colon: \S+, .*, [^\]]+).
//
// An exposed rule matches a line in two ways when the client writes
// "... from 198.51.100.2 on" where the span is: the address it wrote, with
// the real one absorbed by the loose tail, or the real one. A lazy span
// (.*?) takes the first, a greedy one the last, and which is last depends
// on text after the address the rule does not fix. A rule whose tail is a
// fixed grammar up to $ ("port \d+", "ssh2", "[preauth]") cannot absorb the
// real address, so only the real split matches, greedy or lazy.
//
// The heuristic may warn about a rule that is safe because the service
// never writes client text where the span is, and it does not see a
// forged address reached through a bounded repetition of a loose part. A
// regex that does not parse is skipped (New reports it).
func Lint(def Definition) []LintWarning {
	var out []LintWarning
	for i, src := range def.FailRegex {
		w, ok := lintRegex(src)
		if ok {
			w.Regex, w.Source = i, src
			out = append(out, w)
		}
	}
	return out
}

// lintFinding is one exposed address capture being followed.
type lintFinding struct {
	span string
	lazy bool
	sep  string // the fixed text right before the address (" from ")
	tail string // why the tail is loose ("" while it is not)
}

type lintState struct {
	spans   []*syntax.Regexp // the spans seen on this path
	lit     string           // the fixed text just walked
	pending []*lintFinding
}

func (s lintState) clone() lintState {
	return lintState{spans: append([]*syntax.Regexp(nil), s.spans...), lit: s.lit, pending: append([]*lintFinding(nil), s.pending...)}
}

func mergeStates(a, b lintState) lintState {
	out := a.clone()
	for _, sp := range b.spans {
		if !slices.Contains(out.spans, sp) {
			out.spans = append(out.spans, sp)
		}
	}
	for _, f := range b.pending {
		if !slices.Contains(out.pending, f) {
			out.pending = append(out.pending, f)
		}
	}
	// the fixed text both paths end with
	n := 0
	for n < len(a.lit) && n < len(b.lit) && a.lit[len(a.lit)-1-n] == b.lit[len(b.lit)-1-n] {
		n++
	}
	out.lit = a.lit[len(a.lit)-n:]
	return out
}

type linter struct{ found []*lintFinding }

func lintRegex(src string) (LintWarning, bool) {
	t, err := translate(ExpandTags(src, "warn"), dollarSingle)
	if err != nil {
		return LintWarning{}, false
	}
	re, err := syntax.Parse(t.Ana, syntax.Perl)
	if err != nil {
		return LintWarning{}, false
	}
	var l linter
	end := l.walk(re, lintState{})
	for _, f := range end.pending {
		if f.tail == "" {
			f.tail = "the rule does not end with $ after it"
		}
	}
	for _, f := range l.found {
		if f.tail != "" {
			return LintWarning{Span: f.span, Tail: f.tail}, true
		}
	}
	return LintWarning{}, false
}

var addrGroups = map[string]bool{"ip4": true, "ip6": true, "dns": true}

// holdsForged reports whether the span rep can match text holding sep
// followed by an address: "x from 198.51.100.2 on" for sep " from ".
func holdsForged(rep *syntax.Regexp, sep string) bool {
	if sep == "" {
		return true
	}
	re, err := regexp.Compile(`^(?:` + rep.String() + `)$`)
	if err != nil {
		return true
	}
	for _, s := range []string{"", "x"} {
		for _, e := range []string{"", " on", "1"} {
			if re.MatchString(s + sep + "198.51.100.2" + e) {
				return true
			}
		}
	}
	return false
}

func (l *linter) walk(re *syntax.Regexp, st lintState) lintState {
	switch re.Op {
	case syntax.OpLiteral:
		st.lit += string(re.Rune)
		return st
	case syntax.OpConcat:
		for _, sub := range re.Sub {
			st = l.walk(sub, st)
		}
		return st
	case syntax.OpAlternate:
		var out lintState
		for i, sub := range re.Sub {
			r := l.walk(sub, st.clone())
			if i == 0 {
				out = r
			} else {
				out = mergeStates(out, r)
			}
		}
		return out
	case syntax.OpCapture:
		if addrGroups[re.Name] {
			sep := st.lit
			for _, sp := range st.spans {
				if holdsForged(sp, sep) {
					f := &lintFinding{span: showRegexp(sp), lazy: sp.Flags&syntax.NonGreedy != 0, sep: sep}
					l.found = append(l.found, f)
					st = l.walk(re.Sub[0], st)
					st.pending = append(st.pending, f)
					st.lit = ""
					return st
				}
			}
		}
		st = l.walk(re.Sub[0], st)
		st.lit = ""
		return st
	case syntax.OpQuest:
		// optional text ("\[?") does not hide the fixed text before it
		lit := st.lit
		st = mergeStates(st, l.walk(re.Sub[0], st.clone()))
		st.lit = lit
		return st
	case syntax.OpStar, syntax.OpPlus, syntax.OpRepeat:
		unbounded := re.Op != syntax.OpRepeat || re.Max < 0
		body := re.Sub[0]
		// After an exposed address, a lazy span (the first split wins)
		// is loose when anything after it can absorb the real address; a
		// greedy one (the last split wins) when text after the real
		// address can hold a further forged one: a span that can.
		absorbs := canMatch(body, '0') && (canMatch(body, '.') || canMatch(body, ':'))
		multiWord := unbounded && absorbs && canMatch(body, ' ')
		for _, f := range st.pending {
			if f.tail != "" {
				continue
			}
			if f.lazy && absorbs && (unbounded || re.Max > 1) || multiWord && holdsForged(re, f.sep) {
				f.tail = "the " + showRegexp(re) + " after it can absorb the real address"
			}
		}
		in := l.walk(body, st.clone())
		if re.Op == syntax.OpStar || re.Op == syntax.OpRepeat && re.Min == 0 {
			st = mergeStates(st, in)
		} else {
			st = in
		}
		st.lit = ""
		if multiWord && canMatch(body, '.') {
			st.spans = append(st.spans, re)
		}
		return st
	case syntax.OpEndText, syntax.OpEndLine:
		st.pending = nil
		return st
	case syntax.OpEmptyMatch, syntax.OpBeginLine, syntax.OpBeginText, syntax.OpWordBoundary, syntax.OpNoWordBoundary:
		return st
	}
	st.lit = ""
	return st
}

// showRegexp renders a part of a translated regex for a message, with
// the Unicode classes of \s, \S, \w, \W written as such.
func showRegexp(re *syntax.Regexp) string {
	s := re.String()
	for _, c := range [][2]string{
		{"[^" + uniSpace + "]", `\S`}, {"[" + uniSpace + "]", `\s`},
		{"[^" + uniWord + "]", `\W`}, {"[" + uniWord + "]", `\w`}, {"[" + uniDigit + "]", `\d`},
	} {
		if r, err := syntax.Parse(c[0], syntax.Perl); err == nil {
			s = strings.ReplaceAll(s, r.String(), c[1])
		}
	}
	for _, op := range []string{".*?", ".+?", ".*", ".+", "."} {
		s = strings.ReplaceAll(s, "(?-s:"+op+")", op)
	}
	if len(s) > 80 {
		s = s[:77] + "..."
	}
	return s
}

// canMatch reports whether some match of re contains r.
func canMatch(re *syntax.Regexp, r rune) bool {
	switch re.Op {
	case syntax.OpLiteral:
		for _, c := range re.Rune {
			if c == r || re.Flags&syntax.FoldCase != 0 && strings.EqualFold(string(c), string(r)) {
				return true
			}
		}
		return false
	case syntax.OpCharClass:
		for i := 0; i+1 < len(re.Rune); i += 2 {
			if re.Rune[i] <= r && r <= re.Rune[i+1] {
				return true
			}
		}
		return false
	case syntax.OpAnyChar:
		return true
	case syntax.OpAnyCharNotNL:
		return r != '\n'
	case syntax.OpRepeat:
		if re.Max == 0 {
			return false
		}
	}
	for _, sub := range re.Sub {
		if canMatch(sub, r) {
			return true
		}
	}
	return false
}
