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

// tree makes files ("name": "content") and symbolic links ("name":
// "->target") under dir.
func tree(t *testing.T, dir string, entries map[string]string) {
	t.Helper()
	for name, v := range entries {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if target, ok := strings.CutPrefix(v, "->"); ok {
			if err := os.Symlink(target, p); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.WriteFile(p, []byte(v), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestResolveInsideRoot(t *testing.T) {
	root := t.TempDir()
	tree(t, root, map[string]string{
		"etc/ssh/real":        "x",
		"etc/ssh/sshd_config": "->/etc/ssh/real",            // absolute: inside the root
		"etc/ssh/rel":         "->real",                     // relative
		"etc/ssh/up":          "->../../../../etc/ssh/real", // climbs no higher than the root
		"etc/ssh/dir":         "->/srv/conf.d",
		"srv/conf.d/a.conf":   "a",
		"srv/conf.d/b.conf":   "b",
		"etc/ssh/loop1":       "->loop2",
		"etc/ssh/loop2":       "->loop1",
		"etc/ssh/dangling":    "->/etc/ssh/new-file",
	})
	for _, tc := range []struct {
		p, want string
		err     bool
	}{
		{p: "/etc/ssh/sshd_config", want: "/etc/ssh/real"},
		{p: "/etc/ssh/rel", want: "/etc/ssh/real"},
		{p: "/etc/ssh/up", want: "/etc/ssh/real"},
		{p: "/etc/ssh/dir/a.conf", want: "/srv/conf.d/a.conf"},
		{p: "/etc/ssh/dir/../ssh/real", want: "/srv/ssh/real"}, // ".." is physical, after the link
		{p: "/etc/ssh/missing/x", want: "/etc/ssh/missing/x"},
		{p: "/etc/ssh/dangling", want: "/etc/ssh/new-file"},
		{p: "/etc/ssh/loop1", err: true},
	} {
		got, err := Resolve(root, root+tc.p)
		if tc.err {
			if err == nil {
				t.Errorf("Resolve(%s) = %q, want an error", tc.p, got)
			}
			continue
		}
		if err != nil || got != root+tc.want {
			t.Errorf("Resolve(%s) = %q, %v; want %q", tc.p, got, err, root+tc.want)
		}
	}
	if _, err := Resolve(root, "/elsewhere"); err == nil {
		t.Error("a path outside the root was accepted")
	}
	if got, _ := Resolve("", "/"); got != "/" {
		t.Errorf("Resolve of / = %q", got)
	}

	data, err := ReadFileIn(root, root+"/etc/ssh/sshd_config")
	if err != nil || string(data) != "x" {
		t.Errorf("ReadFileIn through an absolute link = %q, %v", data, err)
	}
	m, err := GlobIn(root, root+"/etc/ssh/dir/*.conf")
	if err != nil || len(m) != 2 || m[0] != root+"/etc/ssh/dir/a.conf" || m[1] != root+"/etc/ssh/dir/b.conf" {
		t.Errorf("GlobIn = %q, %v", m, err)
	}
	if m, _ := GlobIn(root, root+"/etc/ssh/sshd_config"); len(m) != 1 || m[0] != root+"/etc/ssh/sshd_config" {
		t.Errorf("GlobIn of a literal path = %q", m)
	}
	if m, _ := GlobIn(root, root+"/etc/ssh/none"); len(m) != 0 {
		t.Errorf("GlobIn of a missing literal path = %q", m)
	}
}

func TestReplaceKeepsSymlink(t *testing.T) {
	root := t.TempDir()
	tree(t, root, map[string]string{"etc/ssh/real": "old", "etc/ssh/sshd_config": "->/etc/ssh/real"})
	link := root + "/etc/ssh/sshd_config"
	if err := Replace(root, link, []byte("new"), 0o600); err != nil {
		t.Fatal(err)
	}
	if target, err := os.Readlink(link); err != nil || target != "/etc/ssh/real" {
		t.Fatalf("link now %q, %v; want it kept", target, err)
	}
	if b, _ := os.ReadFile(root + "/etc/ssh/real"); string(b) != "new" {
		t.Errorf("target holds %q", b)
	}
	if fi, _ := os.Stat(root + "/etc/ssh/real"); fi.Mode().Perm() != 0o644 {
		t.Errorf("target mode %v, want the old 0644 kept", fi.Mode().Perm())
	}
	// Symlink puts a link back over a regular file.
	if err := os.Remove(link); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(link, []byte("plain"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := Symlink("/etc/ssh/real", link); err != nil {
		t.Fatal(err)
	}
	if target, err := os.Readlink(link); err != nil || target != "/etc/ssh/real" {
		t.Errorf("Symlink: %q, %v", target, err)
	}
}
