// Package stock recognises fail2ban's stock configuration files: a file
// whose content is byte for byte what Debian's fail2ban package installed.
// dpkg keeps an MD5 sum of every file a package installs: configuration
// files ("conffiles", everything under /etc/fail2ban) in
// /var/lib/dpkg/status, in the package's Conffiles field, and the other
// files in /var/lib/dpkg/info/fail2ban.md5sums. Both are read.
//
// Only the content is compared with the sum recorded for the file's
// installed path, so a copy of /etc/fail2ban elsewhere (--config-dir) is
// recognised as well; a file edited in any way is not.
package stock

import (
	"bufio"
	"bytes"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
)

// Package is the Debian package whose files are recognised.
const Package = "fail2ban"

// Where dpkg keeps the sums, relative to the root.
const (
	StatusFile  = "var/lib/dpkg/status"
	MD5SumsFile = "var/lib/dpkg/info/" + Package + ".md5sums"
)

// maxLine bounds one line of the dpkg database.
const maxLine = 1 << 20

// Sums are the recorded MD5 sums of the package's files by installed
// path ("/etc/fail2ban/filter.d/sshd.conf"). The zero value and nil know
// no file.
type Sums struct {
	sums map[string]map[[md5.Size]byte]bool
	// From are the database files read.
	From []string

	// lazy: the database is read on first use (Lazy)
	once sync.Once
	lazy func() *Sums
}

// Lazy is Load deferred to the first Len, Match or MatchFile: a caller
// that may never look at a file on disk (`palisade regex` with a built-in
// filter) does not read the dpkg database (some 800 KB) for nothing. An
// error reading it leaves the sums empty, as Load's caller that ignores
// its error would.
func Lazy(root string) *Sums {
	return &Sums{lazy: func() *Sums {
		s, _ := Load(root)
		return s
	}}
}

// loaded returns s with its database read.
func (s *Sums) loaded() *Sums {
	if s.lazy != nil {
		s.once.Do(func() {
			if l := s.lazy(); l != nil {
				s.sums, s.From = l.sums, l.From
			}
		})
	}
	return s
}

// Load reads the sums from the dpkg database under root ("" or "/": the
// real root). When root holds no dpkg database (a test tree given as
// --root) the real root's is read: only the sums matter, not where they
// were found. A system without dpkg has no sums (no error).
func Load(root string) (*Sums, error) {
	if root != "" && root != "/" {
		if _, err := os.Stat(filepath.Join(root, StatusFile)); err != nil {
			root = "/"
		}
	}
	if root == "" {
		root = "/"
	}
	s := &Sums{sums: map[string]map[[md5.Size]byte]bool{}}
	for _, f := range []struct {
		name  string
		parse func(io.Reader) error
	}{{StatusFile, s.parseStatus}, {MD5SumsFile, s.parseMD5Sums}} {
		p := filepath.Join(root, f.name)
		fh, err := os.Open(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return s, fmt.Errorf("dpkg database: %w", err)
		}
		err = f.parse(fh)
		fh.Close()
		if err != nil {
			return s, fmt.Errorf("dpkg database %s: %w", p, err)
		}
		s.From = append(s.From, p)
	}
	return s, nil
}

// Parse reads the sums from the contents of a dpkg status file and a
// package's md5sums file (either may be nil).
func Parse(status, md5sums io.Reader) (*Sums, error) {
	s := &Sums{sums: map[string]map[[md5.Size]byte]bool{}}
	if status != nil {
		if err := s.parseStatus(status); err != nil {
			return nil, err
		}
	}
	if md5sums != nil {
		if err := s.parseMD5Sums(md5sums); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// Len is the number of files with a recorded sum.
func (s *Sums) Len() int {
	if s == nil {
		return 0
	}
	return len(s.loaded().sums)
}

// Match reports whether content is the recorded content of the file
// installed at path (absolute, "/etc/fail2ban/filter.d/sshd.conf").
func (s *Sums) Match(path string, content []byte) bool {
	if s == nil {
		return false
	}
	set := s.loaded().sums[path]
	if set == nil {
		return false
	}
	return set[md5.Sum(content)]
}

// MatchFile is Match for the file on disk at file.
func (s *Sums) MatchFile(path, file string) bool {
	if s.Len() == 0 {
		return false
	}
	data, err := os.ReadFile(file)
	return err == nil && s.Match(path, data)
}

func (s *Sums) add(path, sum string) {
	b, err := hex.DecodeString(sum)
	if err != nil || len(b) != md5.Size || !strings.HasPrefix(path, "/") {
		return // "newconffile" and other placeholders: no sum
	}
	var k [md5.Size]byte
	copy(k[:], b)
	if s.sums[path] == nil {
		s.sums[path] = map[[md5.Size]byte]bool{}
	}
	s.sums[path][k] = true
}

// parseStatus reads the Conffiles field of the package's paragraph:
// continuation lines " /etc/fail2ban/jail.conf SUM [obsolete]". An
// obsolete conffile's sum is still the content Debian shipped.
func (s *Sums) parseStatus(r io.Reader) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxLine)
	ours, inConf := false, false
	for sc.Scan() {
		line := sc.Bytes()
		if len(bytes.TrimSpace(line)) == 0 {
			ours, inConf = false, false
			continue
		}
		if line[0] == ' ' || line[0] == '\t' {
			if ours && inConf {
				if f := strings.Fields(string(line)); len(f) >= 2 {
					s.add(f[0], f[1])
				}
			}
			continue
		}
		// a field "Name: value"; only two names matter, compared in
		// place (the database has some 20,000 lines: no copy per line)
		name, value, _ := bytes.Cut(line, []byte{':'})
		inConf = false
		switch {
		case bytes.EqualFold(name, []byte("package")):
			ours = string(bytes.TrimSpace(value)) == Package
		case bytes.EqualFold(name, []byte("conffiles")):
			inConf = true
		}
	}
	return sc.Err()
}

// parseMD5Sums reads "SUM  relative/path" lines.
func (s *Sums) parseMD5Sums(r io.Reader) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxLine)
	for sc.Scan() {
		sum, p, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			continue
		}
		p = strings.TrimLeft(p, " *")
		if p != "" {
			s.add("/"+strings.TrimPrefix(p, "/"), sum)
		}
	}
	return sc.Err()
}
