package authlog

import (
	"bytes"
	"regexp"
	"testing"
	"time"
)

func generate(seed uint64, n int) [][]byte {
	g := New(seed, time.Date(2026, 11, 24, 0, 0, 0, 0, time.UTC), "web1")
	out := make([][]byte, n)
	for i := range out {
		out[i] = append([]byte(nil), g.Line()...)
	}
	return out
}

func TestDeterministic(t *testing.T) {
	a, b, c := generate(1, 5000), generate(1, 5000), generate(2, 5000)
	same := true
	for i := range a {
		if !bytes.Equal(a[i], b[i]) {
			t.Fatalf("seed 1 differs at line %d: %q vs %q", i, a[i], b[i])
		}
		same = same && bytes.Equal(a[i], c[i])
	}
	if same {
		t.Error("seeds 1 and 2 give the same file")
	}
}

func TestShape(t *testing.T) {
	const n = 50000
	lines := generate(7, n)
	syslogLine := regexp.MustCompile(`^[A-Z][a-z]{2} [ 0-9][0-9] [0-9]{2}:[0-9]{2}:[0-9]{2} web1 [\w/.-]+(\[[0-9]+\])?: \s*\S.*\n$`)
	sshdFail := regexp.MustCompile(`sshd\[[0-9]+\]: (Invalid user|Failed password|pam_unix\(sshd:auth\): authentication failure|error: maximum authentication|Connection closed by invalid user|Disconnected from authenticating user|Unable to negotiate|User root from|Received disconnect from \S+ port [0-9]+:11: Bye Bye)`)
	v6 := regexp.MustCompile(`from 2001:db8:`)
	var bytesTotal, fails, six int
	var last time.Time
	for i, l := range lines {
		if !syslogLine.Match(l) {
			t.Fatalf("line %d is not a syslog line: %q", i, l)
		}
		ts, err := time.Parse(time.Stamp, string(l[:15]))
		if err != nil {
			t.Fatalf("line %d: %v", i, err)
		}
		if i > 0 && ts.Before(last) {
			t.Fatalf("line %d goes back in time: %q", i, l)
		}
		last = ts
		bytesTotal += len(l)
		if sshdFail.Match(l) {
			fails++
		}
		if v6.Match(l) {
			six++
		}
	}
	avg := float64(bytesTotal) / n
	if avg < 95 || avg > 110 {
		t.Errorf("average line %.1f bytes, want about 102", avg)
	}
	share := float64(fails) / n
	if share < 0.09 || share > 0.13 {
		t.Errorf("sshd failures are %.1f%% of lines, want about 11%%", 100*share)
	}
	if six == 0 {
		t.Error("no IPv6 attacker")
	}
}
