package source

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseBackend(t *testing.T) {
	for _, tc := range []struct {
		in      string
		kind    BackendKind
		name    string
		opts    map[string]string
		wantErr bool
	}{
		{in: "auto", kind: BackendAuto, name: "auto", opts: map[string]string{}},
		{in: "", kind: BackendAuto, name: "auto", opts: map[string]string{}},
		{in: "polling", kind: BackendFile, name: "polling", opts: map[string]string{}},
		{in: "PyInotify", kind: BackendFile, name: "pyinotify", opts: map[string]string{}},
		{in: "gamin", kind: BackendFile, name: "gamin", opts: map[string]string{}},
		{in: "systemd", kind: BackendSystemd, name: "systemd", opts: map[string]string{}},
		{in: "systemd[journalpath=/var/log/journal, journalflags=1]", kind: BackendSystemd, name: "systemd",
			opts: map[string]string{"journalpath": "/var/log/journal", "journalflags": "1"}},
		{in: `systemd[journalfiles="/a/x.journal, /b/y.journal"]`, kind: BackendSystemd, name: "systemd",
			opts: map[string]string{"journalfiles": "/a/x.journal, /b/y.journal"}},
		{in: "inotify", wantErr: true},
		{in: "systemd[journalpath=/x", wantErr: true},
		{in: "systemd[noequals]", wantErr: true},
		{in: `systemd[a="open]`, wantErr: true},
		{in: `systemd[a="x" y]`, wantErr: true},
	} {
		b, err := ParseBackend(tc.in)
		if (err != nil) != tc.wantErr {
			t.Errorf("ParseBackend(%q) error = %v, wantErr %v", tc.in, err, tc.wantErr)
			continue
		}
		if tc.wantErr {
			continue
		}
		if b.Kind != tc.kind || b.Name != tc.name {
			t.Errorf("ParseBackend(%q) = %v/%q, want %v/%q", tc.in, b.Kind, b.Name, tc.kind, tc.name)
		}
		if diff := cmp.Diff(tc.opts, b.Options); diff != "" {
			t.Errorf("ParseBackend(%q) options (-want +got):\n%s", tc.in, diff)
		}
	}
}

func TestBackendResolve(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "auth.log")
	if err := os.WriteFile(log, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	auto := Backend{Kind: BackendAuto}
	for _, tc := range []struct {
		b     Backend
		paths []string
		want  BackendKind
	}{
		{auto, []string{log}, BackendFile},
		{auto, []string{filepath.Join(dir, "missing.log"), filepath.Join(dir, "*.log")}, BackendFile},
		{auto, []string{filepath.Join(dir, "missing.log")}, BackendSystemd},
		{auto, nil, BackendSystemd},
		{Backend{Kind: BackendFile}, nil, BackendFile},
		{Backend{Kind: BackendSystemd}, []string{log}, BackendSystemd},
	} {
		if got := tc.b.Resolve(tc.paths); got != tc.want {
			t.Errorf("%v.Resolve(%q) = %v, want %v", tc.b.Kind, tc.paths, got, tc.want)
		}
	}
}
