// Package datetime finds and parses the timestamp of a log line the way
// fail2ban's date detector does: the same default template list, the same
// datepattern syntax (%-directives, {DATE}, {^LN-BEG}, {UNB}, **, EPOCH,
// LEPOCH, TAI64N), the same template search order and reordering heuristics,
// and the same time semantics (fractions dropped, year/day inferred from "now",
// fixed zone-abbreviation table).
//
// The common templates (ISO 8601 and syslog stamps at the start of a line, the
// Apache/CLF stamp after the first '[') are parsed by hand-written code without
// allocating; every other template uses a backtracking regex (regexp2, with a
// match timeout) built from the same pattern fail2ban would build. The fast
// paths answer only when their answer provably equals the regex's.
//
// A filter uses a Match like fail2ban's Filter.processLine: when ok, cut
// line[Start:End] out of the line; a non-empty text with Valid gives the time;
// an empty text (Start == End, from "{NONE}" or an optional group) means "the
// last date if it is less than 60 s old, else now"; a non-empty text without
// Valid means no time for the line (again: the last date if recent). When !ok
// the whole line is kept and the last recent date applies.
//
// Differences from fail2ban that remain by design: a template's success
// counter (used by one search-order heuristic) is per detector, where
// fail2ban shares it between all jails of a process; a broken custom pattern
// is an error of New, where fail2ban fails on every line.
package datetime

import (
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Match is the date found in a line.
//
// Start and End are the byte offsets of the date text (fail2ban's group 1 of the
// template); the caller cuts line[Start:End] out of the line before applying its
// failregexes. Valid is false when a template matched but the text is not a
// valid date (fail2ban then has no time for the line) and when the template
// matched an empty text (Start == End: fail2ban then uses the last date if it
// is recent, else "now").
type Match struct {
	Start, End int
	Time       time.Time
	Valid      bool
}

// Detector finds dates in log lines. It is stateful - like fail2ban's it
// reorders its templates by hits and remembers where the last date was found -
// and must be used by one goroutine at a time.
type Detector struct {
	loc       *time.Location
	tpls      []*entry
	names     map[string]bool
	table     map[string]directive
	timeout   time.Duration
	lastIdx   int
	lastPos   posInfo
	lastEnd   posInfo
	firstFree int
	exyLo     int // %ExY century bounds for the fast paths
	exyHi     int
	noFast    bool // tests: force the regex path
	clock     clock
	// defaultList caches the default templates while the detector is built
	defaultList []*template
	asciiTo     int // bytes of the current line known to be ASCII

	// The last syslog fast-path match and the last computed time: log
	// lines come in bursts with the same stamp, and both are pure
	// functions of what they read (see memoFast, memoTime).
	fastMemo fastMemo
	timeMemo timeMemo
	lineMemo lineMemo
	viaFast  bool // the last search matched on the syslog fast path

	// per-line scratch
	line    string
	runes   []rune
	offs    []int // byte offset of each rune, plus len(line)
	runesOK bool
}

// fastMemo is the last fastMatch of the syslog fast path: key holds the
// bytes of that line it read (up to the date's end, the two bytes after
// it and the digits of a year it looked for there), whole says the line
// ended within them, and long whether the line was long enough for a year
// after the date (fastSyslog looks at the digits only then).
type fastMemo struct {
	t     *template
	key   []byte
	whole bool
	long  bool
	m     tmatch
}

// lineMemo is the last answer of Match when it came from the syslog fast
// path of the first template tried, anchored at the line's start: a line
// whose first bytes are the ones that path read, in the same second,
// gets the same answer (see Match).
type lineMemo struct {
	ok         bool
	idx        int
	t          *template
	nowSec     int64
	start, end int
	res        Match
	// posOK: the characters around the match (lastPos, lastEnd) lie in
	// the bytes the memo compares, all ASCII, so they are these.
	posOK            bool
	lastPos, lastEnd posInfo
}

func (f *fastMemo) hit(t *template, line string) bool {
	n := len(f.key)
	return f.t == t && len(line) >= n && line[:n] == string(f.key) && (!f.whole || len(line) == n) &&
		(len(line) >= f.m.g1e+5) == f.long
}

// store remembers m, fastSyslog's match on line: what it read after the
// date's end (g1e) is the byte there (a fraction's separator or the
// boundary), the next one (a fraction's first digit) and, after a space
// and when the line is long enough, the digits of " YYYY" up to the first
// byte that is not one.
func (f *fastMemo) store(t *template, line string, m *tmatch) {
	end := m.g1e
	n := end + 2
	long := len(line) >= end+5
	if long && line[end] == ' ' {
		j := end + 1
		for j < end+5 && isDigit(line[j]) {
			j++
		}
		n = max(n, min(j+1, end+5))
	}
	whole := len(line) < n
	n = min(n, len(line))
	f.t, f.key, f.whole, f.long, f.m = t, append(f.key[:0], line[:n]...), whole, long, *m
}

// timeMemo is the last time computed from fast-path parts: the result
// depends on the parts, on now to the second (year and day inference) and
// on the clock's memory of its last conversion, which an identical call
// leaves as it found it.
type timeMemo struct {
	ok     bool
	t      *template
	parts  dateParts
	nowSec int64
	tm     time.Time
	valid  bool
}

type posInfo struct {
	pos        int
	before, at rune // -1 = none (Python's empty slice)
}

type entry struct {
	t          *template
	hits       int
	searchHits int // successful regex searches (fail2ban counts them on the template)
	lastUsed   float64
	distance   int
}

func (e *entry) weight() float64 {
	d := e.distance
	if d < 1 {
		d = 1
	}
	return float64(e.hits) * e.t.weight / float64(d)
}

const noPos = 0x7fffffff

// MatchTimeout bounds one regex search of a non-fast-path template.
const MatchTimeout = time.Second

// New builds a detector for a filter's datepattern value: "" for all default
// templates; otherwise one pattern per line, each of
//   - "{^LN-BEG}": the default templates anchored at the line start;
//   - "{DEFAULT}": all defaults, but only as the only pattern (fail2ban quirk);
//   - "{NONE}": an empty date at the line start;
//   - "EPOCH", "LEPOCH", "TAI64N", optionally "{^LN-BEG}"- or "^"-prefixed;
//   - a regex containing {DATE}: each default template inside it;
//   - a regex with %-directives (%Y %m %d %H %M %S %f %z %Z %a %A %b %B %p
//     %I %j %U %W %w %y %c %x %X %k %l and the exact %Ex* forms), optionally
//     prefixed by {^LN-BEG} or {UNB} or wrapped in ** to drop the word
//     boundaries; {EPOCH}/{LEPOCH} inside a regex mark an epoch value.
//
// Zone-less stamps are read in loc (nil: time.Local). %ExY accepts the years
// 2000 to three years after the current one (real clock), like fail2ban.
// A pattern fail2ban cannot use (unknown directive, invalid regex) is an error.
func New(datepattern string, loc *time.Location) (*Detector, error) {
	if loc == nil {
		loc = time.Local
	}
	d := &Detector{
		loc:     loc,
		names:   map[string]bool{},
		table:   directiveTable(time.Now().Year()),
		timeout: MatchTimeout,
		lastIdx: noPos,
		lastPos: posInfo{pos: 1, before: -1, at: -1},
		lastEnd: posInfo{pos: noPos, before: -1, at: -1},
	}
	for _, p := range splitPatterns(datepattern) {
		if err := d.appendPattern(p); err != nil {
			return nil, err
		}
	}
	if len(d.tpls) == 0 {
		d.addDefaults(nil, "", true)
	}
	for _, e := range d.tpls {
		if e.t.builtin {
			continue // known good: compiled on first use
		}
		if err := e.t.compile(d.timeout); err != nil {
			return nil, err
		}
	}
	d.attachFastPaths()
	d.defaultList = nil
	return d, nil
}

// splitPatterns splits a datepattern value into its non-empty trimmed lines.
func splitPatterns(v string) []string {
	var out []string
	for _, p := range strings.Split(v, "\n") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func (d *Detector) add(t *template, ignoreDup bool) error {
	if d.names[t.name] {
		if ignoreDup {
			return nil
		}
		return fmt.Errorf("datepattern: duplicate date template %q", t.name)
	}
	d.names[t.name] = true
	d.tpls = append(d.tpls, &entry{t: t, distance: noPos})
	return nil
}

func (d *Detector) appendPattern(p string) error {
	key := patternKey(p)
	switch {
	case key == "{^LN-BEG}":
		d.addDefaults(func(t *template) bool { return t.flags&flagLineBegin != 0 }, "", true)
		return nil
	case key == "{DEFAULT}":
		// fail2ban's filter for {DEFAULT} rejects every template, so it adds
		// nothing; alone it leaves the list empty, which means all defaults.
		return nil
	case strings.Contains(key, "{DATE}"):
		d.addDefaults(nil, p, false)
		return nil
	case key == "{NONE}":
		t, err := newPatternTemplate("{UNB}^", d.table)
		if err != nil {
			return err
		}
		return d.add(t, false)
	}
	t, err := newTemplateFor(p, key, d.table)
	if err != nil {
		return fmt.Errorf("datepattern %q: %w", p, err)
	}
	d.markDefaultWeight(t)
	return d.add(t, false)
}

// markDefaultWeight gives a user template that is one of the anchored default
// copies the same preference weight fail2ban ends up giving it.
func (d *Detector) markDefaultWeight(t *template) {
	for _, dt := range d.defaults() {
		if dt.weight > 1 && dt.name == t.name {
			t.weight = dt.weight
		}
	}
}

func (d *Detector) addDefaults(keep func(*template) bool, preMatch string, all bool) {
	ignoreDup := len(d.tpls) > 0
	var list []*template
	if all {
		list = d.defaults()
	} else {
		list = defaultOriginals(d.table)
	}
	for _, t := range list {
		if keep != nil && !keep(t) {
			continue
		}
		if preMatch != "" {
			var src string
			if t.hasPat {
				src = t.pattern
			} else {
				src = t.name
			}
			w := replaceDateMarker(preMatch, unboundPattern(src))
			nt, err := newTemplateFor(w, patternKey(w), d.table)
			if err != nil {
				continue
			}
			t = nt
		}
		_ = d.add(t, ignoreDup)
	}
}

// defaults returns the full default list built for this detector's directive
// table, building it once. The returned templates are fresh copies only on the
// first call: callers that keep templates must not share them between lists.
func (d *Detector) defaults() []*template {
	if d.defaultList == nil {
		d.defaultList = defaultFull(d.table)
	}
	return d.defaultList
}

// ensureRunes prepares the rune view of the current line for regex searches.
func (d *Detector) ensureRunes() {
	if d.runesOK {
		return
	}
	d.runes = d.runes[:0]
	d.offs = d.offs[:0]
	for i, r := range d.line {
		d.runes = append(d.runes, r)
		d.offs = append(d.offs, i)
	}
	d.offs = append(d.offs, len(d.line))
	d.runesOK = true
}

// runeAt returns the rune at rune index i (-1 when out of range).
func (d *Detector) runeAt(i int) rune {
	if i < 0 {
		return -1
	}
	if d.runesOK {
		if i >= len(d.runes) {
			return -1
		}
		return d.runes[i]
	}
	// ASCII fast case
	if i < d.asciiTo || (i < len(d.line) && isASCIIPrefix(d.line, i+1)) {
		return rune(d.line[i])
	}
	if i >= len(d.line) && d.asciiTo >= len(d.line) {
		return -1
	}
	d.ensureRunes()
	return d.runeAt(i)
}

func isASCIIPrefix(s string, n int) bool {
	for i := 0; i < n && i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

func (d *Detector) runeCount() int {
	if d.runesOK {
		return len(d.runes)
	}
	return utf8.RuneCountInString(d.line)
}

// tmatch is the result of one template search (rune indices for the whole
// match, byte offsets for group 1).
type tmatch struct {
	start, end int
	g1s, g1e   int
	nf         int // fields used (pattern templates)
	fields     [12]field
	parts      dateParts // filled directly by the fast paths
	hasParts   bool
	epoch      string
}

// search runs template e at [pos, endpos) of the current line.
func (d *Detector) search(e *entry, pos, endpos int, m *tmatch) bool {
	t := e.t
	if t.fast != fastNone && !d.noFast && pos == 0 && endpos < 0 {
		var r fastResult
		switch {
		case t.fast == fastKindSyslog && d.fastMemo.hit(t, d.line):
			*m, r = d.fastMemo.m, fastMatch
		default:
			r = d.runFast(t.fast, d.line, m)
			if r == fastMatch && t.fast == fastKindSyslog {
				d.fastMemo.store(t, d.line, m)
			}
		}
		switch r {
		case fastMatch:
			e.searchHits++
			m.hasParts = true
			d.viaFast = t.fast == fastKindSyslog
			// the fast paths read only ASCII up to and including the byte at
			// the end (before the date: when the rune and byte counts agree)
			if m.end == m.g1e {
				d.asciiTo = min(m.g1e+1, len(d.line))
			}
			return true
		case fastNoMatch:
			return false
		}
	}
	if t.first != "" && !d.noFast && t.flags&flagLineBegin != 0 && pos == 0 && !canStart(d.line, t.first, t.lnPrefix) {
		return false
	}
	if t.re == nil && t.compile(d.timeout) != nil {
		return false
	}
	d.ensureRunes()
	rs := d.runes
	if endpos >= 0 && endpos < len(rs) {
		rs = rs[:endpos]
	}
	if pos > len(rs) {
		return false
	}
	mm, err := t.re.FindRunesMatchStartingAt(rs, pos)
	if err != nil || mm == nil {
		return false
	}
	g1 := mm.GroupByNumber(1)
	if g1 == nil || len(g1.Captures) == 0 {
		return false
	}
	m.start, m.end = mm.Index, mm.Index+mm.Length
	m.g1s, m.g1e = d.offs[g1.Index], d.offs[g1.Index+g1.Length]
	m.nf = 0
	m.epoch = ""
	m.hasParts = false
	switch t.kind {
	case kindPattern:
		for _, g := range t.groups {
			gr := mm.GroupByNumber(g.num)
			if gr == nil || len(gr.Captures) == 0 || m.nf >= len(m.fields) {
				continue
			}
			m.fields[m.nf] = field{k: g.k, v: d.line[d.offs[gr.Index]:d.offs[gr.Index+gr.Length]]}
			m.nf++
		}
	default:
		gr := mm.GroupByNumber(t.grp)
		if gr != nil && len(gr.Captures) > 0 {
			m.epoch = d.line[d.offs[gr.Index]:d.offs[gr.Index+gr.Length]]
		}
	}
	e.searchHits++
	return true
}

// timeOf computes the time of a template match (m.hasParts: fields already
// parsed by a fast path).
func (d *Detector) timeOf(t *template, m *tmatch, now time.Time) (time.Time, bool) {
	var tm time.Time
	var ok bool
	switch t.kind {
	case kindPattern:
		if tmo := &d.timeMemo; m.hasParts && tmo.ok && tmo.t == t && tmo.parts == m.parts && tmo.nowSec == now.Unix() {
			return tmo.tm, tmo.valid
		}
		d.timeMemo.ok = false
		d.clock.set(now, d.loc)
		p := m.parts
		ok = m.hasParts
		if !ok {
			p, ok = partsFromFields(m.fields[:m.nf])
		}
		if ok {
			tm, ok = d.clock.finish(&p, d.loc)
			if m.hasParts {
				d.timeMemo = timeMemo{ok: true, t: t, parts: m.parts, nowSec: now.Unix(), tm: tm, valid: ok}
			}
			return tm, ok
		}
		return tm, false
	case kindEpoch:
		tm, ok = epochTime(m.epoch, t.long)
	case kindTAI64N:
		tm, ok = tai64nTime(m.epoch)
	}
	if ok {
		tm = tm.In(d.loc)
	}
	return tm, ok
}

// canStart is a cheap necessary condition for a line-anchored built-in
// template: the date text starts at 0 (or after up to two ASCII non-word
// chars when prefix) with a byte allowed by first. Non-ASCII bytes there are
// always possible (Unicode digits, case folding, non-word chars).
func canStart(line, first string, prefix bool) bool {
	for p := 0; p < 3 && p < len(line); p++ {
		c := line[p]
		if c >= utf8.RuneSelf {
			return true
		}
		for i := 0; i < len(first); i++ {
			switch f := first[i]; {
			case f == 'd' && isDigit(c), f == 'a' && isLetter(c), f == c:
				return true
			}
		}
		if !prefix || isASCIIWord(c) {
			return false
		}
	}
	return false
}

// Match finds the date in line (see Match). now is the current time: it
// supplies a missing year or day and ages the template statistics.
func (d *Detector) Match(line string, now time.Time) (Match, bool) {
	d.line = line
	d.runesOK = false
	d.asciiTo = 0
	if lm := &d.lineMemo; lm.ok && lm.idx == d.lastIdx && lm.nowSec == now.Unix() && d.fastMemo.hit(lm.t, line) {
		return d.memoMatch(lm, now), true
	}
	d.lineMemo.ok = false
	first := d.lastIdx
	d.viaFast = false
	var m tmatch
	found := tmatch{start: noPos}
	foundIdx := -1
	ignore := noPos
	matched := false
	i := d.lastIdx
	if i < len(d.tpls) {
		e := d.tpls[i]
		if e.t.flags&(flagLineBegin|flagLineEnd) != 0 {
			matched = d.search(e, 0, -1, &m)
			ignore = i
		} else {
			dist, endp := d.lastPos.pos, d.lastEnd.pos
			if d.boundariesAgree(dist, endp) {
				matched = d.search(e, dist, endp, &m)
			} else {
				matched = d.search(e, 0, -1, &m)
				ignore = i
			}
		}
		if matched {
			if !(len(d.tpls) == 1 || e.t.flags&(flagLineBegin|flagLineEnd) != 0 ||
				(m.start == d.lastPos.pos && m.end == d.lastEnd.pos)) {
				found, foundIdx = m, i
				matched = false
			}
		}
	}
	if !matched {
		for i = 0; i < len(d.tpls); i++ {
			if i == ignore {
				continue
			}
			e := d.tpls[i]
			var cur tmatch
			if !d.search(e, 0, -1, &cur) {
				continue
			}
			m = cur
			if i+1 >= len(d.tpls) || e.t.flags&(flagLineBegin|flagLineEnd) != 0 {
				matched = true
				break
			}
			if m.start == 0 && e.hits > 0 && d.tpls[i+1].searchHits == 0 {
				matched = true
				break
			}
			if m.start > e.distance || m.start > d.lastPos.pos {
				if m.start < found.start {
					found, foundIdx = m, i
				}
				continue
			}
			matched = true
			break
		}
		if !matched && foundIdx >= 0 {
			m, i, matched = found, foundIdx, true
		}
	}
	if !matched {
		return Match{}, false
	}
	e := d.tpls[i]
	e.hits++
	e.lastUsed = float64(now.UnixNano()) / 1e9
	e.distance = m.start
	if d.firstFree == i {
		d.firstFree++
	}
	d.lastPos = posInfo{pos: m.start, before: d.runeAt(m.start - 1), at: d.runeAt(m.start)}
	endBefore := d.runeAt(m.end - 1)
	if m.end == 0 {
		endBefore = d.runeAt(d.runeCount() - 1)
	}
	d.lastEnd = posInfo{pos: m.end, before: endBefore, at: d.runeAt(m.end)}
	if i != 0 && i != d.lastIdx {
		i = d.reorder(i)
	}
	d.lastIdx = i

	res := Match{Start: m.g1s, End: m.g1e}
	if m.g1s != m.g1e {
		res.Time, res.Valid = d.timeOf(e.t, &m, now)
	}
	if d.viaFast && i == first && e.t.flags&(flagLineBegin|flagLineEnd) != 0 && d.fastMemo.t == e.t {
		d.lineMemo = lineMemo{ok: true, idx: i, t: e.t, nowSec: now.Unix(), start: m.start, end: m.end, res: res}
		if k := d.fastMemo.key; m.end > 0 && m.end < len(k) && d.fastMemo.hit(e.t, line) && isASCIIPrefix(line, m.end+1) {
			lm := &d.lineMemo
			lm.posOK, lm.lastPos, lm.lastEnd = true, d.lastPos, d.lastEnd
		}
	}
	return res, true
}

// memoMatch is Match for a line the line memo answers: the same template
// (tried first, anchored, so it is tried alone) reads the same bytes on
// the fast path, so the match, its time (the same second) and every
// update of the detector's state are the previous line's.
func (d *Detector) memoMatch(lm *lineMemo, now time.Time) Match {
	e := d.tpls[lm.idx]
	e.searchHits++
	if lm.end == lm.res.End {
		d.asciiTo = min(lm.res.End+1, len(d.line))
	}
	e.hits++
	e.lastUsed = float64(now.UnixNano()) / 1e9
	e.distance = lm.start
	if d.firstFree == lm.idx {
		d.firstFree++
	}
	if lm.posOK {
		d.lastPos, d.lastEnd = lm.lastPos, lm.lastEnd
		return lm.res
	}
	d.lastPos = posInfo{pos: lm.start, before: d.runeAt(lm.start - 1), at: d.runeAt(lm.start)}
	endBefore := d.runeAt(lm.end - 1)
	if lm.end == 0 {
		endBefore = d.runeAt(d.runeCount() - 1)
	}
	d.lastEnd = posInfo{pos: lm.end, before: endBefore, at: d.runeAt(lm.end)}
	return lm.res
}

// boundariesAgree is fail2ban's check that the characters around the last date
// position look the same in this line.
func (d *Detector) boundariesAgree(dist, endp int) bool {
	left := d.runeAt(dist-1) == d.lastPos.before ||
		(d.runeAt(dist) == d.lastPos.at && !isAlnum(d.lastPos.at))
	if !left {
		return false
	}
	right := d.runeAt(endp) == d.lastEnd.at ||
		(d.runeAt(endp-1) == d.lastEnd.before && !isAlnum(d.lastEnd.before))
	return right
}

func isAlnum(r rune) bool {
	return r >= 0 && (unicode.IsLetter(r) || unicode.IsNumber(r))
}

// reorder moves a winning template towards the front (fail2ban's bubble-up).
func (d *Detector) reorder(num int) int {
	if num == 0 {
		return 0
	}
	e := d.tpls[num]
	untime := e.lastUsed - 300
	w := e.weight()
	pos := num / 2
	if d.firstFree < num {
		pos = d.firstFree
	}
	movable := func() bool {
		p := d.tpls[pos]
		return w > p.weight() || untime > p.lastUsed
	}
	if !movable() {
		if pos == num-1 {
			return num
		}
		pos = num - 1
		if !movable() {
			return num
		}
	}
	copy(d.tpls[pos+1:num+1], d.tpls[pos:num])
	d.tpls[pos] = e
	for d.firstFree < len(d.tpls) && d.tpls[d.firstFree].hits > 0 {
		d.firstFree++
	}
	return pos
}

// Templates returns the names of the detector's templates in their current
// order (diagnostics and tests).
func (d *Detector) Templates() []string {
	out := make([]string, len(d.tpls))
	for i, e := range d.tpls {
		out[i] = e.t.name
	}
	return out
}
