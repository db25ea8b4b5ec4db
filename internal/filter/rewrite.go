package filter

import (
	"errors"
	"sort"
	"strings"
)

// Rewriting Python-only constructs into RE2 ones that find exactly the
// same match and groups, so that more stock regexes run on the
// linear-time engine:
//
//   - A conditional (?(g)Y|N) on a group g that an earlier item of the
//     same sequence defines as `(?P<g>X)?` or as the first branch of a
//     group `(?:(?P<g>X)|Z)`: the sequence's rest is distributed over the
//     two ways that item can go (with g, then without: the order the
//     backtracking engine tries them), and in each copy the conditional
//     is decided. `(X)? R` and `(X R | R)` (and `(?:A|B) R` and
//     `(?:A R|B R)`) are the same pattern, choice for choice.
//   - `(?:(?!LIT).)*` (or `*?`) where LIT is a literal and what follows is
//     LIT itself or `$`: the text it takes is then exactly the text before
//     the first LIT (or the rest of the line holding no LIT), which is the
//     regular language of strings avoiding LIT (built from its KMP
//     automaton), so the look-ahead is no longer needed.
//
// Anything else (back-references, look-arounds of other shapes, inline
// flags, conditionals in repetitions) leaves the pattern alone.

var errNoRewrite = errors.New("no RE2 rewrite")

type rkind uint8

const (
	rAtom rkind = iota
	rNon        // (?:
	rCap        // ( or (?P<name>
	rLook       // (?= (?! (?<= (?<!
	rCond       // (?(name)
)

type rnode struct {
	kind  rkind
	text  string     // atom: its text; group: the opening "(?:", "(?P<g>", "(?!" ...
	name  string     // rCap: the group's name; rCond: the group it tests
	alts  [][]*rnode // group body
	quant string
}

// rewriteForRE2 returns expr with conditionals and literal look-aheads
// rewritten (see above), or errNoRewrite.
func rewriteForRE2(expr string) (string, error) {
	if !strings.Contains(expr, "(?(") && !strings.Contains(expr, "(?!") {
		return "", errNoRewrite
	}
	p := &rparser{s: expr}
	root, err := p.alts()
	if err != nil || p.i != len(p.s) {
		return "", errNoRewrite
	}
	top := &rnode{kind: rNon, text: "(?:", alts: root}
	if !condsLocal(top) {
		return "", errNoRewrite
	}
	for n := 0; ; n++ {
		if n > 8 {
			return "", errNoRewrite
		}
		if !distribute(top) {
			break
		}
	}
	if hasKind(top, rCond) {
		return "", errNoRewrite
	}
	avoidLookaheads(top, nil)
	var b strings.Builder
	for i, a := range top.alts {
		if i > 0 {
			b.WriteByte('|')
		}
		writeSeq(&b, a)
	}
	out := b.String()
	if out == expr || len(out) > maxRewrite {
		return "", errNoRewrite
	}
	return out, nil
}

type rparser struct {
	s string
	i int
}

func (p *rparser) alts() ([][]*rnode, error) {
	alts := [][]*rnode{nil}
	for p.i < len(p.s) {
		c := p.s[p.i]
		switch c {
		case ')':
			return alts, nil
		case '|':
			p.i++
			alts = append(alts, nil)
			continue
		}
		n, err := p.item()
		if err != nil {
			return nil, err
		}
		q, err := p.quant()
		if err != nil {
			return nil, err
		}
		n.quant = q
		alts[len(alts)-1] = append(alts[len(alts)-1], n)
	}
	return alts, nil
}

func (p *rparser) item() (*rnode, error) {
	s, i := p.s, p.i
	switch s[i] {
	case '\\':
		if i+1 >= len(s) || s[i+1] >= '1' && s[i+1] <= '9' {
			return nil, errNoRewrite // back-reference
		}
		p.i += 2
		return &rnode{kind: rAtom, text: s[i : i+2]}, nil
	case '[':
		j := i + 1
		if j < len(s) && s[j] == '^' {
			j++
		}
		if j < len(s) && s[j] == ']' {
			j++
		}
		for j < len(s) && s[j] != ']' {
			if s[j] == '\\' {
				j++
			}
			j++
		}
		if j >= len(s) {
			return nil, errNoRewrite
		}
		p.i = j + 1
		return &rnode{kind: rAtom, text: s[i : j+1]}, nil
	case '(':
		n := &rnode{}
		rest := s[i:]
		switch {
		case strings.HasPrefix(rest, "(?:"):
			n.kind, n.text = rNon, "(?:"
		case strings.HasPrefix(rest, "(?P<"):
			k := strings.IndexByte(rest, '>')
			if k < 0 {
				return nil, errNoRewrite
			}
			n.kind, n.text, n.name = rCap, rest[:k+1], rest[4:k]
		case strings.HasPrefix(rest, "(?="), strings.HasPrefix(rest, "(?!"):
			n.kind, n.text = rLook, rest[:3]
		case strings.HasPrefix(rest, "(?<="), strings.HasPrefix(rest, "(?<!"):
			n.kind, n.text = rLook, rest[:4]
		case strings.HasPrefix(rest, "(?("):
			k := strings.IndexByte(rest, ')')
			if k < 0 {
				return nil, errNoRewrite
			}
			n.kind, n.text, n.name = rCond, rest[:k+1], rest[3:k]
		case strings.HasPrefix(rest, "(?"):
			return nil, errNoRewrite // flags, comments, (?P=name)
		default:
			n.kind, n.text = rCap, "("
		}
		p.i += len(n.text)
		alts, err := p.alts()
		if err != nil {
			return nil, err
		}
		if p.i >= len(s) || s[p.i] != ')' {
			return nil, errNoRewrite
		}
		p.i++
		if n.kind == rCond && len(alts) > 2 {
			return nil, errNoRewrite
		}
		n.alts = alts
		return n, nil
	}
	p.i++
	return &rnode{kind: rAtom, text: s[i : i+1]}, nil
}

// quant reads a quantifier (with a lazy '?'); possessive ones give up.
func (p *rparser) quant() (string, error) {
	s, i := p.s, p.i
	if i >= len(s) {
		return "", nil
	}
	j := i
	switch s[i] {
	case '*', '+', '?':
		j++
	case '{':
		k := i + 1
		for k < len(s) && (s[k] >= '0' && s[k] <= '9' || s[k] == ',') {
			k++
		}
		if k >= len(s) || s[k] != '}' || k == i+1 {
			return "", nil // a literal '{'
		}
		j = k + 1
	default:
		return "", nil
	}
	if j < len(s) && s[j] == '?' {
		j++
	} else if j < len(s) && s[j] == '+' {
		return "", errNoRewrite
	}
	p.i = j
	return s[i:j], nil
}

func writeSeq(b *strings.Builder, seq []*rnode) {
	for _, n := range seq {
		if n.kind == rAtom {
			b.WriteString(n.text)
		} else {
			b.WriteString(n.text)
			for i, a := range n.alts {
				if i > 0 {
					b.WriteByte('|')
				}
				writeSeq(b, a)
			}
			b.WriteByte(')')
		}
		b.WriteString(n.quant)
	}
}

func (n *rnode) clone() *rnode {
	c := *n
	c.alts = cloneAlts(n.alts)
	return &c
}

func cloneAlts(alts [][]*rnode) [][]*rnode {
	if alts == nil {
		return nil
	}
	out := make([][]*rnode, len(alts))
	for i, a := range alts {
		out[i] = cloneSeq(a)
	}
	return out
}

func cloneSeq(seq []*rnode) []*rnode {
	out := make([]*rnode, len(seq))
	for i, n := range seq {
		out[i] = n.clone()
	}
	return out
}

func walkNodes(n *rnode, f func(*rnode)) {
	f(n)
	for _, a := range n.alts {
		for _, c := range a {
			walkNodes(c, f)
		}
	}
}

func hasKind(n *rnode, k rkind) bool {
	found := false
	walkNodes(n, func(c *rnode) { found = found || c.kind == k })
	return found
}

func countCond(seq []*rnode, g string) int {
	k := 0
	for _, n := range seq {
		walkNodes(n, func(c *rnode) {
			if c.kind == rCond && c.name == g {
				k++
			}
		})
	}
	return k
}

// condsLocal checks, on the parsed pattern, that every conditional tests
// a group defined once, by an item of a sequence that holds the
// conditional in a later item, outside any repetition.
func condsLocal(top *rnode) bool {
	defs := map[string]int{}
	walkNodes(top, func(c *rnode) {
		if c.kind == rCap && c.name != "" {
			defs[c.name]++
		}
	})
	ok := true
	total := map[string]int{}
	walkNodes(top, func(c *rnode) {
		if c.kind == rCond {
			total[c.name]++
			ok = ok && defs[c.name] == 1
		}
	})
	if !ok {
		return false
	}
	covered := map[string]int{}
	var visit func(seq []*rnode, repeated bool)
	visit = func(seq []*rnode, repeated bool) {
		for i, n := range seq {
			if g, _, _ := definer(n); g != "" && total[g] > 0 {
				if repeated || countCond([]*rnode{n}, g) > 0 {
					ok = false
				}
				covered[g] += countCond(seq[i+1:], g)
			}
			rep := repeated || n.quant != "" && n.quant != "?" && n.quant != "??"
			for _, a := range n.alts {
				visit(a, rep)
			}
		}
	}
	for _, a := range top.alts {
		visit(a, false)
	}
	for g, k := range total {
		if covered[g] != k {
			return false
		}
	}
	return ok
}

// definer reports whether n decides the participation of a named group:
// `(?P<g>X)?` (greedy) or a group without quantifier whose first branch
// is exactly `(?P<g>X)`. with and without are n taking and not taking g
// (without nil: nothing).
func definer(n *rnode) (g string, with, without *rnode) {
	if n.kind == rCap && n.name != "" && n.quant == "?" {
		w := n.clone()
		w.quant = ""
		return n.name, w, nil
	}
	if (n.kind == rNon || n.kind == rCap) && n.quant == "" && len(n.alts) >= 2 && len(n.alts[0]) == 1 {
		f := n.alts[0][0]
		if f.kind == rCap && f.name != "" && f.quant == "" {
			for _, a := range n.alts[1:] {
				for _, c := range a {
					bad := false
					walkNodes(c, func(x *rnode) { bad = bad || x.kind == rCap && x.name == f.name })
					if bad {
						return "", nil, nil
					}
				}
			}
			w := n.clone()
			w.alts = w.alts[:1]
			wo := n.clone()
			wo.alts = wo.alts[1:]
			return f.name, w, wo
		}
	}
	return "", nil, nil
}

// decide replaces the conditionals on g in seq by their branch.
func decide(seq []*rnode, g string, taken bool) {
	for _, n := range seq {
		walkNodes(n, func(c *rnode) {
			if c.kind != rCond || c.name != g {
				return
			}
			c.kind, c.text, c.name = rNon, "(?:", ""
			switch {
			case taken:
				c.alts = c.alts[:1]
			case len(c.alts) > 1:
				c.alts = c.alts[1:2]
			default:
				c.alts = [][]*rnode{nil}
			}
		})
	}
}

// distribute does one conditional distribution anywhere in n; it reports
// whether it found one.
func distribute(n *rnode) bool {
	for ai, seq := range n.alts {
		for i, c := range seq {
			g, with, without := definer(c)
			if g == "" || countCond(seq[i+1:], g) == 0 {
				continue
			}
			yes, no := cloneSeq(seq[i+1:]), cloneSeq(seq[i+1:])
			decide(yes, g, true)
			decide(no, g, false)
			b0 := append([]*rnode{with}, yes...)
			var b1 []*rnode
			if without != nil {
				b1 = append(b1, without)
			}
			b1 = append(b1, no...)
			n.alts[ai] = append(seq[:i:i], &rnode{kind: rNon, text: "(?:", alts: [][]*rnode{b0, b1}})
			return true
		}
		for _, c := range seq {
			if distribute(c) {
				return true
			}
		}
	}
	return false
}

// frame is a position in the tree: item idx of seq.
type frame struct {
	seq []*rnode
	idx int
}

// avoidLookaheads rewrites `(?:(?!LIT).)*` items (see rewriteForRE2).
func avoidLookaheads(n *rnode, up []frame) {
	for _, seq := range n.alts {
		for i, c := range seq {
			path := append(up[:len(up):len(up)], frame{seq, i})
			if lit, ok := lookaheadDot(c); ok {
				switch next := following(path); {
				case next == "$":
					*c = rnode{kind: rNon, text: "(?:", alts: [][]*rnode{{{kind: rAtom, text: avoidRegex(lit, false)}}}}
				case strings.HasPrefix(next, lit):
					*c = rnode{kind: rNon, text: "(?:", alts: [][]*rnode{{{kind: rAtom, text: avoidRegex(lit, true)}}}}
				}
				continue
			}
			avoidLookaheads(c, path)
		}
	}
}

// lookaheadDot matches `(?:(?!LIT).)*` and `(?:(?!LIT).)*?` with LIT a
// plain literal.
func lookaheadDot(n *rnode) (string, bool) {
	if n.kind != rNon || (n.quant != "*" && n.quant != "*?") || len(n.alts) != 1 || len(n.alts[0]) != 2 {
		return "", false
	}
	la, dot := n.alts[0][0], n.alts[0][1]
	if la.kind != rLook || la.text != "(?!" || la.quant != "" || len(la.alts) != 1 || dot.kind != rAtom || dot.text != "." || dot.quant != "" {
		return "", false
	}
	lit, ok := literalSeq(la.alts[0])
	return lit, ok && lit != "" && len(lit) <= maxAvoidLiteral
}

// maxAvoidLiteral bounds the literals whose avoidance language is built
// (its pattern grows with the literal's self-overlaps).
const maxAvoidLiteral = 24

// maxRewrite bounds a rewritten pattern (each distribution copies the
// rest of a sequence).
const maxRewrite = 64 << 10

// literalSeq returns the text of a sequence of plain characters.
func literalSeq(seq []*rnode) (string, bool) {
	var b strings.Builder
	for _, n := range seq {
		r, ok := literalAtom(n)
		if !ok {
			return "", false
		}
		b.WriteByte(r)
	}
	return b.String(), true
}

func literalAtom(n *rnode) (byte, bool) {
	if n.kind != rAtom || n.quant != "" {
		return 0, false
	}
	t := n.text
	switch {
	case len(t) == 1 && strings.IndexByte(`.^$*+?{}[]()|\`, t[0]) < 0 && t[0] != '\n':
		return t[0], true
	case len(t) == 2 && t[0] == '\\' && strings.IndexByte(`.^$*+?{}[]()|\ -/:,`, t[1]) >= 0:
		return t[1], true
	}
	return 0, false
}

// following returns what must come right after the item at the end of
// path: "$" for an end-of-line assertion, else the literal text of the
// mandatory characters that follow (maybe ""). It looks past the end of
// groups without quantifier.
func following(path []frame) string {
	var b strings.Builder
	for k := len(path) - 1; k >= 0; k-- {
		f := path[k]
		for _, n := range f.seq[f.idx+1:] {
			if n.kind == rAtom && n.text == "$" && n.quant == "" && b.Len() == 0 {
				return "$"
			}
			c, ok := literalAtom(n)
			if !ok {
				return b.String()
			}
			b.WriteByte(c)
		}
		// the end of this sequence: go on after the group holding it
		if k == 0 {
			break
		}
		parent := path[k-1]
		g := parent.seq[parent.idx]
		if g.quant != "" || (g.kind != rNon && g.kind != rCap) {
			break
		}
	}
	return b.String()
}

// avoidRegex is a Python pattern for the strings without a newline in
// which lit does not start (before: nor does it start within the string
// when lit follows it), by state elimination on lit's KMP automaton.
func avoidRegex(lit string, before bool) string {
	n := len(lit)
	fail := make([]int, n+1)
	fail[0] = -1
	for i := 1; i <= n; i++ {
		k := fail[i-1]
		for k >= 0 && lit[k] != lit[i-1] {
			k = fail[k]
		}
		fail[i] = k + 1
	}
	delta := func(s int, c byte) int {
		for s >= 0 && (s == n || lit[s] != c) {
			s = fail[s]
		}
		return s + 1
	}
	var chars []byte
	for i := 0; i < n; i++ {
		if strings.IndexByte(string(chars), lit[i]) < 0 {
			chars = append(chars, lit[i])
		}
	}
	sort.Slice(chars, func(a, b int) bool { return chars[a] < chars[b] })
	esc := func(c byte) string {
		if strings.IndexByte(`.^$*+?{}[]()|\ -`, c) >= 0 {
			return `\` + string(c)
		}
		return string(c)
	}
	other := "[^"
	for _, c := range chars {
		other += esc(c)
	}
	other += `\n]`
	// GNFA: states 0..n-1, start S = n, final F = n+1
	S, F := n, n+1
	type edge struct {
		ok bool
		s  string
	}
	R := make([][]edge, n+2)
	for i := range R {
		R[i] = make([]edge, n+2)
	}
	union := func(a edge, s string) edge {
		if !a.ok {
			return edge{true, s}
		}
		return edge{true, "(?:" + a.s + "|" + s + ")"}
	}
	for s := 0; s < n; s++ {
		for _, c := range chars {
			if t := delta(s, c); t < n {
				R[s][t] = union(R[s][t], esc(c))
			}
		}
		R[s][0] = union(R[s][0], other)
	}
	R[S][0] = edge{true, ""}
	for s := 0; s < n; s++ {
		accept := true
		if before {
			// lit following must not start an occurrence inside the string
			t := s
			for m := 0; m < n-1 && accept; m++ {
				t = delta(t, lit[m])
				accept = t < n
			}
		}
		if accept {
			R[s][F] = edge{true, ""}
		}
	}
	for q := n - 1; q >= 0; q-- {
		loop := ""
		if R[q][q].ok {
			loop = "(?:" + R[q][q].s + ")*"
		}
		for i := 0; i < n+2; i++ {
			if i == q || !R[i][q].ok {
				continue
			}
			for j := 0; j < n+2; j++ {
				if j == q || !R[q][j].ok {
					continue
				}
				R[i][j] = union(R[i][j], R[i][q].s+loop+R[q][j].s)
			}
		}
		for i := 0; i < n+2; i++ {
			R[i][q], R[q][i] = edge{}, edge{}
		}
	}
	return "(?:" + R[S][F].s + ")"
}

// uniqueSpecialGroups reports whether the groups whose index the filter
// keeps (content, mlfid, skiplinesN) occur at most once each.
func uniqueSpecialGroups(names []string) bool {
	seen := map[string]bool{}
	for _, n := range names {
		if n == "content" || n == "mlfid" || strings.HasPrefix(n, "skiplines") {
			if seen[n] {
				return false
			}
			seen[n] = true
		}
	}
	return true
}
