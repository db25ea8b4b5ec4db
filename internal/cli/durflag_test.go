package cli

import (
	"strings"
	"testing"
)

// TestDurationsAlikeEverywhere: every command-line duration takes the
// one syntax (fail2ban's and Go's); a bad one is bad usage naming it.
func TestDurationsAlikeEverywhere(t *testing.T) {
	f, sock := startFake(t)
	for _, d := range []string{"10m", "1h30m", "600", "1d", "2w", "-1", "1h 30m", "1ho 30mi"} {
		code, _, errs := runClient("ban", "sshd", "192.0.2.1", "--for", d, "--socket", sock)
		if code != 0 {
			t.Errorf("ban --for %q: exit %d %s", d, code, errs)
		}
	}
	if n := len(f.requests()); n != 8 {
		t.Errorf("%d requests, want 8", n)
	}
	// Flags that were Go-only: fail2ban's syntax now parses; garbage is
	// refused before anything runs.
	for _, args := range [][]string{
		{"notify", "test", "--timeout", "fortnight"},
		{"ssh", "harden", "--confirm-within", "5 parsecs"},
		{"firewall", "apply", "--confirm-within", "soon"},
	} {
		code, _, errs := runClient(append(args, "--root", t.TempDir())...)
		if code != ExitUsage || !strings.Contains(errs, args[len(args)-1]) {
			t.Errorf("%v: exit %d %q, want 2 naming the value", args, code, errs)
		}
	}
	var v durationValue
	for in, want := range map[string]string{"1h 30m": "1h30m0s", "90": "1m30s", "500ms": "500ms", "2d": "48h0m0s"} {
		if err := v.Set(in); err != nil || v.String() != want {
			t.Errorf("Set(%q) = %v, %v; want %s", in, v.String(), err, want)
		}
	}
	if err := v.Set("-1"); err == nil {
		t.Error("a negative flag duration was accepted")
	}
}
