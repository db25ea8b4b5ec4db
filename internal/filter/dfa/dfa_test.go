package dfa

import (
	"math/rand/v2"
	"regexp"
	"regexp/syntax"
	"slices"
	"strings"
	"testing"
)

// same checks that r finds exactly regexp's match and groups on every input.
func same(t *testing.T, expr string, inputs []string) {
	t.Helper()
	want := regexp.MustCompile(expr)
	got, err := Compile(expr, 0)
	if err != nil {
		t.Fatalf("Compile(%q): %v", expr, err)
	}
	if got.NumSubexp() != want.NumSubexp() {
		t.Fatalf("%q: NumSubexp %d, want %d", expr, got.NumSubexp(), want.NumSubexp())
	}
	for _, in := range inputs {
		w := want.FindSubmatchIndex([]byte(in))
		g := got.FindSubmatchIndex([]byte(in))
		if !slices.Equal(w, g) {
			t.Fatalf("%q on %q: got %v, want %v", expr, in, g, w)
		}
	}
}

func TestKnown(t *testing.T) {
	host := `(?:\[?(?:(?:::f{4,6}:)?(?P<ip4>(?:[0-9]{1,3}\.){3}[0-9]{1,3})|(?P<ip6>(?:[0-9a-fA-F]{1,4}::?|::){1,7}(?:[0-9a-fA-F]{1,4}|:)))\]?|(?P<dns>[\w\-.^_]*\w))`
	cases := []struct {
		expr   string
		inputs []string
	}{
		{`a+`, []string{"", "a", "baaa", "bbb"}},
		{`(a*)(a*)`, []string{"", "aaa", "baa"}},
		{`(a|ab)(c|bcd)(d*)`, []string{"abcd", "abcdd", "xabcd"}},
		{`^(?:(a)|b)*$`, []string{"abab", "ba", "abc", ""}},
		{`(a*?)(a*)`, []string{"aaa"}},
		{`\bfoo\b`, []string{"foo", "afoo", "a foo b", "foob"}},
		{`(?m)^b$`, []string{"a\nb\nc", "b", "ab\nb"}},
		{`x(?m:$)`, []string{"x\n", "ax\ny", "xx"}},
		{`(?i)fOo(bar)?`, []string{"FOOBAR", "xfoo", "FoObAr"}},
		{`é+(.)`, []string{"ééé!", "aéx", "\xffé\xfe"}},
		{`[^a]+`, []string{"aaé\xffb", "\n"}},
		{`.+`, []string{"a\nb", "\n\n"}},
		{`(?s).+$`, []string{"a\nb", "\n\n"}},
		{`\B.`, []string{"ab", " b", "a "}},
		{`^Failed (?:(?P<nofail>publickey)|\S+) for (?:invalid user )?(?P<user>.*) from ` + host + `(?: port \d+)?(?: ssh\d*)?(?: \[preauth\])?\s*(?m:$)`,
			[]string{
				"Failed password for invalid user admin from 203.0.113.5 port 52314 ssh2\n",
				"Failed password for root from 2001:db8::1 port 22 ssh2\n",
				"Failed publickey for x from 198.51.100.7 port 22 ssh2 from 192.0.2.1 port 1 ssh2\n",
				"Failed password for x from host.example port 1\n",
				"Failed password for x from\n",
			}},
	}
	for _, c := range cases {
		same(t, c.expr, c.inputs)
	}
}

// gen builds a random pattern over a small alphabet.
func gen(r *rand.Rand, depth int) string {
	atoms := []string{"a", "b", "c", ".", "[ab]", "[^a]", `\w`, `\s`, `\d`, " ", `\n`, "é", "(?i:A)"}
	if depth <= 0 || r.IntN(3) == 0 {
		return atoms[r.IntN(len(atoms))]
	}
	switch r.IntN(10) {
	case 0:
		return gen(r, depth-1) + "|" + gen(r, depth-1)
	case 1:
		return "(" + gen(r, depth-1) + ")"
	case 2:
		return "(?:" + gen(r, depth-1) + ")*"
	case 3:
		return "(" + gen(r, depth-1) + ")+?"
	case 4:
		return "(" + gen(r, depth-1) + ")?"
	case 5:
		return []string{"^", "$", `\b`, `\B`, "(?m:^)", "(?m:$)", `\A`, `\z`}[r.IntN(8)] + gen(r, depth-1)
	case 6:
		return "(" + gen(r, depth-1) + "){1,3}"
	default:
		return gen(r, depth-1) + gen(r, depth-1)
	}
}

func genInput(r *rand.Rand) string {
	const al = "abc A\n1é\xff_"
	n := r.IntN(12)
	var b strings.Builder
	for i := 0; i < n; i++ {
		c := r.IntN(len(al))
		if al[c] == 0xc3 { // é is two bytes
			b.WriteString("é")
			continue
		}
		if c > 0 && al[c-1] == 0xc3 {
			continue
		}
		b.WriteByte(al[c])
	}
	return b.String()
}

// TestRandom compares the automaton with regexp on random patterns.
func TestRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 3000; i++ {
		expr := gen(r, 4)
		if _, err := regexp.Compile(expr); err != nil {
			continue
		}
		var inputs []string
		for j := 0; j < 20; j++ {
			inputs = append(inputs, genInput(r))
		}
		same(t, expr, inputs)
	}
}

// TestSet checks that a set answers the first pattern that matches, with
// that pattern's own groups.
func TestSet(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for i := 0; i < 500; i++ {
		var exprs []string
		var res []*regexp.Regexp
		for len(exprs) < 1+r.IntN(5) {
			e := gen(r, 3)
			re, err := regexp.Compile(e)
			if err != nil {
				continue
			}
			exprs = append(exprs, e)
			res = append(res, re)
		}
		s, err := CompileSet(exprs, 0)
		if err != nil {
			t.Fatalf("CompileSet(%q): %v", exprs, err)
		}
		for j := 0; j < 20; j++ {
			in := []byte(genInput(r))
			wi, ws := -1, []int(nil)
			for k, re := range res {
				if m := re.FindSubmatchIndex(in); m != nil {
					wi, ws = k, m
					break
				}
			}
			gi, gs := s.Match(in)
			if gi != wi || !slices.Equal(gs, ws) {
				t.Fatalf("set %q on %q: got %d %v, want %d %v", exprs, in, gi, gs, wi, ws)
			}
		}
	}
}

// TestBoundedStates: a pattern with many states keeps the cache bounded
// and still answers correctly.
func TestBoundedStates(t *testing.T) {
	expr := `(a|b)*a(a|b){8}c`
	re, err := Compile(expr, 64)
	if err != nil {
		t.Fatal(err)
	}
	want := regexp.MustCompile(expr)
	r := rand.New(rand.NewPCG(5, 6))
	for i := 0; i < 200; i++ {
		var b strings.Builder
		for j := 0; j < 40; j++ {
			b.WriteByte("ab"[r.IntN(2)])
		}
		b.WriteByte('c')
		in := []byte(b.String())
		if g, w := re.FindSubmatchIndex(in), want.FindSubmatchIndex(in); !slices.Equal(g, w) {
			t.Fatalf("%q: got %v, want %v", in, g, w)
		}
		if re.States() > 64+2 {
			t.Fatalf("%d states cached, bound 64", re.States())
		}
	}
	if re.Resets() == 0 {
		t.Error("the cache never filled: the test does not exercise the bound")
	}
}

func FuzzSame(f *testing.F) {
	f.Add(`(a|ab)(c|bcd)(d*)`, "abcd")
	f.Add(`^(\w+) from (\S+)(?m:$)`, "x from y\n")
	f.Fuzz(func(t *testing.T, expr, in string) {
		want, err := regexp.Compile(expr)
		if err != nil || len(expr) > 200 {
			return
		}
		got, err := Compile(expr, 256)
		if err != nil {
			t.Fatalf("regexp compiles %q but dfa: %v", expr, err)
		}
		w := want.FindSubmatchIndex([]byte(in))
		g := got.FindSubmatchIndex([]byte(in))
		if !slices.Equal(w, g) {
			t.Fatalf("%q on %q: got %v, want %v", expr, in, g, w)
		}
	})
}

func BenchmarkFailedPassword(b *testing.B) {
	host := `(?:\[?(?:(?:::f{4,6}:)?(?P<ip4>(?:[0-9]{1,3}\.){3}[0-9]{1,3})|(?P<ip6>(?:[0-9a-fA-F]{1,4}::?|::){1,7}(?:[0-9a-fA-F]{1,4}|:)))\]?|(?P<dns>[\w\-.^_]*\w))`
	expr := `^Failed (?:(?P<nofail>publickey)|\S+) for (?:invalid user )?(?P<user>.*) from ` + host + `(?: port \d+)?(?: ssh\d*)?(?: \[preauth\])?\s*(?m:$)`
	in := []byte("Failed password for invalid user admin from 203.0.113.5 port 52314 ssh2\n")
	for _, eng := range []string{"regexp", "dfa"} {
		b.Run(eng, func(b *testing.B) {
			var find func([]byte) []int
			if eng == "regexp" {
				find = regexp.MustCompile(expr).FindSubmatchIndex
			} else {
				d, err := Compile(expr, 0)
				if err != nil {
					b.Fatal(err)
				}
				find = d.FindSubmatchIndex
			}
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				if find(in) == nil {
					b.Fatal("no match")
				}
			}
		})
	}
}

// TestAnchoredStart compares anchoredStart with the compiled program's
// start condition: never anchored where the program is not, and anchored
// wherever the pattern starts with \A before anything else.
func TestAnchoredStart(t *testing.T) {
	for _, tc := range []struct {
		expr string
		want bool
	}{
		{`^abc`, true},
		{`\Aabc`, true},
		{`(^a)b`, true},
		{`(?P<x>(?:^)a)`, true},
		{`\b^a`, true},
		{`(?:^a)+b`, true},
		{`(?:a|^b)`, false},
		{`(?:^a|^b)`, false},
		{`a^`, false},
		{`(?m)^a`, false},
		{`.*^a`, false},
		{`(?:^)?a`, false},
		{`(?:^a)*`, false},
		{`x`, false},
		{``, false},
		{`$^a`, true},
		{`(?:)^a`, true},
	} {
		re, err := syntax.Parse(tc.expr, syntax.Perl)
		if err != nil {
			t.Fatal(err)
		}
		got := anchoredStart(re)
		p, err := syntax.Compile(re.Simplify())
		if err != nil {
			t.Fatal(err)
		}
		prog := p.StartCond()&syntax.EmptyBeginText != 0
		if got != tc.want || (got && !prog) {
			t.Errorf("anchoredStart(%q) = %v, want %v (program: %v)", tc.expr, got, tc.want, prog)
		}
	}
}
