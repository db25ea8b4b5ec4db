package filter

import (
	"bytes"
	"errors"
	"fmt"
	"regexp/syntax"
	"sort"
	"strings"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/dlclark/regexp2"

	"github.com/palisade-project/palisade/internal/filter/dfa"
)

// ErrNotRE2 is returned (wrapped) when RequireRE2 is set and a pattern needs
// the backtracking engine.
var ErrNotRE2 = errors.New("pattern needs a backtracking engine (not RE2)")

// rx is one compiled fail2ban regex.
type rx struct {
	src  string // as written (before tag expansion)
	expr string // after tag expansion (Python syntax)

	syn    *syntax.Regexp  // the RE2 pattern, parsed (run by the DFA), or
	bt     *regexp2.Regexp // backtracking engine
	btNums []int
	d      *dfa.Regexp // built when the regex runs on its own (dfaRegexp)
	goExpr string      // the RE2 pattern
	budget *btBudget   // shared by the filter's backtracking regexes
	spans  []int       // scratch for head and backtracking matches
	runes  []rune      // scratch: the text for the backtracking engine
	offs   []int       // scratch: its runes' byte offsets

	// names[i] is the name of group i ("" for unnamed groups).
	names []string
	// index of some well-known groups, -1 when absent.
	content, mlfid int
	skiplines      []int
	alts           []altGroup
	hasName        map[string]bool

	// fids[i] is the field id of group i (-1: unnamed); see fields.go.
	// named lists the named groups; dupNames: two groups share a name.
	fids     []int
	named    []namedGroup
	dupNames bool

	// Pre-filter: every match contains all lits; prefix is a literal every
	// match starts with at the start of the buffer.
	lits   []clause
	prefix []byte
	qgate  gate // the pre-filter of a linear-time regex runs while it pays

	// head is the pattern without a final `<F-CONTENT>.+</F-CONTENT>$`
	// (the usual prefregex shape): the content is then the rest of the
	// line, found without running `.+` through the engine.
	head *dfa.Regexp
}

// contentTail is how `(?P<content>.+)$` ends a translated single-line pattern.
const contentTail = `(?P<content>.+)(?m:$)`

// setupHead prepares head (see rx.head).
func (r *rx) setupHead(t translation, dm dollarMode) {
	if r.syn == nil || dm != dollarSingle || !strings.HasSuffix(t.Go, contentTail) || r.content != len(r.names)-1 {
		return
	}
	h, err := dfa.Compile(strings.TrimSuffix(t.Go, contentTail), 0)
	if err != nil || h.NumSubexp() != len(r.names)-2 {
		return
	}
	r.head = h
}

// matchHead runs head; ok is false when the full pattern must decide.
func (r *rx) matchHead(buf []byte) (spans []int, ok bool) {
	n := len(buf)
	if n == 0 || buf[n-1] != '\n' || bytes.IndexByte(buf[:n-1], '\n') >= 0 {
		return nil, false
	}
	h := r.head.FindSubmatchIndex(buf)
	if h == nil {
		return nil, true
	}
	end := h[1]
	if end >= n-1 {
		return nil, false // empty content: the full pattern may backtrack
	}
	spans = append(append(r.spans[:0], h...), end, n-1)
	r.spans = spans
	spans[1] = n - 1
	return spans, true
}

type altGroup struct {
	group  int    // index of alt_NAME group
	target string // NAME
	// field ids of the group and of NAME; inRx: the regex has a NAME group
	fid, targetID int
	inRx          bool
}

// assignFields gives the regex's named groups their field ids.
type namedGroup struct{ group, fid int }

func (r *rx) assignFields(fn *fieldNames) {
	r.fids = make([]int, len(r.names))
	seen := map[int]bool{}
	for i, n := range r.names {
		r.fids[i] = -1
		if n != "" && i > 0 {
			id := fn.id(n)
			r.fids[i] = id
			r.named = append(r.named, namedGroup{i, id})
			r.dupNames = r.dupNames || seen[id]
			seen[id] = true
		}
	}
	for i := range r.alts {
		a := &r.alts[i]
		a.fid, a.targetID, a.inRx = r.fids[a.group], fn.id(a.target), r.hasName[a.target]
	}
}

// compileRx translates and compiles one regex.
func compileRx(src, useDNS string, dm dollarMode, requireRE2 bool, timeout time.Duration) (*rx, error) {
	expr := ExpandTags(src, useDNS)
	if len(bytes.TrimSpace([]byte(expr))) == 0 {
		return nil, errors.New("cannot add empty regex")
	}
	t, err := translate(expr, dm)
	if err != nil {
		return nil, fmt.Errorf("unable to compile regular expression %q: %w", expr, err)
	}
	r := &rx{src: src, expr: expr, content: -1, mlfid: -1}
	rewritten := false
	if t.Go == "" {
		// conditionals and literal look-aheads RE2 can express otherwise
		if rw, err := rewriteForRE2(expr); err == nil {
			if t2, err := translate(rw, dm); err == nil && t2.Go != "" {
				t.Go, rewritten = t2.Go, true
			}
		}
	}
	var goErr error
	if t.Go != "" {
		// what regexp.Compile checks (its syntax.Compile never fails:
		// the automaton compiles the program when it is built)
		var re *syntax.Regexp
		if re, goErr = syntax.Parse(t.Go, syntax.Perl); goErr == nil {
			r.syn, r.goExpr = re, t.Go
			if rewritten && !uniqueSpecialGroups(re.CapNames()) {
				// the rewrite copied a group whose index matters
				r.syn, goErr = nil, errors.New(t.Reason)
			}
		}
	} else {
		goErr = errors.New(t.Reason)
	}
	if r.syn == nil {
		if requireRE2 {
			return nil, fmt.Errorf("%w: %v", ErrNotRE2, goErr)
		}
		opt := regexp2.RegexOptions(0)
		if dm == dollarMultiline {
			opt |= regexp2.Multiline
		}
		bt, err := regexp2.Compile(t.BT, opt)
		if err != nil {
			return nil, fmt.Errorf("unable to compile regular expression %q: %w", expr, err)
		}
		if timeout <= 0 {
			timeout = DefaultMatchTimeout
		}
		bt.MatchTimeout = timeout
		r.bt = bt
		nums := bt.GetGroupNumbers()
		r.btNums = nums
		max := 0
		for _, n := range nums {
			if n > max {
				max = n
			}
		}
		r.names = make([]string, max+1)
		for _, n := range nums {
			name := bt.GroupNameFromNumber(n)
			if isDigits(name) {
				name = ""
			}
			r.names[n] = name
		}
	} else {
		r.names = r.syn.CapNames()
	}
	r.hasName = map[string]bool{}
	for i, n := range r.names {
		if n == "" || i == 0 {
			continue
		}
		r.hasName[n] = true
		switch {
		case n == "content":
			r.content = i
		case n == "mlfid":
			r.mlfid = i
		case len(n) > 9 && n[:9] == "skiplines" && isDigits(n[9:]):
			r.skiplines = append(r.skiplines, i)
		}
		if target, ok := altTarget(n); ok {
			r.alts = append(r.alts, altGroup{group: i, target: target})
		}
	}
	sort.Slice(r.alts, func(a, b int) bool { return r.names[r.alts[a].group] < r.names[r.alts[b].group] })
	if r.syn != nil {
		r.lits, r.prefix = literalsOf(r.syn)
	} else {
		r.lits, r.prefix = literals(t.Ana)
	}
	r.setupHead(t, dm)
	return r, nil
}

// dfaRegexp builds the regex's own automaton (a regex in a list's set
// runs in the set's).
func (r *rx) dfaRegexp() error {
	if r.syn == nil || r.d != nil {
		return nil
	}
	d, err := dfa.CompileSyntax(r.syn, 0)
	if err != nil {
		return err
	}
	r.d = d
	return nil
}

// altTarget maps alt_NAME or alt_NAME_N to NAME (fail2ban's COMPLNAME_CRE).
func altTarget(n string) (string, bool) {
	if len(n) <= 4 || n[:4] != "alt_" {
		return "", false
	}
	rest := n[4:]
	// strip a trailing _digits
	if k := lastIndexByte(rest, '_'); k > 0 && isDigits(rest[k+1:]) {
		rest = rest[:k]
	}
	return fieldName(rest), true
}

func lastIndexByte(s string, c byte) int {
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == c {
			return i
		}
	}
	return -1
}

// DefaultMatchTimeout bounds one backtracking match. It is wall-clock
// time: one retry keeps a descheduled process on a busy host from missing
// a failure, so a pathological line costs at most twice this.
const DefaultMatchTimeout = 25 * time.Millisecond

// quick reports whether buf can match (pre-filter).
func (r *rx) quick(buf []byte) bool {
	if r.prefix != nil && !bytes.HasPrefix(buf, r.prefix) {
		return false
	}
	for _, c := range r.lits {
		if !c.in(buf) {
			return false
		}
	}
	return true
}

// match runs the regex on buf. It returns byte spans (2 per group, -1 when
// a group did not take part), or nil. timedOut is set when the backtracking
// engine gave up.
func (r *rx) match(buf []byte) (spans []int, timedOut bool) {
	if r.bt != nil || r.qgate.on() {
		ok := r.quick(buf)
		r.qgate.result(ok)
		if !ok {
			return nil, false
		}
	}
	if r.head != nil {
		if spans, ok := r.matchHead(buf); ok {
			return spans, false
		}
	}
	if r.syn != nil {
		if r.d == nil && r.dfaRegexp() != nil {
			return nil, false
		}
		return r.d.FindSubmatchIndex(buf), false
	}
	if r.budget != nil {
		t0, ok := r.budget.start()
		if !ok {
			return nil, false
		}
		defer r.budget.done(t0)
	}
	runes, offs := r.decode(buf)
	m, err := r.bt.FindRunesMatch(runes)
	if err != nil {
		// The limit is wall-clock time: one retry keeps a descheduled
		// process on a busy host from missing a failure, while a truly
		// pathological line still gives up.
		if m, err = r.bt.FindRunesMatch(runes); err != nil {
			return nil, true
		}
	}
	if m == nil {
		return nil, false
	}
	if cap(r.spans) < 2*len(r.names) {
		r.spans = make([]int, 2*len(r.names))
	}
	spans = r.spans[:2*len(r.names)]
	for i := range spans {
		spans[i] = -1
	}
	conv := func(i int) int {
		switch {
		case offs == nil:
			return i
		case i < 0:
			return 0
		case i >= len(offs):
			return len(buf)
		}
		return offs[i]
	}
	for _, n := range r.btNums {
		g := m.GroupByNumber(n)
		if g == nil || n >= len(r.names) || len(g.Captures) == 0 {
			continue
		}
		spans[2*n] = conv(g.Index)
		spans[2*n+1] = conv(g.Index + g.Length)
	}
	return spans, false
}

// decode returns buf's runes for the backtracking engine (an invalid byte
// is one U+FFFD, as converting a string does) in a buffer reused across
// lines, and the byte offset of each rune plus len(buf) at the end, or nil
// when buf is ASCII (rune and byte offsets are the same).
func (r *rx) decode(buf []byte) ([]rune, []int) {
	runes := r.runes[:0]
	ascii := true
	for _, c := range buf {
		if c >= utf8.RuneSelf {
			ascii = false
			break
		}
		runes = append(runes, rune(c))
	}
	if ascii {
		r.runes = runes
		return runes, nil
	}
	runes = runes[:0]
	offs := r.offs[:0]
	for i := 0; i < len(buf); {
		c, w := utf8.DecodeRune(buf[i:])
		runes = append(runes, c)
		offs = append(offs, i)
		i += w
	}
	offs = append(offs, len(buf))
	r.runes, r.offs = runes, offs
	return runes, offs
}

// clause is a set of literals of which a match contains at least one.
type clause [][]byte

func (c clause) in(buf []byte) bool {
	for _, l := range c {
		if bytes.Contains(buf, l) {
			return true
		}
	}
	return false
}

func (c clause) inString(s string) bool {
	for _, l := range c {
		if strings.Contains(s, unsafeString(l)) {
			return true
		}
	}
	return false
}

// literals finds clauses every match of expr satisfies (at most 3, the
// most selective first) and a literal prefix anchored at the start of the
// text.
func literals(expr string) ([]clause, []byte) {
	re, err := syntax.Parse(expr, syntax.Perl)
	if err != nil {
		return nil, nil
	}
	return literalsOf(re)
}

// literalsOf is literals for a parsed pattern.
func literalsOf(re *syntax.Regexp) ([]clause, []byte) {
	re = re.Simplify()
	req := requiredClauses(re)
	score := func(c []string) int {
		m := len(c[0])
		for _, l := range c[1:] {
			m = min(m, len(l))
		}
		return m*8 - len(c) // prefer long literals and few alternatives
	}
	// a clause one of whose literals lies inside a required literal says nothing more
	var all []string
	for _, c := range req {
		if len(c) == 1 {
			all = append(all, c[0])
		}
	}
	kept := req[:0]
	for _, c := range req {
		implied := false
		if len(c) > 1 {
			for _, a := range c {
				for _, s := range all {
					if strings.Contains(s, a) {
						implied = true
					}
				}
			}
		}
		if !implied {
			kept = append(kept, c)
		}
	}
	req = kept
	sort.SliceStable(req, func(a, b int) bool { return score(req[a]) > score(req[b]) })
	var out []clause
	var singles []string
	for _, c := range req {
		if len(out) == 3 {
			break
		}
		if score(c) < 2*8-len(c) {
			break // a one-byte literal filters nothing
		}
		if len(c) == 1 {
			dup := false
			for _, s := range singles {
				if strings.Contains(s, c[0]) {
					dup = true
				}
			}
			if dup {
				continue
			}
			singles = append(singles, c[0])
		}
		cl := make(clause, len(c))
		for i, l := range c {
			cl[i] = []byte(l)
		}
		out = append(out, cl)
	}
	var prefix []byte
	if p := anchoredPrefix(re); p != "" {
		prefix = []byte(p)
	}
	return out, prefix
}

func litString(re *syntax.Regexp) (string, bool) {
	if re.Op == syntax.OpLiteral && re.Flags&syntax.FoldCase == 0 {
		return string(re.Rune), true
	}
	if re.Op == syntax.OpCapture && len(re.Sub) == 1 {
		return litString(re.Sub[0])
	}
	return "", false
}

// maxAlternatives bounds the literals of one clause.
const maxAlternatives = 6

// requiredClauses returns clauses (any-of literal sets) every match of re
// satisfies.
func requiredClauses(re *syntax.Regexp) [][]string {
	switch re.Op {
	case syntax.OpLiteral:
		if s, ok := litString(re); ok {
			return [][]string{{s}}
		}
	case syntax.OpCapture, syntax.OpPlus:
		return requiredClauses(re.Sub[0])
	case syntax.OpRepeat:
		if re.Min >= 1 {
			return requiredClauses(re.Sub[0])
		}
	case syntax.OpAlternate:
		var per [][][]string
		for _, sub := range re.Sub {
			c := requiredClauses(sub)
			if len(c) == 0 {
				return nil
			}
			per = append(per, c)
		}
		var out [][]string
		// literals every branch requires (inside one of its own literals)
		seen := map[string]bool{}
		for _, cs := range per {
			for _, c := range cs {
				if len(c) != 1 || seen[c[0]] {
					continue
				}
				seen[c[0]] = true
				all := true
				for _, other := range per {
					in := false
					for _, oc := range other {
						if len(oc) == 1 && strings.Contains(oc[0], c[0]) {
							in = true
							break
						}
					}
					if !in {
						all = false
						break
					}
				}
				if all {
					out = append(out, c)
				}
			}
		}
		// one of the branches' best clauses
		var any []string
		for _, cs := range per {
			best := cs[0]
			for _, c := range cs[1:] {
				if minLen(c) > minLen(best) || minLen(c) == minLen(best) && len(c) < len(best) {
					best = c
				}
			}
			any = append(any, best...)
		}
		if len(any) <= maxAlternatives {
			out = append(out, any)
		}
		return out
	case syntax.OpConcat:
		var out [][]string
		run := ""
		for _, sub := range re.Sub {
			if s, ok := litString(sub); ok {
				run += s
				continue
			}
			if run != "" {
				out = append(out, []string{run})
				run = ""
			}
			out = append(out, requiredClauses(sub)...)
		}
		if run != "" {
			out = append(out, []string{run})
		}
		return out
	}
	return nil
}

func minLen(c []string) int {
	m := len(c[0])
	for _, l := range c[1:] {
		m = min(m, len(l))
	}
	return m
}

// anchoredPrefix returns the literal a match must start with when re is
// anchored at the start of the text (looking through capture groups, so
// `^(?P<nofail>Received (?P<x>disconnect))` gives "Received disconnect").
func anchoredPrefix(re *syntax.Regexp) string {
	if re.Op != syntax.OpConcat || len(re.Sub) < 2 || re.Sub[0].Op != syntax.OpBeginText {
		return ""
	}
	p, _ := leadingLiteral(re.Sub[1:])
	return p
}

// leadingLiteral returns the literal text every match of the concatenation
// subs starts with, and whether the whole of subs is that literal.
func leadingLiteral(subs []*syntax.Regexp) (string, bool) {
	p := ""
	for _, sub := range subs {
		var s string
		var whole bool
		switch {
		case sub.Op == syntax.OpLiteral && sub.Flags&syntax.FoldCase == 0:
			s, whole = string(sub.Rune), true
		case sub.Op == syntax.OpCapture && len(sub.Sub) == 1:
			s, whole = leadingLiteral(sub.Sub)
		case sub.Op == syntax.OpConcat:
			s, whole = leadingLiteral(sub.Sub)
		}
		p += s
		if !whole {
			return p, false
		}
	}
	return p, true
}

func unsafeString(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }
