package filter

import (
	"bytes"
	"errors"
	"fmt"
	"regexp"
	"regexp/syntax"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/dlclark/regexp2"
)

// ErrNotRE2 is returned (wrapped) when RequireRE2 is set and a pattern needs
// the backtracking engine.
var ErrNotRE2 = errors.New("pattern needs a backtracking engine (not RE2)")

// rx is one compiled fail2ban regex.
type rx struct {
	src  string // as written (before tag expansion)
	expr string // after tag expansion (Python syntax)

	re     *regexp.Regexp  // Go engine, or
	bt     *regexp2.Regexp // backtracking engine
	btNums []int

	// names[i] is the name of group i ("" for unnamed groups).
	names []string
	// index of some well-known groups, -1 when absent.
	content, mlfid int
	skiplines      []int
	alts           []altGroup
	hasName        map[string]bool

	// Pre-filter: every match contains all lits; prefix is a literal every
	// match starts with at the start of the buffer.
	lits   [][]byte
	prefix []byte
}

type altGroup struct {
	group  int    // index of alt_NAME group
	target string // NAME
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
	var goErr error
	if t.Go != "" {
		r.re, goErr = regexp.Compile(t.Go)
	} else {
		goErr = errors.New(t.Reason)
	}
	if r.re == nil {
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
		r.names = r.re.SubexpNames()
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
	r.lits, r.prefix = literals(t.Ana)
	return r, nil
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

// DefaultMatchTimeout bounds one backtracking match.
const DefaultMatchTimeout = 100 * time.Millisecond

// quick reports whether buf can match (pre-filter).
func (r *rx) quick(buf []byte) bool {
	if r.prefix != nil && !bytes.HasPrefix(buf, r.prefix) {
		return false
	}
	for _, l := range r.lits {
		if !bytes.Contains(buf, l) {
			return false
		}
	}
	return true
}

// match runs the regex on buf. It returns byte spans (2 per group, -1 when
// a group did not take part), or nil. timedOut is set when the backtracking
// engine gave up.
func (r *rx) match(buf []byte) (spans []int, timedOut bool) {
	if !r.quick(buf) {
		return nil, false
	}
	if r.re != nil {
		return r.re.FindSubmatchIndex(buf), false
	}
	s := string(buf)
	m, err := r.bt.FindStringMatch(s)
	if err != nil {
		return nil, true
	}
	if m == nil {
		return nil, false
	}
	spans = make([]int, 2*len(r.names))
	for i := range spans {
		spans[i] = -1
	}
	conv := runeOffsets(s)
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

// runeOffsets returns a function mapping rune offsets of s to byte offsets.
func runeOffsets(s string) func(int) int {
	ascii := true
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			ascii = false
			break
		}
	}
	if ascii {
		return func(i int) int { return i }
	}
	var offs []int
	for i := range s {
		offs = append(offs, i)
	}
	offs = append(offs, len(s))
	return func(i int) int {
		if i < 0 {
			return 0
		}
		if i >= len(offs) {
			return len(s)
		}
		return offs[i]
	}
}

// literals finds substrings every match of expr must contain (at most 3,
// longest first) and a literal prefix anchored at the start of the text.
func literals(expr string) ([][]byte, []byte) {
	re, err := syntax.Parse(expr, syntax.Perl)
	if err != nil {
		return nil, nil
	}
	re = re.Simplify()
	var req []string
	requiredLits(re, &req)
	sort.SliceStable(req, func(a, b int) bool { return len(req[a]) > len(req[b]) })
	var lits [][]byte
	seen := map[string]bool{}
	for _, l := range req {
		if len(lits) == 3 || len(l) < 2 {
			break
		}
		dup := false
		for s := range seen {
			if bytes.Contains([]byte(s), []byte(l)) {
				dup = true
			}
		}
		if dup {
			continue
		}
		seen[l] = true
		lits = append(lits, []byte(l))
	}
	var prefix []byte
	if p := anchoredPrefix(re); p != "" {
		prefix = []byte(p)
	}
	return lits, prefix
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

// requiredLits appends literals that every match of re contains.
func requiredLits(re *syntax.Regexp, out *[]string) {
	switch re.Op {
	case syntax.OpLiteral:
		if s, ok := litString(re); ok {
			*out = append(*out, s)
		}
	case syntax.OpCapture, syntax.OpPlus:
		requiredLits(re.Sub[0], out)
	case syntax.OpRepeat:
		if re.Min >= 1 {
			requiredLits(re.Sub[0], out)
		}
	case syntax.OpAlternate:
		// a literal every branch requires (as part of one of its own)
		var per [][]string
		for _, sub := range re.Sub {
			var l []string
			requiredLits(sub, &l)
			if len(l) == 0 {
				return
			}
			per = append(per, l)
		}
		seen := map[string]bool{}
		for _, lits := range per {
			for _, c := range lits {
				if seen[c] {
					continue
				}
				seen[c] = true
				all := true
				for _, other := range per {
					in := false
					for _, o := range other {
						if strings.Contains(o, c) {
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
					*out = append(*out, c)
				}
			}
		}
	case syntax.OpConcat:
		run := ""
		for _, sub := range re.Sub {
			if s, ok := litString(sub); ok {
				run += s
				continue
			}
			if run != "" {
				*out = append(*out, run)
				run = ""
			}
			requiredLits(sub, out)
		}
		if run != "" {
			*out = append(*out, run)
		}
	}
}

// anchoredPrefix returns the literal a match must start with when re is
// anchored at the start of the text.
func anchoredPrefix(re *syntax.Regexp) string {
	if re.Op != syntax.OpConcat || len(re.Sub) < 2 || re.Sub[0].Op != syntax.OpBeginText {
		return ""
	}
	p := ""
	for _, sub := range re.Sub[1:] {
		s, ok := litString(sub)
		if !ok {
			break
		}
		p += s
	}
	return p
}
