package fleet

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	voi "github.com/oasisprotocol/curve25519-voi/primitives/ed25519"
)

// PublicKeyPrefix starts the text form of a public key.
const PublicKeyPrefix = "ed25519:"

// FormatPublicKey is the text form of a public key ("ed25519:BASE64").
func FormatPublicKey(pub ed25519.PublicKey) string {
	return PublicKeyPrefix + base64.StdEncoding.EncodeToString(pub)
}

// ParsePublicKey reads the text form of a public key.
func ParsePublicKey(s string) (ed25519.PublicKey, error) {
	b64, ok := strings.CutPrefix(s, PublicKeyPrefix)
	if !ok {
		return nil, fmt.Errorf("public key %q: want %sBASE64 (palisade fleet keygen prints it)", trunc(s), PublicKeyPrefix)
	}
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err != nil || len(raw) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("public key %q: not %d bytes of base64", trunc(s), ed25519.PublicKeySize)
	}
	if _, err := expandKey(raw); err != nil {
		return nil, fmt.Errorf("public key %q: not a usable ed25519 key (%v)", trunc(s), err)
	}
	return ed25519.PublicKey(raw), nil
}

// GenerateKey writes a new private key to path (PEM, PKCS #8, mode 0600)
// and returns its public key. An existing file is kept unless force.
func GenerateKey(path string, force bool) (ed25519.PublicKey, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, err
	}
	data := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	if !force {
		if _, err := os.Lstat(path); err == nil {
			return nil, fmt.Errorf("%s exists (use --force to replace it; every trust file naming its public key must then be updated)", path)
		}
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	if err := writeAtomic(path, data, 0o600); err != nil {
		return nil, err
	}
	return pub, nil
}

// ReadKey reads a private key file: it must be a regular file owned by the
// current user and not readable by group or others.
func ReadKey(path string) (ed25519.PrivateKey, error) {
	fi, err := os.Lstat(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("fleet key %s does not exist (create it with palisade fleet keygen)", path)
		}
		return nil, fmt.Errorf("fleet key: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("fleet key %s is not a regular file", path)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("fleet key %s is readable by group or others (mode %04o): chmod 600 it", path, fi.Mode().Perm())
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Geteuid() {
		return nil, fmt.Errorf("fleet key %s is owned by uid %d, not by this user", path, st.Uid)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("fleet key: %w", err)
	}
	blk, _ := pem.Decode(data)
	if blk == nil || blk.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("fleet key %s: not a PEM private key", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("fleet key %s: %w", path, err)
	}
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("fleet key %s: not an ed25519 key", path)
	}
	return priv, nil
}

// Trust is the trust file: the origins whose records are applied, by
// name, with their public keys. It is immutable once read.
type Trust struct {
	keys  map[string]ed25519.PublicKey
	names []string
	// expanded holds each key's verification table (nil for a key that
	// cannot verify anything; ParsePublicKey refuses such keys).
	expanded map[string]*voi.ExpandedPublicKey
}

// NewTrust builds a trust set from names and keys (tests, benchmarks).
func NewTrust(keys map[string]ed25519.PublicKey) *Trust {
	t := &Trust{keys: map[string]ed25519.PublicKey{}, expanded: map[string]*voi.ExpandedPublicKey{}}
	for n, k := range keys {
		t.keys[n] = k
		t.names = append(t.names, n)
		t.expanded[n], _ = expandKey(k)
	}
	slices.Sort(t.names)
	return t
}

// Key returns the public key of origin.
func (t *Trust) Key(origin string) (ed25519.PublicKey, bool) {
	if t == nil {
		return nil, false
	}
	k, ok := t.keys[origin]
	return k, ok
}

// expandedKey returns origin's verification table: ok is false for an
// origin not trusted, the table nil for a trusted key that is unusable.
func (t *Trust) expandedKey(origin string) (*voi.ExpandedPublicKey, bool) {
	if t == nil {
		return nil, false
	}
	k, ok := t.expanded[origin]
	return k, ok
}

// Names lists the trusted origins, sorted.
func (t *Trust) Names() []string {
	if t == nil {
		return nil
	}
	return slices.Clone(t.names)
}

// Len is the number of trusted origins.
func (t *Trust) Len() int {
	if t == nil {
		return 0
	}
	return len(t.names)
}

// TrustEntry is one line of a trust file.
type TrustEntry struct {
	Name string
	Key  ed25519.PublicKey
	Line int
}

// ParseTrust reads a trust file's text: one "NAME ed25519:KEY" per line,
// '#' comments and blank lines allowed. Errors name the file and line.
func ParseTrust(file string, data []byte) ([]TrustEntry, error) {
	var out []TrustEntry
	var errs []error
	seen := map[string]int{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	n := 0
	for sc.Scan() {
		n++
		line := sc.Text()
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if len(f) != 2 {
			errs = append(errs, fmt.Errorf("%s:%d: want NAME %sKEY", file, n, PublicKeyPrefix))
			continue
		}
		if !ValidName(f[0]) {
			errs = append(errs, fmt.Errorf("%s:%d: invalid origin name %q (letters, digits, - and _, at most 64)", file, n, trunc(f[0])))
			continue
		}
		k, err := ParsePublicKey(f[1])
		if err != nil {
			errs = append(errs, fmt.Errorf("%s:%d: %v", file, n, err))
			continue
		}
		if prev, dup := seen[f[0]]; dup {
			errs = append(errs, fmt.Errorf("%s:%d: origin %s already listed on line %d", file, n, f[0], prev))
			continue
		}
		seen[f[0]] = n
		out = append(out, TrustEntry{Name: f[0], Key: k, Line: n})
	}
	if err := sc.Err(); err != nil {
		errs = append(errs, fmt.Errorf("%s: %w", file, err))
	}
	return out, errors.Join(errs...)
}

// ReadTrust reads a trust file. A missing file is an empty trust set (the
// daemon then applies nothing and says so).
func ReadTrust(path string) (*Trust, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return NewTrust(nil), nil
	}
	if err != nil {
		return nil, fmt.Errorf("trust file: %w", err)
	}
	ents, err := ParseTrust(path, data)
	if err != nil {
		return nil, err
	}
	m := map[string]ed25519.PublicKey{}
	for _, e := range ents {
		m[e.Name] = e.Key
	}
	return NewTrust(m), nil
}

// TrustAdd adds (or, with replace, updates) an origin in the trust file,
// keeping its other lines and comments. It creates the file when missing.
func TrustAdd(path, name string, key ed25519.PublicKey, replace bool) error {
	if !ValidName(name) {
		return fmt.Errorf("invalid origin name %q (letters, digits, - and _, at most 64)", name)
	}
	data, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("trust file: %w", err)
	}
	if len(data) == 0 {
		data = []byte("# palisade fleet trust file: the origins whose bans this server applies.\n# NAME ed25519:PUBLIC-KEY (palisade fleet keygen prints a server's line)\n")
	}
	ents, err := ParseTrust(path, data)
	if err != nil {
		return err
	}
	newLine := name + " " + FormatPublicKey(key)
	lines := strings.SplitAfter(string(data), "\n")
	for _, e := range ents {
		if e.Name == name {
			if e.Key.Equal(key) {
				return nil
			}
			if !replace {
				return fmt.Errorf("%s:%d: origin %s is already trusted with another key (use --replace)", path, e.Line, name)
			}
			lines[e.Line-1] = newLine + "\n"
			return writeAtomic(path, []byte(strings.Join(lines, "")), 0o644)
		}
	}
	out := string(data)
	if !strings.HasSuffix(out, "\n") {
		out += "\n"
	}
	return writeAtomic(path, []byte(out+newLine+"\n"), 0o644)
}

// TrustRemove removes an origin from the trust file; it reports whether
// the origin was there.
func TrustRemove(path, name string) (bool, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("trust file: %w", err)
	}
	ents, err := ParseTrust(path, data)
	if err != nil {
		return false, err
	}
	lines := strings.SplitAfter(string(data), "\n")
	for _, e := range ents {
		if e.Name == name {
			lines = slices.Delete(lines, e.Line-1, e.Line)
			return true, writeAtomic(path, []byte(strings.Join(lines, "")), 0o644)
		}
	}
	return false, nil
}

// writeAtomic replaces path with data (temporary file, fsync, rename).
func writeAtomic(path string, data []byte, mode os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			os.Remove(tmp)
		}
	}()
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	ok = true
	return nil
}
