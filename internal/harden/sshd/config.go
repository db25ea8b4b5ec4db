// Package sshd audits and hardens OpenSSH's server configuration. It reads
// the effective configuration from "sshd -T" (so drop-ins and Match blocks
// count), traces each value to the file and line that sets it by parsing
// the configuration the way sshd does (Include globs, first value wins,
// Match blocks), and writes changes where sshd honours them, with
// validation ("sshd -t"), verification ("sshd -T") and an automatic
// rollback.
package sshd

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/palisade-project/palisade/internal/harden/fsx"
)

// DefaultConfig is the main sshd configuration file.
const DefaultConfig = "/etc/ssh/sshd_config"

// maxIncludeDepth bounds nested Include directives (sshd allows 16).
const maxIncludeDepth = 16

// maxFiles bounds how many files one configuration may include.
const maxFiles = 1024

// Directive is one configuration line.
type Directive struct {
	Keyword string   // as written
	Args    []string // arguments, quotes removed
	File    string   // full path of the file
	Line    int      // 1-based line number
	Match   *Match   // enclosing Match block; nil in the global section
	// Included lists, for an Include directive, the files each argument
	// named (full paths, in the order sshd reads them).
	Included [][]string
}

// Key is the keyword in lower case.
func (d Directive) Key() string { return strings.ToLower(d.Keyword) }

// Where is "file:line".
func (d Directive) Where() string { return fmt.Sprintf("%s:%d", d.File, d.Line) }

// Match is a Match block.
type Match struct {
	Criteria []string // the Match line's arguments
	File     string
	Line     int
}

// Where is "file:line".
func (m *Match) Where() string { return fmt.Sprintf("%s:%d", m.File, m.Line) }

// Config is a parsed sshd configuration tree.
type Config struct {
	Root string // the --root prefix
	Main string // full path of the main file
	// Directives in the order sshd reads them (includes expanded in place).
	Directives []Directive
	// Files maps each file read to its content.
	Files map[string][]byte
	// Order lists the files in reading order.
	Order []string
}

// Load parses the configuration whose main file is main (a full path;
// root-prefixed by the caller). Include paths are resolved as sshd does:
// relative paths against /etc/ssh, globs sorted; under root they are
// prefixed unless they already lie under it.
func Load(root, main string) (*Config, error) {
	c := &Config{Root: root, Main: main, Files: map[string][]byte{}}
	if err := c.parseFile(main, nil, 0, true); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *Config) parseFile(path string, match *Match, depth int, mustExist bool) error {
	if depth > maxIncludeDepth {
		return fmt.Errorf("%s: Include nested too deeply", path)
	}
	if len(c.Files) >= maxFiles {
		return fmt.Errorf("%s: too many included files", path)
	}
	data, err := fsx.ReadFileIn(c.Root, path)
	if err != nil {
		if !mustExist && errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("read sshd config: %w", err)
	}
	if _, seen := c.Files[path]; !seen {
		c.Order = append(c.Order, path)
	}
	c.Files[path] = data
	cur := match
	for i, raw := range fsx.SplitLines(data) {
		kw, args, err := splitLine(raw)
		if err != nil {
			return fmt.Errorf("%s:%d: %w", path, i+1, err)
		}
		if kw == "" {
			continue
		}
		d := Directive{Keyword: kw, Args: args, File: path, Line: i + 1, Match: cur}
		switch strings.ToLower(kw) {
		case "match":
			cur = &Match{Criteria: args, File: path, Line: i + 1}
			d.Match = cur
			c.Directives = append(c.Directives, d)
		case "include":
			at := len(c.Directives)
			c.Directives = append(c.Directives, d) // before what it includes
			for _, pat := range args {
				files, err := c.include(pat, cur, depth)
				if err != nil {
					return fmt.Errorf("%s:%d: %w", path, i+1, err)
				}
				c.Directives[at].Included = append(c.Directives[at].Included, files)
			}
		default:
			c.Directives = append(c.Directives, d)
		}
	}
	return nil
}

// include reads the files pat names (the files read, in order).
func (c *Config) include(pat string, match *Match, depth int) ([]string, error) {
	if !filepath.IsAbs(pat) && !strings.HasPrefix(pat, "~") {
		pat = filepath.Join("/etc/ssh", pat)
	}
	pat = fsx.Path(c.Root, pat)
	matches, err := fsx.GlobIn(c.Root, pat)
	if err != nil {
		return nil, fmt.Errorf("include %s: %w", pat, err)
	}
	sort.Strings(matches)
	var read []string
	for _, m := range matches {
		if err := c.parseFile(m, match, depth+1, false); err != nil {
			return nil, err
		}
		if _, ok := c.Files[m]; ok {
			read = append(read, m)
		}
	}
	return read, nil
}

// splitLine splits one line into keyword and arguments the way sshd does:
// '#' starts a comment at the beginning of a line or of an argument,
// "keyword=value" is allowed, double quotes group an argument.
func splitLine(raw string) (string, []string, error) {
	s := strings.TrimRight(raw, "\r\n")
	s = strings.TrimLeft(s, " \t")
	if s == "" || s[0] == '#' {
		return "", nil, nil
	}
	var toks []string
	var cur strings.Builder
	inQuote, have := false, false
	for i := 0; i < len(s); i++ {
		ch := s[i]
		switch {
		case inQuote:
			if ch == '"' {
				inQuote = false
			} else {
				cur.WriteByte(ch)
			}
		case ch == '"':
			inQuote, have = true, true
		case ch == ' ' || ch == '\t' || (ch == '=' && len(toks) == 0):
			if have {
				toks = append(toks, cur.String())
				cur.Reset()
				have = false
			}
		case ch == '#' && !have:
			i = len(s) // comment to the end of the line
		default:
			cur.WriteByte(ch)
			have = true
		}
	}
	if inQuote {
		return "", nil, errors.New("unterminated quote")
	}
	if have {
		toks = append(toks, cur.String())
	}
	if len(toks) == 0 {
		return "", nil, nil
	}
	if len(toks) > 1 && toks[1] == "=" { // "Keyword = value"
		toks = append(toks[:1], toks[2:]...)
	}
	return toks[0], toks[1:], nil
}

// First returns the directive that sets keyword for connections that match
// no Match block: sshd keeps the first value it reads.
func (c *Config) First(keyword string) (Directive, bool) {
	k := strings.ToLower(keyword)
	for _, d := range c.Directives {
		if d.Match == nil && d.Key() == k {
			return d, true
		}
	}
	return Directive{}, false
}

// All returns every directive for keyword, in reading order, in the global
// section and in Match blocks.
func (c *Config) All(keyword string) []Directive {
	k := strings.ToLower(keyword)
	var out []Directive
	for _, d := range c.Directives {
		if d.Key() == k {
			out = append(out, d)
		}
	}
	return out
}

// Matches returns the Match blocks in reading order.
func (c *Config) Matches() []*Match {
	var out []*Match
	for _, d := range c.Directives {
		if d.Key() == "match" && d.Match != nil {
			out = append(out, d.Match)
		}
	}
	return out
}

// InMatch returns the directives inside m.
func (c *Config) InMatch(m *Match) []Directive {
	var out []Directive
	for _, d := range c.Directives {
		if d.Match == m && d.Key() != "match" {
			out = append(out, d)
		}
	}
	return out
}
