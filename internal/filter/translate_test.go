package filter

import (
	"strings"
	"testing"
	"time"
)

func TestExpandTags(t *testing.T) {
	tests := []struct {
		in, want string
		useDNS   string
	}{
		{in: `^x <F-USER>\S+</F-USER> y`, want: `^x (?P<user>\S+) y`},
		{in: `<F-ID>\w+</F-ID>`, want: `(?P<fid>\w+)`},
		{in: `<F-PORT/>`, want: `(?P<fport>\w+)`},
		{in: `<F-ALT_USER1>.*</F-ALT_USER1>`, want: `(?P<alt_user1>.*)`},
		{in: `a</F-USER>b`, want: `a</F-USER>b`}, // close without open stays
		{in: `(?P<cond_inv>x)`, want: `(?P<cond_inv>x)`},
		{in: `<UNKNOWN>`, want: `<UNKNOWN>`},
		{in: `<SKIPLINES>a<SKIPLINES>`, want: `\n(?P<skiplines0>(?:(?:.*\n)*?))a\n(?P<skiplines1>(?:(?:.*\n)*?))`},
		{in: `<HOST>`, want: reHOST},
		{in: `<HOST>`, useDNS: "no", want: reADDR},
		{in: `<ADDR>/<CIDR>`, want: reADDR + "/" + reCIDR},
	}
	for _, tt := range tests {
		if got := ExpandTags(tt.in, tt.useDNS); got != tt.want {
			t.Errorf("ExpandTags(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// TestTranslateSemantics checks Python `re` behaviour through both engines.
func TestTranslateSemantics(t *testing.T) {
	tests := []struct {
		name    string
		re      string
		dm      dollarMode
		wantGo  bool // expected to run on Go's regexp
		in      string
		match   bool
		group   string // group checked when matched
		groupIs string
	}{
		{"dollar before final newline", `foo$`, dollarSingle, true, "foo\n", true, "", ""},
		{"dollar not mid", `foo$`, dollarMulti, true, "foo\nbar\n", false, "", ""},
		{"dollar end multi", `bar$`, dollarMulti, true, "foo\nbar\n", true, "", ""},
		{"multiline dollar", `^foo$`, dollarMultiline, true, "x\nfoo\nbar\n", true, "", ""},
		{"caret not after newline", `^bar`, dollarMulti, true, "foo\nbar\n", false, "", ""},
		{"comma quantifier", `^a{,2}b$`, dollarSingle, true, "aab\n", true, "", ""},
		{"comma quantifier max", `^a{,2}b$`, dollarSingle, true, "aaab\n", false, "", ""},
		{"backref", `^(?P<x>\w+) (?P=x)$`, dollarSingle, false, "ab ab\n", true, "x", "ab"},
		{"backref mismatch", `^(?P<x>\w+) (?P=x)$`, dollarSingle, false, "ab ac\n", false, "", ""},
		{"numeric backref", `^(\w)\1$`, dollarSingle, false, "aa\n", true, "", ""},
		{"conditional yes", `^(?P<q>")?x(?(q)"|)$`, dollarSingle, true, "\"x\"\n", true, "", ""},
		{"conditional no", `^(?P<q>")?x(?(q)"|)$`, dollarSingle, true, "x\"\n", false, "", ""},
		{"conditional in repetition", `^(?:(?P<q>")?x(?(q)"))*$`, dollarSingle, false, "\"x\"x\n", false, "", ""},
		{"literal look-ahead", `^(?P<u>(?:(?! from ).)*?) from (?P<h>\S+)`, dollarSingle, true, "a fro from b from c\n", true, "u", "a fro"},
		{"literal look-ahead, other follower", `^(?P<u>(?:(?! from ).)*)x`, dollarSingle, false, "a fromx\n", true, "u", "a from"},
		{"scoped flag rewrite", `^a((?i)B|C)$`, dollarSingle, true, "ab\n", true, "", ""},
		{"scoped flag other", `^a((?i)B|C)$`, dollarSingle, true, "Ab\n", false, "", ""},
		{"backslash Z", `a\Z`, dollarSingle, true, "a\n", false, "", ""},
		{"unicode word", `^(?P<u>\w+)$`, dollarSingle, true, "zürich\n", true, "u", "zürich"},
		{"unicode digit", `^\d+$`, dollarSingle, true, "١٢\n", true, "", ""},
		{"unicode space", `^a\sb$`, dollarSingle, true, "a\u00a0b\n", true, "", ""},
		{"lookahead", `^a(?!b)`, dollarSingle, false, "ab\n", false, "", ""},
		{"lookbehind", `(?<=x)y`, dollarSingle, false, "xy\n", true, "", ""},
		{"comment dropped", `^a(?#note)b`, dollarSingle, true, "ab\n", true, "", ""},
		{"global flag", `(?iu)^abc`, dollarSingle, true, "ABC\n", true, "", ""},
		{"class with escapes", `^[\w\-.]+$`, dollarSingle, true, "a-b.c\n", true, "", ""},
		{"hex and octal", `^\x41\101\u0041$`, dollarSingle, true, "AAA\n", true, "", ""},
		{"host ipv6", `^` + reHOST + `$`, dollarSingle, true, "2001:db8::1\n", true, "ip6", "2001:db8::1"},
		{"host ipv6 trailing ::", `^` + reHOST + `$`, dollarSingle, true, "2001:db8::\n", true, "ip6", "2001:db8::"},
		{"host mapped ipv4", `^` + reHOST + `$`, dollarSingle, true, "::ffff:192.0.2.7\n", true, "ip4", "192.0.2.7"},
		{"host dns", `^` + reHOST + `$`, dollarSingle, true, "host.example.org\n", true, "dns", "host.example.org"},
		{"lazy", `^a(?P<g>.*?)b`, dollarSingle, true, "axbyb\n", true, "g", "x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := compileRx(tt.re, "warn", tt.dm, false, time.Second)
			if err != nil {
				t.Fatalf("compile %q: %v", tt.re, err)
			}
			if (r.syn != nil) != tt.wantGo {
				t.Errorf("Go engine = %v, want %v", r.syn != nil, tt.wantGo)
			}
			if err := r.dfaRegexp(); err != nil {
				t.Fatal(err)
			}
			spans, _ := r.match([]byte(tt.in))
			if (spans != nil) != tt.match {
				t.Fatalf("match %q on %q = %v, want %v", tt.re, tt.in, spans != nil, tt.match)
			}
			if tt.group != "" {
				for i, n := range r.names {
					if n == tt.group {
						if got := tt.in[spans[2*i]:spans[2*i+1]]; got != tt.groupIs {
							t.Errorf("group %s = %q, want %q", n, got, tt.groupIs)
						}
					}
				}
			}
		})
	}
}

func TestTranslateErrors(t *testing.T) {
	for _, re := range []string{`(a`, `a)`, `[a`, `\q`, `(?P<1a>x)`, `(?Qx)`, `a\`} {
		if _, err := compileRx(re, "warn", dollarSingle, false, time.Second); err == nil {
			t.Errorf("compile %q: no error", re)
		}
	}
	if _, err := compileRx(`(?<=a)b`, "warn", dollarSingle, true, time.Second); err == nil || !strings.Contains(err.Error(), "not RE2") {
		t.Errorf("RequireRE2: err = %v", err)
	}
}

func TestLiterals(t *testing.T) {
	tests := []struct {
		re     string
		lits   []string
		prefix string
	}{
		{`^Failed password for (?P<user>\S+) from x`, []string{"Failed password for ", " from x"}, "Failed password for "},
		{`^[aA]uthentication failure`, []string{"uthentication failure"}, ""},
		{`(?i)^failed`, nil, ""},
		{`^(?:foo|bar) baz`, []string{" baz", "foo/bar"}, ""},
		{`^(?:Connection (?:closed|reset)|Disconnected) from`, []string{"Connection /Disconnected", " from"}, ""},
		{`a(?=bcd)`, nil, ""},
		{`^(?P<nofail>Received (?P<x>disconnect)) from y`, []string{"Received disconnect", " from y"}, "Received disconnect from y"},
		{`^(?P<a>(?P<b>Accepted \w+)) for`, []string{"Accepted ", " for"}, "Accepted "},
	}
	for _, tt := range tests {
		tr, err := translate(tt.re, dollarSingle)
		if err != nil {
			t.Fatal(err)
		}
		lits, prefix := literals(tr.Ana)
		var got []string
		for _, c := range lits {
			var alts []string
			for _, l := range c {
				alts = append(alts, string(l))
			}
			got = append(got, strings.Join(alts, "/"))
		}
		if strings.Join(got, "|") != strings.Join(tt.lits, "|") || string(prefix) != tt.prefix {
			t.Errorf("literals(%q) = %q, %q; want %q, %q", tt.re, got, prefix, tt.lits, tt.prefix)
		}
	}
}

func FuzzTranslate(f *testing.F) {
	for _, s := range []string{
		`^<HOST>$`, `(?P<a>x)(?P=a)`, `(?(a)b|c)`, `((?i)X|Y)`, `[\w\-.]{,3}`, `\Z\A\b`,
		`(?<=:):`, `<F-USER>.*</F-USER>`, `<SKIPLINES>`, `(?#c)`, `\x4`, `[`, `(?P<`, `\1\2\377`,
		`(?iu)[^\S]`, `a{1001}`, `(?x) a b`, `\u00e9\U0001F600`, `(?(1)a)`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, dm := range []dollarMode{dollarSingle, dollarMulti, dollarMultiline} {
			r, err := compileRx(s, "warn", dm, false, 10*time.Millisecond)
			if err != nil {
				continue
			}
			r.match([]byte("Jan  1 00:00:00 host sshd[1]: Failed password for root from 192.0.2.1 port 22\n"))
		}
	})
}

func TestLiteralsAlternation(t *testing.T) {
	tr, err := translate(`^\s*(?:\S+ )?(?:sshd(?:-session)?(?:\[\d+\])?:?|\[sshd\]:?)\s+`, dollarSingle)
	if err != nil {
		t.Fatal(err)
	}
	lits, _ := literals(tr.Ana)
	if len(lits) != 1 || len(lits[0]) != 1 || string(lits[0][0]) != "sshd" {
		t.Fatalf("lits = %q, want [sshd]", lits)
	}
}
