package ini

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// DefaultSection is the name of the section whose values every section sees.
const DefaultSection = "DEFAULT"

// Limits that keep hostile input bounded.
const (
	// MaxFileSize is the largest configuration file read.
	MaxFileSize = 4 << 20
	// MaxValueSize bounds an interpolated or tag-substituted value.
	MaxValueSize = 1 << 20
)

// Value is one option value and where it was set.
type Value struct {
	// Text is the raw (uninterpolated) value; continuation lines are
	// joined with "\n".
	Text string
	// File and Line locate the "key = value" line ("" and 0 for values
	// set by a program).
	File string
	Line int
}

// Where formats the value's origin as "file:line" ("" when unknown).
func (v Value) Where() string {
	if v.File == "" {
		return ""
	}
	if v.Line <= 0 {
		return v.File
	}
	return fmt.Sprintf("%s:%d", v.File, v.Line)
}

// Section is an ordered set of options.
type Section struct {
	Name string
	keys []string
	vals map[string]Value
}

func newSection(name string) *Section {
	return &Section{Name: name, vals: map[string]Value{}}
}

// Keys returns the option names in the order they were first set.
func (s *Section) Keys() []string { return append([]string(nil), s.keys...) }

// Get returns the raw value of an option of this section only.
func (s *Section) Get(key string) (Value, bool) {
	v, ok := s.vals[key]
	return v, ok
}

// Set sets an option, keeping its position when it already exists.
func (s *Section) Set(key string, v Value) {
	if _, ok := s.vals[key]; !ok {
		s.keys = append(s.keys, key)
	}
	s.vals[key] = v
}

func (s *Section) clone(name string) *Section {
	c := newSection(name)
	c.keys = append(c.keys, s.keys...)
	for k, v := range s.vals {
		c.vals[k] = v
	}
	return c
}

// File is one parsed configuration file.
type File struct {
	// Name is the file name used in messages.
	Name string
	// Defaults holds the [DEFAULT] options.
	Defaults *Section
	// Sections are the other sections in file order.
	Sections []*Section
}

// Section returns the named section of the file.
func (f *File) Section(name string) *Section {
	for _, s := range f.Sections {
		if s.Name == name {
			return s
		}
	}
	return nil
}

// ParseError is a syntax error in a configuration file.
type ParseError struct {
	File string
	Line int
	Key  string // "" when the error is not about one key
	Msg  string
}

func (e *ParseError) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	b.WriteString(": ")
	if e.Key != "" {
		fmt.Fprintf(&b, "key %q: ", e.Key)
	}
	b.WriteString(e.Msg)
	return b.String()
}

// pyIsSpace reports whether r is whitespace for Python's str.isspace.
func pyIsSpace(r rune) bool {
	return unicode.IsSpace(r) || (r >= 0x1c && r <= 0x1f)
}

func pyStrip(s string) string { return strings.TrimFunc(s, pyIsSpace) }

func pyRStrip(s string) string { return strings.TrimRightFunc(s, pyIsSpace) }

// splitLines splits like Python's universal newlines: "\n", "\r\n" and "\r".
func splitLines(s string) []string {
	var lines []string
	for len(s) > 0 {
		i := strings.IndexAny(s, "\r\n")
		if i < 0 {
			lines = append(lines, s)
			break
		}
		lines = append(lines, s[:i])
		if s[i] == '\r' && i+1 < len(s) && s[i+1] == '\n' {
			i++
		}
		s = s[i+1:]
	}
	return lines
}

// inlineComment returns the index where an inline ';' comment starts
// (';' at the start of the line or after whitespace), or -1.
func inlineComment(line string) int {
	prev := rune(-1)
	for i, r := range line {
		if r == ';' && (i == 0 || pyIsSpace(prev)) {
			return i
		}
		prev = r
	}
	return -1
}

// indentOf returns the number of leading whitespace characters.
func indentOf(line string) int {
	n := 0
	for _, r := range line {
		if !pyIsSpace(r) {
			return n
		}
		n++
	}
	return 0 // Python: no non-space character → level 0
}

// Parse parses one configuration file. name is used in messages.
func Parse(name string, data []byte) (*File, error) {
	if len(data) > MaxFileSize {
		return nil, &ParseError{File: name, Msg: fmt.Sprintf("file larger than %d bytes", MaxFileSize)}
	}
	text := string(data)
	text = strings.TrimPrefix(text, "\ufeff")
	if !utf8.ValidString(text) {
		line := 1 + strings.Count(text[:firstInvalid(text)], "\n")
		return nil, &ParseError{File: name, Line: line, Msg: "invalid UTF-8"}
	}
	f := &File{Name: name, Defaults: newSection(DefaultSection)}
	type pending struct {
		sec   *Section
		key   string
		lines []string
		line  int
	}
	var (
		cur      *Section // current section (Defaults for [DEFAULT])
		curName  string
		opt      *pending // current option, nil after a header
		indent   int
		added    = map[string]bool{} // "S" sections and "S\x00k" options seen in this file
		errs     []error
		finished []*pending
	)
	flush := func() {
		if opt != nil {
			finished = append(finished, opt)
			opt = nil
		}
	}
	for i, line := range splitLines(text) {
		lineno := i + 1
		commentStart := inlineComment(line)
		trimmed := pyStrip(line)
		if strings.HasPrefix(trimmed, "#") || strings.HasPrefix(trimmed, ";") {
			commentStart = 0
		}
		value := line
		if commentStart >= 0 {
			value = line[:commentStart]
		}
		value = pyStrip(value)
		if value == "" {
			// Python keeps empty lines inside values (empty_lines_in_values),
			// but not comment lines.
			if commentStart < 0 && cur != nil && opt != nil {
				opt.lines = append(opt.lines, "")
			}
			continue
		}
		ind := indentOf(line)
		if cur != nil && opt != nil && ind > indent {
			opt.lines = append(opt.lines, value)
			continue
		}
		indent = ind
		if hdr, ok := sectionHeader(value); ok {
			flush()
			if hdr == DefaultSection {
				cur = f.Defaults
			} else if s := f.Section(hdr); s != nil {
				if added[hdr] {
					return nil, &ParseError{File: name, Line: lineno, Msg: fmt.Sprintf("section [%s] already exists in this file", hdr)}
				}
				cur = s
			} else {
				cur = newSection(hdr)
				f.Sections = append(f.Sections, cur)
				added[hdr] = true
			}
			curName = hdr
			continue
		}
		if cur == nil {
			return nil, &ParseError{File: name, Line: lineno, Msg: fmt.Sprintf("no section header before %q", shorten(line))}
		}
		d := strings.IndexAny(value, "=:")
		if d < 0 {
			errs = append(errs, &ParseError{File: name, Line: lineno, Msg: fmt.Sprintf("expected \"key = value\", got %q", shorten(line))})
			flush()
			continue
		}
		key := strings.ToLower(pyRStrip(value[:d]))
		if key == "" {
			errs = append(errs, &ParseError{File: name, Line: lineno, Msg: fmt.Sprintf("missing key name in %q", shorten(line))})
		}
		ak := curName + "\x00" + key
		if added[ak] {
			return nil, &ParseError{File: name, Line: lineno, Key: key, Msg: fmt.Sprintf("option already set in section [%s] of this file", curName)}
		}
		added[ak] = true
		flush()
		opt = &pending{sec: cur, key: key, lines: []string{pyStrip(value[d+1:])}, line: lineno}
	}
	flush()
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	for _, p := range finished {
		p.sec.Set(p.key, Value{Text: pyRStrip(strings.Join(p.lines, "\n")), File: name, Line: p.line})
	}
	return f, nil
}

func firstInvalid(s string) int {
	for i, r := range s {
		if r == utf8.RuneError {
			if _, n := utf8.DecodeRuneInString(s[i:]); n <= 1 {
				return i
			}
		}
	}
	return len(s)
}

// sectionHeader mirrors Python's SECTCRE "\[(?P<header>.+)\]" used with
// re.match: the text between the first '[' and the last ']' (at least one
// character); anything after that ']' is ignored.
func sectionHeader(v string) (string, bool) {
	if !strings.HasPrefix(v, "[") {
		return "", false
	}
	j := strings.LastIndexByte(v, ']')
	if j < 2 {
		return "", false
	}
	return v[1:j], true
}

func shorten(s string) string {
	if len(s) > 60 {
		s = s[:60]
		for !utf8.ValidString(s) {
			s = s[:len(s)-1]
		}
		return s + "..."
	}
	return s
}
