package ini

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/google/go-cmp/cmp"
)

func treeLoader(tree string) *Loader {
	return &Loader{Layers: []Layer{DirLayer(filepath.Join("testdata", "trees", tree))}}
}

// TestTreesLikeFail2ban compares every tree under testdata/trees, value by
// value (raw, interpolated or failing), with fail2ban's own reader.
func TestTreesLikeFail2ban(t *testing.T) {
	needFail2ban(t)
	ents, err := os.ReadDir("testdata/trees")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		dir, err := filepath.Abs(filepath.Join("testdata", "trees", e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		ref := pythonDumps(t, dir, "t")["t"]
		if ref.Error != "" {
			t.Errorf("%s: fail2ban could not read the tree: %s", e.Name(), ref.Error)
		}
		compareWithFail2ban(t, dir, "t", ref)
	}
}

func TestReadOrderAndOverrides(t *testing.T) {
	c, err := treeLoader("order").Read("t")
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	for _, f := range c.Files() {
		files = append(files, strings.TrimPrefix(f, filepath.Join("testdata", "trees", "order")+"/"))
	}
	wantFiles := []string{"t.conf", "t.d/1.conf", "t.d/2.conf", "t.local", "t.d/1.local"}
	if diff := cmp.Diff(wantFiles, files); diff != "" {
		t.Errorf("files (-want +got):\n%s", diff)
	}
	want := map[string]string{"a": "conf", "b": "d2", "c": "local", "d": "dlocal", "e": "conf+dlocal"}
	for k, w := range want {
		got, err := c.Get("S", k, nil)
		if err != nil || got != w {
			t.Errorf("%s = %q, %v; want %q", k, got, err, w)
		}
	}
	if c.HasOption("S", "hidden", true) || c.HasOption("S", "not", true) {
		t.Errorf("hidden or non-.conf files of t.d were read")
	}
	v, _ := c.Raw("S", "d")
	if !strings.HasSuffix(v.Where(), "t.d/1.local:2") {
		t.Errorf("origin of d = %q, want .../t.d/1.local:2", v.Where())
	}
}

func TestIncludes(t *testing.T) {
	c, err := treeLoader("includes").Read("t")
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	for _, f := range c.Files() {
		files = append(files, filepath.Base(filepath.Dir(f))+"/"+filepath.Base(f))
	}
	want := []string{"sub/c.conf", "sub/c.local", "sub/b.conf", "includes/t.conf", "includes/a.conf"}
	if diff := cmp.Diff(want, files); diff != "" {
		t.Errorf("files (-want +got):\n%s", diff)
	}
	for k, w := range map[string]string{"who": "a", "fromb": "b", "fromc": "c-local", "x": "after", "y": "after"} {
		if got, err := c.Get("S", k, nil); err != nil || got != w {
			t.Errorf("%s = %q, %v; want %q", k, got, err, w)
		}
	}
	if len(c.Warnings()) != 0 {
		t.Errorf("warnings: %v", c.Warnings())
	}
}

func TestIncludeCycles(t *testing.T) {
	c, err := treeLoader("cycle").Read("t")
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	for _, f := range c.Files() {
		files = append(files, filepath.Base(f))
	}
	// fail2ban: t includes u (which skips t, its includer) and t itself
	// (read once more, its own includes then skipped).
	want := []string{"u.conf", "t.conf", "u.conf", "t.conf"}
	if diff := cmp.Diff(want, files); diff != "" {
		t.Errorf("files (-want +got):\n%s", diff)
	}
	if len(c.Warnings()) == 0 || !strings.Contains(strings.Join(c.Warnings(), "\n"), "include cycle") {
		t.Errorf("cycle not reported: %v", c.Warnings())
	}
	if got, _ := c.Get("S", "v", nil); got != "t" {
		t.Errorf("v = %q, want t", got)
	}
}

func TestIncludeExplosionBounded(t *testing.T) {
	// Every file includes the next one twice: 2^30 reads without a bound.
	fsys := fstest.MapFS{}
	for i := 0; i < 30; i++ {
		fsys[name(i)+".conf"] = &fstest.MapFile{Data: []byte("[INCLUDES]\nbefore = " + name(i+1) + ".conf\n  " + name(i+1) + ".conf\n[S]\nx = 1\n")}
	}
	l := &Loader{Layers: []Layer{{FS: fsys, Name: "mem"}}, MaxFiles: 500}
	_, err := l.Read(name(0))
	if err == nil || !strings.Contains(err.Error(), "more than 500") {
		t.Fatalf("err = %v, want a file-count error", err)
	}
}

func name(i int) string { return "f" + strings.Repeat("x", i) }

func TestAbsoluteAndEscapingIncludes(t *testing.T) {
	dir := t.TempDir()
	other := t.TempDir()
	write := func(p, s string) {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(other, "abs.conf"), "[S]\nabs = yes\n")
	write(filepath.Join(dir, "up.conf"), "[S]\nup = yes\n")
	write(filepath.Join(dir, "cfg", "t.conf"), "[INCLUDES]\nbefore = "+filepath.Join(other, "abs.conf")+"\nafter = ../up.conf\n[S]\nmain = yes\n")
	c, err := (&Loader{Layers: []Layer{DirLayer(filepath.Join(dir, "cfg"))}}).Read("t")
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"abs", "up", "main"} {
		if got, err := c.Get("S", k, nil); err != nil || got != "yes" {
			t.Errorf("%s = %q, %v", k, got, err)
		}
	}
	// Embedded trees cannot leave their root.
	mem := fstest.MapFS{"a/t.conf": {Data: []byte("[INCLUDES]\nafter = ../../x.conf\n[S]\nk = v\n")}}
	c, err = (&Loader{Layers: []Layer{{FS: mem, Name: "mem"}}}).Read("a/t")
	if err != nil || len(c.Files()) != 1 {
		t.Errorf("embedded escaping include: files %v, err %v", c.Files(), err)
	}
}

func TestLayers(t *testing.T) {
	builtin := fstest.MapFS{
		"jail.conf":            {Data: []byte("[DEFAULT]\nbantime = 10m\n[sshd]\nenabled = false\n")},
		"filter.d/common.conf": {Data: []byte("[DEFAULT]\nc = builtin\n")},
		"jail.d/b.conf":        {Data: []byte("[sshd]\nport = 22\n")},
	}
	disk := fstest.MapFS{
		"jail.local":           {Data: []byte("[sshd]\nenabled = true\n")},
		"filter.d/common.conf": {Data: []byte("[DEFAULT]\nc = disk\n")},
		"jail.d/a.conf":        {Data: []byte("[sshd]\nport = 2222\n")},
	}
	l := &Loader{Layers: []Layer{{FS: disk, Name: "/etc/palisade"}, {FS: builtin, Name: "(builtin)"}}}
	c, err := l.Read("jail")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"(builtin)/jail.conf", "/etc/palisade/jail.d/a.conf", "(builtin)/jail.d/b.conf", "/etc/palisade/jail.local"}
	if diff := cmp.Diff(want, c.Files()); diff != "" {
		t.Errorf("files (-want +got):\n%s", diff)
	}
	for k, w := range map[string]string{"enabled": "true", "port": "22", "bantime": "10m"} {
		if got, err := c.Get("sshd", k, nil); err != nil || got != w {
			t.Errorf("%s = %q, %v; want %q", k, got, err, w)
		}
	}
	c, err = l.Read("filter.d/common")
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := c.Get(DefaultSection, "c", nil); got != "disk" {
		t.Errorf("disk file must replace the built-in one: c = %q", got)
	}
	if _, err := l.Read("nothere"); err == nil || !strings.Contains(err.Error(), "nothere.conf") {
		t.Errorf("missing config: err = %v", err)
	}
}

func TestInterpolation(t *testing.T) {
	c, err := treeLoader("interp").Read("t")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		key, want, err string
		vars           Vars
	}{
		{key: "path", want: "/var/s"},
		{key: "path", vars: Vars{"Name": "v"}, want: "/var/v"},
		{key: "self", want: "S"},
		{key: "pct", want: "100% sure"},
		{key: "cross", want: "lt-s"},
		{key: "dflt", want: "def"},
		{key: "deep3", want: "end%"},
		{key: "deep2", err: "deeper than 10"},
		{key: "loop", err: "deeper than 10"},
		{key: "missing", err: `t.conf:24: key "missing": %(nothere)s refers to a missing option`},
		{key: "badsyntax", err: `'%' must be followed by '%' or '('`},
		{key: "badref", err: "bad interpolation reference"},
		{key: "upper", want: "/var"},
		{key: "crossupper", err: "missing option"},
		{key: "multi", want: "first\nsecond\n\nafter blank  #not a comment"},
		{key: "nothere", err: "no such option"},
	}
	for _, tc := range tests {
		got, err := c.Get("S", tc.key, tc.vars)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: err = %v, want %q", tc.key, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%s = %q, %v; want %q", tc.key, got, err, tc.want)
		}
	}
	if _, err := c.Get("Nope", "x", nil); !errors.Is(err, ErrNoSection) {
		t.Errorf("missing section: %v", err)
	}
	// GetEx: section/option names.
	for opt, want := range map[string]string{"lt_x/opt": "lt-def", "default/name": "def", "known/name": "s", "Other/opt": "other"} {
		if got, err := c.GetEx("S", opt, nil); err != nil || got != want {
			t.Errorf("GetEx %s = %q, %v; want %q", opt, got, err, want)
		}
	}
}

func TestKnown(t *testing.T) {
	c, err := treeLoader("known").Read("t")
	if err != nil {
		t.Fatal(err)
	}
	for k, w := range map[string]string{"a": "1 2", "c": "def", "b": "<x>+"} {
		if got, err := c.Get("S", k, nil); err != nil || got != w {
			t.Errorf("%s = %q, %v; want %q", k, got, err, w)
		}
	}
	if got, err := c.GetEx("S", "known/a", nil); err != nil || got != "1" {
		t.Errorf("known/a = %q, %v; want the value before the override", got, err)
	}
	// fail2ban keeps one level only: a second %(known/a)s override refers
	// to the first one, which refers to itself.
	c, err = treeLoader("known-chain").Read("t")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Get("S", "a", nil); err == nil || !strings.Contains(err.Error(), "z.local:2") {
		t.Errorf("chained known/: err = %v, want a depth error at z.local:2", err)
	}
	if got := c.Sections(); !cmp.Equal(got, []string{"S"}) {
		t.Errorf("Sections() = %v, KNOWN/ sections must stay hidden", got)
	}
}

func TestConditionalSections(t *testing.T) {
	c, err := treeLoader("conditional").Read("t")
	if err != nil {
		t.Fatal(err)
	}
	keys, _ := c.Options("Init", false)
	if diff := cmp.Diff([]string{"port", "port?family=inet6"}, keys); diff != "" {
		t.Errorf("Init keys (-want +got):\n%s", diff)
	}
}

func TestMergeSectionAndDefaults(t *testing.T) {
	c := New()
	c.SetDefault("Fail2Ban_Version", Value{Text: "1.0.2"})
	c.MergeSection("jail", []Option{{Name: "failregex", Value: "x"}, {Name: "known/y", Value: "skip"}}, "known/")
	if got, err := c.Get("jail", "known/failregex", nil); err != nil || got != "x" {
		t.Errorf("known/failregex = %q, %v", got, err)
	}
	if c.HasOption("jail", "known/known/y", false) || c.HasOption("jail", "known/y", false) {
		t.Errorf("already-prefixed names are skipped by merge_section")
	}
	if got, err := c.Get("jail", "fail2ban_version", nil); err != nil || got != "1.0.2" {
		t.Errorf("default = %q, %v", got, err)
	}
}
