package sysexec

import (
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// owners lists, for each import that only certain packages may use, the
// packages (directories relative to the module root) allowed to import it
// in non-test files. Test files (_test.go) are not checked: tests may run
// helper programs (fail2ban's reference code, systemd-journal-remote, ssh
// clients) directly.
var owners = map[string][]string{
	// Running programs: sysexec is the only place (argv only, no shell,
	// a minimal environment). The others never reach the palisade binary.
	"os/exec": {
		"internal/sysexec",
		"internal/firewall/nstest",      // test helper: network namespaces
		"internal/harden/hardentest",    // test helper: sshd trees, ssh-keygen
		"internal/testbin",              // test helper: builds the binary
		"internal/metrics/metricstest",  // test helper: promtool check metrics
		"internal/source/sourcetest",    // test helper: journal files (systemd-journal-remote)
		"bench/daemon", "bench/latency", // benchmark programs
	},
	// Backtracking regular expressions (Python re semantics) run with a
	// match timeout only where fail2ban's own syntax needs them.
	"github.com/dlclark/regexp2": {
		"internal/filter",     // failregex/ignoreregex RE2 rejects
		"internal/datetime",   // fail2ban datepattern templates
		"internal/config/ini", // fail2ban's option grammar (lookahead)
	},
}

func moduleRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.mod not found above the test's directory")
		}
		dir = parent
	}
}

// importers returns, for each import in owners, the directories of the
// non-test Go files that import it.
func importers(t *testing.T, root string) map[string][]string {
	t.Helper()
	found := map[string][]string{}
	fset := token.NewFileSet()
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if path != root && (strings.HasPrefix(name, ".") || name == "testdata" || name == "vendor") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, filepath.Dir(path))
		for _, imp := range f.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			if _, ok := owners[p]; ok && !slices.Contains(found[p], rel) {
				found[p] = append(found[p], rel)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return found
}

// TestOnlyOwnersImport fails when os/exec or regexp2 is imported outside
// the packages that own them, and when the allowed list names a package
// that no longer imports it (so the list stays exact).
func TestOnlyOwnersImport(t *testing.T) {
	found := importers(t, moduleRoot(t))
	for imp, allowed := range owners {
		for _, dir := range found[imp] {
			if !slices.Contains(allowed, dir) {
				t.Errorf("%s imports %s; only %s may (route the use through them, or add the package to owners with the reason)", dir, imp, strings.Join(allowed, ", "))
			}
		}
		for _, dir := range allowed {
			if !slices.Contains(found[imp], dir) {
				t.Errorf("%s is allowed to import %s but no longer does: remove it from owners", dir, imp)
			}
		}
	}
}

// TestImportersSeesViolations: the walk finds an import in a file it was
// not told about, so TestOnlyOwnersImport can fail.
func TestImportersSeesViolations(t *testing.T) {
	root := t.TempDir()
	for path, src := range map[string]string{
		"go.mod":          "module example\n",
		"a/a.go":          "package a\nimport _ \"os/exec\"\n",
		"a/a_test.go":     "package a\nimport _ \"github.com/dlclark/regexp2\"\n",
		"b/c/c.go":        "package c\nimport (\n\t\"fmt\"\n\tre \"github.com/dlclark/regexp2\"\n)\nvar _ = fmt.Sprint\nvar _ = re.None\n",
		"testdata/x/x.go": "package x\nimport _ \"os/exec\"\n",
		".hidden/h/h.go":  "package h\nimport _ \"os/exec\"\n",
	} {
		full := filepath.Join(root, path)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got := importers(t, root)
	want := map[string][]string{"os/exec": {"a"}, "github.com/dlclark/regexp2": {"b/c"}}
	for imp, dirs := range want {
		if !slices.Equal(got[imp], dirs) {
			t.Errorf("importers of %s = %q, want %q", imp, got[imp], dirs)
		}
	}
}
