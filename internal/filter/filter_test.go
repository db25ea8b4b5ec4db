package filter

import (
	"fmt"
	"math/rand/v2"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// syslogDates is a test date detector for "Mon DD HH:MM:SS" at line start.
type syslogDates struct{ loc *time.Location }

var syslogRe = regexp.MustCompile(`^[A-Z][a-z]{2} [ 0-9][0-9] [0-9]{2}:[0-9]{2}:[0-9]{2}`)

func (d syslogDates) Detect(line string, now time.Time) (DateMatch, bool) {
	loc := syslogRe.FindStringIndex(line)
	if loc == nil {
		return DateMatch{}, false
	}
	t, err := time.ParseInLocation("Jan _2 15:04:05", line[:loc[1]], d.loc)
	if err != nil {
		return DateMatch{Start: loc[0], End: loc[1]}, true
	}
	t = t.AddDate(now.Year(), 0, 0)
	return DateMatch{Start: loc[0], End: loc[1], Time: t, Valid: true}, true
}

var testNow = time.Date(2005, 8, 14, 10, 0, 0, 0, time.UTC)

func newTest(t *testing.T, def Definition, mod ...func(*Options)) *Filter {
	t.Helper()
	o := Options{Location: time.UTC, Now: func() time.Time { return testNow }, Dates: syslogDates{time.UTC}}
	for _, m := range mod {
		m(&o)
	}
	f, err := New(def, o)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

type want struct {
	id       string
	fields   map[string]string
	users    string
	attempts int
	noTime   bool
}

func check(t *testing.T, f *Filter, lines []string, wants map[int]want) {
	t.Helper()
	for i, l := range lines {
		res := f.Process(l)
		w, ok := wants[i]
		if !ok {
			if len(res.Failures) != 0 {
				t.Errorf("line %d %q: unexpected failure %+v", i, l, res.Failures)
			}
			continue
		}
		if len(res.Failures) != 1 {
			t.Errorf("line %d %q: %d failures, want 1", i, l, len(res.Failures))
			continue
		}
		fl := res.Failures[0]
		if fl.ID != w.id {
			t.Errorf("line %d: id %q, want %q", i, fl.ID, w.id)
		}
		for k, v := range w.fields {
			got, ok := fl.Field(k)
			if v == "<nil>" {
				if ok {
					t.Errorf("line %d: field %s = %q, want absent", i, k, got)
				}
			} else if got != v {
				t.Errorf("line %d: field %s = %q, want %q", i, k, got, v)
			}
		}
		if w.users != "" && strings.Join(fl.Users, ",") != w.users {
			t.Errorf("line %d: users %v, want %s", i, fl.Users, w.users)
		}
		if w.attempts != 0 && fl.Attempts != w.attempts {
			t.Errorf("line %d: attempts %d, want %d", i, fl.Attempts, w.attempts)
		}
		if w.noTime != fl.Time.IsZero() {
			t.Errorf("line %d: time %v, want zero=%v", i, fl.Time, w.noTime)
		}
	}
}

const prefix = `^\s*\S+ sshd\[\d+\]: `

func TestProcessBasic(t *testing.T) {
	f := newTest(t, Definition{Name: "t",
		FailRegex:   []string{prefix + `Failed password for <F-USER>\S+</F-USER> from <HOST>`, prefix + `Bad <F-ID>\w+</F-ID> from <HOST>`},
		IgnoreRegex: []string{`from 192\.0\.2\.99`},
	})
	lines := []string{
		"Aug 14 09:59:01 h sshd[1]: Failed password for root from 192.0.2.1 port 22",
		"Aug 14 09:59:02 h sshd[1]: Failed password for root from 192.0.2.99 port 22", // ignored
		"Aug 14 09:59:03 h cron[1]: Failed password for root from 192.0.2.2",          // wrong daemon
		"Aug 14 09:59:04 h sshd[1]: Failed password for bob from 2001:db8::5",
		"Aug 14 09:59:05 h sshd[1]: Bad key42 from 192.0.2.3",
		"Aug 14 09:59:06 h sshd[1]: Failed password for eve from attacker.example.org",
	}
	check(t, f, lines, map[int]want{
		0: {id: "192.0.2.1", fields: map[string]string{"user": "root", "ip4": "192.0.2.1"}, attempts: 1},
		3: {id: "2001:db8::5", fields: map[string]string{"ip6": "2001:db8::5", "ip4": "<nil>"}},
		4: {id: "key42", fields: map[string]string{"ip": "192.0.2.3", "fid": "key42"}},
		5: {id: "attacker.example.org", fields: map[string]string{"dns": "attacker.example.org"}},
	})
	if r := f.Process(lines[1]); r.Status != Ignored || r.Ignore != 0 || r.Regex != 0 {
		t.Errorf("ignored line: %+v", r)
	}
	if r := f.Process(lines[2]); r.Status != Missed || r.Regex != -1 {
		t.Errorf("missed line: %+v", r)
	}
}

func TestProcessDateCut(t *testing.T) {
	// the date text is cut out of the line before matching
	f := newTest(t, Definition{Name: "t", FailRegex: []string{`^ x <HOST>$`}})
	res := f.Process("Aug 14 09:00:00 x 192.0.2.1")
	if len(res.Failures) != 1 || !res.Failures[0].Time.Equal(time.Date(2005, 8, 14, 9, 0, 0, 0, time.UTC)) {
		t.Fatalf("got %+v", res)
	}
}

func TestProcessLastDate(t *testing.T) {
	f := newTest(t, Definition{Name: "t", FailRegex: []string{`^x <HOST>$`}})
	// a dateless line takes the last date when it is within 60 s of now
	f.Process("Aug 14 09:59:30 something else")
	res := f.Process("x 192.0.2.1")
	if len(res.Failures) != 1 || !res.Failures[0].Time.Equal(time.Date(2005, 8, 14, 9, 59, 30, 0, time.UTC)) {
		t.Fatalf("recent last date: %+v", res)
	}
	f.Process("Aug 14 09:58:59 older")
	res = f.Process("x 192.0.2.1")
	if len(res.Failures) != 1 || !res.Failures[0].Time.IsZero() {
		t.Fatalf("old last date: %+v", res)
	}
}

func TestProcessPrefregexContent(t *testing.T) {
	f := newTest(t, Definition{Name: "t",
		PrefRegex: `^\s*\S+ (?P<daemon>\w+)\[\d+\]: <F-CONTENT>.+</F-CONTENT>$`,
		FailRegex: []string{`^auth fail <HOST>$`},
	})
	check(t, f, []string{
		"Aug 14 09:59:01 h app[7]: auth fail 192.0.2.1",
		"Aug 14 09:59:01 h app7: auth fail 192.0.2.1",
	}, map[int]want{0: {id: "192.0.2.1", fields: map[string]string{"daemon": "app", "content": "<nil>"}}})
}

func TestProcessAltUser(t *testing.T) {
	f := newTest(t, Definition{Name: "t",
		FailRegex: []string{`ruser=<F-ALT_USER>\S*</F-ALT_USER> rhost=<HOST>(?: user=<F-USER>\S*</F-USER>)?$`},
	})
	check(t, f, []string{
		"Aug 14 09:59:01 ruser=alice rhost=192.0.2.1",
		"Aug 14 09:59:01 ruser=alice rhost=192.0.2.1 user=bob",
	}, map[int]want{
		0: {id: "192.0.2.1", fields: map[string]string{"user": "alice"}},
		1: {id: "192.0.2.1", fields: map[string]string{"user": "bob"}},
	})
}

func TestProcessMultiline(t *testing.T) {
	f := newTest(t, Definition{Name: "t", MaxLines: 5,
		FailRegex: []string{`^ conn (?P<c>\d+) from <HOST><SKIPLINES>^ conn (?P=c) failed$`},
	})
	lines := []string{
		"Aug 14 09:59:01 conn 1 from 192.0.2.1",
		"Aug 14 09:59:02 conn 2 from 192.0.2.2",
		"Aug 14 09:59:03 noise",
		"Aug 14 09:59:04 conn 2 failed",
		"Aug 14 09:59:05 conn 1 failed",
	}
	check(t, f, lines, map[int]want{
		3: {id: "192.0.2.2", attempts: 2},
		4: {id: "192.0.2.1", attempts: 2},
	})
}

func TestProcessMLFID(t *testing.T) {
	def := Definition{Name: "t",
		PrefRegex: `^\s*\S+ <F-MLFID>sshd\[\d+\]</F-MLFID>: <F-CONTENT>.+</F-CONTENT>$`,
		FailRegex: []string{
			`^<F-NOFAIL>Connection from</F-NOFAIL> <HOST>`,
			`^Failed \S+ for <F-USER>\S+</F-USER>(?: from <HOST>)?`,
			`^<F-MLFFORGET><F-MLFGAINED>Accepted \w+</F-MLFGAINED></F-MLFFORGET> for <F-USER>\S+</F-USER> from <HOST>`,
			`^<F-NOFAIL><F-MLFFORGET>Disconnected</F-MLFFORGET></F-NOFAIL> from <HOST>`,
		},
	}
	f := newTest(t, def)
	lines := []string{
		"Aug 14 09:59:01 h sshd[1]: Connection from 192.0.2.1",   // nofail, id cached
		"Aug 14 09:59:02 h sshd[1]: Failed password for root",    // id from cache
		"Aug 14 09:59:03 h sshd[1]: Failed password for admin",   // second user
		"Aug 14 09:59:04 h sshd[2]: Failed password for x",       // pending: no id
		"Aug 14 09:59:05 h sshd[2]: Connection from 192.0.2.2",   // nofail
		"Aug 14 09:59:06 h sshd[1]: Disconnected from 192.0.2.1", // forget
		"Aug 14 09:59:07 h sshd[1]: Failed password for z",       // connection forgotten
		"Aug 14 09:59:08 h sshd[3]: Failed password for u from 192.0.2.3",
		"Aug 14 09:59:09 h sshd[3]: Accepted publickey for u from 192.0.2.3",
	}
	check(t, f, lines, map[int]want{
		// expectations taken from fail2ban 1.0.2 on the same lines:
		// the nofail line's match is counted with the first failure
		1: {id: "192.0.2.1", fields: map[string]string{"user": "root", "mlfid": "sshd[1]"}, users: "root", attempts: 2},
		2: {id: "192.0.2.1", fields: map[string]string{"user": "admin"}, users: "admin,root", attempts: 1},
		// the pending failure is counted when the id shows up
		4: {id: "192.0.2.2", fields: map[string]string{"user": "x"}, attempts: 2},
		// several users on one connection: the nofail disconnect counts
		5: {id: "192.0.2.1", users: "admin,root", attempts: 1},
		7: {id: "192.0.2.3", attempts: 1},
	})
}

func TestLoadErrors(t *testing.T) {
	tests := []struct {
		def  Definition
		opts Options
		msg  string
	}{
		{Definition{Name: "n", FailRegex: []string{`^no id here$`}}, Options{}, "failregex 0: no failure-id group"},
		{Definition{Name: "n", FailRegex: []string{`<HOST>`, `(<HOST>`}}, Options{}, "failregex 1"},
		{Definition{Name: "n", FailRegex: []string{`(?<=a)<HOST>`}}, Options{RequireRE2: true}, "not RE2"},
		{Definition{Name: "n", PrefRegex: `[`, FailRegex: []string{`<HOST>`}}, Options{}, "prefregex"},
		{Definition{Name: "n", FailRegex: []string{`<HOST>`}, IgnoreRegex: []string{`(`}}, Options{}, "ignoreregex 0"},
		{Definition{Name: "n", FailRegex: []string{`<HOST>`}, MaxLines: MaxMaxLines + 1}, Options{}, "maxlines"},
	}
	for _, tt := range tests {
		tt.opts.Dates = syslogDates{time.UTC}
		_, err := New(tt.def, tt.opts)
		if err == nil || !strings.Contains(err.Error(), tt.msg) || !strings.Contains(err.Error(), "filter n") {
			t.Errorf("New(%v): err %v, want %q", tt.def.FailRegex, err, tt.msg)
		}
	}
	// an id in the prefregex is enough
	if _, err := New(Definition{Name: "n", PrefRegex: `^<HOST> <F-CONTENT>.+</F-CONTENT>$`, FailRegex: []string{`^x$`}}, Options{Dates: syslogDates{time.UTC}}); err != nil {
		t.Error(err)
	}
}

func TestMatchTimeoutCounted(t *testing.T) {
	f := newTest(t, Definition{Name: "t", FailRegex: []string{`^(?P<x>a+)+(?=b)<HOST>`}}, func(o *Options) {
		o.MatchTimeout = 5 * time.Millisecond
	})
	res := f.Process(strings.Repeat("a", 40) + "c")
	if res.Status != Missed || f.Timeouts() != 1 {
		t.Fatalf("status %v timeouts %d", res.Status, f.Timeouts())
	}
}

func TestJournal(t *testing.T) {
	f := newTest(t, Definition{Name: "t", FailRegex: []string{`^fail <HOST>$`}}, func(o *Options) { o.Journal = true; o.Dates = nil })
	at := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	res := f.ProcessAt("fail 192.0.2.1", at)
	if len(res.Failures) != 1 || !res.Failures[0].Time.Equal(at) {
		t.Fatalf("%+v", res)
	}
}

func TestMLFIDCacheBounded(t *testing.T) {
	now := testNow
	c := newMLFIDCache(3, time.Minute, func() time.Time { return now })
	for i := 0; i < 10; i++ {
		c.set(string(rune('a'+i)), &failData{})
		if c.len() > 3 {
			t.Fatalf("cache size %d", c.len())
		}
	}
	if c.get("j") == nil || c.get("a") != nil {
		t.Fatal("FIFO eviction")
	}
	now = now.Add(2 * time.Minute)
	if c.get("j") != nil {
		t.Fatal("expiry")
	}
}

// bracketDates finds "[Mon DD HH:MM:SS]"-style dates after up to two
// non-word characters, like fail2ban's {^LN-BEG} templates.
type bracketDates struct{}

func (bracketDates) Detect(line string, now time.Time) (DateMatch, bool) {
	for start := 0; start <= 2 && start < len(line); start++ {
		if loc := syslogRe.FindStringIndex(line[start:]); loc != nil {
			t, _ := time.ParseInLocation("Jan _2 15:04:05", line[start:start+loc[1]], time.UTC)
			return DateMatch{Start: start, End: start + loc[1], Time: t.AddDate(now.Year(), 0, 0), Valid: true}, true
		}
		c := line[start]
		if c == '_' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' {
			break
		}
	}
	return DateMatch{}, false
}

// TestPrefilterDateJunction: cutting the date out can join text into a
// literal the raw line does not contain ("[" + date + "]" -> "[]"); the
// line-level pre-filter must not drop such lines.
func TestPrefilterDateJunction(t *testing.T) {
	def := Definition{Name: "t", DatePattern: "{^LN-BEG}",
		FailRegex: []string{`^\[\] \[error\] \[client <HOST>\] File does not exist`}}
	f := newTest(t, def, func(o *Options) { o.Dates = bracketDates{} })
	if !f.canSkip || !f.lnBeg {
		t.Fatalf("pre-filter not active (canSkip %v, lnBeg %v)", f.canSkip, f.lnBeg)
	}
	res := f.Process("[Aug 14 09:00:00] [error] [client 192.0.2.4] File does not exist: /x")
	if len(res.Failures) != 1 || res.Failures[0].ID != "192.0.2.4" {
		t.Fatalf("junction literal: %+v", res)
	}
	// a line starting with a word character is skipped by the pre-filter
	// (no failure, and its date is only read if a later line needs it)
	res = f.Process("Aug 14 09:59:30 unrelated")
	if res.Status != Missed || !f.hasSkipped {
		t.Fatalf("skip: %+v hasSkipped=%v", res, f.hasSkipped)
	}
}

// TestSkippedLineDate: a dateless line takes the date of the last line
// even when the pre-filter skipped that line.
func TestSkippedLineDate(t *testing.T) {
	f := newTest(t, Definition{Name: "t", DatePattern: "{^LN-BEG}", FailRegex: []string{`^x <HOST>$`}})
	if !f.canSkip {
		t.Fatal("pre-filter not active")
	}
	f.Process("Aug 14 09:59:30 nothing to see")
	res := f.Process("x 192.0.2.1")
	if len(res.Failures) != 1 || !res.Failures[0].Time.Equal(time.Date(2005, 8, 14, 9, 59, 30, 0, time.UTC)) {
		t.Fatalf("%+v", res)
	}
}

func TestMultilineIgnore(t *testing.T) {
	// ignoreregex on a multi-line filter sees the matched lines only
	f := newTest(t, Definition{Name: "t", MaxLines: 3,
		FailRegex:   []string{`^ a (?P<n>\d+) <HOST>\n^ b (?P=n) bad$`},
		IgnoreRegex: []string{`192\.0\.2\.9`},
	})
	check(t, f, []string{
		"Aug 14 09:59:01 a 1 192.0.2.9",
		"Aug 14 09:59:02 b 1 bad",
		"Aug 14 09:59:03 a 2 192.0.2.8",
		"Aug 14 09:59:04 b 2 bad",
	}, map[int]want{3: {id: "192.0.2.8", attempts: 2}})
}

func TestBounds(t *testing.T) {
	// a huge line is cut; the multi-line buffer keeps at most maxBufferBytes
	f := newTest(t, Definition{Name: "t", MaxLines: 100, FailRegex: []string{`^ x <HOST>$`}})
	big := "Aug 14 09:59:01 " + strings.Repeat("é", MaxLineBytes)
	for i := 0; i < 40; i++ {
		f.Process(big)
	}
	size := 0
	for _, l := range f.lines {
		if len(l.post) > MaxLineBytes {
			t.Fatalf("line of %d bytes kept", len(l.post))
		}
		size += len(l.pre) + len(l.post) + 1
	}
	if size > maxBufferBytes || len(f.lines) == 0 {
		t.Fatalf("buffer holds %d bytes in %d lines", size, len(f.lines))
	}
	if res := f.Process("Aug 14 09:59:02 x 192.0.2.1"); len(res.Failures) != 1 {
		t.Fatalf("after big lines: %+v", res)
	}
	// a connection remembers a bounded number of bounded lines
	g := newTest(t, Definition{Name: "t",
		PrefRegex: `^\s*\S+ <F-MLFID>c\d+</F-MLFID>: <F-CONTENT>.+</F-CONTENT>$`,
		FailRegex: []string{`^fail <HOST> .*$`}})
	var last Failure
	for i := 0; i < 100; i++ {
		res := g.Process("Aug 14 09:59:01 h c1: fail 192.0.2.1 " + strings.Repeat("z", 5000))
		if len(res.Failures) != 1 {
			t.Fatalf("line %d: %+v", i, res)
		}
		last = res.Failures[0]
	}
	if len(last.Matches) > maxKeptMatches || len(last.Matches[0]) > maxMatchBytes {
		t.Fatalf("kept %d matches of %d bytes", len(last.Matches), len(last.Matches[0]))
	}
}

func FuzzProcess(f *testing.F) {
	for _, s := range []string{
		"Aug 14 09:59:01 h sshd[1]: Connection from 192.0.2.1",
		"Aug 14 09:59:02 h sshd[1]: Failed password for root",
		"Aug 14 09:59:03 h sshd[2]: Accepted publickey for u from 2001:db8::1",
		"x 192.0.2.1", "", "\n\n", "Aug 14 09:59:01 conn 1 from 192.0.2.1",
	} {
		f.Add(s)
	}
	defs := []Definition{
		{Name: "ml", PrefRegex: `^\s*\S+ <F-MLFID>sshd\[\d+\]</F-MLFID>: <F-CONTENT>.+</F-CONTENT>$`,
			FailRegex: []string{`^<F-NOFAIL>Connection from</F-NOFAIL> <HOST>`, `^Failed \S+ for <F-USER>\S+</F-USER>(?: from <HOST>)?`,
				`^<F-MLFFORGET><F-MLFGAINED>Accepted \w+</F-MLFGAINED></F-MLFFORGET> for <F-USER>\S+</F-USER> from <HOST>`}},
		{Name: "multi", MaxLines: 4, FailRegex: []string{`^ conn (?P<c>\d+) from <HOST><SKIPLINES>^ conn (?P=c) failed$`},
			IgnoreRegex: []string{`192\.0\.2\.9`}},
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, def := range defs {
			flt, err := New(def, Options{Location: time.UTC, Now: func() time.Time { return testNow }, Dates: syslogDates{time.UTC}, MatchTimeout: 20 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			for _, l := range strings.Split(s, "\n") {
				res := flt.Process(l)
				for _, fl := range res.Failures {
					if fl.ID == "" && fl.Fields()["fid"] == "" {
						t.Fatalf("failure without id: %+v", fl)
					}
				}
			}
		}
	})
}

// TestProcessBytesNoAlias: nothing a failure holds may point into the
// caller's buffer, which the caller reuses for the next line.
func TestProcessBytesNoAlias(t *testing.T) {
	f := newTest(t, Definition{Name: "t", DatePattern: "{^LN-BEG}",
		PrefRegex: `^\s*\S+ <F-MLFID>sshd\[\d+\]</F-MLFID>: <F-CONTENT>.+</F-CONTENT>$`,
		FailRegex: []string{`^Failed \S+ for <F-USER>\S+</F-USER> from <HOST>$`}})
	buf := []byte("Aug 14 09:59:01 h sshd[1]: Failed password for root from 192.0.2.1")
	res := f.ProcessBytes(buf)
	for i := range buf {
		buf[i] = 'X'
	}
	if len(res.Failures) != 1 {
		t.Fatalf("%+v", res)
	}
	fl := res.Failures[0]
	if fl.ID != "192.0.2.1" || fl.Fields()["user"] != "root" || fl.Fields()["mlfid"] != "sshd[1]" ||
		len(fl.Matches) != 1 || !strings.HasSuffix(fl.Matches[0], "from 192.0.2.1") {
		t.Fatalf("failure changed with the caller's buffer: %+v", fl)
	}
	// the connection cache must not alias it either
	res = f.Process("Aug 14 09:59:02 h sshd[1]: Failed password for admin from 192.0.2.1")
	if len(res.Failures) != 1 || !strings.HasSuffix(res.Failures[0].Matches[0], "from 192.0.2.1") || strings.Contains(strings.Join(res.Failures[0].Users, ","), "X") {
		t.Fatalf("%+v", res)
	}
}

// TestBacktrackBudget: once a filter's backtracking time per second is
// spent, its backtracking regexes are skipped (and counted) while the RE2
// ones still find failures; the budget refills with time.
func TestBacktrackBudget(t *testing.T) {
	// a clock that moves 10 ms per reading: every backtracking match costs 10 ms
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { now = now.Add(10 * time.Millisecond); return now }
	f := newTest(t, Definition{Name: "t", FailRegex: []string{
		`^slow (?P<x>a+)+(?=b)b<HOST>`, // needs the backtracking engine
		`^fast from <HOST>$`,
	}}, func(o *Options) {
		o.BacktrackBudget = 50 * time.Millisecond
		o.Clock = clock
	})
	hostile := "slow " + strings.Repeat("a", 12) + "c"
	for i := 0; i < 100; i++ {
		f.Process(hostile)
	}
	st := f.Stats()
	// 10 ms per match and 50 ms (+ 0.5 ms refill per 10 ms) per second:
	// only the first few run
	if st.BacktrackSkipped < 80 || st.BacktrackTime > 200*time.Millisecond {
		t.Fatalf("100 hostile lines: %d skipped, %v spent; want the budget to stop them", st.BacktrackSkipped, st.BacktrackTime)
	}
	if res := f.Process("fast from 192.0.2.9"); len(res.Failures) != 1 || res.Failures[0].ID != "192.0.2.9" {
		t.Fatalf("RE2 regex while the budget is spent: %+v", res)
	}
	now = now.Add(2 * time.Second) // refilled
	res := f.Process("slow aab192.0.2.10")
	if len(res.Failures) != 1 || res.Failures[0].ID != "192.0.2.10" {
		t.Fatalf("after the refill: %+v (stats %+v)", res, f.Stats())
	}
}

// TestBacktrackBudgetOff: a negative budget never skips.
func TestBacktrackBudgetOff(t *testing.T) {
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	f := newTest(t, Definition{Name: "t", FailRegex: []string{`^slow (?P<x>a+)+(?=b)b<HOST>`}}, func(o *Options) {
		o.BacktrackBudget = -1
		o.Clock = func() time.Time { now = now.Add(time.Second); return now }
	})
	for i := 0; i < 20; i++ {
		if res := f.Process("slow aab192.0.2.10"); len(res.Failures) != 1 {
			t.Fatalf("line %d: %+v", i, res)
		}
	}
	if st := f.Stats(); st.BacktrackSkipped != 0 || st.BacktrackTime != 0 {
		t.Fatalf("stats %+v: want no budget kept", st)
	}
}

// TestCacheClock: the connection cache ages by the clock read once per
// line: Options.Now's reading when Clock is unset, else Clock (read at
// most once per line).
func TestCacheClock(t *testing.T) {
	def := Definition{Name: "t",
		PrefRegex: `^\s*\S+ <F-MLFID>sshd\[\d+\]</F-MLFID>: <F-CONTENT>.+</F-CONTENT>$`,
		FailRegex: []string{
			`^<F-NOFAIL>Connection from</F-NOFAIL> <HOST>`,
			`^Failed \S+ for <F-USER>\S+</F-USER>(?: from <HOST>)?`,
		},
	}
	lines := []string{
		"Aug 14 09:59:01 h sshd[1]: Connection from 192.0.2.1",
		"Aug 14 09:59:02 h sshd[1]: Failed password for root", // the id from the cache
		"Aug 14 09:59:03 h sshd[1]: Failed password for root", // the entry has aged out: pending
	}
	for _, tc := range []struct {
		name     string
		setClock bool
	}{{"clock unset: Now ages the cache", false}, {"Clock set", true}} {
		t.Run(tc.name, func(t *testing.T) {
			// With Clock set only it moves: the cache must age by it.
			now, clk := testNow, testNow
			nowCalls, clockCalls := 0, 0
			f := newTest(t, def, func(o *Options) {
				o.MLFIDCacheAge = time.Minute
				o.Now = func() time.Time { nowCalls++; return now }
				if tc.setClock {
					o.Clock = func() time.Time { clockCalls++; return clk }
				}
			})
			var got []int
			for i, l := range lines {
				if i == 2 {
					if tc.setClock {
						clk = clk.Add(2 * time.Minute)
					} else {
						now = now.Add(2 * time.Minute)
					}
				}
				nowCalls, clockCalls = 0, 0
				got = append(got, len(f.Process(l).Failures))
				if nowCalls != 1 {
					t.Errorf("line %d: Now read %d times, want 1", i, nowCalls)
				}
				if clockCalls > 1 || !tc.setClock && clockCalls != 0 {
					t.Errorf("line %d: Clock read %d times", i, clockCalls)
				}
			}
			if want := []int{0, 1, 0}; !slices.Equal(got, want) {
				t.Errorf("failures per line %v, want %v", got, want)
			}
		})
	}
}

// TestFailureFields: Fields and Field give the same captures, "ip" when an
// <F-ID> differs from the address, nothing for a failure built by hand.
func TestFailureFields(t *testing.T) {
	f := newTest(t, Definition{Name: "t", FailRegex: []string{
		`^\s*\S+ login failed: <F-ID>\S+</F-ID> user=<F-USER>\S*</F-USER> from <HOST>$`,
	}})
	res := f.Process("Aug 14 09:59:01 app login failed: acct7 user= from 192.0.2.9")
	if len(res.Failures) != 1 {
		t.Fatalf("%d failures, want 1", len(res.Failures))
	}
	fl := res.Failures[0]
	want := map[string]string{"fid": "acct7", "user": "", "ip4": "192.0.2.9", "ip": "192.0.2.9"}
	got := fl.Fields()
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("Fields()[%q] = %q, %v; want %q", k, g, ok, v)
		}
		if g, ok := fl.Field(k); !ok || g != v {
			t.Errorf("Field(%q) = %q, %v; want %q", k, g, ok, v)
		}
	}
	if _, ok := got["ip6"]; ok {
		t.Errorf("Fields() has ip6: %v", got)
	}
	if _, ok := fl.Field("ip6"); ok {
		t.Error("Field(ip6) present")
	}
	got["user"] = "changed" // a new map per call
	if v, _ := fl.Field("user"); v != "" {
		t.Errorf("changing Fields()'s map changed the failure: user %q", v)
	}
	var zero Failure
	if m := zero.Fields(); len(m) != 0 {
		t.Errorf("zero failure: Fields() = %v", m)
	}
	if _, ok := zero.Field("user"); ok {
		t.Error("zero failure: Field(user) present")
	}
}

// TestResultsOwnTheirFailures: every result's Failures stays as it was
// after later lines (and appending to one cannot overwrite another's).
func TestResultsOwnTheirFailures(t *testing.T) {
	f := newTest(t, Definition{Name: "t", FailRegex: []string{`^\s*\S+ fail <HOST>$`}})
	var kept [][]Failure
	for i := range 3 * failChunk {
		res := f.Process(fmt.Sprintf("Aug 14 09:59:01 app fail 192.0.2.%d", i))
		if len(res.Failures) != 1 || cap(res.Failures) != 1 {
			t.Fatalf("line %d: %d failures (cap %d), want 1 (cap 1)", i, len(res.Failures), cap(res.Failures))
		}
		kept = append(kept, res.Failures)
		_ = append(res.Failures, Failure{ID: "appended"})
	}
	for i, fs := range kept {
		if want := fmt.Sprintf("192.0.2.%d", i); fs[0].ID != want {
			t.Errorf("result %d: failure %q, want %q", i, fs[0].ID, want)
		}
	}
}

// TestReadClock: the clock moves only when a read through its reader
// returns, and never backwards.
func TestReadClock(t *testing.T) {
	c := NewReadClock()
	t0 := c.Now()
	r := c.Reader(strings.NewReader("line one\nline two\n"))
	buf := make([]byte, 9)
	prev := t0
	for i := 0; i < 4; i++ {
		if a, b := c.Now(), c.Now(); !a.Equal(b) || !a.Equal(prev) {
			t.Fatalf("read %d: the clock moved without a read: %v, %v after %v", i, a, b, prev)
		}
		n, err := r.Read(buf)
		if i < 2 && (n != 9 || err != nil) {
			t.Fatalf("read %d: %d bytes, %v", i, n, err)
		}
		if i == 0 && !c.Now().After(t0) {
			t.Fatalf("a read did not stamp the clock: %v, before %v", c.Now(), t0)
		}
		if now := c.Now(); now.Before(prev) {
			t.Fatalf("read %d: the clock went back: %v after %v", i, now, prev)
		} else {
			prev = now
		}
	}
}

// TestMLFIDCacheModel runs random sets, unsets and gets against a plain
// model of the cache (insertion order, a key set again keeps its place,
// the oldest evicted when full) and checks that the order list stays
// bounded as keys come and go.
func TestMLFIDCacheModel(t *testing.T) {
	now := testNow
	const size = 8
	c := newMLFIDCache(size, time.Hour, func() time.Time { return now })
	var model []string // insertion order
	idx := func(k string) int {
		for i, m := range model {
			if m == k {
				return i
			}
		}
		return -1
	}
	rnd := rand.New(rand.NewPCG(3, 4))
	for n := 0; n < 20000; n++ {
		k := strconv.Itoa(rnd.IntN(24))
		switch op := rnd.IntN(10); {
		case op < 6:
			c.set(k, &failData{})
			if idx(k) < 0 {
				if len(model) >= size {
					model = model[1:]
				}
				model = append(model, k)
			}
		case op < 8:
			c.unset(k)
			if i := idx(k); i >= 0 {
				model = append(model[:i], model[i+1:]...)
			}
		default:
			if got := c.get(k) != nil; got != (idx(k) >= 0) {
				t.Fatalf("op %d: get(%s) = %v, model %v", n, k, got, model)
			}
		}
		if c.len() != len(model) {
			t.Fatalf("op %d: %d entries, model %v", n, c.len(), model)
		}
		if len(c.order)-c.head > 4*size+17 || cap(c.order) > 16*size+64 {
			t.Fatalf("op %d: order list %d long (cap %d, head %d)", n, len(c.order), cap(c.order), c.head)
		}
	}
}
