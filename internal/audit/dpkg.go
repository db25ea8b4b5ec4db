package audit

import (
	"bufio"
	"bytes"
	"compress/bzip2"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/palisade-project/palisade/internal/sysexec"
)

// Package is one dpkg status or apt list entry.
type Package struct {
	Name    string
	Version string
	Arch    string
	// Status is dpkg's "want flag state" ("install ok installed").
	Status string
}

// Installed reports whether dpkg considers the package installed.
func (p Package) Installed() bool { return strings.HasSuffix(p.Status, " installed") }

// maxIndexSize bounds one package index read (uncompressed).
const maxIndexSize = 256 << 20

// ReadDpkgStatus reads dpkg's status file (empty when it does not exist).
func ReadDpkgStatus(path string) (map[string]Package, error) {
	out := map[string]Package{}
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return out, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	err = readStanzas(io.LimitReader(f, maxIndexSize), func(p Package) {
		if p.Installed() {
			out[p.Name] = p
		}
	})
	return out, err
}

// readStanzas calls fn for every "Package:" stanza of a dpkg status file or
// an apt Packages index.
func readStanzas(r io.Reader, fn func(Package)) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	var cur Package
	flush := func() {
		if cur.Name != "" {
			fn(cur)
		}
		cur = Package{}
	}
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			flush()
			continue
		}
		if line[0] == ' ' || line[0] == '\t' {
			continue // continuation
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		switch k {
		case "Package":
			cur.Name = v
		case "Version":
			cur.Version = v
		case "Architecture":
			cur.Arch = v
		case "Status":
			cur.Status = v
		}
	}
	flush()
	return sc.Err()
}

// indexSuffixes are the names apt gives a Packages index: plain, or
// compressed when it keeps indexes compressed (Acquire::GzipIndexes, as
// Debian's container images do: lz4).
var indexSuffixes = []string{"_Packages", "_Packages.gz", "_Packages.bz2", "_Packages.lz4", "_Packages.xz", "_Packages.zst"}

// SecurityIndexes returns apt's downloaded package indexes of security
// suites in dir (/var/lib/apt/lists): files named after a "-security"
// suite or the debian-security archive, ending in _Packages, plain or
// compressed (.gz, .bz2, .lz4, .xz, .zst).
func SecurityIndexes(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		n := e.Name()
		if !e.Type().IsRegular() || !slices.ContainsFunc(indexSuffixes, func(s string) bool { return strings.HasSuffix(n, s) }) {
			continue
		}
		if strings.Contains(n, "-security_") || strings.Contains(n, "_debian-security_") || strings.Contains(n, "security.debian.org") {
			out = append(out, filepath.Join(dir, n))
		}
	}
	sort.Strings(out)
	return out, nil
}

// AptCat uncompresses an index whose compression the standard library does
// not read (lz4, xz, zstd); nil leaves such indexes unread.
type AptCat func(ctx context.Context, path string) ([]byte, error)

// AptHelperCat is AptCat through apt's own "apt-helper cat-file", which
// reads every compression apt writes.
func AptHelperCat(run sysexec.Runner) AptCat {
	return func(ctx context.Context, path string) ([]byte, error) {
		res, err := run.Run(ctx, sysexec.Cmd{Name: "/usr/lib/apt/apt-helper", Args: []string{"cat-file", path}})
		if err != nil {
			return nil, err
		}
		return res.Stdout, nil
	}
}

// openIndex opens a Packages index, uncompressed.
func openIndex(ctx context.Context, path string, cat AptCat) (io.ReadCloser, error) {
	switch filepath.Ext(path) {
	case ".gz", ".bz2":
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		if filepath.Ext(path) == ".bz2" {
			return struct {
				io.Reader
				io.Closer
			}{bzip2.NewReader(f), f}, nil
		}
		zr, err := gzip.NewReader(f)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		return struct {
			io.Reader
			io.Closer
		}{zr, f}, nil
	case ".lz4", ".xz", ".zst":
		if cat == nil {
			return nil, fmt.Errorf("%s: no reader for %s-compressed indexes", path, filepath.Ext(path)[1:])
		}
		data, err := cat(ctx, path)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		return io.NopCloser(bytes.NewReader(data)), nil
	}
	return os.Open(path)
}

// Pending is an installed package with a newer version in a security
// index.
type Pending struct {
	Name, Installed, Candidate string
}

// PendingSecurity compares the installed packages with the security
// indexes and returns the packages a security update would upgrade,
// sorted by name. cat reads the indexes compressed with lz4, xz or zstd.
func PendingSecurity(ctx context.Context, installed map[string]Package, indexes []string, cat AptCat) ([]Pending, error) {
	best := map[string]string{}
	for _, path := range indexes {
		r, err := openIndex(ctx, path, cat)
		if err != nil {
			return nil, err
		}
		err = readStanzas(io.LimitReader(r, maxIndexSize), func(p Package) {
			inst, ok := installed[p.Name]
			if !ok || (p.Arch != inst.Arch && p.Arch != "all" && inst.Arch != "all") {
				return
			}
			if cur, ok := best[p.Name]; !ok || CompareVersions(p.Version, cur) > 0 {
				best[p.Name] = p.Version
			}
		})
		r.Close()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
	}
	var out []Pending
	for name, cand := range best {
		if inst := installed[name]; CompareVersions(cand, inst.Version) > 0 {
			out = append(out, Pending{Name: name, Installed: inst.Version, Candidate: cand})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// CompareVersions compares two Debian version strings ([epoch:]upstream
// [-revision]) the way dpkg does: <0, 0 or >0.
func CompareVersions(a, b string) int {
	ea, ua, ra := splitVersion(a)
	eb, ub, rb := splitVersion(b)
	if ea != eb {
		if ea < eb {
			return -1
		}
		return 1
	}
	if c := verrevcmp(ua, ub); c != 0 {
		return c
	}
	return verrevcmp(ra, rb)
}

func splitVersion(v string) (epoch int, upstream, revision string) {
	if e, rest, ok := strings.Cut(v, ":"); ok {
		for _, c := range e {
			if c < '0' || c > '9' {
				epoch = -1
				break
			}
			epoch = epoch*10 + int(c-'0')
		}
		if epoch >= 0 {
			v = rest
		} else {
			epoch = 0
		}
	}
	if i := strings.LastIndexByte(v, '-'); i >= 0 {
		return epoch, v[:i], v[i+1:]
	}
	return epoch, v, ""
}

// order is dpkg's character order: "~" before everything (even the end),
// then the end, letters, then other characters.
func order(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return 0
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z':
		return int(c)
	case c == '~':
		return -1
	case c == 0:
		return 0
	}
	return int(c) + 256
}

func verrevcmp(a, b string) int {
	i, j := 0, 0
	at := func(s string, k int) byte {
		if k < len(s) {
			return s[k]
		}
		return 0
	}
	isDigit := func(c byte) bool { return c >= '0' && c <= '9' }
	for i < len(a) || j < len(b) {
		first := 0
		for (i < len(a) && !isDigit(a[i])) || (j < len(b) && !isDigit(b[j])) {
			// Inside this loop one side is a non-digit, so equal orders
			// mean the same kind of character on both sides.
			if ac, bc := order(at(a, i)), order(at(b, j)); ac != bc {
				return ac - bc
			}
			i, j = i+1, j+1
		}
		for i < len(a) && a[i] == '0' {
			i++
		}
		for j < len(b) && b[j] == '0' {
			j++
		}
		for i < len(a) && isDigit(a[i]) && j < len(b) && isDigit(b[j]) {
			if first == 0 {
				first = int(a[i]) - int(b[j])
			}
			i, j = i+1, j+1
		}
		if i < len(a) && isDigit(a[i]) {
			return 1
		}
		if j < len(b) && isDigit(b[j]) {
			return -1
		}
		if first != 0 {
			return first
		}
	}
	return 0
}
