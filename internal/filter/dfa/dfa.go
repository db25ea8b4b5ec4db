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
// NFA directly (still linear). The state cache is bounded: when it is
// full it is dropped and rebuilt. A Regexp or Set is not safe for
// concurrent use.
package dfa

import (
	"regexp/syntax"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// DefaultMaxStates bounds the cached states of one automaton.
const DefaultMaxStates = 4096

// rune kinds, for the empty-width assertions.
const (
	kindBegin   = 0 // before the text (prev) / end of text (next)
	kindNewline = 1
	kindWord    = 2
	kindOther   = 3
)

// kindRunes are representatives for syntax.EmptyOpContext.
var (
	prevRune = [4]rune{-1, '\n', 'a', ' '}
	nextRune = [4]rune{-1, '\n', 'a', ' '}
)

func runeKind(r rune) uint8 {
	switch {
	case r == '\n':
		return kindNewline
	case syntax.IsWordChar(r):
		return kindWord
	}
	return kindOther
}

// state is a DFA state: ordered thread pcs and the previous rune's kind.
type state struct {
	id     int32
	kernel []uint32
	prev   uint8
}

// trans is a transition from one state at one position.
type trans struct {
	to int32 // state id
	// parents[j] is the index in the previous state's kernel of the thread
	// that became thread j of to; slots[j] the capture slots it wrote at
	// this position (anySlots: some are not empty).
	parents  []int32
	slots    [][]int32
	anySlots bool
	// match: a thread reached Match at this position (before consuming
	// the rune); mParent and mSlots describe its path.
	match   bool
	mParent int32
	mSlots  []int32
	// plain: see slowBit
	plain bool
}

// Table entries are 16 bits wide (states are bounded well below 1<<13),
// which keeps the table small enough for the caches: a DFA step is one
// dependent load. A plain transition - every thread of the target state
// comes from the thread of the same index, no capture slot is written, no
// thread matches, the target is not the dead state - is its target id
// alone; the forward pass records nothing for it, and the backward walk
// knows it changes nothing. Every other entry has slowBit set: not yet
// computed (slowBit alone), or doneBit | matchBit? | target id.
const (
	slowBit  = 1 << 15
	matchBit = 1 << 14
	doneBit  = 1 << 13
	idMask   = doneBit - 1
	// maxStatesLimit bounds maxStates so that ids fit an entry.
	maxStatesLimit = idMask - 1
)

// trail entries: position << 32 | transition index; extBit marks an
// index into the per-run list of uncached (non-ASCII) transitions.
const extBit = 1 << 31

// machine is the automaton of one compiled program.
type machine struct {
	prog      *syntax.Prog
	nslot     int
	hasEmpty  bool
	classes   [256]uint8 // bytes >= 0x80 are class nclass (never cached)
	repr      []rune     // representative rune per ASCII class
	nclass    int        // ASCII classes
	endCol    int        // column of the end of the text: nclass + 1
	shift     uint       // a state's row is id << shift (stride 1<<shift > endCol)
	maxStates int
	resets    int

	ids    map[string]int32
	states []*state
	table  []uint16 // states x stride
	trans  []*trans // states x stride (nil: not computed)

	// patSlots[i] is the first slot of pattern i (one past the last for
	// i = number of patterns); slotPat maps a slot to its pattern.
	patSlots []int
	slotPat  []int32

	// scratch
	trail   []uint64
	ext     []*trans
	visited []bool
	path    []int32
	elems   []elem
	keyBuf  []byte
}

type elem struct {
	pc     uint32
	parent int32
	slots  []int32
}

func newMachine(re *syntax.Regexp, patSlots []int, maxStates int) (*machine, error) {
	nslot := patSlots[len(patSlots)-1]
	prog, err := syntax.Compile(re.Simplify())
	if err != nil {
		return nil, err
	}
	if maxStates <= 0 {
		maxStates = DefaultMaxStates
	}
	maxStates = min(maxStates, maxStatesLimit)
	m := &machine{prog: prog, nslot: nslot, maxStates: maxStates, patSlots: patSlots}
	m.slotPat = make([]int32, nslot)
	for i := 0; i+1 < len(patSlots); i++ {
		for x := patSlots[i]; x < patSlots[i+1]; x++ {
			m.slotPat[x] = int32(i)
		}
	}
	for i := range prog.Inst {
		if prog.Inst[i].Op == syntax.InstEmptyWidth {
			m.hasEmpty = true
		}
	}
	m.visited = make([]bool, len(prog.Inst))
	m.buildClasses()
	m.endCol = m.nclass + 1
	for 1<<m.shift <= m.endCol {
		m.shift++
	}
	m.reset()
	return m, nil
}

// buildClasses groups ASCII bytes that every instruction treats alike.
func (m *machine) buildClasses() {
	var runeInsts []*syntax.Inst
	for i := range m.prog.Inst {
		in := &m.prog.Inst[i]
		switch in.Op {
		case syntax.InstRune, syntax.InstRune1, syntax.InstRuneAny, syntax.InstRuneAnyNotNL:
			runeInsts = append(runeInsts, in)
		}
	}
	sig := map[string]uint8{}
	var b strings.Builder
	for c := 0; c < 128; c++ {
		b.Reset()
		b.WriteByte(runeKind(rune(c)))
		for _, in := range runeInsts {
			if matchRune(in, rune(c)) {
				b.WriteByte('1')
			} else {
				b.WriteByte('0')
			}
		}
		k := b.String()
		id, ok := sig[k]
		if !ok {
			id = uint8(len(m.repr))
			sig[k] = id
			m.repr = append(m.repr, rune(c))
		}
		m.classes[c] = id
	}
	m.nclass = len(m.repr)
	for c := 128; c < 256; c++ {
		m.classes[c] = uint8(m.nclass)
	}
}

func matchRune(in *syntax.Inst, r rune) bool {
	switch in.Op {
	case syntax.InstRune1:
		return r == in.Rune[0]
	case syntax.InstRuneAny:
		return true
	case syntax.InstRuneAnyNotNL:
		return r != '\n'
	case syntax.InstRune:
		return in.MatchRune(r)
	}
	return false
}

// reset drops the state cache; state 0 is the dead state, 1 the start.
func (m *machine) reset() {
	m.ids = make(map[string]int32)
	m.states = m.states[:0]
	m.table = m.table[:0]
	m.trans = m.trans[:0]
	m.intern(nil, kindBegin)
	m.intern([]uint32{uint32(m.prog.Start)}, kindBegin)
}

func (m *machine) intern(kernel []uint32, prev uint8) int32 {
	if !m.hasEmpty || len(kernel) == 0 {
		prev = kindBegin
	}
	k := m.keyBuf[:0]
	k = append(k, prev)
	for _, pc := range kernel {
		k = strconv.AppendUint(k, uint64(pc), 10)
		k = append(k, ',')
	}
	m.keyBuf = k
	if id, ok := m.ids[string(k)]; ok {
		return id
	}
	id := int32(len(m.states))
	m.states = append(m.states, &state{id: id, kernel: append([]uint32(nil), kernel...), prev: prev})
	m.ids[string(k)] = id
	for i := 0; i < 1<<m.shift; i++ {
		m.table = append(m.table, slowBit)
		m.trans = append(m.trans, nil)
	}
	return id
}

// closure follows the empty transitions of s's threads in priority order
// under the context ctx: the rune and match instructions reached, each
// with its parent thread and the slots written on its path.
func (m *machine) closure(s *state, ctx syntax.EmptyOp) []elem {
	for i := range m.visited {
		m.visited[i] = false
	}
	m.elems = m.elems[:0]
	for k, pc := range s.kernel {
		m.path = m.path[:0]
		m.follow(pc, int32(k), ctx)
	}
	return m.elems
}

func (m *machine) follow(pc uint32, parent int32, ctx syntax.EmptyOp) {
	for {
		if m.visited[pc] {
			return
		}
		m.visited[pc] = true
		in := &m.prog.Inst[pc]
		switch in.Op {
		case syntax.InstFail:
			return
		case syntax.InstAlt, syntax.InstAltMatch:
			n := len(m.path)
			m.follow(in.Out, parent, ctx)
			m.path = m.path[:n]
			pc = in.Arg
		case syntax.InstEmptyWidth:
			if syntax.EmptyOp(in.Arg)&^ctx != 0 {
				return
			}
			pc = in.Out
		case syntax.InstNop:
			pc = in.Out
		case syntax.InstCapture:
			if int(in.Arg) < m.nslot {
				m.path = append(m.path, int32(in.Arg))
			}
			pc = in.Out
		default: // Match and rune instructions
			var sl []int32
			if len(m.path) > 0 {
				sl = append([]int32(nil), m.path...)
			}
			m.elems = append(m.elems, elem{pc: pc, parent: parent, slots: sl})
			return
		}
	}
}

// compute builds the transition of state id on rune r (kind nk), or at
// the end of the text when end is set.
func (m *machine) compute(id int32, r rune, nk uint8, end bool) *trans {
	s := m.states[id]
	ctx := syntax.EmptyOp(0)
	if m.hasEmpty {
		ctx = syntax.EmptyOpContext(prevRune[s.prev], nextRune[nk])
	}
	els := m.closure(s, ctx)
	t := &trans{}
	var kernel []uint32
	seen := map[uint32]bool{}
	for _, e := range els {
		in := &m.prog.Inst[e.pc]
		if in.Op == syntax.InstMatch {
			t.match, t.mParent, t.mSlots = true, e.parent, e.slots
			break // lower-priority threads are cut
		}
		if end || !matchRune(in, r) || seen[in.Out] {
			continue
		}
		seen[in.Out] = true
		kernel = append(kernel, in.Out)
		t.parents = append(t.parents, e.parent)
		t.slots = append(t.slots, e.slots)
		t.anySlots = t.anySlots || len(e.slots) > 0
	}
	if !end {
		t.to = m.intern(kernel, nk)
	}
	t.plain = !end && !t.match && !t.anySlots && t.to != 0
	for j, p := range t.parents {
		if p != int32(j) {
			t.plain = false
		}
	}
	return t
}

// cached returns the table entry of state id on class cl, building it.
// When the cache is full it is dropped (keeping memory bounded) and the
// transitions recorded so far in trail move to the per-run list, so they
// stay valid; the returned entry is then an index into that list.
func (m *machine) cached(trail []uint64, id int32, cl int, r rune, nk uint8, end bool) int32 {
	t := m.compute(id, r, nk, end)
	if len(m.states) <= m.maxStates {
		e := t.to
		if !t.plain {
			e |= slowBit | doneBit
			if t.match {
				e |= matchBit
			}
		}
		m.table[int(id)<<m.shift+cl] = uint16(e)
		m.trans[int(id)<<m.shift+cl] = t
		return e
	}
	m.detach(trail)
	return m.external(t)
}

// external records t, whose target may be in a dropped cache, in the
// per-run list; it returns its (negative) entry.
func (m *machine) external(t *trans) int32 {
	if len(m.states) > m.maxStates {
		to := m.states[t.to]
		m.reset()
		m.resets++
		t.to = m.intern(to.kernel, to.prev)
	}
	m.ext = append(m.ext, t)
	return -int32(len(m.ext))
}

// detach moves the cached transitions referenced by trail to the per-run list.
func (m *machine) detach(trail []uint64) {
	for i, ref := range trail {
		x := uint32(ref)
		if x&extBit != 0 {
			continue
		}
		m.ext = append(m.ext, m.trans[x])
		trail[i] = ref&^0xffffffff | uint64(len(m.ext)-1) | extBit
	}
}

// scan follows plain transitions from state id at b[p]; it returns the
// position of the first step that is not plain (len(b) at the end) and the
// state there. It is the hot loop: kept small so that everything stays in
// registers.
func scan(table []uint16, classes *[256]uint8, shift uint, b []byte, p int, id int) (int, int) {
	for ; p < len(b); p++ {
		e := table[id<<(shift&63)+int(classes[b[p]])]
		if e&slowBit != 0 {
			return p, id
		}
		id = int(e)
	}
	return p, id
}

// run matches b. It returns the pattern that matched (the owner of the
// match's group 0), or -1; dst (len nslot) then holds that pattern's slots
// (the slots of other patterns are stale).
func (m *machine) run(b []byte, dst []int) int {
	if len(m.states) > m.maxStates {
		m.reset()
		m.resets++
	}
	if cap(m.trail) < len(b)+1 {
		m.trail = make([]uint64, 0, len(b)+len(b)/4+1)
	}
	trail := m.trail[:0]
	m.ext = m.ext[:0]
	id := int32(1)
	last := -1 // index in trail of the matching step, or len(trail) for the end
	var lastT *trans
	lastPos := 0
	p := 0
	for p < len(b) {
		var i int
		p, i = scan(m.table, &m.classes, m.shift, b, p, int(id))
		id = int32(i)
		if p == len(b) {
			break
		}
		c := b[p]
		w := 1
		var ref uint64
		var next int32
		var matched bool
		if c < utf8.RuneSelf {
			cl := int(m.classes[c])
			idx := int(id)<<m.shift + cl
			x := int32(m.table[idx])
			if x&doneBit == 0 {
				x = m.cached(trail, id, cl, m.repr[cl], runeKind(rune(c)), false)
			}
			if x >= 0 {
				ref = uint64(idx)
				next, matched = x&idMask, x&matchBit != 0
			} else {
				ref = uint64(-x-1) | extBit
				t := m.ext[-x-1]
				next, matched = t.to, t.match
			}
		} else {
			var r rune
			r, w = utf8.DecodeRune(b[p:])
			t := m.compute(id, r, kindOther, false)
			if len(m.states) > m.maxStates {
				m.detach(trail)
			}
			x := m.external(t)
			ref = uint64(-x-1) | extBit
			next, matched = t.to, t.match
		}
		if matched {
			last, lastPos = len(trail), p
		}
		trail = append(trail, uint64(p)<<32|ref)
		id = next
		p += w
		if id == 0 {
			break
		}
	}
	if id != 0 {
		t := m.trans[int(id)<<m.shift+m.endCol]
		if t == nil {
			if e := m.cached(trail, id, m.endCol, -1, kindBegin, true); e < 0 {
				t = m.ext[-e-1]
			} else {
				t = m.trans[int(id)<<m.shift+m.endCol]
			}
		}
		if t.match {
			last, lastPos, lastT = len(trail), len(b), t
		}
	}
	m.trail = trail
	if last < 0 {
		return -1
	}
	if lastT == nil {
		lastT = m.at(trail[last])
	}
	// the match path closes its pattern's group 0 just before Match
	pat := int(m.slotPat[lastT.mSlots[len(lastT.mSlots)-1]])
	lo, hi := m.patSlots[pat], m.patSlots[pat+1]
	for i := lo; i < hi; i++ {
		dst[i] = -1
	}
	set(dst, lastT.mSlots, lastPos)
	k := lastT.mParent
	for i := last - 1; i >= 0; i-- {
		t := m.at(trail[i])
		if t.anySlots {
			set(dst, t.slots[k], int(trail[i]>>32))
		}
		k = t.parents[k]
	}
	return pat
}

func (m *machine) at(ref uint64) *trans {
	x := uint32(ref)
	if x&extBit != 0 {
		return m.ext[x&^extBit]
	}
	return m.trans[x]
}

// set writes pos into the slots sl not yet written (the walk goes
// backwards, so the first write seen is a thread's last).
func set(dst []int, sl []int32, pos int) {
	for _, x := range sl {
		if dst[x] < 0 {
			dst[x] = pos
		}
	}
}

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
func (r *Regexp) States() int { return len(r.m.states) }

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

func shiftCaps(re *syntax.Regexp, by int) {
	if re.Op == syntax.OpCapture {
		re.Cap += by
	}
	for _, s := range re.Sub {
		shiftCaps(s, by)
	}
}

// anchoredStart reports whether every match of re starts at the start of
// the text.
func anchoredStart(re *syntax.Regexp) bool {
	p, err := syntax.Compile(re.Simplify())
	if err != nil {
		return false
	}
	return p.StartCond()&syntax.EmptyBeginText != 0
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
	var alts []*syntax.Regexp
	s := &Set{}
	base := 0
	for _, e := range exprs {
		re, err := syntax.Parse(e, syntax.Perl)
		if err != nil {
			return nil, err
		}
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
func (s *Set) States() int { return len(s.m.states) }
