package filter

import (
	"regexp/syntax"

	"github.com/palisade-project/palisade/internal/filter/dfa"
)

// rxList is an ordered list of regexes of which the first that matches
// decides (failregex, ignoreregex). The RE2 ones run as one automaton
// (dfa.Set), so a line costs one pass whatever the number of regexes;
// backtracking ones are tried in their place in the order.
type rxList struct {
	rxs []*rx
	set *dfa.Set
	// setIdx[k] is the list index of the set's pattern k.
	setIdx []int
	// bt lists the indexes of the regexes outside the set, ascending.
	bt []int
}

// minSet is the list length from which a set pays off.
const minSet = 2

func newRxList(rxs []*rx) (rxList, error) {
	l := rxList{rxs: rxs}
	if len(rxs) >= minSet {
		var exprs []*syntax.Regexp
		for i, r := range rxs {
			if r.syn == nil || r.head != nil {
				l.bt = append(l.bt, i)
				continue
			}
			exprs = append(exprs, r.syn)
			l.setIdx = append(l.setIdx, i)
		}
		if len(exprs) >= minSet {
			if s, err := dfa.CompileSetSyntax(exprs, 0); err == nil {
				l.set = s
				for _, i := range l.bt {
					if err := rxs[i].dfaRegexp(); err != nil {
						return l, err
					}
				}
				return l, nil
			}
		}
		l.setIdx, l.bt = nil, nil
	}
	// each regex on its own
	for _, r := range rxs {
		if err := r.dfaRegexp(); err != nil {
			return l, err
		}
	}
	return l, nil
}

// first returns the index of the first regex that matches buf and its
// spans, or -1. timeouts counts backtracking matches that gave up.
func (l *rxList) first(buf []byte, timeouts *uint64) (int, []int) {
	if l.set == nil {
		for i, r := range l.rxs {
			spans, to := r.match(buf)
			if to {
				*timeouts++
			}
			if spans != nil {
				return i, spans
			}
		}
		return -1, nil
	}
	k, spans := l.set.Match(buf)
	win := len(l.rxs)
	if k >= 0 {
		win = l.setIdx[k]
	}
	// backtracking regexes before the set's winner come first
	for _, i := range l.bt {
		if i >= win {
			break
		}
		s, to := l.rxs[i].match(buf)
		if to {
			*timeouts++
		}
		if s != nil {
			return i, s
		}
	}
	if k < 0 {
		return -1, nil
	}
	return win, spans
}

// dfaStats adds the automata's state counts and cache resets.
func (l *rxList) dfaStats(states, resets *int) {
	if l.set != nil {
		*states += l.set.States()
		*resets += l.set.Resets()
	}
	for _, r := range l.rxs {
		r.dfaStats(states, resets)
	}
}

func (r *rx) dfaStats(states, resets *int) {
	for _, d := range []*dfa.Regexp{r.d, r.head} {
		if d != nil {
			*states += d.States()
			*resets += d.Resets()
		}
	}
}
