// Package hardentest builds temporary --root trees for the hardening tests:
// an sshd configuration with a real host key, users with authorized keys,
// services and proc files, and a hash of the tree to prove that a refused
// change wrote nothing. Only tests use it.
package hardentest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/palisade-project/palisade/internal/sysexec"
)

// Root is a temporary root directory.
type Root struct {
	Dir string
	t   testing.TB
}

// RequireSSHD skips unless running as root with sshd and ssh-keygen
// installed. (sshd's privilege separation directory is created by the
// code under test when missing, as on a host where sshd never started.)
func RequireSSHD(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("system test: sshd -t/-T need root")
	}
	for _, p := range []string{"sshd", "ssh-keygen"} {
		if _, err := exec.LookPath(p); err != nil {
			t.Skipf("system test: %s is not installed (openssh-server)", p)
		}
	}
}

// New returns an empty root.
func New(t testing.TB) *Root {
	t.Helper()
	return &Root{Dir: t.TempDir(), t: t}
}

// Path is the full path of the system path p under the root.
func (r *Root) Path(p string) string { return filepath.Join(r.Dir, p) }

// Write writes a file (system path p) under the root; "{ROOT}" in content
// is replaced by the root directory.
func (r *Root) Write(p, content string) string {
	r.t.Helper()
	full := r.Path(p)
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		r.t.Fatal(err)
	}
	if err := os.WriteFile(full, []byte(strings.ReplaceAll(content, "{ROOT}", r.Dir)), 0o644); err != nil {
		r.t.Fatal(err)
	}
	return full
}

// Read returns a file's content ("" when missing).
func (r *Root) Read(p string) string {
	b, _ := os.ReadFile(r.Path(p))
	return string(b)
}

// Keygen creates an ed25519 key pair at system path p (private) and p.pub
// and returns the public key line.
func (r *Root) Keygen(p string) string {
	r.t.Helper()
	full := r.Path(p)
	if err := os.MkdirAll(filepath.Dir(full), 0o700); err != nil {
		r.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := sysexec.NewExec(30*time.Second).Run(ctx, sysexec.Cmd{Name: "ssh-keygen", Args: []string{"-q", "-t", "ed25519", "-N", "", "-C", "palisade-test", "-f", full}}); err != nil {
		r.t.Fatalf("ssh-keygen: %v", err)
	}
	pub, err := os.ReadFile(full + ".pub")
	if err != nil {
		r.t.Fatal(err)
	}
	return string(pub)
}

// SSHD lays out a minimal sshd tree: a host key, sshd_config with the given
// body (after "{ROOT}" substitution) and an sshd_config.d directory.
func (r *Root) SSHD(mainConfig string) {
	r.t.Helper()
	r.Keygen("/etc/ssh/ssh_host_ed25519_key")
	if err := os.MkdirAll(r.Path("/etc/ssh/sshd_config.d"), 0o755); err != nil {
		r.t.Fatal(err)
	}
	r.Write("/etc/ssh/sshd_config", mainConfig)
}

// User adds a passwd entry whose home is /home/NAME under the root, with
// the given authorized_keys content ("" for none).
func (r *Root) User(name, uid, shell, keys string) {
	r.t.Helper()
	line := fmt.Sprintf("%s:x:%s:%s::/home/%s:%s\n", name, uid, uid, name, shell)
	f, err := os.OpenFile(r.Path("/etc/passwd"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		if err := os.MkdirAll(r.Path("/etc"), 0o755); err != nil {
			r.t.Fatal(err)
		}
		f, err = os.OpenFile(r.Path("/etc/passwd"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
		if err != nil {
			r.t.Fatal(err)
		}
	}
	defer f.Close()
	if _, err := f.WriteString(line); err != nil {
		r.t.Fatal(err)
	}
	if keys != "" {
		r.Write("/home/"+name+"/.ssh/authorized_keys", keys)
	}
}

// Hash returns a digest of every file (path, mode, content) and directory
// under the root, skipping the system paths in skip.
func (r *Root) Hash(skip ...string) string {
	r.t.Helper()
	var entries []string
	err := filepath.WalkDir(r.Dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(r.Dir, p)
		for _, s := range skip {
			if "/"+rel == s || strings.HasPrefix("/"+rel, strings.TrimSuffix(s, "/")+"/") {
				if d.IsDir() {
					return filepath.SkipDir
				}
				return nil
			}
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		e := fmt.Sprintf("%s %v", rel, info.Mode())
		if d.Type().IsRegular() {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(b)
			e += " " + hex.EncodeToString(sum[:])
		}
		entries = append(entries, e)
		return nil
	})
	if err != nil {
		r.t.Fatal(err)
	}
	sort.Strings(entries)
	sum := sha256.Sum256([]byte(strings.Join(entries, "\n")))
	return hex.EncodeToString(sum[:])
}
