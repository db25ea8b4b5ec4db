package main

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// readTree returns every file under dir, by relative path.
func readTree(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		rel, _ := filepath.Rel(dir, p)
		files[rel] = b
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func TestGenerate(t *testing.T) {
	when := time.Date(2026, 3, 1, 0, 30, 0, 0, time.UTC)
	a, b := t.TempDir(), t.TempDir()
	for _, dir := range []string{a, b} {
		if err := generate(dir, when); err != nil {
			t.Fatal(err)
		}
	}
	files := readTree(t, a)

	// Every command listed has its man page, and the listing is the tree's
	// runnable commands (spot checks of each kind).
	cmds := strings.Fields(strings.ReplaceAll(string(files["commands.txt"]), " ", "-"))
	for _, want := range []string{"daemon", "ssh-harden", "config-check", "version", "completion-bash"} {
		if !strings.Contains("\n"+string(files["commands.txt"]), "\n"+strings.ReplaceAll(want, "-", " ")+"\n") {
			t.Errorf("commands.txt lacks %q:\n%s", want, files["commands.txt"])
		}
	}
	for _, notWant := range []string{"help", "ssh", "config"} {
		if strings.Contains("\n"+string(files["commands.txt"]), "\n"+notWant+"\n") {
			t.Errorf("commands.txt lists %q, which is not a runnable command", notWant)
		}
	}
	for _, c := range cmds {
		page := files[filepath.Join("man8", "palisade-"+c+".8")]
		if !bytes.Contains(page, []byte(`.TH "PALISADE-`+strings.ToUpper(c)+`" "8" "Mar 2026"`)) {
			t.Errorf("man page of %q missing or without the section 8 header dated Mar 2026:\n%.200s", c, page)
		}
		if bytes.Contains(page, []byte("Auto generated")) {
			t.Errorf("man page of %q carries cobra's footer", c)
		}
	}
	if _, ok := files[filepath.Join("man8", "palisade.8")]; !ok {
		t.Error("no palisade.8")
	}
	for name, marker := range map[string]string{
		"palisade.bash": "__start_palisade", "_palisade": "#compdef palisade", "palisade.fish": "complete -c palisade",
	} {
		if !bytes.Contains(files[filepath.Join("completion", name)], []byte(marker)) {
			t.Errorf("completion/%s lacks %q", name, marker)
		}
	}

	// Two runs, identical bytes.
	other := readTree(t, b)
	if len(other) != len(files) {
		t.Fatalf("second run wrote %d files, first %d", len(other), len(files))
	}
	for name, content := range files {
		if !bytes.Equal(content, other[name]) {
			t.Errorf("%s differs between two runs", name)
		}
	}
}

func TestRunFlags(t *testing.T) {
	tests := []struct {
		args    []string
		wantErr string
	}{
		{nil, "usage"},
		{[]string{"-out", t.TempDir(), "-date", "yesterday"}, "not Unix seconds"},
		{[]string{"-out", t.TempDir(), "extra"}, "usage"},
		{[]string{"-out", t.TempDir(), "-date", "1772325000"}, ""},
	}
	for _, tt := range tests {
		err := run(tt.args, io.Discard)
		if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
			t.Errorf("run(%q) = %v, want error containing %q", tt.args, err, tt.wantErr)
		}
	}
}
