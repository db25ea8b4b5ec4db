package filters_test

import (
	"net/netip"
	"sort"
	"testing"
	"time"
	_ "time/tzdata" // Europe/Zurich without depending on the host's zoneinfo

	"github.com/palisade-project/palisade/filters"
	"github.com/palisade-project/palisade/internal/config"
	"github.com/palisade-project/palisade/internal/datetime"
	"github.com/palisade-project/palisade/internal/filter"
)

// testNow is fail2ban's frozen test time (2005-08-14 12:00 CEST).
func testNow() time.Time { return time.Date(2005, 8, 14, 10, 0, 0, 0, time.UTC) }

// zurich is the zone of fail2ban's sample annotations.
func zurich(t testing.TB) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation("Europe/Zurich")
	if err != nil {
		t.Fatalf("load Europe/Zurich: %v", err)
	}
	return loc
}

// dates adapts a datetime.Detector to filter.DateDetector.
type dates struct{ d *datetime.Detector }

func (a dates) Detect(line string, now time.Time) (filter.DateMatch, bool) {
	m, ok := a.d.Match(line, now)
	return filter.DateMatch{Start: m.Start, End: m.End, Time: m.Time, Valid: m.Valid}, ok
}

// variant is a built-in filter with its arguments (filter = NAME[k=v,...]).
type variant struct {
	name string
	opts map[string]string
}

func (v variant) String() string {
	s := v.name
	if len(v.opts) == 0 {
		return s
	}
	s += "["
	for i, k := range sortedKeys(v.opts) {
		if i > 0 {
			s += ","
		}
		s += k + "=" + v.opts[k]
	}
	return s + "]"
}

func (v variant) journal() bool { return v.opts["logtype"] == "journal" }

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// load builds a built-in filter the way a jail does, requiring RE2.
func load(t testing.TB, v variant, loc *time.Location) (*filter.Filter, error) {
	t.Helper()
	def, err := config.LoadFilter(config.FilterSpec{Name: v.name, Options: optionList(v)}, nil, filters.FS())
	if err != nil {
		return nil, err
	}
	o := filter.Options{
		Location:   loc,
		Now:        testNow,
		Clock:      testNow,
		RequireRE2: true,
		Journal:    v.journal(),
	}
	if !o.Journal {
		d, err := datetime.New(def.DatePattern, loc)
		if err != nil {
			return nil, err
		}
		o.Dates = dates{d}
	}
	return filter.New(def, o)
}

// process feeds one line (journal filters get the frozen "now").
func process(f *filter.Filter, v variant, line string) filter.Result {
	if v.journal() {
		return f.ProcessAt(line, testNow())
	}
	return f.Process(line)
}

// sameHost compares a failure id with an expected host the way fail2ban's
// sample test does: same text, or the same address once both parse.
func sameHost(id, want string) bool {
	if id == want {
		return true
	}
	a, err1 := netip.ParseAddr(id)
	b, err2 := netip.ParseAddr(want)
	return err1 == nil && err2 == nil && a.Unmap() == b.Unmap()
}

// allVariants lists every mode/logtype combination of every built-in filter.
func allVariants() []variant {
	modes := map[string][]string{
		"sshd":            {"normal", "ddos", "extra", "aggressive"},
		"postfix":         {"more", "normal", "auth", "rbl", "ddos", "errors", "extra", "aggressive"},
		"dovecot":         {"normal", "aggressive"},
		"nginx-http-auth": {"normal", "auth", "fallback", "aggressive"},
		"apache-auth":     {"normal", "aggressive"},
	}
	var out []variant
	for _, n := range filters.Names() {
		out = append(out, variant{name: n})
		for _, m := range modes[n] {
			out = append(out, variant{name: n, opts: map[string]string{"mode": m}})
		}
	}
	for _, lt := range []string{"file", "short", "journal", "rfc5424"} {
		for _, m := range modes["sshd"] {
			out = append(out, variant{name: "sshd", opts: map[string]string{"mode": m, "logtype": lt}})
		}
	}
	for _, m := range modes["apache-auth"] {
		out = append(out, variant{name: "apache-auth", opts: map[string]string{"mode": m, "logging": "syslog"}})
	}
	return out
}
