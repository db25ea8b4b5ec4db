package cli

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// TestDocsNameRealTests reads every `go test ... -run X` and `-bench X`
// the documentation gives as evidence and fails when a pattern's
// alternative names no test or benchmark in the packages the command
// lists: a claim in docs/ points at a test that exists, and a renamed or
// removed test cannot leave a dangling reference behind.
func TestDocsNameRealTests(t *testing.T) {
	const root = "../.."
	files, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	files = append(files, filepath.Join(root, "README.md"))
	funcs := map[string]map[string]bool{} // package dir -> test file functions
	checked := 0
	for _, f := range files {
		text, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(root, f)
		for _, ref := range goTestRefs(string(text)) {
			all := map[string]bool{} // an alternative may name a test of any listed package
			for _, pkg := range ref.pkgs {
				names, ok := funcs[pkg]
				if !ok {
					names, err = testFuncs(filepath.Join(root, pkg))
					if err != nil {
						t.Errorf("%s:%d: %s: %v", rel, ref.line, ref.cmd, err)
						continue
					}
					funcs[pkg] = names
				}
				for n := range names {
					all[n] = true
				}
			}
			for _, p := range ref.patterns {
				checked++
				if err := p.matchesOne(all); err != nil {
					t.Errorf("%s:%d: %s: %v in %s", rel, ref.line, ref.cmd, err, strings.Join(ref.pkgs, ", "))
				}
			}
		}
	}
	if checked < 40 {
		t.Errorf("only %d test references found in the docs; the parser lost them", checked)
	}
}

// testRef is one `go test` command found in a document.
type testRef struct {
	line     int
	cmd      string
	pkgs     []string // "internal/daemon"; ./... and no package are skipped
	patterns []testPattern
}

// testPattern is one alternative of a -run or -bench pattern, at the top
// level (subtest parts after '/' are not checked).
type testPattern struct {
	prefix string         // "Test" or "Benchmark"
	re     *regexp.Regexp // nil: matches nothing
	text   string
}

func (p testPattern) matchesOne(names map[string]bool) error {
	for n := range names {
		if p.re != nil && strings.HasPrefix(n, p.prefix) && p.re.MatchString(n) {
			return nil
		}
	}
	return fmt.Errorf("-%s alternative %q matches no %s function", map[string]string{"Test": "run", "Benchmark": "bench"}[p.prefix], p.text, p.prefix)
}

var goTestCmd = regexp.MustCompile("go test [^`#\n]*")

// goTestRefs finds the go test commands of a Markdown text with the
// packages and test patterns each names.
func goTestRefs(text string) []testRef {
	var refs []testRef
	for i, line := range strings.Split(text, "\n") {
		for _, cmd := range goTestCmd.FindAllString(line, -1) {
			cmd = strings.TrimSpace(strings.Split(cmd, "&&")[0])
			ref := testRef{line: i + 1, cmd: cmd}
			fields := strings.Fields(cmd)
			for j := 2; j < len(fields); j++ {
				f := fields[j]
				switch {
				case (f == "-run" || f == "-bench" || f == "-test.run" || f == "-test.bench") && j+1 < len(fields):
					j++
					prefix := "Test"
					if strings.HasSuffix(f, "bench") {
						prefix = "Benchmark"
					}
					ref.patterns = append(ref.patterns, splitPattern(prefix, fields[j])...)
				case strings.HasPrefix(f, "./") && !strings.HasSuffix(f, "..."):
					ref.pkgs = append(ref.pkgs, strings.TrimSuffix(strings.TrimPrefix(f, "./"), "/"))
				}
			}
			if len(ref.pkgs) > 0 && len(ref.patterns) > 0 {
				refs = append(refs, ref)
			}
		}
	}
	return refs
}

// splitPattern turns a shell-quoted -run/-bench value into its top-level
// alternatives; '^$' (run nothing) yields none.
func splitPattern(prefix, v string) []testPattern {
	v = strings.Trim(v, `'"`)
	v = strings.ReplaceAll(v, `\|`, "|") // Markdown tables escape the bar
	if v == "^$" || v == "XXX" || v == "" {
		return nil
	}
	top := strings.SplitN(v, "/", 2)[0]
	var out []testPattern
	for _, alt := range strings.Split(top, "|") {
		re, _ := regexp.Compile(alt) // nil (an empty or broken alternative) matches nothing
		if alt == "" {
			re = nil
		}
		out = append(out, testPattern{prefix: prefix, re: re, text: alt})
	}
	return out
}

// testFuncs lists the top-level functions of a directory's _test.go files.
func testFuncs(dir string) (map[string]bool, error) {
	paths, err := filepath.Glob(filepath.Join(dir, "*_test.go"))
	if err != nil {
		return nil, err
	}
	if len(paths) == 0 {
		return nil, fmt.Errorf("no test files in %s", dir)
	}
	sort.Strings(paths)
	names := map[string]bool{}
	fset := token.NewFileSet()
	for _, p := range paths {
		f, err := parser.ParseFile(fset, p, nil, parser.SkipObjectResolution)
		if err != nil {
			return nil, err
		}
		for _, d := range f.Decls {
			if fn, ok := d.(*ast.FuncDecl); ok && fn.Recv == nil {
				names[fn.Name.Name] = true
			}
		}
	}
	return names, nil
}

// TestGoTestRefs shows the parser on the shapes the docs use, and that a
// dangling name is caught.
func TestGoTestRefs(t *testing.T) {
	names := map[string]bool{"TestReload": true, "TestReloadKeepsCounters": true, "BenchmarkFilter": true, "BenchmarkMatchISO": true}
	tests := []struct {
		text     string
		pkgs     []string
		patterns []string
		bad      []string // alternatives that match nothing in names
	}{
		{"see `go test ./internal/daemon -run TestReloadKeepsCounters`", []string{"internal/daemon"}, []string{"TestReloadKeepsCounters"}, nil},
		{"| `go test ./internal/cli -run 'TestReload\\|TestGone'` |", []string{"internal/cli"}, []string{"TestReload", "TestGone"}, []string{"TestGone"}},
		{"$ go test -run '^$' -bench 'Filter/^sshd$' -benchtime 3x ./internal/filter/", []string{"internal/filter"}, []string{"Filter"}, nil},
		{"$ go test -run '^$' -bench 'MatchISO$|MatchApache$' ./internal/datetime", []string{"internal/datetime"}, []string{"MatchISO$", "MatchApache$"}, []string{"MatchApache$"}},
		{"go test ./... -run TestX", nil, nil, nil},
		{"go test -c -o /tmp/x.test ./internal/fleet && cd internal/fleet && /tmp/x.test -test.bench Y", nil, nil, nil},
	}
	for _, tt := range tests {
		refs := goTestRefs(tt.text)
		if tt.pkgs == nil {
			if len(refs) != 0 {
				t.Errorf("%q: got %+v, want no reference", tt.text, refs)
			}
			continue
		}
		if len(refs) != 1 {
			t.Fatalf("%q: got %d references, want 1", tt.text, len(refs))
		}
		r := refs[0]
		if fmt.Sprint(r.pkgs) != fmt.Sprint(tt.pkgs) {
			t.Errorf("%q: packages %v, want %v", tt.text, r.pkgs, tt.pkgs)
		}
		var got, bad []string
		for _, p := range r.patterns {
			got = append(got, p.text)
			if p.matchesOne(names) != nil {
				bad = append(bad, p.text)
			}
		}
		if fmt.Sprint(got) != fmt.Sprint(tt.patterns) || fmt.Sprint(bad) != fmt.Sprint(tt.bad) {
			t.Errorf("%q: patterns %v (unmatched %v), want %v (unmatched %v)", tt.text, got, bad, tt.patterns, tt.bad)
		}
	}
}
