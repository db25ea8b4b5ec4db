package actionexec

import (
	"fmt"
	"strings"
)

// tagMark brackets a run-time tag inside expanded text until the command
// is split into words: it cannot occur in configuration text (checked).
const tagMark = '\x00'

// part is a literal piece of a word, or a run-time tag.
type part struct {
	lit string
	tag string // non-empty for a tag
}

// word is one argv element: literal pieces and run-time tags.
type word []part

// command is one program invocation.
type command []word

// split turns one command line into words with a small, shell-like
// grammar: blanks separate words; '...' is literal; "..." allows \" \\ \$
// and \` escapes; a backslash outside quotes escapes the next character.
// Anything a shell would interpret (pipes, redirections, ; & && ||,
// subshells, $ expansions, backticks, globs, braces) is refused, so the
// program runs exactly the argv written in the action file.
func split(line string) (command, error) {
	var (
		cmd     command
		cur     strings.Builder
		inWord  bool
		inTag   bool
		tag     strings.Builder
		w       word
		quote   rune // 0, '\'' or '"'
		escaped bool
	)
	flushLit := func() {
		if cur.Len() > 0 {
			w = append(w, part{lit: cur.String()})
			cur.Reset()
		}
	}
	endWord := func() {
		if !inWord {
			return
		}
		flushLit()
		cmd = append(cmd, w)
		w, inWord = nil, false
	}
	for i, r := range line {
		if inTag {
			if r == tagMark {
				flushLit()
				w = append(w, part{tag: tag.String()})
				tag.Reset()
				inTag = false
			} else {
				tag.WriteRune(r)
			}
			continue
		}
		if r == tagMark {
			inTag, inWord = true, true
			continue
		}
		if escaped {
			cur.WriteRune(r)
			escaped = false
			continue
		}
		switch quote {
		case '\'':
			if r == '\'' {
				quote = 0
			} else {
				cur.WriteRune(r)
			}
			continue
		case '"':
			switch r {
			case '"':
				quote = 0
			case '\\':
				if i+1 < len(line) && strings.ContainsRune("\"\\$`", rune(line[i+1])) {
					escaped = true
				} else {
					cur.WriteRune(r)
				}
			case '$', '`':
				return nil, fmt.Errorf("%q inside double quotes would be expanded by a shell; palisade runs no shell (use single quotes for a literal)", r)
			default:
				cur.WriteRune(r)
			}
			continue
		}
		switch {
		case r == ' ' || r == '\t':
			endWord()
		case r == '\'' || r == '"':
			quote, inWord = r, true
		case r == '\\':
			escaped, inWord = true, true
		case r == '#' && !inWord:
			return nil, fmt.Errorf("shell comment '#' is not supported")
		case strings.ContainsRune("|&;<>()`$*?[]{}~", r):
			return nil, fmt.Errorf("shell syntax %q is not supported: palisade runs the command without a shell (pipes, redirections, ;, &&, ||, $, `, globs and braces are refused)", r)
		default:
			cur.WriteRune(r)
			inWord = true
		}
	}
	switch {
	case quote != 0:
		return nil, fmt.Errorf("unterminated %c quote", quote)
	case escaped:
		return nil, fmt.Errorf("trailing backslash")
	case inTag:
		return nil, fmt.Errorf("internal: unterminated tag")
	}
	endWord()
	return cmd, nil
}
