package ini

import (
	"fmt"
	"strings"
	"time"

	"github.com/dlclark/regexp2"
)

// The patterns below are fail2ban's OPTION_CRE, OPTION_EXTRACT_CRE and
// OPTION_SPLIT_CRE semantics, written for regexp2 (they need backtracking
// and lookahead). Config text is admin-controlled, but a match timeout
// still bounds pathological input.
const optionTimeout = 2 * time.Second

var (
	optionRE        = mustRE(`^([^\[]+)(?:\[(.*)\])?\s*$`)
	optionExtractRE = mustRE(
		`\s*([\w\-_\.]+)=(?:"([^"]*)"|'([^']*)'|([^,\]]*))(?:,|\]\s*\[|$|(?<wrngA>.+))|,?\s*$|(?<wrngB>.+)`)
	optionSplitRE = mustRE(
		`(?:[^\[\s]+(?:\s*\[\s*(?:[\w\-_\.]+=(?:"[^"]*"|'[^']*'|[^,\]]*)\s*(?:,|\]\s*\[)?\s*)*\])?\s*|\S+)(?=\n\s*|\s+|$)`)
)

func mustRE(p string) *regexp2.Regexp {
	re := regexp2.MustCompile(p, regexp2.Singleline)
	re.MatchTimeout = optionTimeout
	return re
}

// ExtractOptions splits "name[k=v, k2="v, 2", k3='x']" (also
// "name[k=v][k2=v2]") into the name and its options in order, like
// fail2ban's extractOptions. Values are trimmed; quotes protect ',' and
// ']'. A repeated key keeps its first position and takes the last value.
// The name is returned as written (not trimmed).
func ExtractOptions(s string) (string, []Option, error) {
	m, err := optionRE.FindStringMatch(s)
	if err != nil {
		return "", nil, fmt.Errorf("option %q: %w", shorten(s), err)
	}
	if m == nil {
		return "", nil, fmt.Errorf("unexpected option syntax in %q", shorten(s))
	}
	name := m.GroupByNumber(1).String()
	g := m.GroupByNumber(2)
	if len(g.Captures) == 0 || g.Length == 0 {
		return name, nil, nil
	}
	optstr := g.String()
	var opts []Option
	index := map[string]int{}
	ex := optionExtractRE
	om, err := ex.FindStringMatch(optstr)
	for n := 0; om != nil && err == nil; n++ {
		if n > len(optstr)+1 {
			return "", nil, fmt.Errorf("options of %q: no progress", shorten(name))
		}
		if w := om.GroupByName("wrngA"); w != nil && w.Length > 0 {
			key := om.GroupByNumber(1).String()
			return "", nil, fmt.Errorf("unexpected syntax at %d after option %q: %s", w.Index, key, shorten(w.String()))
		}
		if w := om.GroupByName("wrngB"); w != nil && w.Length > 0 {
			return "", nil, fmt.Errorf("expected option, wrong syntax at %d: %s", w.Index, shorten(w.String()))
		}
		if key := om.GroupByNumber(1); len(key.Captures) > 0 && key.Length > 0 {
			val := ""
			for _, gi := range []int{2, 3, 4} {
				if vg := om.GroupByNumber(gi); len(vg.Captures) > 0 {
					val = vg.String()
					break
				}
			}
			k, v := pyStrip(key.String()), pyStrip(val)
			if i, ok := index[k]; ok {
				opts[i].Value = v
			} else {
				index[k] = len(opts)
				opts = append(opts, Option{Name: k, Value: v})
			}
		}
		om, err = ex.FindNextMatch(om)
	}
	if err != nil {
		return "", nil, fmt.Errorf("options of %q: %w", shorten(name), err)
	}
	return name, opts, nil
}

// SplitWithOptions splits a list such as a jail's "action" value into its
// items, keeping "name[...]" together even across spaces and newlines
// (fail2ban's splitWithOptions). Items may carry surrounding whitespace.
func SplitWithOptions(s string) ([]string, error) {
	re := optionSplitRE
	var out []string
	m, err := re.FindStringMatch(s)
	for n := 0; m != nil && err == nil; n++ {
		if n > len(s)+1 {
			break
		}
		out = append(out, m.String())
		m, err = re.FindNextMatch(m)
	}
	if err != nil {
		return nil, fmt.Errorf("splitting %q: %w", shorten(strings.TrimSpace(s)), err)
	}
	return out, nil
}
