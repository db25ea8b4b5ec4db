package cli

import (
	"io"
	"strings"
	"testing"
)

// BenchmarkRegexSetup measures what `palisade regex` does before its first
// line: finding and reading the filter, the stock files' sums, compiling
// the filter (b.N counts setups).
func BenchmarkRegexSetup(b *testing.B) {
	for _, name := range []string{"sshd", "postfix"} {
		b.Run(name, func(b *testing.B) {
			app := &App{Stdin: strings.NewReader(""), Stdout: io.Discard, Stderr: io.Discard}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := setupRegex(app, regexFlags{tz: "UTC"}, name, nil, false); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
