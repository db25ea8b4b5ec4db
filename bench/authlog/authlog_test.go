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

func TestProfiles(t *testing.T) {
	t0 := time.Date(2026, 11, 24, 0, 0, 0, 0, time.UTC)
	syslogLine := regexp.MustCompile(`^[A-Z][a-z]{2} [ 0-9][0-9] [0-9]{2}:[0-9]{2}:[0-9]{2} web1 [\w/.-]+(\[[0-9]+\])?: \S.*\n$`)
	webLine := regexp.MustCompile(`^(?:[0-9]{4}/[0-9]{2}/[0-9]{2} [0-9:]{8} \[(?:error|warn|info)\] 1234#1234: \*[0-9]+ |\[[A-Z][a-z]{2} [A-Z][a-z]{2} [0-9]{2} [0-9:]{8}\.[0-9]{6} 2026\] \[[a-z_]+:[a-z]+\] \[pid [0-9]+:tid [0-9]+\] \[client [0-9a-f.:]+:[0-9]+\] )\S.*\n$`)
	for _, tc := range []struct {
		profile string
		line    *regexp.Regexp
		// share of lines matching each pattern: at least min
		want map[string]float64
	}{
		{"attack", syslogLine, map[string]float64{
			` sshd(-session)?\[[0-9]+\]: `:                      0.90,
			` sshd-session\[`:                                   0.15,
			`: Failed password for `:                            0.10,
			`: pam_unix\(sshd:auth\): authentication failure; `: 0.05,
			`kex_exchange_identification|Did not receive ident`: 0.01,
			`Unable to negotiate with `:                         0.005,
			` \[preauth\]\n$`:                                   0.10,
			`from 2001:db8:`:                                    0.01,
			`Accepted (publickey|password) for deploy`:          0.002,
		}},
		{"mail", syslogLine, map[string]float64{
			`postfix/smtpd\[[0-9]+\]: connect from mail[0-9]+\.`:               0.02,
			`: disconnect from mail[0-9]+\.example\.[a-z]+\[[0-9.]+\]\n$`:      0.002,
			`: disconnect from mail[0-9]+\.example\.[a-z]+\[[0-9.]+\] ehlo=2 `: 0.005,
			`status=sent`: 0.02,
			`SASL (LOGIN|PLAIN) authentication failed`: 0.05,
			`auth=0/[0-9]`:                                           0.02,
			`dovecot: (imap|pop3)-login: Login: `:                    0.01,
			`dovecot: (imap|pop3)-login: Disconnected \(auth failed`: 0.01,
		}},
		{"web", webLine, map[string]float64{
			`\] 1234#1234: \*[0-9]+ user "[^"]+" was not found in`: 0.1,
			`\[auth_basic:error\]`:                                 0.1,
			`client: 2001:db8:|\[client 2001:db8:`:                 0.01,
		}},
	} {
		t.Run(tc.profile, func(t *testing.T) {
			const n = 20000
			g, err := NewProfile(tc.profile, 3, t0, "web1")
			if err != nil {
				t.Fatal(err)
			}
			g2, _ := NewProfile(tc.profile, 3, t0, "web1")
			counts := map[string]int{}
			res := map[string]*regexp.Regexp{}
			for p := range tc.want {
				res[p] = regexp.MustCompile(p)
			}
			for i := 0; i < n; i++ {
				l := append([]byte(nil), g.Line()...)
				if !bytes.Equal(l, g2.Line()) {
					t.Fatalf("line %d differs between two generators of one seed", i)
				}
				if !tc.line.Match(l) {
					t.Fatalf("line %d is malformed: %q", i, l)
				}
				for p, re := range res {
					if re.Match(l) {
						counts[p]++
					}
				}
			}
			for p, min := range tc.want {
				if share := float64(counts[p]) / n; share < min {
					t.Errorf("%q: %.2f%% of lines, want at least %.2f%%", p, 100*share, 100*min)
				}
			}
		})
	}
	if _, err := NewProfile("nope", 1, t0, "h"); err == nil {
		t.Error("unknown profile accepted")
	}
}
