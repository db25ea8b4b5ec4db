// Package dfa is a lazily built deterministic automaton for Go's RE2
// syntax that finds exactly the match and submatches Go's regexp finds
// (leftmost-first, Perl semantics), in one forward pass over the text and
// one backward pass over the recorded states.
//
// Each DFA state is an ordered list of NFA threads (the order is the
// threads' priority, as in Go's Pike VM) plus the kind of the previous
// rune (for ^, $, \b). A transition remembers, for every thread of the
// next state, which thread of the previous state it came from and which
// capture slots it wrote on the way; after the forward pass the winning
// thread's path is walked back through the recorded transitions, so
// submatches cost one table step per byte instead of a backtracking
// search. A Set runs several patterns as one automaton and answers which
// of them matches first in list order.
//
// ASCII bytes use cached transitions; other runes are stepped through the
// NFA directly (still linear). A transition on which every thread keeps
// its index and nothing is written ("plain", most of them) is one add and
// one load in the forward pass and is not recorded at all; the others are
// recorded and walked back. The automaton holds no pointers (states,
// transitions and their per-thread data live in flat int32 slices), so
// the garbage collector never scans it. The state cache is bounded: when
// it is full it is dropped and rebuilt. A Regexp or Set is not safe for
// concurrent use.
package dfa

import (
	"regexp/syntax"
	"slices"
)

// Regexp is one compiled pattern.
type Regexp struct {
	m    *machine
	ncap int // groups including group 0
	buf  []int
}

// Compile parses expr like regexp.Compile (Perl syntax) and builds its
// automaton, caching at most maxStates states (0: DefaultMaxStates).
func Compile(expr string, maxStates int) (*Regexp, error) {
	re, err := syntax.Parse(expr, syntax.Perl)
	if err != nil {
		return nil, err
	}
	return CompileSyntax(re, maxStates)
}

// CompileSyntax is Compile for a parsed pattern (not modified).
func CompileSyntax(re *syntax.Regexp, maxStates int) (*Regexp, error) {
	re = clone(re)
	ncap := re.MaxCap() + 1
	top := anchor(wrap(re, 0))
	m, err := newMachine(top, []int{0, 2 * ncap}, maxStates)
	if err != nil {
		return nil, err
	}
	return &Regexp{m: m, ncap: ncap}, nil
}

// NumSubexp is the number of parenthesized groups (as regexp's).
func (r *Regexp) NumSubexp() int { return r.ncap - 1 }

// Resets counts how often the state cache was full and dropped.
func (r *Regexp) Resets() int { return r.m.resets }

// States is the number of states cached now.
func (r *Regexp) States() int { return r.m.nstates() }

// FindSubmatchIndex is regexp's FindSubmatchIndex: the spans of the
// leftmost-first match and its groups (-1 for a group that took no part),
// or nil. The result is valid until the next call.
func (r *Regexp) FindSubmatchIndex(b []byte) []int {
	if cap(r.buf) < 2*r.ncap {
		r.buf = make([]int, 2*r.ncap)
	}
	dst := r.buf[:2*r.ncap]
	if r.m.run(b, dst) < 0 {
		return nil
	}
	return dst
}

// wrap makes re the capture group cap (with its groups shifted by shift).
func wrap(re *syntax.Regexp, base int) *syntax.Regexp {
	if base > 0 {
		shiftCaps(re, base)
	}
	g := &syntax.Regexp{Op: syntax.OpCapture, Cap: base, Sub: []*syntax.Regexp{re}}
	if anchoredStart(re) {
		return g
	}
	// unanchored: the leftmost match, as if tried at every position
	lazy := &syntax.Regexp{Op: syntax.OpStar, Flags: syntax.NonGreedy, Sub: []*syntax.Regexp{{Op: syntax.OpAnyChar}}}
	return &syntax.Regexp{Op: syntax.OpConcat, Sub: []*syntax.Regexp{lazy, g}}
}

func anchor(re *syntax.Regexp) *syntax.Regexp {
	return &syntax.Regexp{Op: syntax.OpConcat, Sub: []*syntax.Regexp{{Op: syntax.OpBeginText}, re}}
}

// clone copies re deeply (wrap renumbers groups in place).
func clone(re *syntax.Regexp) *syntax.Regexp {
	c := *re
	c.Sub = nil
	c.Sub0 = [1]*syntax.Regexp{}
	if len(re.Sub) > 0 {
		c.Sub = make([]*syntax.Regexp, len(re.Sub))
		for i, s := range re.Sub {
			c.Sub[i] = clone(s)
		}
	}
	return &c
}

func shiftCaps(re *syntax.Regexp, by int) {
	if re.Op == syntax.OpCapture {
		re.Cap += by
	}
	for _, s := range re.Sub {
		shiftCaps(s, by)
	}
}

// anchoredStart reports whether every match of re starts at the start of
// the text: the assertion \A (^ outside multi-line mode) comes before
// anything that reads a rune or branches (what the compiled program's
// StartCond reports, read from the tree instead of compiling a program
// per pattern). A pattern it cannot tell about is taken as unanchored,
// which costs speed, never a different match: the search from every
// position finds the same leftmost match.
func anchoredStart(re *syntax.Regexp) bool {
	begins, _ := leadsBeginText(re)
	return begins
}

// leadsBeginText reports whether re's leading zero-width part asserts
// \A (begins), and whether re can be passed without reading a rune or
// branching (pass: what follows it leads on).
func leadsBeginText(re *syntax.Regexp) (begins, pass bool) {
	switch re.Op {
	case syntax.OpBeginText:
		return true, true
	case syntax.OpEmptyMatch, syntax.OpBeginLine, syntax.OpEndLine, syntax.OpEndText,
		syntax.OpWordBoundary, syntax.OpNoWordBoundary:
		return false, true
	case syntax.OpCapture:
		return leadsBeginText(re.Sub[0])
	case syntax.OpPlus:
		// x+ is x, then a branch
		b, _ := leadsBeginText(re.Sub[0])
		return b, false
	case syntax.OpConcat:
		for _, sub := range re.Sub {
			b, p := leadsBeginText(sub)
			if b || !p {
				return b, false
			}
		}
		return false, true
	}
	return false, false
}

// Set is a list of patterns matched as one automaton: Match answers the
// first pattern (in list order) that matches anywhere, with its groups,
// as if each pattern were tried in turn with regexp's FindSubmatchIndex.
type Set struct {
	m    *machine
	base []int // first slot of pattern i
	ncap []int
	buf  []int
}

// CompileSet compiles the patterns (Perl syntax, like regexp.Compile).
func CompileSet(exprs []string, maxStates int) (*Set, error) {
	res := make([]*syntax.Regexp, len(exprs))
	for i, e := range exprs {
		re, err := syntax.Parse(e, syntax.Perl)
		if err != nil {
			return nil, err
		}
		res[i] = re
	}
	return CompileSetSyntax(res, maxStates)
}

// CompileSetSyntax is CompileSet for parsed patterns (not modified).
func CompileSetSyntax(res []*syntax.Regexp, maxStates int) (*Set, error) {
	var alts []*syntax.Regexp
	s := &Set{}
	base := 0
	for _, re := range res {
		re = clone(re)
		n := re.MaxCap() + 1
		s.base = append(s.base, base)
		s.ncap = append(s.ncap, n)
		alts = append(alts, wrap(re, base))
		base += n
	}
	var top *syntax.Regexp
	switch len(alts) {
	case 0:
		top = &syntax.Regexp{Op: syntax.OpNoMatch}
	case 1:
		top = alts[0]
	default:
		top = &syntax.Regexp{Op: syntax.OpAlternate, Sub: alts}
	}
	for i := range s.base {
		s.base[i] *= 2
	}
	m, err := newMachine(anchor(top), append(slices.Clone(s.base), 2*base), maxStates)
	if err != nil {
		return nil, err
	}
	s.m = m
	s.buf = make([]int, 2*base)
	return s, nil
}

// Match returns the index of the first pattern that matches b and that
// pattern's spans (as FindSubmatchIndex), or -1 and nil. The spans are
// valid until the next call.
func (s *Set) Match(b []byte) (int, []int) {
	i := s.m.run(b, s.buf)
	if i < 0 {
		return -1, nil
	}
	return i, s.buf[s.base[i] : s.base[i]+2*s.ncap[i]]
}

// Len is the number of patterns.
func (s *Set) Len() int { return len(s.base) }

// Resets counts how often the state cache was full and dropped.
func (s *Set) Resets() int { return s.m.resets }

// States is the number of states cached now.
func (s *Set) States() int { return s.m.nstates() }
