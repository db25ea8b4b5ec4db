package ini

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

type kv struct{ sec, key, val string }

func dumpFile(f *File) []kv {
	var out []kv
	for _, s := range append([]*Section{f.Defaults}, f.Sections...) {
		for _, k := range s.keys {
			out = append(out, kv{s.Name, k, s.vals[k].Text})
		}
	}
	return out
}

var parseTests = []struct {
	name, in string
	want     []kv
}{
	{"equals and colon", "[S]\na = 1\nb: 2\nc=3\nd:4\n", []kv{{"S", "a", "1"}, {"S", "b", "2"}, {"S", "c", "3"}, {"S", "d", "4"}}},
	{"first delimiter splits", "[S]\nurl = http://x:80/?a=b\nk:v=w\n", []kv{{"S", "url", "http://x:80/?a=b"}, {"S", "k", "v=w"}}},
	{"names lower-cased, sections not", "[MySec]\nFooBar = X\n", []kv{{"MySec", "foobar", "X"}}},
	{"key with spaces", "[S]\nfoo bar  =  v  \n", []kv{{"S", "foo bar", "v"}}},
	{"empty value", "[S]\na =\nb=   \n", []kv{{"S", "a", ""}, {"S", "b", ""}}},
	{"continuation", "[S]\nre = one\n  two\n\ttwo-tab\n", []kv{{"S", "re", "one\ntwo\ntwo-tab"}}},
	{"leading empty first line", "[S]\nre =\n    ^a$\n    ^b$\n", []kv{{"S", "re", "\n^a$\n^b$"}}},
	{"blank lines kept inside, dropped at end", "[S]\nre = a\n\n  b\n\n\nk = v\n", []kv{{"S", "re", "a\n\nb"}, {"S", "k", "v"}}},
	{"comment lines skipped inside values", "[S]\nre = a\n  # c1\n  ; c2\n  b\n", []kv{{"S", "re", "a\nb"}}},
	{"inline ; comment", "[S]\na = x ; comment\nb = x;y\nc = x\t;tab\n", []kv{{"S", "a", "x"}, {"S", "b", "x;y"}, {"S", "c", "x"}}},
	{"inline # is text", "[S]\na = x # not a comment\n", []kv{{"S", "a", "x # not a comment"}}},
	{"full-line comments", "# c\n; c\n[S]\n  # indented comment\na = 1\n", []kv{{"S", "a", "1"}}},
	{"deeper indent than key continues", "[S]\n  a = 1\n    more\n  b = 2\n", []kv{{"S", "a", "1\nmore"}, {"S", "b", "2"}}},
	{"header text after ]", "[S] trailing\na = 1\n", []kv{{"S", "a", "1"}}},
	{"header last ]", "[a]b]\nk = v\n", []kv{{"a]b", "k", "v"}}},
	{"DEFAULT", "[DEFAULT]\nx = 1\n[S]\ny = 2\n[DEFAULT]\nz = 3\n", []kv{{"DEFAULT", "x", "1"}, {"DEFAULT", "z", "3"}, {"S", "y", "2"}}},
	{"CRLF and CR", "[S]\r\na = 1\r\nb = 2\rc = 3", []kv{{"S", "a", "1"}, {"S", "b", "2"}, {"S", "c", "3"}}},
	{"BOM", "\ufeff[S]\na = 1\n", []kv{{"S", "a", "1"}}},
	{"indented header after option is a value line", "[S]\na = 1\n  [T]\n", []kv{{"S", "a", "1\n[T]"}}},
}

func TestParse(t *testing.T) {
	for _, tc := range parseTests {
		t.Run(tc.name, func(t *testing.T) {
			f, err := Parse("x.conf", []byte(tc.in))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, dumpFile(f), cmp.AllowUnexported(kv{})); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseOrigins(t *testing.T) {
	f, err := Parse("jail.local", []byte("# c\n[sshd]\nenabled = true\nlogpath = a\n   b\nport = ssh\n"))
	if err != nil {
		t.Fatal(err)
	}
	for key, line := range map[string]int{"enabled": 3, "logpath": 4, "port": 6} {
		v, _ := f.Section("sshd").Get(key)
		if v.File != "jail.local" || v.Line != line {
			t.Errorf("%s at %s, want jail.local:%d", key, v.Where(), line)
		}
	}
}

var parseErrorTests = []struct{ name, in, want string }{
	{"no header", "a = 1\n", "x.conf:1: no section header"},
	{"no delimiter", "[S]\na = 1\njunk\n", "x.conf:3: expected \"key = value\""},
	{"empty key", "[S]\n= 1\n", "x.conf:2: missing key name"},
	{"duplicate option", "[S]\na = 1\nA = 2\n", "x.conf:3: key \"a\": option already set in section [S]"},
	{"duplicate default option", "[DEFAULT]\na = 1\n[DEFAULT]\na = 2\n", "x.conf:4: key \"a\""},
	{"duplicate section", "[S]\n[T]\n[S]\n", "x.conf:3: section [S] already exists"},
	{"invalid utf-8", "[S]\na = \xff\n", "x.conf:2: invalid UTF-8"},
	{"empty header", "[]\n", "x.conf:1: no section header"},
}

func TestParseErrors(t *testing.T) {
	for _, tc := range parseErrorTests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("x.conf", []byte(tc.in))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want %q", err, tc.want)
			}
		})
	}
	if _, err := Parse("big", make([]byte, MaxFileSize+1)); err == nil {
		t.Errorf("oversized file accepted")
	}
}

// TestParseLikeFail2ban feeds the parse cases, good and bad, to fail2ban's
// reader too.
func TestParseLikeFail2ban(t *testing.T) {
	needFail2ban(t)
	dir := t.TempDir()
	var names []string
	var inputs []string
	for _, tc := range parseTests {
		if tc.name == "BOM" {
			continue // deliberate: palisade accepts a UTF-8 BOM, Python's utf-8 codec does not
		}
		inputs = append(inputs, tc.in)
	}
	for _, tc := range parseErrorTests {
		inputs = append(inputs, tc.in)
	}
	for i, in := range inputs {
		n := fmt.Sprintf("c%d", i)
		if err := os.WriteFile(filepath.Join(dir, n+".conf"), []byte(in), 0o644); err != nil {
			t.Fatal(err)
		}
		names = append(names, n)
	}
	refs := pythonDumps(t, dir, names...)
	for i, n := range names {
		t.Run(fmt.Sprintf("%q", inputs[i]), func(t *testing.T) {
			compareWithFail2ban(t, dir, n, refs[n])
		})
	}
}
