package pipeline

import (
	"fmt"
	"os"
	"regexp"
	"strings"

	"github.com/palisade-project/palisade/internal/config"
	"github.com/palisade-project/palisade/internal/filter"
)

// LintNote is a filter.Lint warning with where its failregex is written.
type LintNote struct {
	filter.LintWarning
	// Filter is the filter's name; Where is "file:line" of the regex's
	// line, or of the failregex option when the line is not found ("":
	// unknown, e.g. a jail's own failregex; Build sets the jail's).
	Filter string
	Where  string
}

func (n LintNote) String() string {
	w := n.Where
	if w != "" {
		w += ": "
	}
	return fmt.Sprintf("%sfilter %s: %s", w, n.Filter, n.LintWarning.String())
}

// lintNotes runs filter.Lint on a filter read from disk and locates each
// warning's regex in the files.
func lintNotes(def filter.Definition, lf *config.LoadedFilter) []LintNote {
	ws := filter.Lint(def)
	if len(ws) == 0 {
		return nil
	}
	files := map[string][]string{}
	out := make([]LintNote, len(ws))
	for i, w := range ws {
		out[i] = LintNote{LintWarning: w, Filter: def.Name, Where: locateRegex(w.Source, lf.Raw, files)}
	}
	return out
}

// optionRef is what %(x)s interpolation and <tag> substitution replace.
var optionRef = regexp.MustCompile(`%\([^)]*\)s|<[^<>]*>`)

// locateRegex finds the written line a final regex came from: the raw
// option line whose literal fragments (the text between %(x)s and <tag>
// references) all occur in the regex, in order, with the most text.
func locateRegex(re string, raw []config.RawOption, files map[string][]string) string {
	best, bestScore := "", 0
	for _, o := range raw {
		for k, line := range strings.Split(o.Text, "\n") {
			line = strings.TrimSpace(line)
			score, rest := 0, re
			ok := true
			for _, frag := range optionRef.Split(line, -1) {
				if frag == "" {
					continue
				}
				i := strings.Index(rest, frag)
				if i < 0 {
					ok = false
					break
				}
				score += len(frag)
				rest = rest[i+len(frag):]
			}
			if ok && score > bestScore {
				best, bestScore = fmt.Sprintf("%s:%d", o.File, lineOf(o.File, o.Line+k, line, files)), score
			}
		}
	}
	return best
}

// lineOf is the number of the file's line holding text at or after
// guess (a value's continuation lines may be interleaved with comments),
// guess when the file cannot be read or the text is not found.
func lineOf(file string, guess int, text string, files map[string][]string) int {
	lines, ok := files[file]
	if !ok {
		if data, err := os.ReadFile(file); err == nil {
			lines = strings.Split(string(data), "\n")
		}
		files[file] = lines
	}
	for n := max(guess, 1); n <= len(lines) && n < guess+200; n++ {
		if strings.Contains(lines[n-1], text) {
			return n
		}
	}
	return guess
}
