package dfa

import (
	"regexp/syntax"
	"strconv"
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
var kindRune = [4]rune{-1, '\n', 'a', ' '}

func runeKind(r rune) uint8 {
	switch {
	case r == '\n':
		return kindNewline
	case syntax.IsWordChar(r):
		return kindWord
	}
	return kindOther
}

// Table entries are 32 bits. A plain transition - every thread of the
// target state comes from the thread of the same index, no capture slot is
// written, no thread matches, the target is not the dead state - is the
// target's row offset (id * stride) alone: the forward pass follows it
// with one add and one load and records nothing, and the backward walk
// knows it changes nothing. Every other entry has slowBit set: not yet
// computed (slowBit alone), or slowBit | doneBit | matchBit? | the index
// of the transition in the cache's arena.
const (
	slowBit  = 1 << 31
	doneBit  = 1 << 30
	matchBit = 1 << 29
	idMask   = matchBit - 1
	// maxStatesLimit bounds maxStates (row offsets stay below slowBit).
	maxStatesLimit = 1 << 20
)

// trail entries: position << 32 | transition, with matchBit when a thread
// matched at that step; extBit marks a transition of the per-run arena
// (uncached: non-ASCII runes, or built while the cache was dropped),
// otherwise one of the cache's arena.
const (
	extBit  = 1 << 31
	refMask = extBit | idMask
)

// trans is a transition from one state at one position. Its per-thread
// data lives in the arena's int32 slice, so no transition holds a pointer
// (the garbage collector never scans the automaton).
type trans struct {
	to    int32 // target state id (0: dead)
	toRow int32 // its row offset in the table
	n     int32 // threads of the target
	// parents: i32[par+j] is the index in the previous state's kernel of
	// the thread that became thread j of the target.
	par int32
	// slot < 0: no thread wrote a capture slot; else i32[slot+j] is the
	// offset of thread j's slot list (count, slots...) or -1.
	slot int32
	// match: a thread reached Match at this position (before consuming the
	// rune); mParent is its thread and mSlot its slot list (or -1).
	mParent int32
	mSlot   int32
	match   bool
	plain   bool
}

type arena struct {
	tr  []trans
	i32 []int32
}

func (a *arena) reset() {
	a.tr = a.tr[:0]
	a.i32 = a.i32[:0]
}

// slotList appends a slot list and returns its offset (-1 for none).
func (a *arena) slotList(sl []int32) int32 {
	if len(sl) == 0 {
		return -1
	}
	off := int32(len(a.i32))
	a.i32 = append(a.i32, int32(len(sl)))
	a.i32 = append(a.i32, sl...)
	return off
}

// copyTrans copies transition i of src into a and returns its index.
func (a *arena) copyTrans(src *arena, i int32) int32 {
	t := src.tr[i]
	par := int32(len(a.i32))
	a.i32 = append(a.i32, src.i32[t.par:t.par+t.n]...)
	if t.slot >= 0 {
		slot := int32(len(a.i32))
		a.i32 = append(a.i32, make([]int32, t.n)...)
		for j := int32(0); j < t.n; j++ {
			off := src.i32[t.slot+j]
			if off >= 0 {
				off = a.slotList(src.i32[off+1 : off+1+src.i32[off]])
			}
			a.i32[slot+j] = off
		}
		t.slot = slot
	}
	if t.mSlot >= 0 {
		t.mSlot = a.slotList(src.i32[t.mSlot+1 : t.mSlot+1+src.i32[t.mSlot]])
	}
	t.par = par
	a.tr = append(a.tr, t)
	return int32(len(a.tr) - 1)
}

// machine is the automaton of one compiled program.
type machine struct {
	prog  *syntax.Prog
	nslot int
	// which kinds of the neighbouring runes the program's assertions
	// read: \b \B (word), ^ in multi-line mode (newline before), $ in
	// multi-line mode (newline after)
	hasEmpty, needWord, needBOL, needEOL bool

	classes   [256]uint8 // bytes >= 0x80 are class nclass (never cached)
	repr      []rune     // representative rune per ASCII class
	nclass    int        // ASCII classes
	stride    int        // nclass + 1
	maxStates int
	resets    int

	// states: kernel of state i is kern[kernOff[i]:kernOff[i+1]]
	ids     map[string]int32
	kern    []uint32
	kernOff []int32
	prev    []uint8
	table   []uint32 // states x stride (see slowBit)
	endT    []int32  // per state: the transition at the end of the text in c
	c       arena    // cached transitions
	// cRow[i] is c.tr[i].toRow: the forward pass's slow steps read only
	// this (4 bytes a transition instead of a whole trans)
	cRow []int32
	x    arena // this run's other transitions

	// patSlots[i] is the first slot of pattern i (one past the last for
	// i = number of patterns); slotPat maps a slot to its pattern.
	patSlots []int
	slotPat  []int32

	// scratch
	trail   []uint64
	visited []uint32 // generation marks
	gen     uint32
	path    []int32
	elems   []elem
	slots   []int32
	keyBuf  []byte
	kbuf    []uint32
	pbuf    []int32
	sbuf    []int32
	seen    map[uint32]bool
}

type elem struct {
	pc     uint32
	parent int32
	slots  int32 // offset in m.slots: count, slots...; -1 none
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
	m := &machine{prog: prog, nslot: nslot, maxStates: maxStates, patSlots: patSlots, seen: map[uint32]bool{}}
	m.slotPat = make([]int32, nslot)
	for i := 0; i+1 < len(patSlots); i++ {
		for x := patSlots[i]; x < patSlots[i+1]; x++ {
			m.slotPat[x] = int32(i)
		}
	}
	for i := range prog.Inst {
		if in := &prog.Inst[i]; in.Op == syntax.InstEmptyWidth {
			m.hasEmpty = true
			op := syntax.EmptyOp(in.Arg)
			m.needWord = m.needWord || op&(syntax.EmptyWordBoundary|syntax.EmptyNoWordBoundary) != 0
			m.needBOL = m.needBOL || op&syntax.EmptyBeginLine != 0
			m.needEOL = m.needEOL || op&syntax.EmptyEndLine != 0
		}
	}
	m.visited = make([]uint32, len(prog.Inst))
	m.buildClasses()
	m.stride = m.nclass + 1
	if m.stride*(maxStates+2) >= idMask {
		m.maxStates = idMask/m.stride - 2
	}
	m.reset()
	return m, nil
}

// kindOf is the kind of r as far as the program's assertions can tell.
func (m *machine) kindOf(r rune) uint8 {
	switch k := runeKind(r); {
	case k == kindNewline && (m.needBOL || m.needEOL), k == kindWord && m.needWord:
		return k
	}
	return kindOther
}

// buildClasses groups ASCII bytes that every instruction (and every
// assertion) treats alike.
func (m *machine) buildClasses() {
	type set [2]uint64
	var sets []set
	index := map[set]bool{}
	add := func(s set) {
		if !index[s] {
			index[s] = true
			sets = append(sets, s)
		}
	}
	for i := range m.prog.Inst {
		in := &m.prog.Inst[i]
		var s set
		switch in.Op {
		case syntax.InstRune1:
			if r := in.Rune[0]; r < utf8.RuneSelf {
				s[r/64] |= 1 << (r % 64)
			}
		case syntax.InstRuneAny:
			s = set{^uint64(0), ^uint64(0)}
		case syntax.InstRuneAnyNotNL:
			s = set{^uint64(0) &^ (1 << '\n'), ^uint64(0)}
		case syntax.InstRune:
			if syntax.Flags(in.Arg)&syntax.FoldCase != 0 || len(in.Rune) == 1 {
				for c := rune(0); c < utf8.RuneSelf; c++ {
					if in.MatchRune(c) {
						s[c/64] |= 1 << (c % 64)
					}
				}
			} else {
				for j := 0; j+1 < len(in.Rune); j += 2 {
					for c := in.Rune[j]; c <= in.Rune[j+1] && c < utf8.RuneSelf; c++ {
						s[c/64] |= 1 << (c % 64)
					}
				}
			}
		default:
			continue
		}
		add(s)
	}
	var kinds set
	for c := rune(0); c < utf8.RuneSelf; c++ {
		if m.kindOf(c) != kindOther {
			kinds[c/64] |= 1 << (c % 64)
		}
	}
	add(kinds)
	sig := map[string]uint8{}
	key := make([]byte, (len(sets)+7)/8+1)
	for c := rune(0); c < utf8.RuneSelf; c++ {
		clear(key)
		key[0] = m.kindOf(c)
		for j, s := range sets {
			if s[c/64]&(1<<(c%64)) != 0 {
				key[1+j/8] |= 1 << (j % 8)
			}
		}
		id, ok := sig[string(key)]
		if !ok {
			id = uint8(len(m.repr))
			sig[string(key)] = id
			m.repr = append(m.repr, c)
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
	m.kern = m.kern[:0]
	m.kernOff = append(m.kernOff[:0], 0)
	m.prev = m.prev[:0]
	m.table = m.table[:0]
	m.endT = m.endT[:0]
	m.c.reset()
	m.cRow = m.cRow[:0]
	m.intern(nil, kindBegin)
	m.intern([]uint32{uint32(m.prog.Start)}, kindBegin)
}

func (m *machine) nstates() int { return len(m.prev) }

func (m *machine) kernel(id int32) []uint32 { return m.kern[m.kernOff[id]:m.kernOff[id+1]] }

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
	id := int32(m.nstates())
	m.kern = append(m.kern, kernel...)
	m.kernOff = append(m.kernOff, int32(len(m.kern)))
	m.prev = append(m.prev, prev)
	m.ids[string(k)] = id
	for i := 0; i < m.stride; i++ {
		m.table = append(m.table, slowBit)
	}
	m.endT = append(m.endT, -1)
	return id
}

// closure follows the empty transitions of state id's threads in priority
// order under the context ctx: the rune and match instructions reached,
// each with its parent thread and the slots written on its path.
func (m *machine) closure(id int32, ctx syntax.EmptyOp) []elem {
	m.gen++
	if m.gen == 0 {
		clear(m.visited)
		m.gen = 1
	}
	m.elems = m.elems[:0]
	m.slots = m.slots[:0]
	for k, pc := range m.kernel(id) {
		m.path = m.path[:0]
		m.follow(pc, int32(k), ctx)
	}
	return m.elems
}

func (m *machine) follow(pc uint32, parent int32, ctx syntax.EmptyOp) {
	for {
		if m.visited[pc] == m.gen {
			return
		}
		m.visited[pc] = m.gen
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
			sl := int32(-1)
			if len(m.path) > 0 {
				sl = int32(len(m.slots))
				m.slots = append(m.slots, int32(len(m.path)))
				m.slots = append(m.slots, m.path...)
			}
			m.elems = append(m.elems, elem{pc: pc, parent: parent, slots: sl})
			return
		}
	}
}

// compute builds, in the per-run arena, the transition of state id on
// rune r (kind nk), or at the end of the text when end is set; it returns
// its index there. The target state is interned (the cache may now hold
// more than maxStates states).
func (m *machine) compute(id int32, r rune, nk uint8, end bool) int32 {
	ctx := syntax.EmptyOp(0)
	if m.hasEmpty {
		ctx = syntax.EmptyOpContext(kindRune[m.prev[id]], kindRune[nk])
	}
	els := m.closure(id, ctx)
	t := trans{slot: -1, mSlot: -1}
	kernel := m.kbuf[:0]
	parents := m.pbuf[:0]
	slots := m.sbuf[:0] // per thread: offset in m.slots
	mSlots := int32(-1)
	clear(m.seen)
	for _, e := range els {
		in := &m.prog.Inst[e.pc]
		if in.Op == syntax.InstMatch {
			t.match, t.mParent, mSlots = true, e.parent, e.slots
			break // lower-priority threads are cut
		}
		if end || !matchRune(in, r) || m.seen[in.Out] {
			continue
		}
		m.seen[in.Out] = true
		kernel = append(kernel, in.Out)
		parents = append(parents, e.parent)
		slots = append(slots, e.slots)
	}
	m.kbuf, m.pbuf, m.sbuf = kernel, parents, slots
	a := &m.x
	t.n = int32(len(kernel))
	t.par = int32(len(a.i32))
	a.i32 = append(a.i32, parents...)
	any := false
	for _, s := range slots {
		any = any || s >= 0
	}
	if any {
		t.slot = int32(len(a.i32))
		a.i32 = append(a.i32, make([]int32, len(slots))...)
		for j, s := range slots {
			off := int32(-1)
			if s >= 0 {
				off = a.slotList(m.slots[s+1 : s+1+m.slots[s]])
			}
			a.i32[t.slot+int32(j)] = off
		}
	}
	if mSlots >= 0 {
		t.mSlot = a.slotList(m.slots[mSlots+1 : mSlots+1+m.slots[mSlots]])
	}
	if !end {
		t.to = m.intern(kernel, m.kindOf(r))
		t.toRow = t.to * int32(m.stride)
	}
	t.plain = !end && !t.match && !any && t.to != 0
	for j, p := range parents {
		if p != int32(j) {
			t.plain = false
		}
	}
	a.tr = append(a.tr, t)
	return int32(len(a.tr) - 1)
}

// keep caches per-run transition xi (the last one) as state id's
// transition on class cl (cl == stride: at the end of the text) and
// returns its trail reference; see overflow for a full cache.
func (m *machine) keep(trail []uint64, id int32, cl int, xi int32) uint64 {
	if m.nstates() > m.maxStates {
		return m.overflow(trail, xi)
	}
	ci := m.c.copyTrans(&m.x, xi)
	m.x.tr = m.x.tr[:xi]
	t := &m.c.tr[ci]
	m.cRow = append(m.cRow, t.toRow)
	if cl == m.stride {
		m.endT[id] = ci
		return uint64(ci)
	}
	e := uint32(t.toRow)
	if !t.plain {
		e = slowBit | doneBit | uint32(ci)
		if t.match {
			e |= matchBit
		}
	}
	m.table[int(id)*m.stride+cl] = e
	return uint64(ci)
}

// overflow handles a full cache: it is dropped (keeping memory bounded)
// after the transitions recorded so far in trail move to the per-run
// arena, so that they stay valid; per-run transition xi's target is
// interned in the new cache. It returns xi's trail reference.
func (m *machine) overflow(trail []uint64, xi int32) uint64 {
	m.detach(trail)
	t := &m.x.tr[xi]
	var kern []uint32
	var prev uint8
	if t.to != 0 {
		kern = append(kern, m.kernel(t.to)...)
		prev = m.prev[t.to]
	}
	m.reset()
	m.resets++
	if t.to != 0 {
		t.to = m.intern(kern, prev)
		t.toRow = t.to * int32(m.stride)
	}
	return uint64(xi) | extBit
}

// detach moves the cached transitions referenced by trail to the per-run arena.
func (m *machine) detach(trail []uint64) {
	for i, ref := range trail {
		x := uint32(ref)
		if x&extBit != 0 {
			continue
		}
		xi := m.x.copyTrans(&m.c, int32(x&idMask))
		trail[i] = ref&^idMask | uint64(xi) | extBit
	}
}

// run matches b. It returns the pattern that matched (the owner of the
// match's group 0), or -1; dst (len nslot) then holds that pattern's slots
// (the slots of other patterns are stale).
func (m *machine) run(b []byte, dst []int) int {
	if m.nstates() > m.maxStates {
		m.reset()
		m.resets++
	}
	if cap(m.trail) < len(b)+1 {
		m.trail = make([]uint64, 0, len(b)+len(b)/4+1)
	}
	m.x.reset()
	trail, row := m.forward(b)
	stride := m.stride
	last, lastPos := -1, 0
	for i := len(trail) - 1; i >= 0; i-- {
		if trail[i]&matchBit != 0 {
			last, lastPos = i, int(trail[i]>>32)
			break
		}
	}
	var lastRef uint64
	if row != 0 {
		id := int32(row / stride)
		var ref uint64
		if ci := m.endT[id]; ci >= 0 {
			ref = uint64(ci)
		} else {
			ref = m.keep(trail, id, stride, m.compute(id, -1, kindBegin, true))
		}
		if m.at(ref).match {
			last, lastPos, lastRef = len(trail), len(b), ref
		}
	}
	if last < 0 {
		return -1
	}
	if last < len(trail) {
		lastRef = trail[last]
	}
	a, t := m.ref(lastRef)
	// the match path closes its pattern's group 0 just before Match
	ms := a.i32[t.mSlot+1 : t.mSlot+1+a.i32[t.mSlot]]
	pat := int(m.slotPat[ms[len(ms)-1]])
	lo, hi := m.patSlots[pat], m.patSlots[pat+1]
	for i := lo; i < hi; i++ {
		dst[i] = -1
	}
	set(dst, ms, lastPos)
	k := t.mParent
	for i := last - 1; i >= 0; i-- {
		a, t := m.ref(trail[i])
		if t.slot >= 0 {
			if off := a.i32[t.slot+k]; off >= 0 {
				set(dst, a.i32[off+1:off+1+a.i32[off]], int(trail[i]>>32))
			}
		}
		k = a.i32[t.par+k]
	}
	return pat
}

// forward is the forward pass over b from the start state: it returns the
// trail of steps that are not plain and the row of the state after the
// last byte read (0: the dead state). walk takes the cached steps, step
// the others.
func (m *machine) forward(b []byte) ([]uint64, int) {
	trail := m.trail[:len(b)+1]
	n := 0
	row := m.stride // the start state, id 1
	p := 0
	for {
		p, row, n = walk(m.table, m.cRow, &m.classes, b, p, row, trail, n)
		if p == len(b) || row == 0 {
			break
		}
		ref, t, w := m.step(trail[:n], b[p:], row)
		if t.match {
			ref |= matchBit
		}
		trail[n] = uint64(p)<<32 | ref
		n++
		p += w
		if row = int(t.toRow); row == 0 {
			break
		}
	}
	return trail[:n], row
}

// walk follows cached transitions from the state at row over b[p:],
// writing the steps that are not plain to trail[n:]; it stops at the end,
// at the dead state or before a step it cannot take (not computed yet, or
// a non-ASCII byte), and returns the position, the row and n. It is the
// hot loop, kept small so that everything stays in registers.
//
// The table is indexed with Go's bounds checks: row and class always
// stay in range by construction, but the line is an attacker's and an
// unchecked read would turn any future table bug into a memory read.
//
//go:noinline
func walk(table []uint32, ctr []int32, classes *[256]uint8, b []byte, p, row int, trail []uint64, n int) (int, int, int) {
	_ = *classes
	var e uint32
next:
	for ; p < len(b); p++ {
		e = table[row+int(classes[b[p]])]
		if int32(e) < 0 {
			goto slow
		}
		if int(e) == row {
			// a loop (.*, \S+, \d+): while it lasts the row stays, so
			// each load's address no longer waits for the previous load
			for p+1 < len(b) && table[row+int(classes[b[p+1]])] == e {
				p++
			}
			continue
		}
		row = int(e)
	}
	return p, row, n
slow:
	if e&doneBit == 0 {
		return p, row, n
	}
	trail[n] = uint64(p)<<32 | uint64(e&(matchBit|idMask))
	n++
	row = int(ctr[e&idMask])
	p++
	if row != 0 {
		goto next
	}
	return p, row, n
}

// step takes the uncached step at the start of b from the state at row:
// it builds the transition (caching it when b starts with an ASCII byte)
// and returns its trail reference, the transition, and the bytes read.
func (m *machine) step(trail []uint64, b []byte, row int) (uint64, *trans, int) {
	id := int32(row / m.stride)
	if c := b[0]; c < utf8.RuneSelf {
		cl := int(m.classes[c])
		ref := m.keep(trail, id, cl, m.compute(id, m.repr[cl], m.kindOf(rune(c)), false))
		return ref, m.at(ref), 1
	}
	r, w := utf8.DecodeRune(b)
	xi := m.compute(id, r, m.kindOf(r), false)
	ref := uint64(xi) | extBit
	if m.nstates() > m.maxStates {
		ref = m.overflow(trail, xi)
	}
	return ref, &m.x.tr[xi], w
}

func (m *machine) ref(ref uint64) (*arena, *trans) {
	x := uint32(ref)
	if x&extBit != 0 {
		return &m.x, &m.x.tr[x&idMask]
	}
	return &m.c, &m.c.tr[x&idMask]
}

func (m *machine) at(ref uint64) *trans {
	_, t := m.ref(ref)
	return t
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
