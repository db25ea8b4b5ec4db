package config

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/palisade-project/palisade/internal/source/journal"
)

// TestJournalMatchLines: fail2ban's JailReader sends one addjournalmatch
// per non-empty journalmatch line (shlex words), and FilterSystemd ORs
// each with the others ("+" inside a line separates further groups;
// words of a group are ANDed by sd_journal). The jail's value keeps its
// lines, so journalctl gets the same alternatives.
func TestJournalMatchLines(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
	}{
		{"_SYSTEMD_UNIT=a.service", []string{"_SYSTEMD_UNIT=a.service"}},
		{"_SYSTEMD_UNIT=a.service _UID=0", []string{"_SYSTEMD_UNIT=a.service", "_UID=0"}},
		{"_SYSTEMD_UNIT=a.service\n_SYSTEMD_UNIT=b.service", []string{"_SYSTEMD_UNIT=a.service", "+", "_SYSTEMD_UNIT=b.service"}},
		{"  A=1 B=2  \n\n  C=3 + D=4\n", []string{"A=1", "B=2", "+", "C=3", "+", "D=4"}},
		{"A=1\n+ B=2", []string{"A=1", "+", "B=2"}},
		{"FIELD='with spaces'\nB=2", []string{"FIELD=with spaces", "+", "B=2"}},
	} {
		got, err := journal.ParseMatch(JournalMatchLines(tc.in))
		if err != nil {
			t.Fatalf("%q: %v", tc.in, err)
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("%q (-want +got):\n%s", tc.in, diff)
		}
	}
}

// TestJailJournalMatchMultiLine: a jail's multi-line journalmatch reaches
// the jail as alternatives, not one ANDed line.
func TestJailJournalMatchMultiLine(t *testing.T) {
	dir := writeTree(t, map[string]string{"jail.local": "[j]\nenabled = true\nfilter = f\nbackend = systemd\njournalmatch = _SYSTEMD_UNIT=a.service\n  _SYSTEMD_UNIT=b.service _UID=0\n"})
	cfg, err := Load(dir, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var j *Jail
	for i := range cfg.Jails {
		if cfg.Jails[i].Name == "j" {
			j = &cfg.Jails[i]
		}
	}
	if j == nil {
		t.Fatal("no jail j")
	}
	if got, want := j.Source.JournalMatch, "_SYSTEMD_UNIT=a.service\n_SYSTEMD_UNIT=b.service _UID=0"; got != want {
		t.Errorf("JournalMatch = %q, want %q", got, want)
	}
	if !strings.Contains(j.Source.JournalMatch, "\n") {
		t.Error("lines joined")
	}
}
