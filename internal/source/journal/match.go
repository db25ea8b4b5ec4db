package journal

import (
	"errors"
	"fmt"
	"strings"

	"github.com/palisade-project/palisade/internal/sysexec"
)

// ParseMatch turns a journalmatch value into journalctl match arguments:
// lines become alternatives separated by "+", each line is split into
// words like a POSIX shell would (quotes, backslashes; nothing is
// expanded). Every word must be "+" or FIELD=VALUE with FIELD made of
// A-Z, 0-9 and "_", or an absolute path (journalctl matches the binary).
func ParseMatch(s string) ([]string, error) {
	var out []string
	for ln := range strings.SplitSeq(s, "\n") {
		words, err := sysexec.SplitArgs(ln)
		if err != nil {
			return nil, fmt.Errorf("journalmatch %q: %w", ln, err)
		}
		if len(words) == 0 {
			continue
		}
		for _, w := range words {
			if err := checkMatchWord(w); err != nil {
				if len(words) == 1 {
					return nil, fmt.Errorf("journalmatch %q: %w", w, err)
				}
				return nil, fmt.Errorf("journalmatch %q: word %q: %w", ln, w, err)
			}
		}
		if len(out) > 0 && out[len(out)-1] != "+" && words[0] != "+" {
			out = append(out, "+")
		}
		out = append(out, words...)
	}
	return out, nil
}

func checkMatchWord(w string) error {
	if w == "+" || strings.HasPrefix(w, "/") {
		return nil
	}
	eq := strings.IndexByte(w, '=')
	if eq <= 0 {
		return errors.New("want FIELD=VALUE or +")
	}
	for _, r := range w[:eq] {
		if (r < 'A' || r > 'Z') && (r < '0' || r > '9') && r != '_' {
			return errors.New("field name must be A-Z, 0-9, _")
		}
	}
	return nil
}

// alternatives splits journalctl match words at "+" into their
// alternatives (journalctl ORs them); an empty match is one empty
// alternative (every entry).
func alternatives(words []string) [][]string {
	alts := [][]string{nil}
	for _, w := range words {
		if w == "+" {
			alts = append(alts, nil)
			continue
		}
		alts[len(alts)-1] = append(alts[len(alts)-1], w)
	}
	return alts
}

// join is alternatives' inverse.
func join(alts [][]string) []string {
	var out []string
	for i, a := range alts {
		if i > 0 {
			out = append(out, "+")
		}
		out = append(out, a...)
	}
	return out
}

// restrictMatches adds term to every alternative of matches (terms of
// different fields are ANDed by journalctl).
func restrictMatches(matches []string, term string) []string {
	alts := alternatives(matches)
	for i := range alts {
		alts[i] = append(alts[i], term)
	}
	return join(alts)
}

// RootOnly is the term palisade adds to a journalmatch alternative that
// names no trusted field: entries written by root only.
const RootOnly = "_UID=0"

// trusted reports whether a match word names where an entry came from in
// a way a local user cannot forge. journald itself sets these fields from
// the kernel's view of the sender: the unit and slice from its cgroup
// (a user's processes live in user-UID.slice and session scopes, never in
// a system service's cgroup), _UID from the socket credentials, and
// _TRANSPORT kernel or audit for messages only the kernel writes. Fields a
// sender chooses (SYSLOG_IDENTIFIER, MESSAGE, any field without "_") and
// fields derived from what a user controls (_COMM is the name of the
// program a user started, any user can start a copy named sshd; _EXE and
// _CMDLINE likewise) are not trusted.
func trusted(word string) bool {
	field, value, ok := strings.Cut(word, "=")
	if !ok {
		return false // a binary path: anyone may run that binary
	}
	switch field {
	case "_SYSTEMD_UNIT", "_SYSTEMD_SLICE", "_SYSTEMD_CGROUP", "_UID":
		return true
	case "_TRANSPORT":
		return value == "kernel" || value == "audit"
	}
	return false
}

// Untrusted returns the alternatives of the journalmatch value s (as
// text, "" for an empty match) that name no trusted field, so any local
// user could write entries they select (logger -t sshd "Failed password
// ... from 198.51.100.7"). The reader restricts each of them to root's
// entries (RootOnly); config check reports them.
func Untrusted(s string) ([]string, error) {
	words, err := ParseMatch(s)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, a := range alternatives(words) {
		if !anyTrusted(a) {
			out = append(out, strings.Join(a, " "))
		}
	}
	return out, nil
}

func anyTrusted(alt []string) bool {
	for _, w := range alt {
		if trusted(w) {
			return true
		}
	}
	return false
}

// restrictUntrusted adds RootOnly to every alternative of matches that
// names no trusted field, and returns the alternatives it restricted.
func restrictUntrusted(matches []string) ([]string, []string) {
	alts := alternatives(matches)
	var restricted []string
	for i, a := range alts {
		if !anyTrusted(a) {
			restricted = append(restricted, strings.Join(a, " "))
			alts[i] = append(a, RootOnly)
		}
	}
	return join(alts), restricted
}
