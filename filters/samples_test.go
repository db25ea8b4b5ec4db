package filters_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/palisade-project/palisade/internal/filter"
)

// minAgreement is the share of fail2ban's annotated failures (same host,
// same time) each built-in filter must find on fail2ban's sample logs.
const minAgreement = 0.95

// sampleFiles maps fail2ban's sample logs to the built-in filter that reads
// them (sshd-journal is the sshd sample for journal input).
func sampleFiles() map[string]string {
	return map[string]string{
		"sshd": "sshd", "sshd-journal": "sshd", "proftpd": "proftpd", "vsftpd": "vsftpd",
		"apache-auth": "apache-auth", "nginx-http-auth": "nginx-http-auth",
		"lighttpd-auth": "lighttpd-auth", "postfix": "postfix", "qmail": "qmail",
		"courier-auth": "courier-auth", "dovecot": "dovecot", "recidive": "recidive",
	}
}

// sampleDir finds fail2ban's annotated sample logs.
func sampleDir(t *testing.T) string {
	t.Helper()
	for _, pat := range []string{
		"/usr/lib/python3/dist-packages/fail2ban/tests/files/logs",
		"/usr/lib/python3*/dist-packages/fail2ban/tests/files/logs",
		"/usr/lib/python3*/site-packages/fail2ban/tests/files/logs",
		"/usr/local/lib/python3*/dist-packages/fail2ban/tests/files/logs",
		"/usr/local/lib/python3*/site-packages/fail2ban/tests/files/logs",
	} {
		m, _ := filepath.Glob(pat)
		for _, d := range m {
			if st, err := os.Stat(filepath.Join(d, "sshd")); err == nil && !st.IsDir() {
				return d
			}
		}
	}
	t.Skip("fail2ban's sample logs (package fail2ban, tests/files/logs) are not installed")
	return ""
}

// deliberate lists the sample lines (file -> line number) where the
// built-in filter deliberately reports something else than fail2ban; each
// is explained in docs/filters.md. They are left out of the agreement
// ratio, and the test fails if one of them agrees after all (the list must
// not hide anything).
func deliberate() map[string]map[int]string {
	ruser := "pre-6.3 OpenSSH ruser form: ambiguous with a user name holding \" from ADDR\"; the last address is sshd's"
	authInfo := "user name holding \" from ADDR port N ssh2:\": the last address is sshd's"
	return map[string]map[int]string{
		"sshd":            {132: ruser, 135: ruser, 137: ruser, 144: authInfo},
		"sshd-journal":    {133: ruser, 136: ruser, 138: ruser, 145: authInfo},
		"nginx-http-auth": {14: "user name repeats nginx's message: ambiguous with a forged Host header, no address is banned"},
	}
}

// annotation is a "# failJSON:" object.
type annotation struct {
	Match      bool    `json:"match"`
	Host       string  `json:"host"`
	Time       *string `json:"time"`
	Constraint string  `json:"constraint"`
}

// sampleStats are the counts for one sample file.
type sampleStats struct {
	want, agree int      // annotated failures, and those found with the same host and time
	deliberate  int      // annotated failures listed in deliberate()
	stale       []string // deliberate differences that agree after all
	falseMatch  int      // lines annotated "no failure" where the filter reported one
	misses      []string // "line N [variant]: problem" for the log
}

var annotationRe = regexp.MustCompile(`^#+ ?(failJSON|(?:file|filter)Options|addFILE):(.+)$`)

// TestSampleAgreement replays fail2ban's annotated sample logs through the
// built-in filters, in the order and with the options fail2ban's own sample
// test uses (filterOptions blocks, constraints, journal input), and
// requires that for at least 95% of the (line, options) pairs annotated as
// a failure the filter reports a failure for the same host at the same
// time. Deliberate differences are documented in docs/filters.md.
func TestSampleAgreement(t *testing.T) {
	dir := sampleDir(t)
	loc := zurich(t)
	files := sampleFiles()
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	var agree, want int // over every file, deliberate differences included
	for _, file := range names {
		t.Run(file, func(t *testing.T) {
			st := replaySample(t, filepath.Join(dir, file), files[file], loc)
			agree += st.agree
			want += st.want
			if st.want == 0 {
				t.Fatalf("%s: no annotated failures read", file)
			}
			ratio := float64(st.agree) / float64(st.want-st.deliberate)
			t.Logf("%-16s filter %-16s agreement %d/%d = %.1f%% (raw %d/%d = %.1f%%, %d deliberate), false matches %d",
				file, files[file], st.agree, st.want-st.deliberate, 100*ratio,
				st.agree, st.want, 100*float64(st.agree)/float64(st.want), st.deliberate, st.falseMatch)
			for _, s := range st.stale {
				t.Errorf("%s: listed as a deliberate difference but agrees with fail2ban: %s", file, s)
			}
			for _, m := range st.misses {
				t.Logf("  %s", m)
			}
			if ratio < minAgreement {
				t.Errorf("%s: agreement %.1f%% < %.0f%%", file, 100*ratio, 100*minAgreement)
			}
		})
	}
	// The acceptance bar holds on the raw numbers too: deliberate
	// differences count as disagreements here.
	if want == 0 || float64(agree)/float64(want) < minAgreement {
		t.Errorf("overall raw agreement %d/%d is below %.0f%%", agree, want, 100*minAgreement)
	}
	t.Logf("overall raw agreement %d/%d = %.1f%%", agree, want, 100*float64(agree)/float64(max(want, 1)))
}

// replaySample runs one sample file the way fail2ban's sample test does.
func replaySample(t *testing.T, path, name string, loc *time.Location) sampleStats {
	t.Helper()
	fh, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()

	var st sampleStats
	known := deliberate()[filepath.Base(path)]
	cache := map[string]*filter.Filter{} // one filter object per option set, like fail2ban's
	get := func(v variant) *filter.Filter {
		key := v.String()
		if f, ok := cache[key]; ok {
			return f
		}
		f, err := load(t, v, loc)
		if err != nil {
			t.Fatalf("%v: %v", v, err)
		}
		cache[key] = f
		return f
	}
	fileOpts := map[string]string{}
	current := []variant{{name: name}}
	ignoreBlock := false
	var pending *annotation
	sc := bufio.NewScanner(fh)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimRight(sc.Text(), "\r\n")
		if m := annotationRe.FindStringSubmatch(line); m != nil {
			switch m[1] {
			case "failJSON":
				var a annotation
				if err := json.Unmarshal([]byte(m[2]), &a); err != nil {
					t.Fatalf("%s:%d: failJSON: %v", path, n, err)
				}
				pending = &a
			case "fileOptions":
				var o map[string]any
				if err := json.Unmarshal([]byte(m[2]), &o); err != nil {
					t.Fatalf("%s:%d: fileOptions: %v", path, n, err)
				}
				for k, v := range o {
					fileOpts[k] = fmt.Sprint(v)
				}
			case "filterOptions":
				current, ignoreBlock = parseFilterOptions(t, m[2], name, fileOpts)
			}
			continue
		}
		if strings.HasPrefix(line, "#") || strings.TrimSpace(line) == "" {
			continue
		}
		a := pending
		pending = nil
		if ignoreBlock {
			continue
		}
		if a == nil {
			a = &annotation{}
		}
		for _, v := range current {
			if !constraintHolds(t, a.Constraint, name, v.opts) {
				continue
			}
			res := process(get(v), v, line)
			checkLine(&st, a, res, v, n, loc, known[n])
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return st
}

func checkLine(st *sampleStats, a *annotation, res filter.Result, v variant, n int, loc *time.Location, why string) {
	if !a.Match {
		if len(res.Failures) > 0 {
			st.falseMatch++
			st.misses = append(st.misses, fmt.Sprintf("line %d %v: false match %s", n, v, res.Failures[0].ID))
		}
		return
	}
	st.want++
	if why != "" {
		st.deliberate++
		if agrees(a, res, v, loc) {
			st.stale = append(st.stale, fmt.Sprintf("line %d %v", n, v))
		}
		st.misses = append(st.misses, fmt.Sprintf("line %d %v: deliberate: %s", n, v, why))
		return
	}
	if len(res.Failures) == 0 {
		st.misses = append(st.misses, fmt.Sprintf("line %d %v: missed (want %s)", n, v, a.Host))
		return
	}
	if agrees(a, res, v, loc) {
		st.agree++
		return
	}
	got := res.Failures[0]
	st.misses = append(st.misses, fmt.Sprintf("line %d %v: got %s at %s, want %s at %v",
		n, v, got.ID, got.Time.In(loc).Format(time.DateTime), a.Host, deref(a.Time)))
}

// agrees reports whether res holds a failure for the annotated host at the
// annotated time.
func agrees(a *annotation, res filter.Result, v variant, loc *time.Location) bool {
	for _, f := range res.Failures {
		if a.Host != "" && !sameHost(f.ID, a.Host) {
			continue
		}
		if a.Time != nil && !v.journal() {
			want, ok := parseSampleTime(*a.Time, loc)
			if !ok || f.Time.IsZero() || f.Time.Unix() != want.Unix() {
				continue
			}
		}
		return true
	}
	return false
}

func deref(s *string) string {
	if s == nil {
		return "-"
	}
	return *s
}

// parseFilterOptions reads a filterOptions value (an object or a list of
// objects) into the variants of the block, and whether the block is
// skipped for this filter (its last test.condition is false).
func parseFilterOptions(t *testing.T, raw, name string, fileOpts map[string]string) ([]variant, bool) {
	t.Helper()
	var list []map[string]any
	if err := json.Unmarshal([]byte(raw), &list); err != nil {
		var one map[string]any
		if err := json.Unmarshal([]byte(raw), &one); err != nil {
			t.Fatalf("filterOptions %s: %v", raw, err)
		}
		list = []map[string]any{one}
	}
	ignore := false
	var out []variant
	for _, entry := range list {
		opts := map[string]string{}
		for k, v := range fileOpts {
			opts[k] = v
		}
		for k, v := range entry {
			opts[k] = fmt.Sprint(v)
		}
		if c, ok := opts["test.condition"]; ok {
			ignore = !constraintHolds(t, c, name, opts)
		}
		for k := range opts {
			if strings.HasPrefix(k, "test.") {
				delete(opts, k)
			}
		}
		out = append(out, variant{name: name, opts: opts})
	}
	return out, ignore
}

var (
	nameCond = regexp.MustCompile(`^name\s*(==|!=)\s*'([^']*)'$`)
	optCond  = regexp.MustCompile(`^opts\.get\('([^']*)'\)\s*(==|!=)\s*'([^']*)'$`)
)

// constraintHolds evaluates the few Python expressions the samples use.
func constraintHolds(t *testing.T, expr, name string, opts map[string]string) bool {
	expr = strings.TrimSpace(expr)
	if expr == "" {
		return true
	}
	if m := nameCond.FindStringSubmatch(expr); m != nil {
		return (name == m[2]) == (m[1] == "==")
	}
	if m := optCond.FindStringSubmatch(expr); m != nil {
		return (opts[m[1]] == m[3]) == (m[2] == "==")
	}
	t.Fatalf("unsupported sample condition %q", expr)
	return false
}

// parseSampleTime reads failJSON's "YYYY-MM-DDTHH:MM:SS[.ffffff]" in loc
// (fields may have one digit, as Python's strptime allows).
func parseSampleTime(s string, loc *time.Location) (time.Time, bool) {
	d, c, ok := strings.Cut(s, "T")
	if !ok {
		return time.Time{}, false
	}
	c, _, _ = strings.Cut(c, ".")
	dp := strings.Split(d, "-")
	cp := strings.Split(c, ":")
	if len(dp) != 3 || len(cp) != 3 {
		return time.Time{}, false
	}
	var v [6]int
	for i, p := range append(dp, cp...) {
		x, err := strconv.Atoi(p)
		if err != nil {
			return time.Time{}, false
		}
		v[i] = x
	}
	return time.Date(v[0], time.Month(v[1]), v[2], v[3], v[4], v[5], 0, loc), true
}
