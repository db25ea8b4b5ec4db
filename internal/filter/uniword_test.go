package filter

import (
	"fmt"
	"math/rand/v2"
	"regexp/syntax"
	"slices"
	"strings"
	"testing"
)

// TestUniWordRanges checks that uniWordRanges is exactly uniWord (Python's
// Unicode \w) in this Go release's Unicode tables, inside a class, negated
// and among other items; when a release changes the tables it prints the
// text to paste into uniword.go.
func TestUniWordRanges(t *testing.T) {
	for _, tc := range [][2]string{
		{"[" + uniWordRanges + "]", "[" + uniWord + "]"},
		{"[^" + uniWordRanges + "]", "[^" + uniWord + "]"},
		{"[" + uniWordRanges + ".-]", "[" + uniWord + ".-]"},
		{"(?i)[" + uniWordRanges + "]", "(?i)[" + uniWord + "]"},
	} {
		got, err := syntax.Parse(tc[0], syntax.Perl)
		if err != nil {
			t.Fatal(err)
		}
		want, err := syntax.Parse(tc[1], syntax.Perl)
		if err != nil {
			t.Fatal(err)
		}
		if got.Op != syntax.OpCharClass || !slices.Equal(got.Rune, want.Rune) {
			t.Errorf("%s: not the class of %s", clip(tc[0], 40), tc[1])
		}
	}
	if t.Failed() {
		re, _ := syntax.Parse("["+uniWord+"]", syntax.Perl)
		t.Logf("uniWordRanges for this release:\n%s", rangesText(re.Rune))
	}
	// the translation reads \w and \W as uniWord
	tr, err := translate(`^a\w[\w.]\W$`, dollarSingle)
	if err != nil {
		t.Fatal(err)
	}
	got, err := syntax.Parse(tr.Go, syntax.Perl)
	if err != nil {
		t.Fatal(err)
	}
	want, err := syntax.Parse(`^a[`+uniWord+`][`+uniWord+`.][^`+uniWord+`](?m:$)`, syntax.Perl)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Equal(want) {
		t.Errorf("translate: %s\nwant %s", clip(got.String(), 200), clip(want.String(), 200))
	}
}

// rangesText writes class ranges as uniword.go's Go string lines.
func rangesText(r []rune) string {
	esc := func(c rune) string {
		switch {
		case c < 0x80:
			return string(c)
		case c <= 0xffff:
			return fmt.Sprintf(`\u%04x`, c)
		}
		return fmt.Sprintf(`\U%08x`, c)
	}
	var b strings.Builder
	for i := 0; i+1 < len(r); i += 2 {
		if i%12 == 0 {
			if i > 0 {
				b.WriteString("\" +\n")
			}
			b.WriteString("\t\"")
		}
		b.WriteString(esc(r[i]))
		if r[i+1] != r[i] {
			b.WriteString("-" + esc(r[i+1]))
		}
	}
	b.WriteString("\"\n")
	return b.String()
}

// TestMayGlobToLocal checks that the pre-check never skips a pattern
// globToLocal rewrites (random patterns over the characters that matter)
// and that it skips the address tags.
func TestMayGlobToLocal(t *testing.T) {
	for _, s := range []string{"((?i)x)", "(?:(?i)x)", "a((?im)x)", `\((?i)x)`, "(?i)x", reHOST, reSUBN, "((?:x)", "((?)x)"} {
		if globToLocal.MatchString(s) && !mayGlobToLocal(s) {
			t.Errorf("mayGlobToLocal(%q) = false, globToLocal matches", s)
		}
	}
	if mayGlobToLocal(reHOST) || mayGlobToLocal(reSUBN) {
		t.Error("the address tags were not skipped")
	}
	const alphabet = `(?:)i\x`
	rnd := rand.New(rand.NewPCG(1, 2))
	b := make([]byte, 12)
	for n := 0; n < 200000; n++ {
		for i := range b {
			b[i] = alphabet[rnd.IntN(len(alphabet))]
		}
		s := string(b[:1+rnd.IntN(len(b))])
		if globToLocal.MatchString(s) && !mayGlobToLocal(s) {
			t.Fatalf("mayGlobToLocal(%q) = false, globToLocal matches", s)
		}
	}
}
