package stock

import (
	"crypto/md5"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func sum(s string) string { h := md5.Sum([]byte(s)); return hex.EncodeToString(h[:]) }

func TestSums(t *testing.T) {
	status := "Package: other\nConffiles:\n /etc/fail2ban/filter.d/sshd.conf " + sum("other") + "\n\n" +
		"Package: fail2ban\nStatus: install ok installed\nConffiles:\n /etc/fail2ban/filter.d/sshd.conf " + sum("stock") + "\n" +
		" /etc/fail2ban/filter.d/old.conf " + sum("old") + " obsolete\n /etc/fail2ban/x.conf newconffile\nDescription: x\n a: b\n"
	md5sums := sum("lib") + "  usr/lib/python3/dist-packages/fail2ban/x.py\n"
	s, err := Parse(strings.NewReader(status), strings.NewReader(md5sums))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		path, content string
		want          bool
	}{
		{"/etc/fail2ban/filter.d/sshd.conf", "stock", true},
		{"/etc/fail2ban/filter.d/sshd.conf", "stock\n", false},        // edited
		{"/etc/fail2ban/filter.d/sshd.conf", "other", false},          // another package's
		{"/etc/fail2ban/filter.d/old.conf", "old", true},              // obsolete: still Debian's
		{"/etc/fail2ban/filter.d/other.conf", "stock", false},         // another file's sum
		{"/usr/lib/python3/dist-packages/fail2ban/x.py", "lib", true}, // md5sums
		{"/etc/fail2ban/x.conf", "", false},
	} {
		if got := s.Match(tc.path, []byte(tc.content)); got != tc.want {
			t.Errorf("Match(%s, %q) = %v, want %v", tc.path, tc.content, got, tc.want)
		}
	}
	if s.Len() != 3 {
		t.Errorf("Len = %d, want 3", s.Len())
	}
	var none *Sums
	if none.Match("/etc/fail2ban/filter.d/sshd.conf", []byte("stock")) {
		t.Error("nil Sums matched")
	}
}

// dpkgRoot is a root whose dpkg status file (p) lists jail.conf with the
// sum of "j".
func dpkgRoot(t *testing.T) (root, p string) {
	t.Helper()
	root = t.TempDir()
	p = filepath.Join(root, StatusFile)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte("Package: fail2ban\nConffiles:\n /etc/fail2ban/jail.conf "+sum("j")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return root, p
}

func TestLoadRoot(t *testing.T) {
	root, _ := dpkgRoot(t)
	s, err := Load(root)
	if err != nil || !s.Match("/etc/fail2ban/jail.conf", []byte("j")) || len(s.From) != 1 {
		t.Fatalf("Load(root) = %+v, %v", s, err)
	}
	// a root without a dpkg database: the real root's is read
	s, err = Load(t.TempDir())
	if err != nil || s.Match("/etc/fail2ban/jail.conf", []byte("j")) {
		t.Fatalf("Load(empty root) = %+v, %v", s, err)
	}
}

func TestLazy(t *testing.T) {
	root, p := dpkgRoot(t)
	s := Lazy(root)
	// not read yet: what the database says at the first use counts
	if err := os.WriteFile(p, []byte("package: fail2ban\nCONFFILES:\n /etc/fail2ban/jail.conf "+sum("k")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if s.Match("/etc/fail2ban/jail.conf", []byte("j")) || !s.Match("/etc/fail2ban/jail.conf", []byte("k")) {
		t.Fatalf("Lazy read the database before its first use: %+v", s)
	}
	if s.Len() != 1 || len(s.From) != 1 {
		t.Fatalf("Len %d, From %v; want 1 file", s.Len(), s.From)
	}
	// read once: a later change is not seen
	if err := os.WriteFile(p, []byte("Package: fail2ban\nConffiles:\n /etc/fail2ban/jail.conf "+sum("j")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if s.Match("/etc/fail2ban/jail.conf", []byte("j")) {
		t.Fatal("Lazy read the database twice")
	}
}
