package sysexec

import (
	"errors"
	"fmt"
	"strings"
)

// SplitArgs splits a command line written in a configuration file into an
// argument vector, without a shell: blanks separate words; '...' keeps text
// literally; "..." keeps text and allows the escapes \\ \" \$ and \`; a
// backslash outside quotes escapes the next character. Unquoted shell
// operators (| ; & ` and $( ) are refused, because nothing would interpret
// them: the program would receive them as literal arguments.
func SplitArgs(s string) ([]string, error) {
	var args []string
	var cur strings.Builder
	inWord := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\r' || c == '\n':
			if inWord {
				args = append(args, cur.String())
				cur.Reset()
				inWord = false
			}
		case c == '\'':
			j := strings.IndexByte(s[i+1:], '\'')
			if j < 0 {
				return nil, errors.New("unterminated single quote")
			}
			cur.WriteString(s[i+1 : i+1+j])
			i += j + 1
			inWord = true
		case c == '"':
			i++
			for ; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' && i+1 < len(s) && strings.IndexByte("\\\"$`", s[i+1]) >= 0 {
					i++
				}
				cur.WriteByte(s[i])
			}
			if i >= len(s) {
				return nil, errors.New("unterminated double quote")
			}
			inWord = true
		case c == '\\':
			if i+1 >= len(s) {
				return nil, errors.New("trailing backslash")
			}
			i++
			cur.WriteByte(s[i])
			inWord = true
		case strings.IndexByte("|;&`", c) >= 0 || c == '$' && i+1 < len(s) && s[i+1] == '(':
			return nil, fmt.Errorf("shell syntax %q is not supported (commands run without a shell)", c)
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	if inWord {
		args = append(args, cur.String())
	}
	return args, nil
}
