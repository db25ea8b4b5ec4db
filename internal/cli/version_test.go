package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/palisade-project/palisade/internal/version"
)

func TestVersion(t *testing.T) {
	want := version.Get()
	tests := []struct {
		args     []string
		wantCode int
		wantOut  string
	}{
		{[]string{"version"}, ExitOK, want.String() + "\n"},
		{[]string{"--version"}, ExitOK, want.String() + "\n"},
		{[]string{"version", "extra"}, ExitUsage, ""},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var out, errOut bytes.Buffer
			code := Main(context.Background(), tt.args, strings.NewReader(""), &out, &errOut)
			if code != tt.wantCode {
				t.Fatalf("exit %d, want %d (stderr %q)", code, tt.wantCode, errOut.String())
			}
			if out.String() != tt.wantOut {
				t.Errorf("stdout %q, want %q", out.String(), tt.wantOut)
			}
		})
	}
}

func TestVersionJSON(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := Main(context.Background(), []string{"version", "--json"}, strings.NewReader(""), &out, &errOut); code != ExitOK {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	var got map[string]any
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out.String())
	}
	want := version.Get()
	for key, val := range map[string]any{
		"version": want.Version, "commit": want.Commit, "modified": want.Modified,
		"go": want.Go, "platform": want.Platform,
	} {
		if got[key] != val {
			t.Errorf("%s = %v, want %v", key, got[key], val)
		}
	}
}
