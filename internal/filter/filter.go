package filter

import (
	"bytes"
	"fmt"
	"net/netip"
	"sort"
	"strings"
	"time"
	"unicode/utf8"
	"unsafe"
)

// DateMatch is a date found in a line: [Start, End) is the date text (cut
// out of the line before matching), Valid is false when the text matched a
// template but is no usable date.
type DateMatch struct {
	Start, End int
	Time       time.Time
	Valid      bool
}

// DateDetector finds the date in a log line (see internal/datetime).
type DateDetector interface {
	Detect(line string, now time.Time) (DateMatch, bool)
}

// Options tune a Filter.
type Options struct {
	// Location is the zone for zone-less timestamps (default time.Local).
	Location *time.Location
	// Now returns the current time (default time.Now); it drives year
	// inference and the "last date within 60 s" rule.
	Now func() time.Time
	// Clock is the real clock used to age the connection cache and to
	// charge the backtracking budget. Unset, the cache ages by the time
	// read from Now for the line (one clock reading per line: reading the
	// clock costs 50-150 ns on a virtual machine) and the budget uses
	// time.Now. The cache reads it at most once per line.
	Clock func() time.Time
	// Journal: lines carry no date; the caller gives the time (ProcessAt).
	Journal bool
	// Dates finds dates in lines; nil means NewDateDetector(def.DatePattern,
	// Location). Unused in Journal mode.
	Dates DateDetector
	// MatchTimeout bounds one match of a backtracking pattern
	// (default DefaultMatchTimeout). A timed-out match counts as no match.
	MatchTimeout time.Duration
	// BacktrackBudget is the time per second (by Clock) the filter may
	// spend in backtracking matches, all its regexes together (default
	// DefaultBacktrackBudget; negative: unlimited). While it is spent,
	// backtracking regexes are skipped (counted in Stats); RE2 regexes
	// always run.
	BacktrackBudget time.Duration
	// RequireRE2 makes a pattern that Go's regexp cannot run a load error.
	RequireRE2 bool
	// UseDNS is the jail's usedns: "no" drops the host-name alternative of
	// <HOST>; anything else (default "warn") keeps it.
	UseDNS string
	// MLFIDCacheSize and MLFIDCacheAge bound the per-connection cache
	// (defaults 100 entries, 5 minutes: fail2ban's values).
	MLFIDCacheSize int
	MLFIDCacheAge  time.Duration
	// ReuseResults is for a caller that is done with each Result before
	// the next line (palisade regex): a Result's Failures, and their
	// captures (Failure.Fields, Field), are valid only until the next
	// Process or ProcessAt call, and the filter reuses their memory
	// instead of allocating it per failure. The failures' strings (ID,
	// Users, Matches) stay valid. Unset (the daemon), results are the
	// caller's to keep.
	ReuseResults bool
	// NoMatches: failures carry no Matches (Attempts still counts the
	// lines), so the filter keeps no copy of a line for them: for a caller
	// that never reads Matches (palisade regex). Unset (the daemon), the
	// last lines of a failure are kept for its ban (fail2ban's <matches>).
	NoMatches bool
}

// Status is what became of a line.
type Status int

// Line outcomes.
const (
	Missed  Status = iota // no failregex matched
	Matched               // a failregex matched (failures may still be pending or no-failure)
	Ignored               // a failregex matched but an ignoreregex too (or ignoreregex up front)
)

// Result is the outcome of one line.
type Result struct {
	Status Status
	// Regex is the index of the failregex that matched, -1 if none.
	Regex int
	// Ignore is the index of the ignoreregex that matched, -1 if none.
	Ignore int
	// Failures produced by this line (nil for most lines).
	Failures []Failure
}

// MaxMaxLines bounds the multi-line buffer.
const MaxMaxLines = 1000

// maxKeptMatches bounds the lines remembered per failure or connection
// (Attempts still counts them all).
const maxKeptMatches = 32

// maxMatchBytes bounds each remembered line.
const maxMatchBytes = 1 << 10

// MaxLineBytes bounds a log line: the rest of a longer line is ignored.
const MaxLineBytes = 64 << 10

// maxBufferBytes bounds the multi-line buffer (oldest lines leave first).
const maxBufferBytes = 1 << 20

// clip cuts s to at most n bytes on a UTF-8 boundary.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// maxUsers bounds the user set remembered per connection.
const maxUsers = 64

// tline is a log line split around its date text.
type tline struct{ pre, date, post string }

func (t tline) text() string { return t.pre + t.post }

// ownText is text() in memory of its own (a line given to ProcessBytes
// lives in the caller's buffer).
func (t tline) ownText() string {
	if t.pre == "" {
		return strings.Clone(t.post)
	}
	return t.pre + t.post
}

// Filter applies one filter definition to a stream of lines, keeping
// fail2ban's state between lines. It is not safe for concurrent use.
type Filter struct {
	name     string
	pref     *rx
	fail     []*rx
	ignore   []*rx
	failL    rxList
	ignoreL  rxList
	maxLines int
	opts     Options

	// line-level pre-filter (single-line filters only)
	preLits  []clause // all must be satisfied
	failAny  [][]clause
	failOpen bool // some failregex has no literal: no line-level filter
	canSkip  bool
	lnBeg    bool // datepattern {^LN-BEG}: see New
	// The pre-filter pays only when most lines fail it (see gate).
	pf gate

	lastDate     time.Time
	hasLast      bool
	lastTimeText string
	// the last line skipped by the pre-filter, whose date is looked up only
	// when a later line needs "the last date"
	skipped    []byte
	hasSkipped bool

	lines  []tline // multi-line buffer
	single [1]tline
	bufA   []byte
	bufB   []byte
	bufC   []byte

	cache *mlfidCache
	// retired is the connection entry the last line dropped (forgotten
	// or never cached): recycled when the next line is merged, once the
	// failure built from it is out.
	retired  *failData
	timeouts uint64
	budget   *btBudget // nil: no backtracking regex, or no budget

	// the cache's clock (Options.Clock; nil: the line's Now), read at
	// most once per line: lineNow is valid while lineNowOK
	clock     func() time.Time
	lineNow   time.Time
	lineNowOK bool

	// field ids of every group name (fields.go)
	names []string
	// per-line scratch: failure() copies what it keeps
	fieldsBuf  fieldSet
	matchedBuf []string
	scr        scratch
	fails      []Failure   // see oneFailure
	live       *fieldsView // ReuseResults: the current failure's captures
}

// New compiles def.
func New(def Definition, opts Options) (*Filter, error) {
	if opts.Location == nil {
		opts.Location = time.Local
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	cacheClock := opts.Clock
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	if opts.MLFIDCacheSize <= 0 {
		opts.MLFIDCacheSize = 100
	}
	if opts.MLFIDCacheAge <= 0 {
		opts.MLFIDCacheAge = 5 * time.Minute
	}
	if opts.UseDNS == "" {
		opts.UseDNS = "warn"
	}
	if opts.Dates == nil && !opts.Journal {
		d, err := NewDateDetector(def.DatePattern, opts.Location)
		if err != nil {
			return nil, fmt.Errorf("filter %s: datepattern: %w", def.Name, err)
		}
		opts.Dates = d
	}
	f := &Filter{name: def.Name, opts: opts, maxLines: def.MaxLines}
	if f.maxLines <= 0 {
		f.maxLines = 1
	}
	if f.maxLines > MaxMaxLines {
		return nil, fmt.Errorf("filter %s: maxlines %d exceeds %d", def.Name, def.MaxLines, MaxMaxLines)
	}
	nonML := dollarSingle
	failDM := dollarSingle
	if f.maxLines > 1 {
		nonML = dollarMulti
		failDM = dollarMultiline
	}
	var err error
	if strings.TrimSpace(def.PrefRegex) != "" {
		f.pref, err = compileRx(def.PrefRegex, opts.UseDNS, nonML, opts.RequireRE2, opts.MatchTimeout)
		if err != nil {
			return nil, fmt.Errorf("filter %s: prefregex: %w", def.Name, err)
		}
	}
	for i, s := range def.FailRegex {
		r, err := compileRx(s, opts.UseDNS, failDM, opts.RequireRE2, opts.MatchTimeout)
		if err != nil {
			return nil, fmt.Errorf("filter %s: failregex %d: %w", def.Name, i, err)
		}
		if !hasFailureID(r) && (f.pref == nil || !hasFailureID(f.pref)) {
			return nil, fmt.Errorf("filter %s: failregex %d: no failure-id group (<HOST>, <ADDR>, <F-ID>, <F-MLFID>...) in %q", def.Name, i, r.expr)
		}
		f.fail = append(f.fail, r)
	}
	for i, s := range def.IgnoreRegex {
		r, err := compileRx(s, opts.UseDNS, nonML, opts.RequireRE2, opts.MatchTimeout)
		if err != nil {
			return nil, fmt.Errorf("filter %s: ignoreregex %d: %w", def.Name, i, err)
		}
		f.ignore = append(f.ignore, r)
	}
	if opts.BacktrackBudget == 0 {
		opts.BacktrackBudget = DefaultBacktrackBudget
	}
	if opts.BacktrackBudget > 0 {
		b := newBTBudget(opts.BacktrackBudget, opts.Clock)
		for _, r := range append(append([]*rx{f.pref}, f.fail...), f.ignore...) {
			if r != nil && r.bt != nil {
				r.budget = b
				f.budget = b
			}
		}
	}
	f.opts = opts
	fn := newFieldNames()
	for _, r := range append(append([]*rx{f.pref}, f.fail...), f.ignore...) {
		if r != nil {
			r.assignFields(fn)
		}
	}
	f.names = fn.names
	f.fieldsBuf = newFieldSet(len(f.names))
	if f.failL, err = newRxList(f.fail); err != nil {
		return nil, fmt.Errorf("filter %s: failregex: %w", def.Name, err)
	}
	if f.ignoreL, err = newRxList(f.ignore); err != nil {
		return nil, fmt.Errorf("filter %s: ignoreregex: %w", def.Name, err)
	}
	if f.pref != nil {
		if err := f.pref.dfaRegexp(); err != nil {
			return nil, fmt.Errorf("filter %s: prefregex: %w", def.Name, err)
		}
	}
	f.clock = cacheClock
	f.cache = newMLFIDCache(opts.MLFIDCacheSize, opts.MLFIDCacheAge, f.cacheNow)
	// The line-level pre-filter looks at the line before its date is cut
	// out; that is sound only when the cut cannot join two pieces of text
	// into a literal: with {^LN-BEG} the text before the date is at most
	// two non-word characters, so a line starting with a word character
	// has nothing before its date.
	f.lnBeg = strings.TrimSpace(def.DatePattern) == "{^LN-BEG}"
	f.setupPrefilter()
	return f, nil
}

func hasFailureID(r *rx) bool {
	for _, n := range []string{"fid", "ip4", "ip6", "dns", "mlfid"} {
		if r.hasName[n] {
			return true
		}
	}
	return false
}

// setupPrefilter prepares the line-level literal check: a single-line
// filter line can only produce a failure if it holds the prefregex's
// literals and all literals of at least one failregex.
func (f *Filter) setupPrefilter() {
	if f.maxLines > 1 || len(f.fail) == 0 {
		return
	}
	if f.pref != nil {
		f.preLits = f.pref.lits
	}
	for _, r := range f.fail {
		if len(r.lits) == 0 && r.prefix == nil {
			f.failOpen = true
		}
		lits := r.lits
		if len(lits) == 0 && r.prefix != nil {
			lits = []clause{{r.prefix}}
		}
		f.failAny = append(f.failAny, lits)
	}
	f.failAny = pruneImplied(f.failAny)
	f.canSkip = len(f.preLits) > 0 || !f.failOpen
}

// implies reports whether clause b being satisfied means a is: every
// literal of b contains a literal of a.
func implies(b, a clause) bool {
	for _, lb := range b {
		ok := false
		for _, la := range a {
			if bytes.Contains(lb, la) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

// impliesAll reports whether all clauses of b holding means all of a's do.
func impliesAll(b, a []clause) bool {
	for _, ca := range a {
		ok := false
		for _, cb := range b {
			if implies(cb, ca) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

// pruneImplied drops, from a list of alternatives (a line passes if all
// clauses of any entry hold), entries that imply another kept entry.
func pruneImplied(alts [][]clause) [][]clause {
	drop := make([]bool, len(alts))
	for i, b := range alts {
		for j, a := range alts {
			if i == j || drop[j] || len(a) == 0 || !impliesAll(b, a) {
				continue
			}
			if impliesAll(a, b) && j > i {
				continue // equal: keep the first
			}
			drop[i] = true
			break
		}
	}
	var out [][]clause
	for i, a := range alts {
		if !drop[i] {
			out = append(out, a)
		}
	}
	return out
}

// startsWord reports whether line starts with an ASCII word character.
func startsWord(line string) bool {
	if line == "" {
		return false
	}
	c := line[0]
	return c == '_' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

// mayMatch is the line-level pre-filter.
func (f *Filter) mayMatch(line string) bool {
	for _, c := range f.preLits {
		if !c.inString(line) {
			return false
		}
	}
	if f.failOpen {
		return true
	}
	for _, lits := range f.failAny {
		ok := true
		for _, c := range lits {
			if !c.inString(line) {
				ok = false
				break
			}
		}
		if ok {
			return true
		}
	}
	return false
}

// gate runs a cheap necessary check (a literal pre-filter) only while it
// pays: after gateSample inputs, if more than gateKeep of them passed, the
// check is off for gatePause inputs. Skipping an input the check would
// have rejected or processing it gives the same result, so this changes
// only the cost.
type gate struct {
	tried, passed int
	off           int // inputs left with the check off
}

const (
	gateSample = 1024
	gateKeep   = 0.6
	gatePause  = 256 << 10
)

// on reports whether the check runs for this input.
func (g *gate) on() bool {
	if g.off > 0 {
		g.off--
		return false
	}
	return true
}

// result records the check's answer for an input it ran on.
func (g *gate) result(pass bool) {
	g.tried++
	if pass {
		g.passed++
	}
	if g.tried == gateSample {
		if float64(g.passed) > gateKeep*gateSample {
			g.off = gatePause
		}
		g.tried, g.passed = 0, 0
	}
}

// prefilter reports whether line can be skipped.
func (f *Filter) prefilter(line string) bool {
	if !f.pf.on() {
		return false
	}
	ok := f.mayMatch(line)
	f.pf.result(ok)
	return !ok
}

// Timeouts is the number of backtracking matches that hit MatchTimeout.
func (f *Filter) Timeouts() uint64 { return f.timeouts }

// Stats are a filter's engine counters.
type Stats struct {
	// Timeouts counts backtracking matches that hit MatchTimeout.
	Timeouts uint64
	// DFAStates is the number of automaton states cached now; DFAResets
	// counts the times a full state cache was dropped.
	DFAStates, DFAResets int
	// BacktrackTime is the time spent in backtracking matches;
	// BacktrackSkipped counts matches not run because the filter's
	// BacktrackBudget was spent.
	BacktrackTime    time.Duration
	BacktrackSkipped uint64
	// RE2Regexes and BacktrackRegexes count the filter's regexes
	// (prefregex, failregex, ignoreregex) by engine.
	RE2Regexes, BacktrackRegexes int
}

// Stats returns the filter's engine counters.
func (f *Filter) Stats() Stats {
	st := Stats{Timeouts: f.timeouts}
	if f.budget != nil {
		st.BacktrackTime, st.BacktrackSkipped = f.budget.used, f.budget.skipped
	}
	for _, r := range append(append([]*rx{f.pref}, f.fail...), f.ignore...) {
		switch {
		case r == nil:
		case r.bt != nil:
			st.BacktrackRegexes++
		default:
			st.RE2Regexes++
		}
	}
	if f.pref != nil {
		f.pref.dfaStats(&st.DFAStates, &st.DFAResets)
	}
	f.failL.dfaStats(&st.DFAStates, &st.DFAResets)
	f.ignoreL.dfaStats(&st.DFAStates, &st.DFAResets)
	return st
}

// Name is the filter's name.
func (f *Filter) Name() string { return f.name }

// ProcessBytes is Process for a line held in a byte slice; b is not retained.
func (f *Filter) ProcessBytes(b []byte) Result {
	return f.Process(unsafe.String(unsafe.SliceData(b), len(b)))
}

// Process handles one line of a log file: the date is found in the line
// and cut out of it before matching. line is not retained.
func (f *Filter) Process(line string) Result {
	line = clip(line, MaxLineBytes)
	if f.opts.Journal {
		return f.ProcessAt(line, f.opts.Now())
	}
	if f.canSkip && f.lnBeg && startsWord(line) && f.prefilter(line) {
		f.skipped = append(f.skipped[:0], line...)
		f.hasSkipped = true
		return Result{Regex: -1, Ignore: -1}
	}
	now := f.opts.Now()
	f.lineNowOK = false
	if f.clock == nil {
		f.lineNow, f.lineNowOK = now, true
	}
	var tl tline
	var date time.Time
	has := false
	m, ok := f.opts.Dates.Detect(line, now)
	if ok && m.Start >= 0 && m.Start <= m.End && m.End <= len(line) {
		tl = tline{line[:m.Start], line[m.Start:m.End], line[m.End:]}
		switch {
		case m.Start < m.End:
			if m.Valid {
				date, has = m.Time, true
				f.setLast(date, tl.date)
			}
		case f.recentLast(now):
			tl = tline{"", f.lastTimeText, line}
			date, has = f.lastDate, true
		default:
			date, has = now, true
		}
	} else {
		tl = tline{"", "", line}
	}
	if !has && f.recentLast(now) {
		tl = tline{"", f.lastTimeText, line}
		date, has = f.lastDate, true
	}
	return f.find(tl, date, has)
}

// ProcessAt handles one journal message whose time is t: no date is
// looked for in the line.
func (f *Filter) ProcessAt(line string, t time.Time) Result {
	line = clip(line, MaxLineBytes)
	f.lineNowOK = false
	f.setLast(t, "")
	if f.canSkip && f.prefilter(line) {
		return Result{Regex: -1, Ignore: -1}
	}
	return f.find(tline{"", "", line}, t, true)
}

// cacheNow is the connection cache's clock (see Options.Clock).
func (f *Filter) cacheNow() time.Time {
	if !f.lineNowOK {
		if f.clock != nil {
			f.lineNow = f.clock()
		} else {
			f.lineNow = f.opts.Now()
		}
		f.lineNowOK = true
	}
	return f.lineNow
}

func (f *Filter) setLast(t time.Time, text string) {
	f.lastDate, f.hasLast = t, true
	if text != f.lastTimeText {
		f.lastTimeText = strings.Clone(text)
	}
	f.hasSkipped = false
}

// recentLast reports whether the last date is less than 60 s before now,
// first catching up with a line the pre-filter skipped.
func (f *Filter) recentLast(now time.Time) bool {
	if f.hasSkipped {
		f.hasSkipped = false
		s := string(f.skipped)
		if m, ok := f.opts.Dates.Detect(s, now); ok && m.Valid && m.Start < m.End && m.End <= len(s) {
			f.setLast(m.Time, s[m.Start:m.End])
		}
	}
	return f.hasLast && f.lastDate.After(now.Add(-60*time.Second))
}

// join writes "\n".join(pre+post) + "\n" into dst.
func join(dst []byte, lines []tline) []byte {
	dst = dst[:0]
	for _, l := range lines {
		dst = append(dst, l.pre...)
		dst = append(dst, l.post...)
		dst = append(dst, '\n')
	}
	return dst
}

// found is a failregex match with the lines it covers.
type found struct {
	spans     []int
	buf       []byte
	matched   []tline
	unmatched []tline
}

// search runs r on buf (built from lines, matched against org) like
// fail2ban's Regex.search.
func (f *Filter) search(r *rx, buf []byte, org []tline) (found, bool) {
	spans, to := r.match(buf)
	if to {
		f.timeouts++
	}
	if spans == nil {
		return found{}, false
	}
	return f.locate(r, spans, buf, org), true
}

// locate finds the lines a match of r (spans) on buf covers.
func (f *Filter) locate(r *rx, spans []int, buf []byte, org []tline) found {
	fd := found{spans: spans, buf: buf}
	if len(org) <= 1 {
		fd.matched = org
		return fd
	}
	start, end := spans[0], spans[1]
	ls := bytes.LastIndexByte(buf[:min(start+1, len(buf))], '\n') + 1
	from := end - 1
	if from < 0 {
		from = len(buf) - 1
	}
	le := len(buf)
	if k := bytes.IndexByte(buf[from:], '\n'); k >= 0 {
		le = from + k + 1
	}
	c1 := bytes.Count(buf[:ls], []byte{'\n'})
	c2 := bytes.Count(buf[:le], []byte{'\n'})
	c1, c2 = min(c1, len(org)), min(c2, len(org))
	matched := append([]tline(nil), org[c1:c2]...)
	unmatched := append([]tline(nil), org[:c1]...)
	var skipped strings.Builder
	for _, g := range r.skiplines {
		if spans[2*g] >= 0 {
			skipped.Write(buf[spans[2*g]:spans[2*g+1]])
		}
	}
	if skipped.Len() > 0 {
		n := 0
		for _, sl := range strings.Split(strings.TrimSuffix(skipped.String(), "\n"), "\n") {
			for m := n; m < len(matched); m++ {
				if matched[m].text() == sl {
					unmatched = append(unmatched, matched[m])
					matched = append(matched[:m], matched[m+1:]...)
					n = m
					break
				}
			}
		}
	}
	fd.matched = matched
	fd.unmatched = append(unmatched, org[c2:]...)
	return fd
}

// ignored runs the ignoreregexes on buf, or for a multi-line match fd on
// the lines it covers; it returns the index that matched or -1.
func (f *Filter) ignored(buf []byte, fd *found) int {
	if fd != nil && f.maxLines > 1 {
		f.bufC = join(f.bufC, fd.matched)
		buf = f.bufC
	}
	i, _ := f.ignoreL.first(buf, &f.timeouts)
	if i >= 0 && fd != nil {
		f.lines = fd.unmatched
	}
	return i
}

// setGroups stores the named groups of a match in fs like Python's
// dict.update(groupdict()): a group that did not take part removes the
// key (None); of several groups of one name, one that took part wins.
// alt_NAME groups fill NAME when the match left it empty.
func setGroups(fs fieldSet, r *rx, spans []int, buf string, skip int) {
	if r.dupNames {
		for _, g := range r.named {
			if i := g.group; i != skip && (2*i+1 >= len(spans) || spans[2*i] < 0) {
				fs.del(g.fid)
			}
		}
		for _, g := range r.named {
			if i := g.group; i != skip && 2*i+1 < len(spans) && spans[2*i] >= 0 {
				fs.set(g.fid, buf[spans[2*i]:spans[2*i+1]])
			}
		}
	} else {
		for _, g := range r.named {
			switch i := g.group; {
			case i == skip:
			case 2*i+1 >= len(spans) || spans[2*i] < 0:
				fs.del(g.fid)
			default:
				fs.set(g.fid, buf[spans[2*i]:spans[2*i+1]])
			}
		}
	}
	for _, a := range r.alts {
		// the target is judged within this match only: a value from an
		// earlier match (the prefregex) is overwritten
		if v := fs[a.fid].s; v != "" && (!a.inRx || !fs.truthy(a.targetID)) {
			fs.set(a.targetID, v)
		}
	}
}

func (f *Filter) find(tl tline, date time.Time, hasDate bool) Result {
	res := Result{Regex: -1, Ignore: -1}
	var org []tline
	if f.maxLines > 1 {
		tl.pre, tl.date, tl.post = strings.Clone(tl.pre), strings.Clone(tl.date), strings.Clone(tl.post)
		f.lines = append(f.lines, tl)
		drop := max(0, len(f.lines)-f.maxLines)
		size := 0
		for _, l := range f.lines[drop:] {
			size += len(l.pre) + len(l.post) + 1
		}
		for size > maxBufferBytes && drop < len(f.lines)-1 {
			size -= len(f.lines[drop].pre) + len(f.lines[drop].post) + 1
			drop++
		}
		if drop > 0 {
			f.lines = append([]tline(nil), f.lines[drop:]...)
		}
		org = f.lines
	} else {
		f.single[0] = tl
		f.lines = f.single[:]
		org = f.lines
	}
	f.bufA = join(f.bufA, org)
	buf := f.bufA

	if len(f.ignore) > 0 && len(f.ignore) < len(f.fail)-2 {
		if i := f.ignored(buf, nil); i >= 0 {
			res.Status, res.Ignore = Ignored, i
			return res
		}
	}

	var pre *found
	var preFound found
	if f.pref != nil {
		p, ok := f.search(f.pref, buf, org)
		if !ok {
			return res
		}
		preFound = p
		pre = &preFound
		if c := f.pref.content; c >= 0 && p.spans[2*c] >= 0 && p.spans[2*c] < p.spans[2*c+1] {
			content := buf[p.spans[2*c]:p.spans[2*c+1]]
			switch {
			case f.maxLines == 1 && p.spans[2*c+1] == len(buf)-1:
				// content + "\n" is the end of the line's buffer
				buf = buf[p.spans[2*c]:]
			default:
				f.bufB = append(append(f.bufB[:0], content...), '\n')
				if f.maxLines > 1 {
					f.lines = []tline{{post: string(content)}}
				}
				buf = f.bufB
			}
		}
	}

	if buf == nil {
		f.bufB = join(f.bufB, f.lines)
		buf = f.bufB
	}
	if i, spans := f.failL.first(buf, &f.timeouts); i >= 0 {
		fr := f.fail[i]
		fd := f.locate(fr, spans, buf, org)
		res.Status, res.Regex = Matched, i
		if len(f.ignore) > 0 {
			if k := f.ignored(buf, &fd); k >= 0 {
				res.Status, res.Ignore = Ignored, k
				return res
			}
		}
		if f.maxLines > 1 {
			f.lines = fd.unmatched
		}
		// the fields point into the buffers; failure() copies what it keeps
		fields := f.fieldsBuf
		fields.clear()
		f.scr.reset(f.bufA, f.bufB)
		if pre != nil {
			setGroups(fields, f.pref, pre.spans, unsafeString(pre.buf), f.pref.content)
		}
		setGroups(fields, fr, fd.spans, unsafeString(fd.buf), -1)
		matched := f.matchedBuf[:0]
		if len(fd.matched) == 1 && len(org) == 1 && (pre != nil || unsafe.SliceData(fd.buf) == unsafe.SliceData(f.bufA)) {
			// the line's text is the joined buffer without the final newline
			if t := fd.matched[0]; len(f.bufA) == len(t.pre)+len(t.post)+1 {
				matched = append(matched, unsafeString(f.bufA[:len(f.bufA)-1]))
			}
		}
		if len(matched) == 0 {
			for _, l := range fd.matched {
				matched = append(matched, l.ownText())
			}
		}
		f.matchedBuf = matched[:0]
		if fl, ok := f.failure(i, fields, matched, date, hasDate); ok {
			res.Failures = f.oneFailure(fl)
		}
		// production semantics: the first failregex that matches decides
		return res
	}
	return res
}

// failChunk is how many failures' slices are allocated at once.
const failChunk = 32

func noCopy(s string) string { return s }

// oneFailure returns a slice holding fl alone, cut from a chunk no other
// result shares (an allocation per failChunk failures, not per failure).
func (f *Filter) oneFailure(fl Failure) []Failure {
	if f.opts.ReuseResults {
		if cap(f.fails) == 0 {
			f.fails = make([]Failure, 1)
		}
		f.fails[0] = fl
		return f.fails[:1:1]
	}
	if len(f.fails) == cap(f.fails) {
		f.fails = make([]Failure, 0, failChunk)
	}
	n := len(f.fails)
	f.fails = append(f.fails, fl)
	return f.fails[n : n+1 : n+1]
}

// liveFields is the failure's captures in ReuseResults mode: the set
// fields of fs as they are now, in the filter's one reused view (no copy:
// the view is valid until the next line, like fs's buffers).
func (f *Filter) liveFields(fs fieldSet, hasIP bool, ip string) *fieldsView {
	v := f.live
	if v == nil {
		v = &fieldsView{names: f.names}
		f.live = v
	}
	v.vals = v.vals[:0]
	for k, x := range fs {
		if x.ok {
			v.vals = append(v.vals, idVal{k, x.s})
		}
	}
	v.ip, v.hasIP = "", false
	if hasIP {
		v.ip, v.hasIP = ip, true
	}
	return v
}

// failData is fail2ban's failure dict of one connection (mlfid).
type failData struct {
	fields        fieldSet
	users         []string
	matches       []string
	nofailMatches []string
	attempts      int // len(matches) including those dropped by the bound
	nofailCount   int
	pending       bool

	// what the connection's failures share while it stays the same: the
	// captures (a copy of fields when they were taken; nil: none yet) and
	// the sorted users (nil: rebuild). A line that changes a field and a
	// later one that changes it back (a no-failure line's mark, deleted by
	// the next failure) leave the captures shared.
	outFields *fieldsView
	outUsers  []string
	// addr is the failure id addrOf parsed (the connection's failures
	// mostly share one id)
	addrOf string
	addr   netip.Addr

	// cache entry
	expires time.Time
	seq     uint64
}

// setField sets a field of the connection. A field deleted since keeps
// its text (delField): set again to the same text (a no-failure mark
// that the next failure deleted) it takes that copy back instead of a
// new one.
//
// A no-failure mark's text is never seen: a connection whose nofail is
// set gives no failure, and every reader of a connection's nofail asks
// only whether it is set and not empty. So a set mark is stored as
// nofailSet, not copied ("Connection from", "publickey", the PAM line
// and the closing messages take turns: a copy of the line each time).
func (d *failData) setField(id int, v string, keep func(string) string) {
	if id == fidNoFail && v != "" {
		v = nofailSet
	}
	if d.fields[id].s == v {
		d.fields[id].ok = true // the text it had: no copy
	} else {
		d.fields.set(id, keep(v))
	}
}

// nofailSet is a connection's no-failure mark when set (see setField).
const nofailSet = "nofail"

// delField deletes a field of the connection (absent: not ok), keeping
// its text for setField. The connection's fields are read only through
// ok (get, truthy, the views).
func (d *failData) delField(id int) {
	d.fields[id].ok = false
}

// sharedFields returns the captures taken from the connection's current
// fields, or nil.
func (d *failData) sharedFields() *fieldsView {
	if v := d.outFields; v != nil && v.same(d.fields) {
		return v
	}
	return nil
}

func (d *failData) addMatches(ms []string, keep func(string) string) {
	d.attempts += len(ms)
	for _, m := range ms {
		d.matches = append(d.matches, keep(clip(m, maxMatchBytes)))
	}
	if len(d.matches) > maxKeptMatches {
		d.matches = append([]string(nil), d.matches[len(d.matches)-maxKeptMatches:]...)
	}
}

func (d *failData) addUser(u string, keep func(string) string) []string {
	if u != "" {
		for _, x := range d.users {
			if x == u {
				return d.users
			}
		}
		if len(d.users) < maxUsers {
			d.users = append(d.users, keep(u))
			d.outUsers = nil
		}
	}
	return d.users
}

// failure turns a failregex match into a Failure (ok false when pending or
// no-failure). fields and matched may point into the line's buffers
// (f.scr): what outlives the line is copied.
func (f *Filter) failure(idx int, fields fieldSet, matched []string, date time.Time, hasDate bool) (Failure, bool) {
	keep := f.scr.keep
	var ff fieldSet // the failure's fields
	var fail *failData
	mlfid, isML := fields.get(fidMLFID)
	if isML {
		fail = f.merge(mlfid, fields, matched)
		if fail.fields.truthy(fidNoFail) {
			return Failure{}, false
		}
		ff = fail.fields
	} else {
		if fields.truthy(fidNoFail) {
			// fail2ban reports it with a nofail mark that every consumer
			// (fail2ban-regex, the sample test) drops: never a failure.
			return Failure{}, false
		}
		ff = fields
	}
	fid, hasFID := ff.get(fidFID)
	ip, hasIP := ff.get(fidIP4)
	if !hasIP {
		ip, hasIP = ff.get(fidIP6)
	}
	if !hasIP {
		ip, hasIP = ff.get(fidDNS)
	}
	if !hasIP {
		if hasFID {
			ip, hasIP = fid, true
		}
	}
	if !hasIP {
		// pending: no id yet (mlfid case) or a regex without id (error)
		if isML {
			fail.pending = true
		}
		return Failure{}, false
	}
	id := ip
	if hasFID && fid != ip {
		id = fid
	}
	var out *fieldsView
	switch {
	case f.opts.ReuseResults:
		// valid until the next line: the fields as they are now
		out = f.liveFields(ff, hasFID && fid != ip, ip)
	case isML:
		out = fail.sharedFields()
	}
	if out == nil {
		// copied out of the buffers (a connection's fields are copies already)
		if isML {
			out = newFieldsView(f.names, ff, noCopy)
		} else {
			out = newFieldsView(f.names, ff, keep)
		}
		if hasFID && fid != ip {
			out.ip, out.hasIP = keep(ip), true
		}
		if isML {
			fail.outFields = out
		}
	}
	fl := Failure{ID: keep(id), fields: out, Regex: idx}
	if isML && fail.addrOf == id && id != "" {
		fl.Addr = fail.addr
	} else {
		if a, err := netip.ParseAddr(strings.TrimPrefix(strings.TrimSuffix(id, "]"), "[")); err == nil {
			fl.Addr = a.Unmap()
		}
		if isML {
			fail.addrOf, fail.addr = fl.ID, fl.Addr
		}
	}
	if hasDate {
		fl.Time = date
	}
	if isML {
		fl.Attempts = fail.attempts
		if fail.users != nil {
			if fail.outUsers == nil {
				fail.outUsers = append([]string(nil), fail.users...)
				sort.Strings(fail.outUsers)
			}
			fl.Users = fail.outUsers
		}
		// the connection only appends to its matches (or starts a new
		// slice), so its failures can share them up to their length
		fl.Matches = fail.matches[:len(fail.matches):len(fail.matches)]
	} else {
		fl.Attempts = len(matched)
		if !f.opts.NoMatches {
			fl.Matches = make([]string, 0, min(len(matched), maxKeptMatches))
			for _, m := range matched[max(0, len(matched)-maxKeptMatches):] {
				fl.Matches = append(fl.Matches, keep(clip(m, maxMatchBytes)))
			}
		}
	}
	return fl, true
}

// merge is fail2ban's Filter._mergeFailure. fields (the line's groups) is
// scratch: what the connection keeps is copied.
func (f *Filter) merge(mlfid string, fields fieldSet, matched []string) *failData {
	keep := f.scr.keep
	var fail *failData
	if f.retired != nil {
		f.cache.recycle(f.retired)
		f.retired = nil
	}
	cached := f.cache.get(mlfid)
	var users []string
	nf := 0
	if fields.truthy(fidMLFGained) {
		nf |= 8 | 1
		if !fields.truthy(fidNoFail) {
			fields.set(fidNoFail, fields[fidMLFGained].s)
		}
	} else if fields.truthy(fidNoFail) {
		nf |= 1
	}
	if v, ok := fields.get(fidMLFForget); ok {
		fields.del(fidMLFForget)
		if v != "" {
			nf |= 2
		}
	}
	if cached != nil {
		g := cached
		users = g.addUser(fields[fidUser].s, keep)
		if v, ok := g.fields.get(fidNoFail); ok {
			g.delField(fidNoFail)
			if v != "" {
				nf |= 4
			}
		}
		if v, ok := g.fields.get(fidMLFGained); ok {
			g.delField(fidMLFGained)
			if v != "" {
				nf |= 4
			}
		}
		if nf&8 != 0 {
			g.pending = false
		}
		if nf&4 == 0 && !g.pending {
			g.matches, g.attempts = nil, 0
		}
		for k, v := range fields {
			if v.ok {
				g.setField(k, v.s, keep)
			}
		}
		fail = g
		if nf&2 != 0 {
			f.cache.unset(mlfid)
			f.retired = g
		}
	} else {
		fail = f.cache.alloc(len(fields))
		for k, v := range fields {
			if v.ok {
				fail.setField(k, v.s, keep)
			}
		}
		if nf&2 == 0 {
			users = fail.addUser(fail.fields[fidUser].s, keep)
			f.cache.set(keep(mlfid), fail)
		} else {
			f.retired = fail
		}
	}
	pending := fail.pending
	fail.pending = false
	if pending || len(users) > 1 {
		fail.delField(fidNoFail)
		fail.delField(fidMLFGained)
		nf &^= 8 | 1
	}
	if nf&1 == 0 {
		m := fail.nofailMatches
		n := fail.nofailCount
		fail.nofailMatches, fail.nofailCount = fail.nofailMatches[:0], 0
		if len(m) > 0 {
			// the no-failure lines come first: a new slice (failures
			// share the old one up to their length)
			old := fail.matches
			fail.matches = append(append(make([]string, 0, len(m)+len(old)+len(matched)), m...), old...)
			clear(m)
		}
		fail.attempts += n
		switch {
		case nf&8 == 0 && f.opts.NoMatches:
			fail.attempts += len(matched)
		case nf&8 == 0:
			fail.addMatches(matched, keep)
		case len(fail.matches) > maxKeptMatches:
			fail.matches = fail.matches[len(fail.matches)-maxKeptMatches:]
		}
	} else if nf&3 == 1 {
		if !f.opts.NoMatches {
			for _, m := range matched {
				fail.nofailMatches = append(fail.nofailMatches, keep(clip(m, maxMatchBytes)))
			}
		}
		fail.nofailCount += len(matched)
		if len(fail.nofailMatches) > maxKeptMatches {
			fail.nofailMatches = append([]string(nil), fail.nofailMatches[len(fail.nofailMatches)-maxKeptMatches:]...)
		}
	}
	return fail
}
