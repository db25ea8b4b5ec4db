package datetime

import (
	"bufio"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// corpusLines returns extraLines plus, when installed, every line of
// fail2ban's sample logs (read at run time, never copied).
func corpusLines(t testing.TB) []string {
	lines := append([]string(nil), extraLines...)
	root := filepath.Join(f2bPackage, "tests/files/logs")
	_ = filepath.Walk(root, func(p string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return nil
		}
		f, err := os.Open(p)
		if err != nil {
			return nil
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 1<<16), 1<<20)
		for sc.Scan() {
			lines = append(lines, strings.TrimRight(sc.Text(), "\r"))
		}
		return nil
	})
	return lines
}

// mutate returns a randomly damaged copy of s (deterministic for a given rng).
func mutate(rng *rand.Rand, s string) string {
	b := []byte(s)
	alphabet := []byte("0123456789 :.,-/+TZUTCGMTaAbBpPmMnNoOvVjJuUlL@[]()<>\t\x1c\xc3\xa9_x")
	for n := rng.Intn(3) + 1; n > 0; n-- {
		switch op := rng.Intn(4); {
		case len(b) == 0 || op == 0: // insert
			i := 0
			if len(b) > 0 {
				i = rng.Intn(len(b) + 1)
			}
			c := alphabet[rng.Intn(len(alphabet))]
			b = append(b[:i], append([]byte{c}, b[i:]...)...)
		case op == 1: // delete
			i := rng.Intn(len(b))
			b = append(b[:i], b[i+1:]...)
		case op == 2: // replace
			b[rng.Intn(len(b))] = alphabet[rng.Intn(len(alphabet))]
		default: // truncate
			b = b[:rng.Intn(len(b)+1)]
		}
	}
	return string(b)
}

// fastTemplates returns the templates that have a fast path.
func fastTemplates(t testing.TB) []*template {
	d, err := New(clfPreMatch+"\n{^LN-BEG}", time.UTC)
	if err != nil {
		t.Fatal(err)
	}
	var out []*template
	kinds := map[fastKind]bool{}
	for _, e := range d.tpls {
		if e.t.fast != fastNone {
			out = append(out, e.t)
			kinds[e.t.fast] = true
		}
	}
	if len(out) != 4 || len(kinds) != 4 {
		t.Fatalf("expected 4 fast-path templates, got %d", len(out))
	}
	return out
}

// checkFastAgainstRegex runs the fast matcher and the regex of template t on
// line and reports a disagreement (empty string when they agree).
func checkFastAgainstRegex(d *Detector, tp *template, line string, now time.Time) string {
	var fm tmatch
	fr := d.runFast(tp.fast, line, &fm)
	if fr == fastUnsure {
		return ""
	}
	if err := tp.compile(d.timeout); err != nil {
		return "compile: " + err.Error()
	}
	d.line, d.runesOK = line, false
	d.ensureRunes()
	mm, err := tp.re.FindRunesMatch(d.runes)
	if err != nil {
		return "regex error: " + err.Error()
	}
	if fr == fastNoMatch {
		if mm != nil {
			return "fast: no match, regex: " + mm.String()
		}
		return ""
	}
	if mm == nil {
		return "fast: match " + line[fm.g1s:fm.g1e] + ", regex: no match"
	}
	var rm tmatch
	e := &entry{t: tp}
	if !d.searchRegexOnly(e, &rm) {
		return "regex search failed"
	}
	if rm.start != fm.start || rm.end != fm.end || rm.g1s != fm.g1s || rm.g1e != fm.g1e {
		return "spans differ: fast " + line[fm.g1s:fm.g1e] + " regex " + line[rm.g1s:rm.g1e]
	}
	fm.hasParts = true
	ft, fok := d.timeOf(tp, &fm, now)
	rt, rok := d.timeOf(tp, &rm, now)
	if fok != rok || !ft.Equal(rt) {
		return "times differ: fast " + ft.String() + " regex " + rt.String()
	}
	return ""
}

// searchRegexOnly runs a template's regex on the current line, bypassing the
// fast path.
func (d *Detector) searchRegexOnly(e *entry, m *tmatch) bool {
	saved := d.noFast
	d.noFast = true
	defer func() { d.noFast = saved }()
	return d.search(e, 0, -1, m)
}

// TestFastPathAgreesWithRegex: whenever a hand-written matcher answers, its
// answer (span, fields, time) equals the template regex's, on the corpus and
// on many damaged variants of it.
func TestFastPathAgreesWithRegex(t *testing.T) {
	loc, err := time.LoadLocation("Europe/Zurich")
	if err != nil {
		t.Skip("no zoneinfo: ", err)
	}
	d, _ := New("{^LN-BEG}", loc)
	now := time.Unix(testNow, 0)
	tpls := fastTemplates(t)
	lines := corpusLines(t)
	rng := rand.New(rand.NewSource(1))
	n := len(lines)
	for i := 0; i < 20000; i++ {
		lines = append(lines, mutate(rng, lines[rng.Intn(n)]))
	}
	answered := 0
	for _, line := range lines {
		for _, tp := range tpls {
			var fm tmatch
			if d.runFast(tp.fast, line, &fm) != fastUnsure {
				answered++
			}
			if msg := checkFastAgainstRegex(d, tp, line, now); msg != "" {
				t.Errorf("template %s, line %q: %s", tp.name, line, msg)
			}
		}
	}
	if answered < 2*len(lines) {
		t.Errorf("fast paths answered only %d of %d checks: they are not being exercised", answered, 4*len(lines))
	}
	t.Logf("%d lines, fast paths answered %d of %d checks", len(lines), answered, 4*len(lines))
}

// TestDetectorSameWithoutFastPath: whole detectors with and without the fast
// paths give identical results over the corpus (state included).
func TestDetectorSameWithoutFastPath(t *testing.T) {
	loc, err := time.LoadLocation("Europe/Zurich")
	if err != nil {
		t.Skip("no zoneinfo: ", err)
	}
	now := time.Unix(testNow, 0)
	lines := corpusLines(t)
	for _, p := range []string{"", "{^LN-BEG}", "^[^\\[]*\\[({DATE})\n{^LN-BEG}"} {
		a, _ := New(p, loc)
		b, _ := New(p, loc)
		b.noFast = true
		for _, line := range lines {
			ma, oka := a.Match(line, now)
			mb, okb := b.Match(line, now)
			if oka != okb || ma.Start != mb.Start || ma.End != mb.End || ma.Valid != mb.Valid || !ma.Time.Equal(mb.Time) {
				t.Fatalf("pattern %q line %q: fast %+v %v, regex %+v %v", p, line, ma, oka, mb, okb)
			}
		}
	}
}

// FuzzMatch: arbitrary input never panics, spans stay inside the line, and
// the fast paths never change a result.
func FuzzMatch(f *testing.F) {
	for _, l := range extraLines {
		f.Add(l, uint8(0))
	}
	f.Add("Nov 24 19:40:51 host sshd[1]: x\n2005-08-14T10:00:00Z y", uint8(1))
	f.Add("[1124013600] x\n@4000000042fef6c90b5cb2fc", uint8(2))
	f.Add("\xff\xfe Aug 14 10:00:00", uint8(3))
	patterns := []string{"", "{^LN-BEG}", "^[^\\[]*\\[({DATE})\n{^LN-BEG}", "^[^\\[]*\\[({DATE})", "EPOCH\nLEPOCH", "{^LN-BEG}TAI64N\n{^LN-BEG}",
		"%d/%b/%Y:%H:%M:%S %z", "%A %B %d %I:%M:%S %p %j %U %w %Z", "{NONE}"}
	now := time.Unix(testNow, 0)
	loc := time.FixedZone("X", 3600)
	type pair struct{ fast, slow *Detector }
	dets := make([]pair, len(patterns))
	for i, p := range patterns {
		a, err := New(p, loc)
		if err != nil {
			f.Fatal(err)
		}
		b, _ := New(p, loc)
		b.noFast = true
		dets[i] = pair{a, b}
	}
	f.Fuzz(func(t *testing.T, input string, which uint8) {
		dp := dets[int(which)%len(dets)]
		for _, line := range strings.Split(input, "\n") {
			ma, oka := dp.fast.Match(line, now)
			mb, okb := dp.slow.Match(line, now)
			if oka && (ma.Start < 0 || ma.End > len(line) || ma.Start > ma.End) {
				t.Fatalf("span %d..%d outside line of %d bytes", ma.Start, ma.End, len(line))
			}
			if oka != okb || ma.Start != mb.Start || ma.End != mb.End || ma.Valid != mb.Valid || !ma.Time.Equal(mb.Time) {
				t.Fatalf("line %q: fast %+v %v, regex %+v %v", line, ma, oka, mb, okb)
			}
		}
	})
}

// TestFastPathGrammar builds many near-miss stamps from token lists (case
// variants, odd widths, separators, zone words, trailing text) and checks the
// fast matchers against the regexes on each.
func TestFastPathGrammar(t *testing.T) {
	d, _ := New(clfPreMatch+"\n{^LN-BEG}", time.FixedZone("X", 3600))
	now := time.Unix(testNow, 0)
	tpls := fastTemplates(t)
	// pick returns the first (valid) token most of the time, else any token
	pick := func(rng *rand.Rand, s []string) string {
		if rng.Intn(10) < 7 {
			return s[0]
		}
		return s[rng.Intn(len(s))]
	}
	prefix := []string{"", "[", "<", "((", "- ", "x ", "192.0.2.1 - - [", "é", " ", "\t", "@"}
	year := []string{"2005", "2019", "2031", "1999", "205", "20055", "٢٠٠٥"}
	num2 := []string{"08", "8", " 8", "00", "13", "31", "32", "29", "1", "10", "60", "61", "99", "0", "١٤"}
	month := []string{"Aug", "aug", "AUG", "aUg", "Sep", "ſep", "Kug", "Foo", "Au", "Augu"}
	wday := []string{"", "Sun ", "sun ", "SUN ", "Sunday ", "Xyz "}
	dsep := []string{"-", "/", ".", ":", " ", ""}
	csep := []string{"/", "-", ".", " "}
	tsep := []string{"T", " ", "  ", "t", "   ", ""}
	ssep := []string{" ", "  ", "", "-", "/"}
	ysep := []string{":", " ", "", "  ", "T"}
	frac := []string{"", ".1", ".123456", ".1234567", ",5", ".", ".x"}
	zone := []string{"", "Z", "z", "UTC", "Utc", "utc", "GMT", "gmt", "+0200", "+02:00", "+02", "-1", "+2", "+02:0", "CEST", " Z", " +0200", "  UTC", " utc", " Utc", " gMT", "\x1cZ"}
	czone := []string{" +0200", "", " Z", " z", " UTC", " Utc", " utc", " gMT", " +02:00", " +02", " -1", "+0200", " CEST"}
	trail := []string{" x", "", "x", "1", "_", ".", "]", "é", " 2005", " 20051", " 2005x", ":", "\u00a0"}
	epochs := []string{"1124013600", "11240136001", "112401360", "112401360012", "1124013600123", "١١٢٤٠١٣٦٠٠"}
	efrac := []string{"", ".123", ".1", ".12", ".123456", ".1234567", "]", ".123]", ":42)", "x", "_"}
	rng := rand.New(rand.NewSource(3))
	matched, rejected := 0, 0
	for i := 0; i < 80000; i++ {
		var line string
		switch i % 4 {
		case 3: // epoch-like
			line = pick(rng, prefix) + pick(rng, epochs) + pick(rng, efrac) + pick(rng, trail)
		case 0: // ISO-like
			line = pick(rng, prefix) + pick(rng, year) + pick(rng, dsep) + pick(rng, num2) + pick(rng, dsep) + pick(rng, num2) +
				pick(rng, tsep) + pick(rng, num2) + ":" + pick(rng, num2) + ":" + pick(rng, num2) + pick(rng, frac) + pick(rng, zone) + pick(rng, trail)
		case 1: // syslog-like
			line = pick(rng, prefix) + pick(rng, wday) + pick(rng, month) + pick(rng, ssep) + pick(rng, num2) + pick(rng, ssep) +
				pick(rng, num2) + ":" + pick(rng, num2) + ":" + pick(rng, num2) + pick(rng, frac) + pick(rng, trail) + pick(rng, trail)
		default: // CLF-like
			line = pick(rng, prefix) + "[" + pick(rng, num2) + pick(rng, csep) + pick(rng, month) + pick(rng, csep) + pick(rng, year) +
				pick(rng, ysep) + pick(rng, num2) + ":" + pick(rng, num2) + ":" + pick(rng, num2) + pick(rng, frac) + pick(rng, czone) + pick(rng, trail)
		}
		for _, tp := range tpls {
			var fm tmatch
			switch d.runFast(tp.fast, line, &fm) {
			case fastMatch:
				matched++
			case fastNoMatch:
				rejected++
			}
			if msg := checkFastAgainstRegex(d, tp, line, now); msg != "" {
				t.Errorf("template %s, line %q: %s", tp.name, line, msg)
			}
		}
	}
	t.Logf("fast paths: %d matches, %d rejections", matched, rejected)
	if matched < 5000 || rejected < 5000 {
		t.Errorf("grammar exercises the fast paths too little: %d matches, %d rejections", matched, rejected)
	}
}

// TestMemoSameAsFresh: consecutive lines that share a stamp (and differ
// right after it, or in their length), with "now" moving across a year,
// give what a detector without fast paths (and so without memos) gives.
func TestMemoSameAsFresh(t *testing.T) {
	loc := time.FixedZone("X", 3600)
	lines := []string{
		"Dec 31 23:59:59 host sshd[1]: a",
		"Dec 31 23:59:59 host sshd[1]: b",
		"Dec 31 23:59:59 2025 host sshd[1]: c",
		"Dec 31 23:59:59 2025",
		"Dec 31 23:59:59 202",
		"Dec 31 23:59:59",
		"Dec 31 23:59:59x",
		"Dec 31 23:59:59.123 host",
		"Dec 31 23:59:59.1234567 host",
		"Dec 31 23:59:59 host",
		"Jan  1 00:00:00 host",
		"Jan  1 00:00:00 host sshd",
		"Jan  1 00:00:00 1999 host",
		"Jan  1 00:00:00 host",
		"Jan  1 00:00:00 h\u00f4st sshd",
		"Jan  1 00:00:00 web1 CRON[1]: x",
		"Jan  1 00:00:00 web1 sshd[1]: y",
		"Jan  1 00:00:00 1999",
		"Jan  1 00:00:00 19",
		"Jan  1 00:00:00 1",
		"Jan  1 00:00:00 2",
		"Jan  1 00:00:00 2100 x",
		"Jan  1 00:00:00 21001",
		"Jan  1 00:00:00 20261",
		"Jan  1 00:00:00.",
		"Jan  1 00:00:00.x host",
		"Jan  1 00:00:00.5 host",
		"Jan  1 00:00:00.5",
		"Jan  1 00:00:00 ",
		"Jan  1 00:00:00  ",
		"Jan  1 00:00:00 h\u00f4st sshd",
		"Jan  1 00:00:00\u00e9 host",
		"Jan  1 00:00:00 host",
	}
	nows := []time.Time{
		time.Date(2025, 12, 31, 23, 0, 0, 0, loc),
		time.Date(2025, 12, 31, 23, 0, 0, 0, loc),
		time.Date(2025, 12, 31, 23, 0, 0, 500, loc),
		time.Date(2026, 1, 1, 0, 0, 1, 0, loc),
		time.Date(2026, 1, 2, 0, 0, 1, 0, loc),
	}
	for _, p := range []string{"", "{^LN-BEG}"} {
		a, _ := New(p, loc)
		b, _ := New(p, loc)
		b.noFast = true
		lineMemo := 0
		for _, now := range nows {
			for _, line := range lines {
				for rep := 0; rep < 2; rep++ {
					if a.lineMemo.ok {
						lineMemo++
					}
					ma, oka := a.Match(line, now)
					mb, okb := b.Match(line, now)
					if oka != okb || ma.Start != mb.Start || ma.End != mb.End || ma.Valid != mb.Valid || !ma.Time.Equal(mb.Time) {
						t.Fatalf("pattern %q now %v line %q: memo %+v %v, fresh %+v %v", p, now, line, ma, oka, mb, okb)
					}
					// the state the next line's search starts from
					if a.lastPos != b.lastPos || a.lastEnd != b.lastEnd || a.lastIdx != b.lastIdx {
						t.Fatalf("pattern %q now %v line %q: memo state %+v %+v %d, fresh %+v %+v %d", p, now, line,
							a.lastPos, a.lastEnd, a.lastIdx, b.lastPos, b.lastEnd, b.lastIdx)
					}
				}
			}
		}
		if p != "" && lineMemo == 0 {
			t.Errorf("pattern %q: the line memo never held an answer", p)
		}
	}
}
