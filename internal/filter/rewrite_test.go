package filter

import (
	"math/rand/v2"
	"regexp"
	"strings"
	"testing"

	"github.com/dlclark/regexp2"
)

// sameMatches compares Python pattern py (run by regexp2, the engine it
// would otherwise use) with its RE2 rewrite (run by Go's regexp) on
// inputs: the same match and the same named groups.
func sameMatches(t *testing.T, py string, inputs []string) {
	t.Helper()
	rw, err := rewriteForRE2(py)
	if err != nil {
		t.Fatalf("%q: %v", py, err)
	}
	tr, err := translate(rw, dollarSingle)
	if err != nil || tr.Go == "" {
		t.Fatalf("rewrite of %q is not RE2: %q (%v %s)", py, rw, err, tr.Reason)
	}
	bt, err := translate(py, dollarSingle)
	if err != nil {
		t.Fatal(err)
	}
	want := regexp2.MustCompile(bt.BT, 0)
	got := regexp.MustCompile(tr.Go)
	names := got.SubexpNames()
	for _, in := range inputs {
		in += "\n"
		m, err := want.FindStringMatch(in)
		if err != nil {
			t.Fatal(err)
		}
		g := got.FindStringSubmatchIndex(in)
		if (m == nil) != (g == nil) {
			t.Fatalf("%q on %q: regexp2 match %v, RE2 rewrite %v (%q)", py, in, m != nil, g != nil, rw)
		}
		if m == nil {
			continue
		}
		if m.Index != g[0] || m.Index+m.Length != g[1] {
			t.Fatalf("%q on %q: regexp2 %d..%d, rewrite %d..%d", py, in, m.Index, m.Index+m.Length, g[0], g[1])
		}
		seen := map[string]bool{}
		for i, n := range names {
			if n == "" || g[2*i] < 0 {
				continue
			}
			seen[n] = true
			w := m.GroupByName(n)
			if w == nil || len(w.Captures) == 0 || w.String() != in[g[2*i]:g[2*i+1]] {
				t.Fatalf("%q on %q: group %s: regexp2 %v, rewrite %q", py, in, n, w, in[g[2*i]:g[2*i+1]])
			}
		}
		for _, n := range want.GetGroupNames() {
			if w := m.GroupByName(n); w != nil && len(w.Captures) > 0 && !seen[n] && !isDigits(n) {
				t.Fatalf("%q on %q: group %s took part in regexp2 only", py, in, n)
			}
		}
	}
}

func TestRewriteSemantics(t *testing.T) {
	host := `(?:\[?(?:(?:::f{4,6}:)?(?P<ip4>(?:[0-9]{1,3}\.){3}[0-9]{1,3})|(?P<ip6>(?:[0-9a-fA-F]{1,4}::?|::){1,7}(?:[0-9a-fA-F]{1,4}|:)))\]?|(?P<dns>[\w\-.^_]*\w))`
	failed := `^Failed (?:(?P<nofail>publickey)|\S+) for (?P<cond_inv>invalid user )?(?P<user>(?P<cond_user>\S+)|(?(cond_inv)(?:(?! from ).)*?|[^:]+)) from ` + host + `(?: (?:port \d+|on \S+)){0,2}(?: ssh\d*)?(?(cond_user): |(?:(?:(?! from ).)*)$)`
	pub := `^Failed publickey for invalid user (?P<user>(?P<cond_user>\S+)|(?:(?! from ).)*?) from ` + host + `(?: (?:port \d+|on \S+)){0,2}(?: ssh\d*)?(?(cond_user): |(?:(?:(?! from ).)*)$)`
	lines := []string{
		"Failed password for root from 192.0.2.1 port 22 ssh2",
		"Failed password for invalid user admin from 192.0.2.1 port 22 ssh2",
		"Failed publickey for root from 192.0.2.1 port 22 ssh2: RSA SHA256:abc",
		"Failed publickey for invalid user x from 2001:db8::1 port 22 ssh2: ED25519 SHA256:x",
		"Failed password for invalid user  from 198.51.100.3 port 1 ssh2",
		"Failed password for invalid user a b c from 198.51.100.3 port 1 ssh2",
		"Failed password for invalid user a from b from 198.51.100.3 port 1 ssh2",
		"Failed password for a b from 203.0.113.9 port 2 ssh2",
		"Failed password for a:b from 203.0.113.9 port 2 ssh2",
		"Failed password for root from 192.0.2.1 port 22 ssh2 from 192.0.2.2",
		"Failed password for root from host.example on x port 3",
		"Failed password for invalid user from from 192.0.2.1 port 22 ssh2",
		"Failed password for invalid user  from  from 192.0.2.1",
		"Failed keyboard-interactive/pam for invalid user u from 192.0.2.1 port 4 ssh2",
		"Failed none for invalid user from 192.0.2.1 port 4 ssh2 [preauth]",
		"Failed password for root from 192.0.2.1: x from y",
	}
	r := rand.New(rand.NewPCG(7, 8))
	words := []string{"from", " from ", " fro", "m", "invalid user ", "root", ":", ": ", " ", "192.0.2.7", "port 22", "ssh2", "x y", "fr"}
	for i := 0; i < 400; i++ {
		var b strings.Builder
		b.WriteString([]string{"Failed password for ", "Failed publickey for invalid user ", "Failed publickey for "}[r.IntN(3)])
		for k := r.IntN(8); k >= 0; k-- {
			b.WriteString(words[r.IntN(len(words))])
		}
		lines = append(lines, b.String())
	}
	sameMatches(t, failed, lines)
	sameMatches(t, pub, lines)

	// the look-ahead alone, over a small alphabet
	var short []string
	for i := 0; i < 3000; i++ {
		var b strings.Builder
		for k := r.IntN(14); k > 0; k-- {
			b.WriteByte(" fromx"[r.IntN(6)])
		}
		short = append(short, b.String())
	}
	sameMatches(t, `^(?P<a>(?:(?! from ).)*?) from (?P<b>\S*)`, short)
	sameMatches(t, `^(?P<a>(?:(?! from ).)*) from (?P<b>.*)$`, short)
	sameMatches(t, `^x?(?P<a>(?:(?!fromfr).)*)$`, short)
	sameMatches(t, `^(?P<c>r)?(?P<a>(?(c)o+|f+))(?(c)m|x)`, short)
}

func TestRewriteRefuses(t *testing.T) {
	for _, p := range []string{
		`^(?(a)b|c)(?P<a>x)?`,       // conditional before its group
		`^(?:(?P<a>x)?y)*(?(a)b|c)`, // definer in a repetition
		`^(?P<a>x)(?(a)b|c)`,        // always taken: not a definer shape
		`^(?:(?!ab).)*c`,            // followed by something else
		`^(?P<a>x)?\1(?(a)b)`,       // back-reference
		`^(?i)(?P<a>x)?(?(a)b)`,     // inline flags
		`^plain`,
	} {
		if rw, err := rewriteForRE2(p); err == nil {
			if tr, _ := translate(rw, dollarSingle); tr.Go != "" {
				t.Errorf("%q rewritten to RE2 %q", p, rw)
			}
		}
	}
}

// TestAvoidRegexBounded: the avoidance pattern of the longest literal
// taken, with many self-overlaps, stays small and matches as it should.
func TestAvoidRegexBounded(t *testing.T) {
	lit := strings.Repeat("a", maxAvoidLiteral-1) + "b"
	for _, before := range []bool{false, true} {
		p := avoidRegex(lit, before)
		if len(p) > maxRewrite {
			t.Fatalf("avoidRegex(%q, %v): %d bytes", lit, before, len(p))
		}
		tr, err := translate("^"+p+"$", dollarSingle)
		if err != nil || tr.Go == "" {
			t.Fatalf("avoidRegex(%q) is not RE2: %v", lit, err)
		}
		re := regexp.MustCompile(tr.Go)
		if !re.MatchString(strings.Repeat("a", 40)+"\n") || re.MatchString("x"+lit+"\n") {
			t.Errorf("avoidRegex(%q, %v) = %q matches wrongly", lit, before, p)
		}
	}
}
