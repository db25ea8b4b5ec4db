package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/google/go-cmp/cmp"
	"github.com/palisade-project/palisade/internal/config/ini"
	"github.com/palisade-project/palisade/internal/filter"
)

// refCase is one FilterReader run for testdata/filter/f2b_filter.py.
type refCase struct {
	Basedir string      `json:"basedir"`
	Name    string      `json:"name"`
	Opts    [][2]string `json:"opts"`
	Backend string      `json:"backend"`
	Path    bool        `json:"path"`
	// Jail, when set, reads the filter as fail2ban's JailReader does with
	// these jail options.
	Jail map[string]string `json:"jail,omitempty"`
}

// refResult is what fail2ban produced for a refCase.
type refResult struct {
	Error       string      `json:"error,omitempty"`
	Combined    [][2]string `json:"combined,omitempty"`
	PrefRegex   string      `json:"prefregex,omitempty"`
	FailRegex   []string    `json:"failregex,omitempty"`
	IgnoreRegex []string    `json:"ignoreregex,omitempty"`
	MaxLines    int         `json:"maxlines,omitempty"`
	DatePattern string      `json:"datepattern,omitempty"`
	UseDNS      string      `json:"usedns,omitempty"`
	// JournalMatch holds each journalmatch line split into words.
	JournalMatch [][]string `json:"journalmatch,omitempty"`
	// All is the jail's first reading (every [Definition] option).
	All [][2]string `json:"all,omitempty"`
}

func needFail2ban(t testing.TB) {
	t.Helper()
	if _, err := exec.LookPath("python3"); err != nil {
		t.Skip("python3 not installed: no fail2ban reference")
	}
	if _, err := os.Stat("/usr/lib/python3/dist-packages/fail2ban/client/filterreader.py"); err != nil {
		t.Skip("fail2ban python package not installed: no reference")
	}
}

// fail2banFilters runs fail2ban's FilterReader over the cases in one
// python process.
func fail2banFilters(t testing.TB, cases []refCase) []refResult {
	t.Helper()
	needFail2ban(t)
	script, err := filepath.Abs("testdata/filter/f2b_filter.py")
	if err != nil {
		t.Fatal(err)
	}
	in, err := json.Marshal(cases)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("python3", script)
	cmd.Stdin = bytes.NewReader(in)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("fail2ban reference: %v", err)
	}
	var res []refResult
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("fail2ban reference output: %v", err)
	}
	if len(res) != len(cases) {
		t.Fatalf("fail2ban reference: %d results for %d cases", len(res), len(cases))
	}
	return res
}

// palisadeFilter runs ReadFilter for a refCase in the reference's shape.
func palisadeFilter(c refCase) refResult {
	spec := FilterSpec{Name: c.Name, Backend: c.Backend}
	if c.Jail != nil {
		spec.JailOptions = ini.Vars{}
		for k, v := range c.Jail {
			spec.JailOptions[k] = v
		}
	}
	for _, o := range c.Opts {
		spec.Options = append(spec.Options, ini.Option{Name: o[0], Value: o[1]})
	}
	var dirs []string
	if !c.Path {
		dirs = []string{c.Basedir}
	}
	f, err := ReadFilter(spec, dirs, nil)
	if err != nil {
		return refResult{Error: err.Error()}
	}
	r := refResult{
		PrefRegex:   f.Definition.PrefRegex,
		FailRegex:   f.Definition.FailRegex,
		IgnoreRegex: f.Definition.IgnoreRegex,
		MaxLines:    f.Definition.MaxLines,
		DatePattern: f.Definition.DatePattern,
	}
	r.UseDNS, _ = f.Option("usedns")
	if c.Jail != nil {
		r.UseDNS = c.Jail["usedns"]
	}
	for _, line := range strings.Split(f.Definition.JournalMatch, "\n") {
		if line != "" {
			r.JournalMatch = append(r.JournalMatch, strings.Fields(line))
		}
	}
	for _, o := range f.Options {
		r.Combined = append(r.Combined, [2]string{o.Name, o.Value})
	}
	if c.Jail != nil {
		spec.All = true
		all, err := ReadFilter(spec, dirs, nil)
		if err != nil {
			return refResult{Error: err.Error()}
		}
		for _, o := range all.Options {
			r.All = append(r.All, [2]string{o.Name, o.Value})
		}
	}
	return r
}

func compareFilters(t *testing.T, cases []refCase) (refErrors int) {
	t.Helper()
	want := fail2banFilters(t, cases)
	for i, c := range cases {
		if want[i].Error != "" {
			refErrors++
		}
		got := palisadeFilter(c)
		w := want[i]
		if (w.Error != "") != (got.Error != "") {
			t.Errorf("%s %v: fail2ban error %q, palisade error %q", c.Name, c.Opts, w.Error, got.Error)
			continue
		}
		if w.Error != "" {
			continue
		}
		if diff := cmp.Diff(w, got); diff != "" {
			t.Errorf("%s %v: fail2ban (-) vs palisade (+):\n%s", c.Name, c.Opts, diff)
		}
	}
	return refErrors
}

var modeRefRE = regexp.MustCompile(`<([\w-]+)-<mode>`)

// stockModes finds the modes a stock filter offers: for every
// "<prefix-<mode>>" reference, the suffixes of the options named
// "prefix-SUFFIX".
func stockModes(t *testing.T, name string) []string {
	t.Helper()
	l := &ini.Loader{Layers: []ini.Layer{ini.DirLayer("/etc/fail2ban")}}
	cfg, err := l.Read("filter.d/" + name)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	var secs []*ini.Section
	for _, s := range append(cfg.Sections(), ini.DefaultSection) {
		secs = append(secs, cfg.Section(s))
	}
	prefixes := map[string]bool{}
	for _, s := range secs {
		for _, k := range s.Keys() {
			v, _ := s.Get(k)
			for _, m := range modeRefRE.FindAllStringSubmatch(v.Text, -1) {
				prefixes[m[1]] = true
			}
		}
	}
	modes := map[string]bool{}
	for _, s := range secs {
		for _, k := range s.Keys() {
			for p := range prefixes {
				if rest, ok := strings.CutPrefix(k, p+"-"); ok && rest != "" && !strings.Contains(rest, "-") {
					modes[rest] = true
				}
			}
		}
	}
	var out []string
	for m := range modes {
		out = append(out, m)
	}
	sort.Strings(out)
	return out
}

// TestStockFiltersLikeFail2ban loads every stock filter of /etc/fail2ban
// under every mode it offers, for file and journal log types, and compares
// the result, option by option and regex by regex, with what fail2ban's own
// FilterReader produces.
func TestStockFiltersLikeFail2ban(t *testing.T) {
	ents, err := os.ReadDir("/etc/fail2ban/filter.d")
	if err != nil {
		t.Skip("/etc/fail2ban/filter.d not installed")
	}
	needFail2ban(t)
	var cases []refCase
	withModes, filters := 0, 0
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), ".conf")
		if !ok {
			continue
		}
		if name != "common" && !strings.HasSuffix(name, "-common") {
			filters++
		}
		base := refCase{Basedir: "/etc/fail2ban", Name: name, Backend: "auto"}
		cases = append(cases, base)
		sd := base
		sd.Backend = "systemd"
		cases = append(cases, sd)
		j := base
		j.Opts = [][2]string{{"logtype", "journal"}}
		cases = append(cases, j)
		jl := base
		jl.Jail = map[string]string{"enabled": "true", "backend": "auto", "filter": name, "port": "ssh",
			"maxretry": "5", "logpath": "/var/log/x.log", "usedns": "warn", "ignoreregex": "^jail <HOST>$"}
		cases = append(cases, jl)
		modes := stockModes(t, name)
		if len(modes) > 0 {
			withModes++
		}
		for _, m := range modes {
			c := base
			c.Opts = [][2]string{{"mode", m}}
			cases = append(cases, c)
			c.Opts = [][2]string{{"mode", m}, {"logtype", "journal"}}
			cases = append(cases, c)
			c.Opts = [][2]string{{"mode", m}}
			c.Jail = map[string]string{"enabled": "true", "backend": "systemd", "filter": name + "[mode=" + m + "]",
				"maxlines": "4", "datepattern": "{^LN-BEG}%%Y", "journalmatch": "_COMM=x"}
			c.Backend = "systemd"
			cases = append(cases, c)
		}
	}
	if filters < 89 || withModes < 9 {
		t.Fatalf("found %d stock filters, %d with modes: stock set incomplete", filters, withModes)
	}
	t.Logf("%d stock filters (%d with modes), %d cases", filters, withModes, len(cases))
	// selinux-common.conf is an include (it uses %(_type)s that only the
	// including filters define): fail2ban and palisade both refuse it
	// alone, in its 4 variants. Every real filter must load.
	if n := compareFilters(t, cases); n != 4 {
		t.Errorf("fail2ban itself failed on %d stock cases, want 4 (selinux-common)", n)
	}
}

// TestFail2banTestFiltersLikeFail2ban does the same for the filters of
// fail2ban's own test suite (a .local override, logtype checks, multi-line).
func TestFail2banTestFiltersLikeFail2ban(t *testing.T) {
	const base = "/usr/lib/python3/dist-packages/fail2ban/tests/config"
	ents, err := os.ReadDir(filepath.Join(base, "filter.d"))
	if err != nil {
		t.Skip("fail2ban test configuration not installed")
	}
	var cases []refCase
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), ".conf")
		if !ok {
			continue
		}
		for _, backend := range []string{"auto", "systemd"} {
			cases = append(cases, refCase{Basedir: base, Name: name, Backend: backend})
		}
		cases = append(cases, refCase{Basedir: base, Name: name, Backend: "auto", Opts: [][2]string{{"logtype", "short"}}})
		cases = append(cases, refCase{Basedir: base, Name: filepath.Join(base, "filter.d", e.Name()), Backend: "auto", Path: true})
	}
	if len(cases) < 20 {
		t.Fatalf("only %d cases", len(cases))
	}
	// The two zzz-* filters include common.conf, which the installed test
	// tree lacks: fail2ban and palisade (without built-ins) both refuse
	// them, in their 4 variants each.
	if n := compareFilters(t, cases); n != 8 {
		t.Errorf("fail2ban failed on %d cases, want 8", n)
	}
}

// TestPathFilterIncludeFallback: a filter given as a path whose include is
// missing beside it takes it from the configuration directories' filter.d,
// then from the built-ins. The filter is fail2ban's test filter
// zzz-generic-example with its include re-pointed at "common.conf" (as
// upstream has it); the reference is fail2ban reading it with the stock
// common.conf beside it.
func TestPathFilterIncludeFallback(t *testing.T) {
	common, err := os.ReadFile("/etc/fail2ban/filter.d/common.conf")
	if err != nil {
		t.Skip("/etc/fail2ban/filter.d/common.conf not installed")
	}
	data, err := os.ReadFile("/usr/lib/python3/dist-packages/fail2ban/tests/config/filter.d/zzz-generic-example.conf")
	if err != nil {
		t.Skip("fail2ban test filters not installed")
	}
	staged := regexp.MustCompile(`(?m)^before = .*$`).ReplaceAllString(string(data), "before = common.conf")
	if staged == string(data) {
		t.Fatal("no include to re-point")
	}
	withCommon := writeTree(t, map[string]string{"filter.d/zzz.conf": staged, "filter.d/common.conf": string(common)})
	alone := writeTree(t, map[string]string{"zzz.conf": staged})
	ref := fail2banFilters(t, []refCase{{Basedir: withCommon, Name: "zzz", Backend: "auto"}})[0]
	if ref.Error != "" || len(ref.FailRegex) == 0 {
		t.Fatalf("reference: %q", ref.Error)
	}
	builtin := treeFS(map[string]string{"filter.d/common.conf": "[DEFAULT]\n__prefix_line = BUILTIN\n"})
	path := filepath.Join(alone, "zzz.conf")
	f, err := ReadFilter(FilterSpec{Name: path}, []string{"/etc/fail2ban"}, builtin)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(ref.FailRegex, f.Definition.FailRegex); diff != "" {
		t.Errorf("failregex (-fail2ban +palisade):\n%s", diff)
	}
	if diff := cmp.Diff(ref.IgnoreRegex, f.Definition.IgnoreRegex); diff != "" {
		t.Errorf("ignoreregex (-fail2ban +palisade):\n%s", diff)
	}
	if ref.DatePattern != f.Definition.DatePattern {
		t.Errorf("datepattern: fail2ban %q, palisade %q", ref.DatePattern, f.Definition.DatePattern)
	}
	// Without configuration directories the built-in common.conf is used.
	f, err = ReadFilter(FilterSpec{Name: path}, nil, builtin)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(strings.Join(f.Definition.FailRegex, "\n"), "^BUILTINF2B") {
		t.Errorf("built-in common.conf not used: %q", f.Definition.FailRegex)
	}
}

// TestStockFilterKeyPieces checks a few values by hand, so a reader that
// agreed with a broken reference would still be caught.
func TestStockFilterKeyPieces(t *testing.T) {
	if _, err := os.Stat("/etc/fail2ban/filter.d/sshd.conf"); err != nil {
		t.Skip("/etc/fail2ban/filter.d/sshd.conf not installed")
	}
	def, err := LoadFilter(FilterSpec{Name: "sshd", Options: []ini.Option{{Name: "mode", Value: "aggressive"}, {Name: "logtype", Value: "journal"}}}, []string{"/etc/fail2ban"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if def.MaxLines != 1 {
		t.Errorf("maxlines = %d, want 1", def.MaxLines)
	}
	if !strings.HasPrefix(def.PrefRegex, "^<F-MLFID>") || !strings.Contains(def.PrefRegex, "<F-CONTENT>.+</F-CONTENT>$") {
		t.Errorf("prefregex = %q", def.PrefRegex)
	}
	if strings.Contains(def.PrefRegex, "<__prefix_line>") || strings.Contains(def.PrefRegex, "%(") {
		t.Errorf("prefregex not substituted: %q", def.PrefRegex)
	}
	if len(def.FailRegex) < 20 {
		t.Errorf("aggressive mode has %d failregexes, want the normal+ddos+extra set (>= 20)", len(def.FailRegex))
	}
	for _, re := range def.FailRegex {
		if re == "" || strings.Contains(re, "<mdre-") || strings.Contains(re, "<cmnfailre") {
			t.Errorf("unsubstituted or empty failregex %q", re)
		}
	}
	if !strings.Contains(strings.Join(def.FailRegex, "\n"), "<HOST>") {
		t.Errorf("<HOST> must survive substitution")
	}
	if def.JournalMatch != "_SYSTEMD_UNIT=sshd.service + _COMM=sshd" {
		t.Errorf("journalmatch = %q", def.JournalMatch)
	}
	if def.DatePattern != "{^LN-BEG}" {
		t.Errorf("journal datepattern = %q, want {^LN-BEG} (lt_journal -> lt_short -> lt_file)", def.DatePattern)
	}
}

// treeFS builds an in-memory filter tree.
func treeFS(files map[string]string) fstest.MapFS {
	m := fstest.MapFS{}
	for k, v := range files {
		m[k] = &fstest.MapFile{Data: []byte(v)}
	}
	return m
}

// writeTree writes files under a new temporary directory.
func writeTree(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for k, v := range files {
		p := filepath.Join(dir, filepath.FromSlash(k))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(v), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// filterTrees are small filter trees exercising every feature; each is
// loaded by palisade and, where python is available, by fail2ban.
var filterTrees = map[string]map[string]string{
	"init-options": {
		"filter.d/common.conf": "[DEFAULT]\n_daemon = \\S+\n__prefix = <_daemon>\\[\\d+\\]:\n",
		"filter.d/t.conf": "[INCLUDES]\nbefore = common.conf\n[Definition]\n_daemon = myd\n" +
			"failregex = ^%(__prefix)s <mode-<mode>> from <HOST>$\n\n    ^%(__prefix)s second <F-USER>\\S+</F-USER> <HOST>\n" +
			"ignoreregex = ^ignored <arg>$\nmode-normal = normal\nmode-strict = strict <arg>\nmaxlines = 2\n" +
			"datepattern = {^LN-BEG}\n[Init]\nmode = normal\narg = default-arg\n",
	},
	"local-and-known": {
		"filter.d/t.conf":     "[Definition]\nfailregex = ^base <HOST>$\nignoreregex =\n",
		"filter.d/t.local":    "[Definition]\nfailregex = %(known/failregex)s\n            ^local <HOST>$\n",
		"filter.d/t.d/a.conf": "[Definition]\nignoreregex = ^from-d <HOST>$\n",
	},
	"lt-nesting": {
		"filter.d/t.conf": "[DEFAULT]\nlogtype = file\n__pref = <lt_<logtype>/__pref>\n" +
			"[lt_file]\n__pref = F:\n[lt_journal]\n__pref = J:\n" +
			"[Definition]\nprefregex = ^<__pref> <F-CONTENT>.+</F-CONTENT>$\nfailregex = ^x <HOST>$\n" +
			"journalmatch = _SYSTEMD_UNIT=t.service\n",
	},
	"self-reference": {
		"filter.d/t.conf": "[Definition]\nfailregex = <a>\na = <failregex>\n",
	},
	"missing-interpolation": {
		"filter.d/t.conf": "[Definition]\nfailregex = %(nothere)s\n",
	},
	"bad-maxlines": {
		"filter.d/t.conf": "[Definition]\nfailregex = ^x <HOST>$\nmaxlines = many\n",
	},
}

func TestFilterTreesLikeFail2ban(t *testing.T) {
	var cases []refCase
	for name, files := range filterTrees {
		if name == "bad-maxlines" {
			// Deliberate difference: fail2ban warns and ignores a
			// non-integer maxlines; palisade refuses the configuration.
			continue
		}
		dir := writeTree(t, files)
		for _, opts := range [][][2]string{nil, {{"mode", "strict"}, {"arg", "given"}}, {{"logtype", "journal"}}} {
			cases = append(cases, refCase{Basedir: dir, Name: "t", Opts: opts, Backend: "auto"})
		}
	}
	if n := compareFilters(t, cases); n != 3*2 {
		t.Errorf("fail2ban failed on %d tree cases, want 6 (self-reference, missing-interpolation)", n)
	}
}

func TestFilterTrees(t *testing.T) {
	tests := []struct {
		tree    string
		opts    []ini.Option
		backend string
		want    filter.Definition
		wantErr string
	}{
		{tree: "init-options", want: filter.Definition{
			FailRegex:   []string{`^myd\[\d+\]: normal from <HOST>$`, `^myd\[\d+\]: second <F-USER>\S+</F-USER> <HOST>`},
			IgnoreRegex: []string{"^ignored default-arg$"}, MaxLines: 2, DatePattern: "{^LN-BEG}",
		}},
		{tree: "init-options", opts: []ini.Option{{Name: "mode", Value: "strict"}, {Name: "arg", Value: "given"}}, want: filter.Definition{
			FailRegex:   []string{`^myd\[\d+\]: strict given from <HOST>$`, `^myd\[\d+\]: second <F-USER>\S+</F-USER> <HOST>`},
			IgnoreRegex: []string{"^ignored given$"}, MaxLines: 2, DatePattern: "{^LN-BEG}",
		}},
		{tree: "local-and-known", want: filter.Definition{
			FailRegex: []string{"^base <HOST>$", "^local <HOST>$"}, IgnoreRegex: []string{"^from-d <HOST>$"},
		}},
		{tree: "lt-nesting", want: filter.Definition{
			PrefRegex: "^F: <F-CONTENT>.+</F-CONTENT>$", FailRegex: []string{"^x <HOST>$"}, JournalMatch: "_SYSTEMD_UNIT=t.service",
		}},
		{tree: "lt-nesting", backend: "systemd", want: filter.Definition{
			PrefRegex: "^J: <F-CONTENT>.+</F-CONTENT>$", FailRegex: []string{"^x <HOST>$"}, JournalMatch: "_SYSTEMD_UNIT=t.service",
		}},
		{tree: "lt-nesting", opts: []ini.Option{{Name: "logtype", Value: "journal"}}, want: filter.Definition{
			PrefRegex: "^J: <F-CONTENT>.+</F-CONTENT>$", FailRegex: []string{"^x <HOST>$"}, JournalMatch: "_SYSTEMD_UNIT=t.service",
		}},
		{tree: "self-reference", wantErr: "t.conf:2: failregex: tag <failregex> refers to itself"},
		{tree: "missing-interpolation", wantErr: `t.conf:2: key "failregex": %(nothere)s refers to a missing option`},
		{tree: "bad-maxlines", wantErr: `t.conf:3: [Definition] maxlines: not a non-negative integer`},
	}
	for _, tc := range tests {
		t.Run(tc.tree, func(t *testing.T) {
			dir := writeTree(t, filterTrees[tc.tree])
			for _, mode := range []string{"dir", "builtin", "path"} {
				spec := FilterSpec{Name: "t", Options: tc.opts, Backend: tc.backend}
				var dirs []string
				var builtin = treeFS(filterTrees[tc.tree])
				want := tc.want
				want.Name = "t"
				switch mode {
				case "dir":
					dirs = []string{dir}
					builtin = nil
				case "path":
					spec.Name = filepath.Join(dir, "filter.d", "t.conf")
					want.Name = spec.Name
					builtin = nil
				}
				got, err := LoadFilter(spec, dirs, builtin)
				if tc.wantErr != "" {
					if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
						t.Errorf("%s: err = %v, want %q", mode, err, tc.wantErr)
					}
					continue
				}
				if err != nil {
					t.Fatalf("%s: %v", mode, err)
				}
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("%s: (-want +got):\n%s", mode, diff)
				}
			}
		})
	}
}

// TestFilterDiskOverridesBuiltin: a disk file replaces the built-in file
// of the same name, file by file; other built-in files stay visible.
func TestFilterDiskOverridesBuiltin(t *testing.T) {
	builtin := treeFS(map[string]string{
		"filter.d/common.conf": "[DEFAULT]\n__p = builtin-common\n",
		"filter.d/t.conf":      "[INCLUDES]\nbefore = common.conf\n[Definition]\nfailregex = ^<__p> builtin <HOST>$\n",
		"filter.d/u.conf":      "[INCLUDES]\nbefore = common.conf\n[Definition]\nfailregex = ^<__p> u <HOST>$\n",
	})
	dir := writeTree(t, map[string]string{
		"filter.d/common.conf": "[DEFAULT]\n__p = disk-common\n",
		"filter.d/t.conf":      "[INCLUDES]\nbefore = common.conf\n[Definition]\nfailregex = ^<__p> disk <HOST>$\n",
	})
	second := writeTree(t, map[string]string{
		"filter.d/t.local": "[Definition]\nignoreregex = ^second$\n",
		"filter.d/t.conf":  "[Definition]\nfailregex = ^shadowed$\n",
	})
	tests := []struct {
		name   string
		dirs   []string
		fail   []string
		ignore []string
	}{
		{"t", nil, []string{"^builtin-common builtin <HOST>$"}, nil},
		{"t", []string{dir}, []string{"^disk-common disk <HOST>$"}, nil},
		{"u", []string{dir}, []string{"^disk-common u <HOST>$"}, nil},
		{"t", []string{dir, second}, []string{"^disk-common disk <HOST>$"}, []string{"^second$"}},
	}
	for _, tc := range tests {
		got, err := LoadFilter(FilterSpec{Name: tc.name}, tc.dirs, builtin)
		if err != nil {
			t.Fatalf("%s %v: %v", tc.name, tc.dirs, err)
		}
		if diff := cmp.Diff(tc.fail, got.FailRegex); diff != "" {
			t.Errorf("%s %v failregex (-want +got):\n%s", tc.name, tc.dirs, diff)
		}
		if diff := cmp.Diff(tc.ignore, got.IgnoreRegex); diff != "" {
			t.Errorf("%s %v ignoreregex (-want +got):\n%s", tc.name, tc.dirs, diff)
		}
	}
	if _, err := LoadFilter(FilterSpec{Name: "nothere"}, []string{dir}, builtin); err == nil || !strings.Contains(err.Error(), "nothere") {
		t.Errorf("missing filter: err = %v", err)
	}
	if _, err := LoadFilter(FilterSpec{Name: "../etc"}, nil, builtin); err == nil {
		t.Errorf("path-like name with '..' must fail")
	}
	var pe *Error
	_, err := LoadFilter(FilterSpec{Name: "bad"}, nil, treeFS(map[string]string{"filter.d/bad.conf": "[Definition]\nfailregex = x\nmaxlines = -3\n"}))
	if !errors.As(err, &pe) || pe.Line != 3 || pe.Key != "maxlines" {
		t.Errorf("bad maxlines: err = %#v", err)
	}
}

// FuzzReadFilter: hostile filter files never panic or hang the loader.
func FuzzReadFilter(f *testing.F) {
	for _, files := range filterTrees {
		f.Add(files["filter.d/t.conf"], files["filter.d/common.conf"], "mode=strict")
	}
	f.Add("[INCLUDES]\nbefore = common.conf\n[Definition]\nfailregex = <a>\n[Init]\na = <b>\n", "[DEFAULT]\nb = <lt_<a>/x>\n[lt_x]\nx = <b>", "a=x")
	f.Fuzz(func(t *testing.T, conf, common, arg string) {
		builtin := treeFS(map[string]string{"filter.d/t.conf": conf, "filter.d/common.conf": common, "filter.d/t.local": common})
		var opts []ini.Option
		if k, v, ok := strings.Cut(arg, "="); ok {
			opts = append(opts, ini.Option{Name: k, Value: v})
		}
		def, err := LoadFilter(FilterSpec{Name: "t", Options: opts}, nil, builtin)
		if err != nil {
			return
		}
		for _, re := range append(def.FailRegex, def.IgnoreRegex...) {
			if re == "" || strings.Contains(re, "\n") {
				t.Fatalf("regex %q not split into lines", re)
			}
		}
		if def.MaxLines < 0 {
			t.Fatalf("maxlines %d", def.MaxLines)
		}
	})
}

// BenchmarkLoadStockSSHD loads /etc/fail2ban's sshd filter in aggressive
// mode (common.conf include, interpolation, recursive tags).
func BenchmarkLoadStockSSHD(b *testing.B) {
	if _, err := os.Stat("/etc/fail2ban/filter.d/sshd.conf"); err != nil {
		b.Skip("/etc/fail2ban not installed")
	}
	spec := FilterSpec{Name: "sshd", Options: []ini.Option{{Name: "mode", Value: "aggressive"}}}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := LoadFilter(spec, []string{"/etc/fail2ban"}, nil); err != nil {
			b.Fatal(err)
		}
	}
}
