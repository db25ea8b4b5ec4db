package ini

import (
	"strings"
	"testing"
	"testing/fstest"
	"time"
)

func FuzzParse(f *testing.F) {
	for _, tc := range parseTests {
		f.Add([]byte(tc.in))
	}
	for _, tc := range parseErrorTests {
		f.Add([]byte(tc.in))
	}
	f.Add([]byte("[INCLUDES]\nbefore = x.conf\n[Definition]\nfailregex = %(a)s <b>\na = %(known/a)s%%\nb = <lt_<a>/x>\n"))
	f.Add([]byte("[DEFAULT]\na = %(a)s\n[S]\nb = %(S/b)s %(default/a)s %(__name__)s\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := Parse("f.conf", data)
		if err != nil {
			if !strings.Contains(err.Error(), "f.conf") {
				t.Fatalf("error without file name: %v", err)
			}
			return
		}
		lines := len(splitLines(string(data)))
		c := New()
		c.merge(file)
		c.merge(file) // a second merge exercises KNOWN/
		deadline := time.Now().Add(5 * time.Second)
		for _, s := range append([]*Section{file.Defaults}, file.Sections...) {
			for _, k := range s.keys {
				v := s.vals[k]
				if v.Line < 1 || v.Line > lines {
					t.Fatalf("key %q at line %d of %d", k, v.Line, lines)
				}
				if strings.ContainsRune(v.Text, '\r') || k != strings.ToLower(k) {
					t.Fatalf("bad key/value %q=%q", k, v.Text)
				}
				sec := s.Name
				if got, err := c.Get(sec, k, nil); err == nil && len(got) > MaxValueSize+MaxFileSize {
					t.Fatalf("interpolated value of %d bytes", len(got))
				}
				_, _ = c.GetEx(sec, "known/"+k, nil)
				if time.Now().After(deadline) {
					t.Fatalf("interpolation too slow")
				}
			}
		}
	})
}

func FuzzLoadIncludes(f *testing.F) {
	f.Add("[INCLUDES]\nbefore = b.conf\nafter = a.conf\n[S]\nx = 1\n", "[INCLUDES]\nbefore = a.conf\n  t.conf\n[S]\nx = %(known/x)s 2\n")
	f.Add("[INCLUDES]\nafter = t.conf\n  t.conf\n", "[S]\ny = 1\n")
	f.Fuzz(func(t *testing.T, a, b string) {
		fsys := fstest.MapFS{
			"t.conf":      {Data: []byte(a)},
			"a.conf":      {Data: []byte(b)},
			"b.conf":      {Data: []byte(a + "\n" + b)},
			"t.d/x.local": {Data: []byte(b)},
		}
		l := &Loader{Layers: []Layer{{FS: fsys, Name: "mem"}}, MaxFiles: 200}
		c, err := l.Read("t")
		if err != nil {
			return
		}
		if len(c.Files()) > 200 {
			t.Fatalf("%d files read", len(c.Files()))
		}
		for _, s := range c.Sections() {
			keys, _ := c.Options(s, true)
			for _, k := range keys {
				_, _ = c.Get(s, k, nil)
			}
		}
	})
}

func FuzzSubstituteTags(f *testing.F) {
	for _, tc := range tagTests {
		var b strings.Builder
		for _, o := range tc.tags {
			b.WriteString(o.Name + "=" + o.Value + "\n")
		}
		f.Add(b.String())
	}
	f.Fuzz(func(t *testing.T, in string) {
		var tags []Option
		for _, line := range strings.Split(in, "\n") {
			k, v, _ := strings.Cut(line, "=")
			tags = append(tags, Option{Name: k, Value: strings.ReplaceAll(v, `\n`, "\n")})
		}
		lookup := func(name string) (string, bool, error) {
			if strings.HasPrefix(name, "x") {
				return "<" + name[1:] + ">", true, nil
			}
			return "", false, nil
		}
		out, err := SubstituteTags(tags, TagOptions{Lookup: lookup, Conditional: "c"})
		if err != nil {
			return
		}
		for _, o := range out {
			if len(o.Value) > MaxValueSize+len(in) {
				t.Fatalf("value of %d bytes", len(o.Value))
			}
		}
	})
}

func FuzzExtractOptions(f *testing.F) {
	for _, tc := range extractTests {
		f.Add(tc.in)
	}
	for _, tc := range splitTests {
		f.Add(tc.in)
	}
	f.Fuzz(func(t *testing.T, in string) {
		name, opts, err := ExtractOptions(in)
		if err == nil {
			if name == "" || strings.Contains(name, "[") {
				t.Fatalf("name %q from %q", name, in)
			}
			seen := map[string]bool{}
			for _, o := range opts {
				if o.Name == "" || seen[o.Name] {
					t.Fatalf("bad or repeated option %q from %q", o.Name, in)
				}
				seen[o.Name] = true
			}
		}
		if _, err := SplitWithOptions(in); err != nil && !strings.Contains(err.Error(), "splitting") {
			t.Fatalf("unexpected error %v", err)
		}
	})
}
