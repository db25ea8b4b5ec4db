package filters_test

import (
	"io/fs"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/palisade-project/palisade/filters"
	"github.com/palisade-project/palisade/internal/config"
	"github.com/palisade-project/palisade/internal/config/ini"
)

func TestNames(t *testing.T) {
	want := []string{"apache-auth", "courier-auth", "dovecot", "lighttpd-auth", "nginx-http-auth",
		"postfix", "proftpd", "qmail", "recidive", "sshd", "vsftpd"}
	if diff := cmp.Diff(want, filters.Names()); diff != "" {
		t.Errorf("Names() (-want +got):\n%s", diff)
	}
	for _, n := range append(filters.Names(), "common") {
		if _, err := fs.Stat(filters.FS(), "filter.d/"+n+".conf"); err != nil {
			t.Errorf("FS(): %v", err)
		}
	}
}

// TestLoadRE2 loads every built-in filter in every mode with RequireRE2:
// palisade's own filters must never need the backtracking engine.
func TestLoadRE2(t *testing.T) {
	loc := zurich(t)
	for _, v := range allVariants() {
		t.Run(v.String(), func(t *testing.T) {
			f, err := load(t, v, loc)
			if err != nil {
				t.Fatalf("load with RequireRE2: %v", err)
			}
			if f == nil {
				t.Fatal("nil filter")
			}
		})
	}
}

// TestModesDiffer guards the mode plumbing: a mode that silently fell back
// to the default would load fine but count different lines.
func TestModesDiffer(t *testing.T) {
	count := func(v variant) int {
		def, err := config.LoadFilter(config.FilterSpec{Name: v.name, Options: optionList(v)}, nil, filters.FS())
		if err != nil {
			t.Fatalf("%v: %v", v, err)
		}
		return len(def.FailRegex)
	}
	for _, tc := range []struct {
		name        string
		fewer, more string
	}{
		{"sshd", "normal", "aggressive"},
		{"sshd", "normal", "ddos"},
		{"sshd", "normal", "extra"},
		{"postfix", "normal", "aggressive"},
		{"dovecot", "normal", "aggressive"},
		{"nginx-http-auth", "normal", "aggressive"},
	} {
		a := count(variant{name: tc.name, opts: map[string]string{"mode": tc.fewer}})
		b := count(variant{name: tc.name, opts: map[string]string{"mode": tc.more}})
		if a >= b {
			t.Errorf("%s: mode %s has %d failregexes, mode %s %d: want more in %s", tc.name, tc.fewer, a, tc.more, b, tc.more)
		}
	}
}

func optionList(v variant) []ini.Option {
	var out []ini.Option
	for _, k := range sortedKeys(v.opts) {
		out = append(out, ini.Option{Name: k, Value: v.opts[k]})
	}
	return out
}

// TestNoLookaround makes sure no built-in filter file uses Python-only
// syntax, whatever the engine would make of it.
func TestNoLookaround(t *testing.T) {
	for _, n := range append(filters.Names(), "common") {
		b, err := fs.ReadFile(filters.FS(), "filter.d/"+n+".conf")
		if err != nil {
			t.Fatal(err)
		}
		for i, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(strings.TrimSpace(line), "#") {
				continue
			}
			if bad := pythonOnly(line); bad != "" {
				t.Errorf("%s.conf:%d uses %q (not RE2): %s", n, i+1, bad, line)
			}
		}
	}
}

// pythonOnly returns the first lookaround, backreference or conditional
// in s, skipping escaped characters.
func pythonOnly(s string) string {
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] == '\\' && i+1 < len(s):
			if s[i+1] >= '1' && s[i+1] <= '9' {
				return s[i : i+2]
			}
			i++
		case strings.HasPrefix(s[i:], "(?"):
			for _, bad := range []string{"(?=", "(?!", "(?<=", "(?<!", "(?P=", "(?("} {
				if strings.HasPrefix(s[i:], bad) {
					return bad
				}
			}
		}
	}
	return ""
}
