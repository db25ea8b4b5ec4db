package datetime

import (
	"strings"
	"testing"
	"time"
)

func zurich(t *testing.T) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation("Europe/Zurich")
	if err != nil {
		t.Skip("no zoneinfo: ", err)
	}
	return loc
}

// TestMatchTemplates covers each template family and fail2ban's time rules.
// now = 2005-08-14T10:00:00Z (12:00 CEST), zone-less stamps read in Zurich.
func TestMatchTemplates(t *testing.T) {
	loc := zurich(t)
	now := time.Unix(testNow, 0)
	const (
		noMatch = "NO MATCH"
		invalid = "INVALID"
	)
	cases := []struct {
		name, pattern, line string
		text                string // matched date text
		want                string // RFC3339(Nano) time, invalid or noMatch
	}{
		// syslog
		{"syslog", "{^LN-BEG}", "Aug 14 11:00:00 host sshd[1]: x", "Aug 14 11:00:00", "2005-08-14T11:00:00+02:00"},
		{"syslog within a day ahead keeps the year", "{^LN-BEG}", "Aug 15 11:00:00 host", "Aug 15 11:00:00", "2005-08-15T11:00:00+02:00"},
		{"syslog more than a day ahead is last year", "{^LN-BEG}", "Aug 16 11:00:00 host", "Aug 16 11:00:00", "2004-08-16T11:00:00+02:00"},
		{"syslog winter time", "{^LN-BEG}", "Nov 24 19:40:51 host", "Nov 24 19:40:51", "2004-11-24T19:40:51+01:00"},
		{"syslog weekday and year", "{^LN-BEG}", "Sun Aug 14 11:00:00 2005 x", "Sun Aug 14 11:00:00 2005", "2005-08-14T11:00:00+02:00"},
		{"syslog year after day", "{^LN-BEG}", "Sun Aug 14 2005 11:00:00 x", "Sun Aug 14 2005 11:00:00", "2005-08-14T11:00:00+02:00"},
		{"syslog fraction is matched and dropped", "{^LN-BEG}", "Aug 14 11:00:00.123456 x", "Aug 14 11:00:00.123456", "2005-08-14T11:00:00+02:00"},
		{"syslog space padded day", "{^LN-BEG}", "Aug  4 09:00:00 x", "Aug  4 09:00:00", "2005-08-04T09:00:00+02:00"},
		{"syslog lower case", "{^LN-BEG}", "aug 14 11:00:00 x", "aug 14 11:00:00", "2005-08-14T11:00:00+02:00"},
		{"syslog leading non-word chars", "{^LN-BEG}", "[Aug 14 11:00:00] x", "Aug 14 11:00:00", "2005-08-14T11:00:00+02:00"},
		{"syslog hour 29 matches but is no date", "{^LN-BEG}", "Aug 14 29:00:00 x", "Aug 14 29:00:00", invalid},
		{"syslog Feb 29 in a common year", "{^LN-BEG}", "Feb 29 11:00:00 x", "Feb 29 11:00:00", invalid},
		{"anchored list ignores dates later in the line", "{^LN-BEG}", "host: Aug 14 11:00:00", "", noMatch},
		{"default list finds dates anywhere", "", "host: Aug 14 11:00:00 x", "Aug 14 11:00:00", "2005-08-14T11:00:00+02:00"},
		// ISO 8601 / RFC 3339
		{"iso zulu", "{^LN-BEG}", "2005-08-14T10:00:00Z x", "2005-08-14T10:00:00Z", "2005-08-14T10:00:00Z"},
		{"iso comma fraction and offset", "{^LN-BEG}", "2005-08-14 10:00:00,123 +0100 x", "2005-08-14 10:00:00,123 +0100", "2005-08-14T09:00:00Z"},
		{"rfc3339 offset with colon", "{^LN-BEG}", "2005-08-14T10:00:00.5+02:00 x", "2005-08-14T10:00:00.5+02:00", "2005-08-14T08:00:00Z"},
		{"iso hour-only offset", "{^LN-BEG}", "2005-08-14 10:00:00 -01 x", "2005-08-14 10:00:00 -01", "2005-08-14T11:00:00Z"},
		{"iso local", "{^LN-BEG}", "2005/08/14 10:00:00 x", "2005/08/14 10:00:00", "2005-08-14T10:00:00+02:00"},
		{"iso UTC word", "{^LN-BEG}", "2005-08-14T10:00:00 UTC x", "2005-08-14T10:00:00 UTC", "2005-08-14T10:00:00Z"},
		{"iso year outside %ExY", "{^LN-BEG}", "1999-08-14 10:00:00 x", "", noMatch},
		{"year 0000 matches but is no date", "{^LN-BEG}%Y-%m-%d %H:%M:%S", "0000-12-30 11:22:33 x", "0000-12-30 11:22:33", invalid},
		{"compact iso", "{^LN-BEG}", "20050814T100000 x", "20050814T100000", "2005-08-14T10:00:00+02:00"},
		// other default templates
		{"mysql", "{^LN-BEG}", "050814 10:00:00 x", "050814 10:00:00", "2005-08-14T10:00:00+02:00"},
		{"day/month/year", "{^LN-BEG}", "14/08/2005 10:00:00 x", "14/08/2005 10:00:00", "2005-08-14T10:00:00+02:00"},
		{"month-day-year", "{^LN-BEG}", "08-14-2005 10:00:00.5 x", "08-14-2005 10:00:00.5", "2005-08-14T10:00:00+02:00"},
		{"cpanel", "{^LN-BEG}", "08/14/2005:10:00:00 x", "08/14/2005:10:00:00", "2005-08-14T10:00:00+02:00"},
		{"named/roundcube", "{^LN-BEG}", "14-Aug-2005 10:00:00 +0200 x", "14-Aug-2005 10:00:00 +0200", "2005-08-14T08:00:00Z"},
		{"tomcat am/pm", "{^LN-BEG}", "Aug 14, 2005 12:30:00 AM x", "Aug 14, 2005 12:30:00 AM", "2005-08-14T00:30:00+02:00"},
		{"tomcat pm", "{^LN-BEG}", "Aug 14, 2005 1:30:00 PM x", "Aug 14, 2005 1:30:00 PM", "2005-08-14T13:30:00+02:00"},
		{"assp", "{^LN-BEG}", "Aug-14-05 10:00:00 x", "Aug-14-05 10:00:00", "2005-08-14T10:00:00+02:00"},
		{"x11vnc", "{^LN-BEG}", "<08/14/05@10:00:00> x", "<08/14/05@10:00:00>", "2005-08-14T10:00:00+02:00"},
		{"time only today", "{^LN-BEG}", "11:00:00 x", "11:00:00", "2005-08-14T11:00:00+02:00"},
		{"time only in the future is yesterday", "{^LN-BEG}", "13:00:00 x", "13:00:00", "2005-08-13T13:00:00+02:00"},
		{"zone name first", "{^LN-BEG}", "PDT Aug 14 10:00:00 x", "PDT Aug 14 10:00:00", "2005-08-14T17:00:00Z"},
		{"fixed CEST", "{^LN-BEG}", "CEST Aug 14 10:00:00 x", "CEST Aug 14 10:00:00", "2005-08-14T08:00:00Z"},
		{"unknown zone name", "{^LN-BEG}", "XYZ Aug 14 10:00:00 x", "XYZ Aug 14 10:00:00", invalid},
		{"zone offset first", "{^LN-BEG}", "+0200 Aug 14 10:00:00 x", "+0200 Aug 14 10:00:00", "2005-08-14T08:00:00Z"},
		// epoch and TAI64N
		{"epoch keeps fractions", "EPOCH", "1124013600.500 x", "1124013600.500", "2005-08-14T10:00:00.5Z"},
		{"epoch fraction needs three digits", "EPOCH", "1124013600.5 x", "1124013600", "2005-08-14T10:00:00Z"},
		{"epoch in square brackets", "{^LN-BEG}EPOCH", "[1124013600] x", "1124013600", "2005-08-14T10:00:00Z"},
		{"epoch in selinux audit", "EPOCH", "type=USER_AUTH msg=audit(1124013600.123:42): x", "1124013600.123", "2005-08-14T10:00:00.123Z"},
		{"lepoch milliseconds", "LEPOCH", "1124013600123 x", "1124013600123", "2005-08-14T10:00:00.123Z"},
		{"lepoch microseconds", "LEPOCH", "1124013600123456 x", "1124013600123456", "2005-08-14T10:00:00.123456Z"},
		{"epoch inside a custom pattern", "^\\[{EPOCH}\\]", "[1124013600] x", "[1124013600]", "2005-08-14T10:00:00Z"},
		{"tai64n", "{^LN-BEG}TAI64N", "@4000000042fef6c90b5cb2fc x", "@4000000042fef6c90b5cb2fc", "2005-08-14T07:46:17Z"},
		// {DATE} and custom %-patterns
		{"clf via {DATE}", "^[^\\[]*\\[({DATE})\n{^LN-BEG}", `192.0.2.1 - - [14/Aug/2005:10:00:00 +0200] "GET /" 404`, "14/Aug/2005:10:00:00 +0200", "2005-08-14T08:00:00Z"},
		// without a group of its own the whole pattern is the date text (cut out)
		{"rfc5424 via {DATE}", "^<\\d+>\\d+\\s+{DATE}", "<34>1 2005-08-14T10:00:00.003Z host app", "<34>1 2005-08-14T10:00:00.003Z", "2005-08-14T10:00:00Z"},
		{"%y: two-digit years are 20xx", "^%y-%m-%d %H:%M", "99-01-01 10:00 x", "99-01-01 10:00", "2099-01-01T10:00:00+01:00"},
		{"%j day of year", "^%j %Y %H:%M", "226 2005 10:00 x", "226 2005 10:00", "2005-08-14T10:00:00+02:00"},
		{"%U week and %w weekday", "^%U %w %Y %H:%M", "33 0 2005 10:00 x", "33 0 2005 10:00", "2005-08-14T10:00:00+02:00"},
		{"%W week and %a weekday", "^%W %a %Y %H:%M", "32 Sun 2005 10:00 x", "32 Sun 2005 10:00", "2005-08-14T10:00:00+02:00"},
		{"%A %B %I %p", "%A, %B %d, %Y %I:%M:%S %p", "Sunday, August 14, 2005 10:00:00 PM x", "Sunday, August 14, 2005 10:00:00 PM", "2005-08-14T22:00:00+02:00"},
		{"%l 12-hour with space", "^%m/%d/%y %l:%M:%S %p", "08/14/05  9:00:00 pm x", "08/14/05  9:00:00 pm", "2005-08-14T21:00:00+02:00"},
		{"%Exz abbreviation with offset", "^%Exz %H:%M:%S", "CEST+01 10:00:00 x", "CEST+01 10:00:00", "2005-08-14T07:00:00Z"},
		{"%ExZ single letter", "^%ExZ %H:%M:%S", "A 10:00:00 x", "A 10:00:00", "2005-08-14T09:00:00Z"},
		{"%Exd %Exm %Exy", "^%Exd.%Exm.%Exy %Exk:%M", "14.08.05 9:30 x", "14.08.05 9:30", "2005-08-14T09:30:00+02:00"},
		{"%% literal", "^%Y%%%m%%%d", "2005%08%14 x", "2005%08%14", "2005-08-14T00:00:00+02:00"},
		{"month without day is no date", "^%Y-%m", "2005-08 x", "2005-08", invalid},
		{"word boundary required", "%Y-%m-%d %H:%M:%S", "x2005-08-14 10:00:00 y", "", noMatch},
		{"** suppresses the boundaries", "**%Y-%m-%d %H:%M:%S**", "x2005-08-14 10:00:00y", "2005-08-14 10:00:00", "2005-08-14T10:00:00+02:00"},
		{"{UNB} suppresses the boundaries", "{UNB}%Y-%m-%d", "x2005-08-14y", "2005-08-14", "2005-08-14T00:00:00+02:00"},
		{"{NONE} matches an empty date", "{NONE}", "anything", "", ""},
		{"several patterns", "^%d.%m.%Y %H:%M\n{^LN-BEG}", "Aug 14 11:00:00 x", "Aug 14 11:00:00", "2005-08-14T11:00:00+02:00"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d, err := New(c.pattern, loc)
			if err != nil {
				t.Fatalf("New(%q): %v", c.pattern, err)
			}
			m, ok := d.Match(c.line, now)
			if c.want == noMatch {
				if ok {
					t.Fatalf("matched %q, want no match", c.line[m.Start:m.End])
				}
				return
			}
			if !ok {
				t.Fatalf("no match in %q", c.line)
			}
			if got := c.line[m.Start:m.End]; got != c.text {
				t.Errorf("text %q, want %q", got, c.text)
			}
			switch c.want {
			case invalid, "":
				if m.Valid {
					t.Errorf("valid time %v, want none", m.Time)
				}
			default:
				want, err := time.Parse(time.RFC3339Nano, c.want)
				if err != nil {
					t.Fatal(err)
				}
				if !m.Valid || !m.Time.Equal(want) {
					t.Errorf("time %v (valid %v), want %v", m.Time, m.Valid, want)
				}
				if m.Valid && m.Time.Location() != loc {
					t.Errorf("time in %v, want %v", m.Time.Location(), loc)
				}
			}
		})
	}
}

func TestNewErrors(t *testing.T) {
	for _, p := range []string{
		"%q",                    // unknown directive
		"%s %H",                 // %s is not a fail2ban directive
		"100% %H:%M",            // unescaped percent
		"%Y-%m-%d\n%Y-%m-%d",    // duplicate template
		"(?i)%b %d",             // global flag after the start (Python 3.11 rejects it)
		"%Y-%m-%d (unbalanced",  // broken regex
		"[{DATE}]",              // broken regex around {DATE}
		"^(?P<x>a)(?P<x>b) %H",  // duplicate group name
		"%H:%M:%S\n%Exq %H:%M",  // bad directive on the second line
		"{^LN-BEG}%H:%M:%S\n%H", // fine, then %H alone: fine too -> no error expected below
	} {
		_, err := New(p, time.UTC)
		if p == "{^LN-BEG}%H:%M:%S\n%H" {
			if err != nil {
				t.Errorf("New(%q): unexpected error %v", p, err)
			}
			continue
		}
		if err == nil {
			t.Errorf("New(%q): no error", p)
		}
	}
}

// TestTemplateLists checks the default lists' composition and order.
func TestTemplateLists(t *testing.T) {
	all, _ := New("", time.UTC)
	anch, _ := New("{^LN-BEG}", time.UTC)
	if got := len(all.Templates()); got != 31 {
		t.Errorf("default list has %d templates, want 31 (14 anchored copies + 17)", got)
	}
	if got := len(anch.Templates()); got != 17 {
		t.Errorf("{^LN-BEG} list has %d templates, want 17", got)
	}
	for i, n := range anch.Templates() {
		if !strings.HasPrefix(n, "{^LN-BEG}") && !strings.HasPrefix(n, "^") {
			t.Errorf("{^LN-BEG} template %d %q is not line-anchored", i, n)
		}
	}
	for i, n := range all.Templates()[:14] {
		if !strings.HasPrefix(n, "{^LN-BEG}") {
			t.Errorf("default template %d %q: anchored copies must come first", i, n)
		}
	}
	if n := all.Templates()[14]; strings.HasPrefix(n, "{^LN-BEG}") || !strings.Contains(n, "ExYear") {
		t.Errorf("first original template is %q, want the unanchored ISO one", n)
	}
	// {DATE}: the 17 originals wrapped, then {^LN-BEG} adds the anchored list
	dp, _ := New("^[^\\[]*\\[({DATE})\n{^LN-BEG}", time.UTC)
	if got := len(dp.Templates()); got != 34 {
		t.Errorf("{DATE}+{^LN-BEG} list has %d templates, want 34", got)
	}
}

// TestReorder: a template that keeps winning moves to the front, and the
// detector then tries it first.
func TestReorder(t *testing.T) {
	d, _ := New("{^LN-BEG}", time.UTC)
	now := time.Unix(testNow, 0)
	first := d.Templates()[0]
	if !strings.Contains(first, "ExYear(?P<_sep>") {
		t.Fatalf("first template %q, want ISO", first)
	}
	for i := 0; i < 3; i++ {
		if _, ok := d.Match("Aug 14 11:00:00 host x", now); !ok {
			t.Fatal("no match")
		}
	}
	if got := d.Templates()[0]; !strings.Contains(got, "MON Day %k") {
		t.Errorf("after syslog lines the first template is %q", got)
	}
	if d.lastIdx != 0 {
		t.Errorf("last template index %d, want 0", d.lastIdx)
	}
	// an ISO line still matches (search falls through to the other templates)
	m, ok := d.Match("2005-08-14T10:00:00Z x", now)
	if !ok || !m.Valid || m.Time.Unix() != testNow {
		t.Errorf("ISO after syslog: %+v %v", m, ok)
	}
}

// TestMatchAllocs: the common stamps are parsed without allocating.
func TestMatchAllocs(t *testing.T) {
	loc := zurich(t)
	for _, c := range []struct{ pattern, line string }{
		{"{^LN-BEG}", "Nov 24 19:40:51 host sshd[123]: Failed password for root from 192.0.2.1 port 22 ssh2"},
		{"{^LN-BEG}", "2005-08-14T10:00:00.123+02:00 host sshd[123]: x"},
		{"", "Nov 24 19:40:51 host sshd[123]: x"},
		{"^[^\\[]*\\[({DATE})\n{^LN-BEG}", `192.0.2.1 - - [14/Aug/2005:10:00:00 +0200] "GET / HTTP/1.1" 404 100`},
		{"{^LN-BEG}Epoch\n{^LN-BEG}", "1124013600.123    100 192.0.2.1 TCP_DENIED/403 3702 GET http://example.com/"},
	} {
		d, _ := New(c.pattern, loc)
		now := time.Unix(testNow, 0)
		d.Match(c.line, now)
		if n := testing.AllocsPerRun(100, func() { d.Match(c.line, now) }); n != 0 {
			t.Errorf("%q: %v allocations per Match, want 0", c.line, n)
		}
	}
}

func TestParseZone(t *testing.T) {
	for _, c := range []struct {
		in   string
		want int // seconds east, or -1 for an error
	}{
		{"UTC", 0}, {"GMT", 0}, {"Z", 0}, {"CET", 3600}, {"CEST", 7200}, {"PDT", -7 * 3600},
		{"UTC+0200", 7200}, {"+02:00", 7200}, {"-0130", -5400}, {"+01", 3600}, {"CET-01", 0},
		{"NPT", 5*3600 + 45*60}, {"", -1}, {"XYZ", -1}, {"utc", -1}, {"+2", -1}, {"UTC+02:0", -1}, {"Europe/Zurich", -1},
	} {
		loc, err := ParseZone(c.in)
		if c.want == -1 {
			if err == nil {
				t.Errorf("ParseZone(%q): no error", c.in)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseZone(%q): %v", c.in, err)
			continue
		}
		if _, off := time.Date(2005, 8, 14, 0, 0, 0, 0, loc).Zone(); off != c.want {
			t.Errorf("ParseZone(%q) offset %d, want %d", c.in, off, c.want)
		}
	}
}

func TestDefaultTablesAligned(t *testing.T) {
	if len(defaultFirst) != len(defaultPatterns) {
		t.Fatalf("defaultFirst has %d entries for %d patterns", len(defaultFirst), len(defaultPatterns))
	}
}

// TestRepeatedHour: a wall time that exists twice (end of DST) keeps the
// offset of the previous conversion, like glibc's mktime.
func TestRepeatedHour(t *testing.T) {
	loc := zurich(t)
	now := time.Unix(testNow, 0)
	for _, c := range []struct {
		before, line, want string
	}{
		{"2005-10-30 01:59:59 x", "2005-10-30 02:30:00 x", "2005-10-30T00:30:00Z"}, // still summer time
		{"2005-12-01 00:00:00 x", "2005-10-30 02:30:00 x", "2005-10-30T01:30:00Z"}, // winter time
		{"", "2005-10-30 02:30:00 x", "2005-10-30T01:30:00Z"},                      // no history
		{"2005-03-27 01:59:59 x", "2005-03-27 03:00:00 x", "2005-03-27T01:00:00Z"}, // after the skipped hour
	} {
		d, _ := New("{^LN-BEG}", loc)
		if c.before != "" {
			d.Match(c.before, now)
		}
		m, ok := d.Match(c.line, now)
		want, _ := time.Parse(time.RFC3339, c.want)
		if !ok || !m.Valid || !m.Time.Equal(want) {
			t.Errorf("after %q: %q -> %v (ok %v), want %v", c.before, c.line, m.Time.UTC(), ok, want)
		}
	}
}
