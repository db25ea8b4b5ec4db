package ini

import (
	"fmt"
	"strings"
)

// Option is one named value, used where order matters (filter and action
// arguments, tag maps).
type Option struct {
	Name  string
	Value string
}

// TagError is an error of SubstituteTags about the option Tag.
type TagError struct {
	Tag string
	Msg string
	Err error // the Lookup error, if any
}

func (e *TagError) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("tag <%s>: %s: %v", e.Tag, e.Msg, e.Err)
	}
	return fmt.Sprintf("tag <%s> %s", e.Tag, e.Msg)
}

func (e *TagError) Unwrap() error { return e.Err }

// MaxTagReplace is fail2ban's MAX_TAG_REPLACE_COUNT: how often one tag may
// be replaced inside one value before it counts as self-referencing.
const MaxTagReplace = 25

// maxTagPasses bounds the substitution passes over the whole map.
const maxTagPasses = 1000

// TagOptions tune SubstituteTags.
type TagOptions struct {
	// Ignore lists tags neither substituted nor substituted into.
	Ignore map[string]bool
	// Conditional, when set, prefers "<name>?<Conditional>" values.
	Conditional string
	// Lookup resolves a tag the map does not hold (fail2ban's addrepl);
	// ok=false leaves the tag in place.
	Lookup func(name string) (value string, ok bool, err error)
}

// FindTag finds the first "<name>" (name without space, '<' or '>') at or
// after from, returning its start and end offsets and the name.
func FindTag(s string, from int) (start, end int, name string, ok bool) {
	for i := from; i < len(s); i++ {
		if s[i] != '<' {
			continue
		}
		j := i + 1
		for j < len(s) && s[j] != ' ' && s[j] != '<' && s[j] != '>' {
			j++
		}
		if j < len(s) && s[j] == '>' && j > i+1 {
			return i, j + 1, s[i+1 : j], true
		}
		// s[j] is '<', ' ' or the end: no tag can start before j.
		i = j - 1
	}
	return 0, 0, "", false
}

// SubstituteTags is fail2ban's substituteRecursiveTags: every "<name>" in a
// value is replaced by the value of option name (or Lookup(name)), again
// and again while values still hold resolvable tags. Tags that resolve to
// nothing stay as they are (<HOST>, <F-USER>...). A value referring to
// itself, or a tag replaced more than MaxTagReplace times, is an error.
// The input is not modified; the result keeps the input order.
func SubstituteTags(tags []Option, o TagOptions) ([]Option, error) {
	// Like a Python dict: a repeated name keeps its first position and
	// takes the last value.
	out := make([]Option, 0, len(tags))
	index := make(map[string]int, len(tags))
	for _, t := range tags {
		if i, dup := index[t.Name]; dup {
			out[i].Value = t.Value
			continue
		}
		index[t.Name] = len(out)
		out = append(out, t)
	}
	get := func(name string) (string, bool) {
		if i, ok := index[name]; ok {
			return out[i].Value, true
		}
		return "", false
	}
	done := map[string]bool{}
	repCounts := map[string]map[string]int{}
	for pass := 0; ; pass++ {
		if pass >= maxTagPasses {
			return nil, fmt.Errorf("tag substitution did not settle after %d passes", maxTagPasses)
		}
		changed := false
		for i := range out {
			tag := out[i].Name
			if o.Ignore[tag] || done[tag] {
				continue
			}
			value := out[i].Value
			orig := value
			rplc := repCounts[tag]
			if rplc == nil {
				rplc = map[string]int{}
			}
			start, end, rtag, ok := FindTag(value, 0)
			for ok {
				if o.Ignore[rtag] {
					start, end, rtag, ok = FindTag(value, end)
					continue
				}
				cnt, seen := rplc[rtag]
				if !seen {
					cnt = 1
				}
				if rtag == tag || cnt > MaxTagReplace {
					return nil, &TagError{Tag: tag, Msg: fmt.Sprintf("refers to itself (found <%s> in %q)", rtag, shorten(value))}
				}
				repl, found := "", false
				if o.Conditional != "" {
					repl, found = get(rtag + "?" + o.Conditional)
				}
				if !found {
					repl, found = get(rtag)
					if !found && o.Lookup != nil {
						var err error
						repl, found, err = o.Lookup(rtag)
						if err != nil {
							return nil, &TagError{Tag: tag, Msg: fmt.Sprintf("resolving <%s>", rtag), Err: err}
						}
					}
				}
				if !found {
					start, end, rtag, ok = FindTag(value, end)
					continue
				}
				pat := "<" + rtag + ">"
				if n := strings.Count(value, pat); len(value)+n*(len(repl)-len(pat)) > MaxValueSize {
					return nil, &TagError{Tag: tag, Msg: fmt.Sprintf("value longer than %d bytes after substitution", MaxValueSize)}
				}
				value = strings.ReplaceAll(value, pat, repl)
				rplc[rtag]++
				start, end, rtag, ok = FindTag(value, start)
			}
			if value != orig {
				if _, _, _, more := FindTag(value, 0); more {
					repCounts[tag] = rplc
					changed = true
				}
				out[i].Value = value
			}
			if !strings.Contains(value, "<") {
				done[tag] = true
			}
		}
		if !changed {
			return out, nil
		}
	}
}
