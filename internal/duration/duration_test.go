package duration

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestParseDuration(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"600", 600 * time.Second},
		{"-1", -time.Second},
		{"0", 0},
		{"1h", time.Hour},
		{"10m", 10 * time.Minute},
		{"5w", 5 * 7 * 24 * time.Hour},
		{"1d12h", 36 * time.Hour},
		{"1d 12h", 36 * time.Hour},
		{"1hour+30min", 90 * time.Minute},
		{"0d 1h 30m", 90 * time.Minute},
		{"1 hour 30 minutes", 90 * time.Minute},
		{"1year-6mo", 15778800 * time.Second},
		{"6 months", 15778800 * time.Second},
		{"1month", 2629800 * time.Second},
		{"60*60*24", 24 * time.Hour},
		{"2 * (1h + 30m)", 3 * time.Hour},
		{"1.5h", 90 * time.Minute},
		{"1H", time.Hour},
		{"30S", 30 * time.Second},
		{"  3600  ", time.Hour},
		{"1h30", time.Hour + 30*time.Second},
		{"1e3", 1000 * time.Second},
		{"-1h", -time.Hour},
		// Go's syntax, alike.
		{"1h30m", 90 * time.Minute},
		{"2h45m30s", 2*time.Hour + 45*time.Minute + 30*time.Second},
		{"500ms", 500 * time.Millisecond},
		{"1m30s", 90 * time.Second},
		{"1.5s", 1500 * time.Millisecond},
		// fail2ban's spellings.
		{"1h 30m", 90 * time.Minute},
		{"1ho 30mi", 90 * time.Minute},
		{"2w", 14 * 24 * time.Hour},
		{"1d", 24 * time.Hour},
		{"3 days", 72 * time.Hour},
		{"1 wee", 7 * 24 * time.Hour},
		{"1hou 1se", time.Hour + time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := Parse(tc.in)
			if err != nil {
				t.Fatalf("Parse(%q): %v", tc.in, err)
			}
			if got != tc.want {
				t.Fatalf("Parse(%q) = %v, want %v", tc.in, got, tc.want)
			}
		})
	}
}

func TestParseDurationErrors(t *testing.T) {
	for _, in := range []string{"", " ", "abc", "1x", "1h+", "((1h)", "1h)", "1/0", "1e400", "1..2", "1h;rm", "5 weeks bogus", strings.Repeat("(", 100) + "1" + strings.Repeat(")", 100), "99999999999999999999y"} {
		if d, err := Parse(in); err == nil {
			t.Errorf("Parse(%q) = %v, want an error", in, d)
		}
	}
}

// TestParseDurationMatchesFail2ban compares with fail2ban's own
// MyTime.str2seconds, read from the installed package at run time.
func TestParseDurationMatchesFail2ban(t *testing.T) {
	const pkg = "/usr/lib/python3/dist-packages/fail2ban/server/mytime.py"
	if _, err := os.Stat(pkg); err != nil {
		t.Skip("fail2ban is not installed: " + err.Error())
	}
	py := "/usr/bin/python3" // the interpreter fail2ban is installed for
	if _, err := os.Stat(py); err != nil {
		t.Skip("system python3 not found: " + err.Error())
	}
	inputs := []string{"600", "1h", "10m", "5w", "1d12h", "1hour+30min", "0d 1h 30m", "1year-6mo", "6 months", "60*60*24", "1.5h", "2d 3h 4m 5s", "3mo", "1y", "12 hours", "2 weeks", "7days"}
	script := "import sys\nfrom fail2ban.server.mytime import MyTime\nfor l in sys.stdin.read().splitlines():\n  print(float(MyTime.str2seconds(l)))\n"
	cmd := exec.Command(py, "-c", script)
	cmd.Env = append(os.Environ(), "PYTHONPATH=/usr/lib/python3/dist-packages")
	cmd.Stdin = strings.NewReader(strings.Join(inputs, "\n"))
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("running fail2ban's str2seconds: %v", err)
	}
	lines := strings.Fields(string(out))
	if len(lines) != len(inputs) {
		t.Fatalf("python printed %d values for %d inputs", len(lines), len(inputs))
	}
	for i, in := range inputs {
		want, err := strconv.ParseFloat(lines[i], 64)
		if err != nil {
			t.Fatal(err)
		}
		got, err := Parse(in)
		if err != nil {
			t.Errorf("%q: %v", in, err)
			continue
		}
		if d := got.Seconds() - want; d > 1e-6 || d < -1e-6 {
			t.Errorf("%q: palisade %v s, fail2ban %v s", in, got.Seconds(), want)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"1h", "1d12h", "1year-6mo", "(1h)*2", "-1", "1e3", "((((", "1/0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := Parse(s)
		if err == nil && strings.TrimSpace(s) == "" {
			t.Fatalf("empty input parsed to %v", d)
		}
	})
}
