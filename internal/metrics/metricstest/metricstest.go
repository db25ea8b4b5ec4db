// Package metricstest checks a /metrics scrape the way Prometheus users
// do: with promlint (the library behind `promtool check metrics`) always,
// and with promtool itself when it is installed (CI installs the Debian
// package prometheus, and then requires it). It is imported only by tests.
package metricstest

import (
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
)

// Check fails t when text does not pass promlint or promtool.
func Check(t testing.TB, text string) {
	t.Helper()
	problems, err := promlint.New(strings.NewReader(text)).Lint()
	if err != nil {
		t.Fatalf("promlint: %v", err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("promtool not installed (Debian package prometheus; .ci/run installs it)")
		}
		t.Log("promtool not installed: checked with promlint only")
		return
	}
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = strings.NewReader(text)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("promtool check metrics: %v\n%s", err, out)
	}
}

// Value returns the value of the sample line that starts with series
// (name and labels exactly as exposed, e.g. `palisade_jail_bans_total{jail="sshd"}`),
// and whether it was found.
func Value(text, series string) (string, bool) {
	for _, line := range strings.Split(text, "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			return strings.TrimSpace(v), true
		}
	}
	return "", false
}
