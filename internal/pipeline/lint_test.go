package pipeline

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/palisade-project/palisade/filters"
	"github.com/palisade-project/palisade/internal/config"
	"github.com/palisade-project/palisade/internal/config/ini"
	"github.com/palisade-project/palisade/internal/filter"
	"github.com/palisade-project/palisade/internal/source/journal"
)

// TestLintStockFilters runs the forged-address lint over Debian's stock
// fail2ban filters (every mode), reports how many warn, and checks the
// known case: the stock sshd's lazy user name rules.
func TestLintStockFilters(t *testing.T) {
	dir := "/etc/fail2ban"
	paths, _ := filepath.Glob(filepath.Join(dir, "filter.d", "*.conf"))
	if len(paths) == 0 {
		t.Skip("no fail2ban filters in /etc/fail2ban/filter.d")
	}
	warned, total := 0, 0
	for _, p := range paths {
		name := strings.TrimSuffix(filepath.Base(p), ".conf")
		if name == "common" {
			continue
		}
		bf, err := BuildFilter(FilterInput{Spec: config.FilterSpec{Name: p, Options: []ini.Option{{Name: "mode", Value: "aggressive"}}}, Dirs: []string{dir}, Builtin: filters.FS(), BacktrackBudget: -1})
		if err != nil {
			t.Logf("%s: %v", name, err)
			continue
		}
		total++
		if len(bf.Lint) > 0 {
			warned++
		}
		for _, n := range bf.Lint {
			t.Logf("%s", n)
		}
	}
	t.Logf("%d of %d stock filters warn", warned, total)
}

// lintExplained are the built-in rules the forged-address lint warns
// about, each with why ("filter/regex number": why); any other warning
// fails TestLintBuiltinFilters. None today: the built-in dovecot's tails
// after rip= and its session ids are anchored on Dovecot's own fields.
var lintExplained = map[string]string{}

// TestLintBuiltinFilters: palisade's built-in filters, in every mode, give
// no forged-address warning except the explained ones.
func TestLintBuiltinFilters(t *testing.T) {
	for _, name := range filters.Names() {
		for _, mode := range []string{"", "normal", "ddos", "extra", "aggressive", "auth", "more", "rbl", "errors", "fallback"} {
			var opts []ini.Option
			if mode != "" {
				opts = []ini.Option{{Name: "mode", Value: mode}}
			}
			lf, err := config.ReadFilter(config.FilterSpec{Name: name, Options: opts}, nil, filters.FS())
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			for _, n := range lintNotes(lf.Definition, lf) {
				if why, ok := lintExplained[fmt.Sprintf("%s/%d", name, n.Regex+1)]; ok {
					t.Logf("%s[mode=%s] failregex %d (explained: %s)", name, mode, n.Regex+1, why)
					continue
				}
				t.Errorf("%s[mode=%s]: %s", name, mode, n)
			}
		}
	}
}

// TestBuiltinJournalMatchTrusted: every built-in filter's journalmatch
// alternative names a field journald sets itself (_SYSTEMD_UNIT, ...),
// never _COMM alone, so no alternative needs the root-only restriction.
func TestBuiltinJournalMatchTrusted(t *testing.T) {
	for _, name := range filters.Names() {
		lf, err := config.ReadFilter(config.FilterSpec{Name: name, Backend: "systemd"}, nil, filters.FS())
		if err != nil {
			t.Fatal(err)
		}
		m := lf.Definition.JournalMatch
		if m == "" {
			continue
		}
		bad, err := journal.Untrusted(m)
		if err != nil || len(bad) > 0 || strings.Contains(m, "_COMM") {
			t.Errorf("%s: journalmatch %q: untrusted %q, %v", name, m, bad, err)
		}
	}
}

// TestLintForgedSSH: the lint on small rules: lazy and loose rules warn,
// greedy rules with a fixed tail and rules whose span cannot hold the
// separator do not.
func TestLintForgedSSH(t *testing.T) {
	for _, tc := range []struct {
		re   string
		warn bool
	}{
		{`^Invalid user <F-USER>.*?</F-USER> from <HOST>(?: (?:port \d+|on \S+)){0,2}\s*$`, true},
		{`^Invalid user <F-USER>.*</F-USER> from <HOST> port \d+\s*$`, false},
		{`^Invalid user <F-USER>.*?</F-USER> from <HOST> port \d+\s*$`, false},
		{`^Invalid user <F-USER>.*</F-USER> from <HOST>`, true},
		{`^Invalid user <F-USER>.*</F-USER> from <HOST> port \d+ .*$`, true},
		{`^Invalid user <F-USER>\S+</F-USER> from <HOST>.*$`, false},
		{`^user "<F-USER>[^"]*</F-USER>" failed, client: <HOST>, request: "[^"]*"$`, false},
		{`^user <F-USER>[^,]*</F-USER> failed, client: <HOST>, request: .*$`, false},
		{`^auth failed from <HOST>: .*$`, false},
	} {
		got := filter.Lint(filter.Definition{FailRegex: []string{tc.re}})
		if (len(got) > 0) != tc.warn {
			t.Errorf("%s: warnings %v, want warn=%v", tc.re, got, tc.warn)
		}
	}
}
