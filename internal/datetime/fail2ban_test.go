package datetime

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const (
	f2bPackage = "/usr/lib/python3/dist-packages/fail2ban"
	f2bConfig  = "/etc/fail2ban"
	testNow    = 1124013600 // 2005-08-14T10:00:00Z, fail2ban's TEST_NOW
)

// extraPatterns are datepatterns beyond the stock filters' ones, covering the
// keyword and directive forms.
var extraPatterns = []string{
	"EPOCH", "LEPOCH", "{^LN-BEG}LEPOCH", "^EPOCH", "TAI64N", "^TAI64N", "{NONE}", "{DEFAULT}", "%H:%M:%S\n{DEFAULT}",
	"{NONE}\n{^LN-BEG}", "{UNB}^\n%Y-%m-%d",
	"%Y-%m-%d %H:%M:%S", "^%Y-%m-%d %H:%M:%S", "{UNB}%Y-%m-%d", "**%Y-%m-%d**",
	"%d/%b/%Y:%H:%M:%S %z", "%ExY%Exm%Exd %ExH:%ExM:%ExS", "%a %b %d %H:%M:%S %Y",
	"%A, %B %d, %Y %I:%M:%S %p", "%m/%d/%y %l:%M:%S %p", "%j %Y %H:%M", "%U %w %Y %H:%M",
	"%ExZ %H:%M:%S", "%Exz %H:%M:%S", "%Z %b %d %H:%M:%S", "%c", "%x %X", "%H:%M:%S",
	"%Exd.%Exm.%Exy %Exk:%M", "%d-%m-%Y %k:%M:%S", "{EPOCH} ms", "audit\\({LEPOCH}",
	"%s", "%q bad", "(?i)%b %d", "%Y-%m-%d\n%Y-%m-%d", "x{DATE}y", "[{DATE}]",
	"^<\\d+>\\d+\\s+{DATE}\n{^LN-BEG}",
}

// extraLines exercise every template family, edge values and odd input.
var extraLines = []string{
	"Nov 24 19:40:51 host sshd[123]: Failed password",
	"Aug 14 12:51:04 host x", "Aug 15 10:00:00 host future within a day",
	"Aug 16 10:00:00 host future beyond a day", "Feb 29 11:00:00 leap",
	"Sun Aug 14 11:00:00 2005 msg", "Sun Aug 14 11:00:00.123456 2005 msg", "Aug 14 2005 11:00:00 msg",
	"Aug  4 09:00:00 host", "Aug 4  9:00:00 host", "AUG 14 11:00:00 upper", "aug 14 11:00:00 lower",
	"Aug 14 11:00:00.1234567 too many digits", "Aug 14 11:00:00.123abc", "Aug 14 11:00:60 leap second",
	"Aug 14 29:00:00 bad hour", "Aug 32 11:00:00 bad day", "Aug 14 11:00:00 20051 x", "Aug 14 11:00:00 2005x",
	"<13>Aug 14 11:00:00 host", "[Aug 14 11:00:00] x", "x: Aug 14 11:00:00 inside",
	"2005-08-14T10:00:00Z x", "2005-08-14T10:00:00.123+02:00 x", "2005-08-14 10:00:00,123 +0100 x",
	"2005-08-14 10:00:00 +01 x", "2005-08-14  9:00:00 x", "2005/08/14 10:00:00 x", "2005.08.14 10:00:00 x",
	"2005-08-14T10:00:00UTC x", "2005-08-14T10:00:00 GMT x", "2005-08-14T10:00:00+0100x",
	"2005-08-14T10:00:00.1234567 x", "2005-8-4 10:00:00 x", "2005-13-14 10:00:00 x", "2005-08-14 24:00:00 x",
	"2005-08-14T10:00:00+01:0x", "[2005-08-14 10:00:00] x", "((2005-08-14 10:00:00 x", "prefix 2005-08-14 10:00:00 x",
	"0000-12-30 11:22:33 x", "2005-02-29 10:00:00 x",
	"14/08/2005 10:00:00 x", "14-08-05 10:00:00 x", "[14/Aug/2005:10:00:00 +0200] x", "14-Aug-2005 10:00:00.123 x",
	"14-Aug-2005 10:00:00 +0200 x", "08/14/2005:10:00:00 x", "08-14-2005 10:00:00.5 x",
	"1124013600 x", "[1124013600] x", "1124013600.123456 x", "1124013600123 x", "1124013600123.456 x",
	"1124013600123456 x", "type=USER_AUTH msg=audit(1124013600.123:42): x", "12:00:01 time only",
	"13:00:00 time only in the future", "<08/14/05@10:00:00> x", "050814 10:00:00 x", "050814  9:00:00 x",
	"Aug 14, 2005 9:00:00 AM x", "Aug 14, 2005 12:30:00 PM x", "Aug 14, 2005 12:30:00 am x",
	"Aug-14-05 10:00:00 x", "20050814T100000 x", "20050814 100000.123+0200 x",
	"PDT Aug 14 10:00:00 x", "CEST Aug 14 10:00:00 x", "XYZ Aug 14 10:00:00 x", "+0200 Aug 14 10:00:00 x",
	"@4000000042fef6c90b5cb2fc x", "x @4000000042fef6c90b5cb2fc y",
	"Sunday, August 14, 2005 10:00:00 AM x", "08/14/05 9:00:00 pm x", "226 2005 10:00 x", "32 0 2005 10:00 x",
	"CEST 10:00:00 x", "CEST+01 10:00:00 x", "A 10:00:00 x", "+01:30 10:00:00 x",
	"Sun Aug 14 10:00:00 2005", "08/14/05 10:00:00", "14.08.05 9:30", "14-08-2005 9:00:00",
	"1124013600 ms", "audit(1124013600123 x", "Aug 14", "x2005-08-14 10:00:00", "é Aug 14 10:00:00 x",
	"Aug 14 10:00:00 é", "2005-08-14 10:00:00é", "", "   ", "\t2005-08-14 10:00:00", "--2005-08-14 10:00:00",
	"---2005-08-14 10:00:00", "2005-08-14 10:00:00\x1cZ", "Aug 14 10:00:00.5 2005 x", "Mon Aug 14 10:00:00 x",
	"Mon Aug 14 2005 10:00:00 x", "Monday Aug 14 10:00:00 x", "x 2005-08-14 10:00:00 y 2005-08-14 11:00:00",
	"2005-08-14 10:00:00 then Aug 14 10:00:00", "Aug 14 10:00:00 then 2005-08-14 11:00:00",
	// Unicode digits: \d matches them and Python's int() reads them
	"2005-08-1٤ 10:00:00 x", "112401360٠ x", "Aug 14 1١:00:00 x", "𝟐𝟎𝟎𝟓-08-14 10:00:00",
	"Aug 14 10:00:00 ２００５ x", "ſep 14 10:00:00 x", "Kaug 14 10:00:00 x",
	// CLF zone words in other cases (the regex is case-insensitive)
	`192.0.2.1 - - [14/Aug/2005:10:00:00 Utc] "GET /"`, `192.0.2.1 - - [14/aug/2005:10:00:00 utc] "GET /"`,
	`192.0.2.1 - - [14/Aug/2005:10:00:00 Z] "GET /"`, `192.0.2.1 - - [14-Aug-2005 10:00:00.123 +02:00] x`,
	`192.0.2.1 - - [14/Aug/2005:10:00:00 +0200`, `[14/Aug/2005:10:00:00 gMT] x`,
	// DST transitions in Europe/Zurich: the repeated and the skipped hour
	"2005-10-30 02:30:00 x", "2005-10-30 01:59:59 x", "2005-10-30 03:00:00 x", "2005-03-27 02:30:00 x", "Oct 30 02:30:00 x", "Mar 27 02:00:00 x",
}

type f2bCase struct {
	P     int               `json:"p"`
	F     int               `json:"f"`
	Error string            `json:"error"`
	R     []json.RawMessage `json:"r"`
}

type f2bOut struct {
	Patterns []string `json:"patterns"`
	Files    []struct {
		Name  string   `json:"name"`
		Lines []string `json:"lines"`
	} `json:"files"`
	Cases     []f2bCase                       `json:"cases"`
	Templates map[string][][3]json.RawMessage `json:"templates"`
}

// TestAgainstFail2ban runs fail2ban's own DateDetector and this package over
// every line of fail2ban's sample logs (plus extraLines) for every stock
// datepattern (plus extraPatterns) and compares the matched text and time.
func TestAgainstFail2ban(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: runs fail2ban in python")
	}
	if _, err := os.Stat(f2bPackage); err != nil {
		t.Skip("fail2ban python package not installed")
	}
	py := findPython(t)
	// extraLines plus damaged variants of the corpus (deterministic)
	lines := append([]string(nil), extraLines...)
	corpus := corpusLines(t)
	rng := rand.New(rand.NewSource(2))
	for i := 0; i < 4000; i++ {
		lines = append(lines, strings.ToValidUTF8(mutate(rng, corpus[rng.Intn(len(corpus))]), "\uFFFD"))
	}
	in, _ := json.Marshal(map[string]any{
		"now": testNow, "config_dir": f2bConfig, "logs_dir": filepath.Join(f2bPackage, "tests/files/logs"),
		"extra_patterns": extraPatterns, "extra_lines": lines,
	})
	cmd := exec.Command(py, "testdata/f2b_dates.py")
	cmd.Stdin = bytes.NewReader(in)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	outb, err := cmd.Output()
	if err != nil {
		t.Fatalf("reference run: %v\n%s", err, stderr.String())
	}
	var out f2bOut
	if err := json.Unmarshal(outb, &out); err != nil {
		t.Fatal(err)
	}
	loc, err := time.LoadLocation("Europe/Zurich")
	if err != nil {
		t.Skip("no zoneinfo: ", err)
	}
	compareTemplates(t, &out, loc)
	now := time.Unix(testNow, 0)
	total, same := 0, 0
	var diffs []string
	perPattern := map[int]int{}
	for _, c := range out.Cases {
		p := out.Patterns[c.P]
		d, err := New(p, loc)
		if c.Error != "" {
			total++
			if err != nil {
				same++
			} else {
				diffs = append(diffs, fmt.Sprintf("pattern %q: fail2ban rejects it (%s), we accept it", p, c.Error))
			}
			continue
		}
		if err != nil {
			total++
			diffs = append(diffs, fmt.Sprintf("pattern %q: we reject it: %v", p, err))
			continue
		}
		f := out.Files[c.F]
		for i, raw := range c.R {
			line := f.Lines[i]
			total++
			want := describeRef(raw)
			m, ok := d.Match(line, now)
			got := describeOurs(line, m, ok)
			if equalDesc(want, got) {
				same++
				continue
			}
			perPattern[c.P]++
			if len(diffs) < 60 {
				diffs = append(diffs, fmt.Sprintf("pattern %q file %s line %q: fail2ban %s, palisade %s", p, f.Name, line, want, got))
			}
		}
	}
	for _, s := range diffs {
		t.Log(s)
	}
	for p, n := range perPattern {
		t.Logf("pattern %q: %d differences", out.Patterns[p], n)
	}
	pct := 100 * float64(same) / float64(total)
	t.Logf("compared with fail2ban: %d/%d identical (%.3f%%), %d patterns x %d files", same, total, pct, len(out.Patterns), len(out.Files))
	if pct < 99 {
		t.Errorf("agreement %.3f%% < 99%%", pct)
	}
	if same != total {
		t.Errorf("%d differences from fail2ban", total-same)
	}
}

type desc struct {
	matched bool
	text    string
	kind    string // "time", "none" (invalid), "empty", "error"
	epoch   float64
}

func (d desc) String() string {
	if !d.matched {
		return "no match"
	}
	if d.kind == "time" {
		return fmt.Sprintf("%q at %.6f (%s)", d.text, d.epoch, time.Unix(int64(math.Floor(d.epoch)), int64((d.epoch-math.Floor(d.epoch))*1e9)).UTC().Format(time.RFC3339Nano))
	}
	return fmt.Sprintf("%q %s", d.text, d.kind)
}

func describeRef(raw json.RawMessage) desc {
	var v []any
	if string(raw) == "null" || json.Unmarshal(raw, &v) != nil || len(v) != 2 {
		return desc{}
	}
	text, _ := v[0].(string)
	if text == "error" {
		return desc{matched: true, kind: "error"}
	}
	switch x := v[1].(type) {
	case float64:
		return desc{matched: true, text: text, kind: "time", epoch: x}
	case string:
		return desc{matched: true, text: text, kind: x}
	}
	return desc{matched: true, text: text, kind: "none"}
}

func describeOurs(line string, m Match, ok bool) desc {
	if !ok {
		return desc{}
	}
	if m.Start < 0 || m.End > len(line) || m.Start > m.End {
		return desc{matched: true, kind: "bad span"}
	}
	d := desc{matched: true, text: line[m.Start:m.End]}
	switch {
	case m.Start == m.End:
		d.kind = "empty"
	case !m.Valid:
		d.kind = "none"
	default:
		d.kind = "time"
		d.epoch = float64(m.Time.Unix()) + float64(m.Time.Nanosecond())/1e9
	}
	return d
}

func equalDesc(a, b desc) bool {
	if a.kind == "error" {
		// fail2ban raised an unexpected exception: we only require no crash
		return true
	}
	if a.matched != b.matched || a.text != b.text || a.kind != b.kind {
		return false
	}
	return a.kind != "time" || math.Abs(a.epoch-b.epoch) < 1e-5
}

// findPython returns a python3 that can import fail2ban (the system one first:
// a pyenv shim on PATH may lack the Debian package), or skips the test.
func findPython(t *testing.T) string {
	for _, py := range []string{"/usr/bin/python3", "python3"} {
		if exec.Command(py, "-c", "import fail2ban.server.datedetector").Run() == nil {
			return py
		}
	}
	t.Skip("no python3 that can import fail2ban")
	return ""
}

// compareTemplates checks that every detector starts with the same template
// list as fail2ban's: same names, same regexes (text), same anchoring flags.
func compareTemplates(t *testing.T, out *f2bOut, loc *time.Location) {
	checked := 0
	for key, list := range out.Templates {
		var pi int
		fmt.Sscan(key, &pi)
		p := out.Patterns[pi]
		d, err := New(p, loc)
		if err != nil {
			t.Errorf("pattern %q: %v", p, err)
			continue
		}
		if len(list) != len(d.tpls) {
			t.Errorf("pattern %q: %d templates, fail2ban has %d", p, len(d.tpls), len(list))
			continue
		}
		for i, raw := range list {
			var name, regex string
			var flags uint8
			_ = json.Unmarshal(raw[0], &name)
			_ = json.Unmarshal(raw[1], &regex)
			_ = json.Unmarshal(raw[2], &flags)
			regex = strings.ReplaceAll(regex, "20[012]", "20[0-2]") // same %ExY class
			// fail2ban names %Exk/%Exl "Ex%k"/"%Exk" depending on set order
			name = strings.NewReplacer("Ex%k", "%Exk", "Ex%l", "%Exl").Replace(name)
			got := d.tpls[i].t
			if got.name != name || got.regex != regex || got.flags != flags {
				t.Errorf("pattern %q template %d:\n got  %q %q %d\n want %q %q %d", p, i, got.name, got.regex, got.flags, name, regex, flags)
			}
			checked++
		}
	}
	t.Logf("template lists identical to fail2ban's: %d templates in %d detectors", checked, len(out.Templates))
}
