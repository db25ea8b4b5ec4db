package fsx

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestPath(t *testing.T) {
	tests := []struct{ root, p, want string }{
		{"", "/etc/ssh/sshd_config", "/etc/ssh/sshd_config"},
		{"/", "/etc/x", "/etc/x"},
		{"/tmp/r", "/etc/x", "/tmp/r/etc/x"},
		{"/tmp/r", "/tmp/r/etc/x", "/tmp/r/etc/x"},
		{"/tmp/r/", "/tmp/rx/etc", "/tmp/r/tmp/rx/etc"},
	}
	for _, tc := range tests {
		if got := Path(tc.root, tc.p); got != tc.want {
			t.Errorf("Path(%q,%q) = %q, want %q", tc.root, tc.p, got, tc.want)
		}
	}
}

func TestSplitLinesRoundTrip(t *testing.T) {
	for _, s := range []string{"", "a", "a\n", "a\r\nb", "\n\n"} {
		if got := strings.Join(SplitLines([]byte(s)), ""); got != s {
			t.Errorf("%q -> %q", s, got)
		}
	}
}

func TestWriteAtomicKeepsMode(t *testing.T) {
	p := filepath.Join(t.TempDir(), "d", "f")
	if err := WriteAtomic(p, []byte("a"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := WriteAtomic(p, []byte("b"), 0o644); err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(p)
	b, _ := os.ReadFile(p)
	if fi.Mode().Perm() != 0o600 || string(b) != "b" {
		t.Errorf("mode %v content %q", fi.Mode(), b)
	}
	ents, _ := os.ReadDir(filepath.Dir(p))
	if len(ents) != 1 {
		t.Errorf("temporary files left: %v", ents)
	}
}

func TestDiff(t *testing.T) {
	d := Diff("f", []byte("a\nb\nc\n"), []byte("a\nB\nc\nd\n"))
	for _, want := range []string{"--- f\n", "-b\n", "+B\n", "+d\n", " a\n"} {
		if !strings.Contains(d, want) {
			t.Errorf("diff lacks %q:\n%s", want, d)
		}
	}
	if d := Diff("f", nil, []byte("x\n")); !strings.Contains(d, "+x") {
		t.Errorf("new file diff:\n%s", d)
	}
}
