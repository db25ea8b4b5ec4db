// Package fsx holds the file helpers the hardening packages share:
// root-prefixed paths, symbolic links followed inside the root (as a
// chroot would), atomic writes that keep a file's mode and a symlink a
// symlink, and a line diff for showing a change before it is made.
package fsx

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// MaxConfigSize bounds how much of a configuration file is read.
const MaxConfigSize = 4 << 20

// Path prefixes the system path p with root (the global --root). A path
// that already lies under root (as Include lines and other paths written in
// a configuration under --root do) is returned unchanged.
func Path(root, p string) string {
	if root == "" || root == "/" {
		return p
	}
	root = filepath.Clean(root)
	c := filepath.Clean(p)
	if c == root || strings.HasPrefix(c, root+"/") {
		return c
	}
	return filepath.Join(root, p)
}

// maxLinks bounds the symbolic links followed for one path (Linux's
// limit).
const maxLinks = 40

// Resolve returns the real path of the file that p (a full path under
// root) names, following every symbolic link inside root as a chroot
// would: an absolute link target is taken below root, ".." never climbs
// above it. A path that does not exist (yet) is resolved as far as it
// exists. With root "" or "/" links are followed as the system does.
func Resolve(root, p string) (string, error) {
	root = filepath.Clean("/" + root)
	rel := p // not cleaned: ".." after a link is resolved physically
	if root != "/" {
		r, ok := strings.CutPrefix(p, root)
		if !ok || (r != "" && r[0] != '/') {
			return "", fmt.Errorf("%s is not under %s", p, root)
		}
		rel = r
	}
	cur := root
	rest := strings.Split(rel, "/")
	for links := 0; len(rest) > 0; {
		c := rest[0]
		rest = rest[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			if cur != root {
				cur = filepath.Dir(cur)
			}
			continue
		}
		next := filepath.Join(cur, c)
		fi, err := os.Lstat(next)
		if errors.Is(err, fs.ErrNotExist) {
			return filepath.Join(append([]string{next}, rest...)...), nil
		}
		if err != nil {
			return "", err
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			cur = next
			continue
		}
		if links++; links > maxLinks {
			return "", fmt.Errorf("%s: too many levels of symbolic links", p)
		}
		target, err := os.Readlink(next)
		if err != nil {
			return "", err
		}
		if filepath.IsAbs(target) {
			cur = root
		}
		rest = append(strings.Split(target, "/"), rest...)
	}
	return cur, nil
}

// ReadFileIn reads the file p (a full path under root) names, following
// symbolic links inside root (Resolve), refusing files larger than
// MaxConfigSize.
func ReadFileIn(root, p string) ([]byte, error) {
	real, err := Resolve(root, p)
	if err != nil {
		return nil, err
	}
	return ReadFile(real)
}

// GlobIn is filepath.Glob for a pattern under root whose directories may
// be symbolic links: the part of the pattern before its first glob
// character is resolved inside root first. Matches are sorted and named
// as the pattern names them (through the links), as glob(3) does.
func GlobIn(root, pattern string) ([]string, error) {
	dir, restPat := pattern, ""
	for hasMeta(dir) {
		restPat = filepath.Join(filepath.Base(dir), restPat)
		dir = filepath.Dir(dir)
	}
	real, err := Resolve(root, dir)
	if err != nil {
		return nil, err
	}
	if restPat == "" { // no glob characters: one literal path, if it exists
		if _, err := os.Stat(real); err != nil {
			return nil, nil
		}
		return []string{dir}, nil
	}
	m, err := filepath.Glob(filepath.Join(real, restPat))
	for i := range m { // named as the pattern names them, as glob(3) does
		m[i] = filepath.Join(dir, strings.TrimPrefix(m[i], real))
	}
	return m, err
}

func hasMeta(p string) bool { return strings.ContainsAny(p, `*?[\`) }

// Replace writes data to the file p (a full path under root) names: when
// p is a symbolic link, its target (resolved inside root) is replaced and
// the link stays a link. See WriteAtomic.
func Replace(root, p string, data []byte, mode os.FileMode) error {
	real, err := Resolve(root, p)
	if err != nil {
		return fmt.Errorf("write %s: %w", p, err)
	}
	return WriteAtomic(real, data, mode)
}

// Symlink makes p a symbolic link to target, replacing what is there
// atomically (a temporary link renamed over it).
func Symlink(target, p string) error {
	tmp := filepath.Join(filepath.Dir(p), "."+filepath.Base(p)+".palisade-link")
	_ = os.Remove(tmp)
	if err := os.Symlink(target, tmp); err != nil {
		return fmt.Errorf("link %s: %w", p, err)
	}
	if err := os.Rename(tmp, p); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("link %s: %w", p, err)
	}
	return nil
}

// ReadFile reads a configuration file, refusing files larger than
// MaxConfigSize.
func ReadFile(path string) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if fi.Size() > MaxConfigSize {
		return nil, fmt.Errorf("%s: file too large (%d bytes)", path, fi.Size())
	}
	return os.ReadFile(path)
}

// WriteAtomic replaces path with data through a temporary file in the same
// directory and a rename, keeping the mode of the file it replaces (or
// using mode for a new file). Parent directories are created 0755.
func WriteAtomic(path string, data []byte, mode os.FileMode) error {
	if fi, err := os.Stat(path); err == nil {
		mode = fi.Mode().Perm()
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".palisade-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	_, werr := f.Write(data)
	if werr == nil {
		werr = f.Chmod(mode)
	}
	if werr == nil {
		werr = f.Sync()
	}
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Rename(tmp, path)
	}
	if werr != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, werr)
	}
	return nil
}

// SplitLines splits text into lines, each keeping its line ending, so that
// joining them gives the text back byte for byte.
func SplitLines(b []byte) []string {
	var out []string
	s := string(b)
	for s != "" {
		i := strings.IndexByte(s, '\n')
		if i < 0 {
			out = append(out, s)
			break
		}
		out = append(out, s[:i+1])
		s = s[i+1:]
	}
	return out
}

// Diff renders a unified-style diff of old and new for display. It is a
// plain longest-common-subsequence diff over lines with three lines of
// context; files are small configuration files.
func Diff(name string, oldText, newText []byte) string {
	a, b := SplitLines(oldText), SplitLines(newText)
	if len(a)*len(b) > 4_000_000 {
		return fmt.Sprintf("--- %s\n+++ %s\n(file too large to diff)\n", name, name)
	}
	// LCS table.
	n, m := len(a), len(b)
	lcs := make([][]int32, n+1)
	for i := range lcs {
		lcs[i] = make([]int32, m+1)
	}
	for i := n - 1; i >= 0; i-- {
		for j := m - 1; j >= 0; j-- {
			if a[i] == b[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	type op struct {
		kind byte
		text string
	}
	var ops []op
	i, j := 0, 0
	for i < n || j < m {
		switch {
		case i < n && j < m && a[i] == b[j]:
			ops = append(ops, op{' ', a[i]})
			i++
			j++
		case j < m && (i == n || lcs[i][j+1] >= lcs[i+1][j]):
			ops = append(ops, op{'+', b[j]})
			j++
		default:
			ops = append(ops, op{'-', a[i]})
			i++
		}
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "--- %s\n+++ %s\n", name, name)
	const ctx = 3
	lastPrinted := -1
	for k, o := range ops {
		if o.kind == ' ' {
			near := false
			for d := max(0, k-ctx); d <= min(len(ops)-1, k+ctx); d++ {
				if ops[d].kind != ' ' {
					near = true
					break
				}
			}
			if !near {
				continue
			}
		}
		if lastPrinted >= 0 && k > lastPrinted+1 {
			sb.WriteString("@@\n")
		}
		line := strings.TrimSuffix(o.text, "\n")
		sb.WriteByte(o.kind)
		sb.WriteString(line)
		sb.WriteByte('\n')
		lastPrinted = k
	}
	return sb.String()
}
