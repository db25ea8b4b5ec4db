package version

import (
	"runtime"
	"runtime/debug"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestResolve(t *testing.T) {
	platform := runtime.GOOS + "/" + runtime.GOARCH
	buildInfo := func(bi *debug.BuildInfo) func() (*debug.BuildInfo, bool) {
		return func() (*debug.BuildInfo, bool) { return bi, bi != nil }
	}
	vcs := &debug.BuildInfo{
		GoVersion: "go1.26.8",
		Main:      debug.Module{Path: "github.com/palisade-project/palisade", Version: "v0.2.0"},
		Settings: []debug.BuildSetting{
			{Key: "vcs.revision", Value: "0123456789abcdef0123456789abcdef01234567"},
			{Key: "vcs.modified", Value: "true"},
		},
	}
	tests := []struct {
		name  string
		stamp stamp
		bi    *debug.BuildInfo
		want  Info
	}{
		{
			name:  "stamped by make wins over build info",
			stamp: stamp{"0.1.0", "fedcba9876543210fedcba9876543210fedcba98", ""},
			bi:    vcs,
			want:  Info{Version: "0.1.0", Commit: "fedcba9876543210fedcba9876543210fedcba98", Go: "go1.26.8", Platform: platform},
		},
		{
			name:  "stamped dirty tree",
			stamp: stamp{"0.1.0", "fedcba98", "true"},
			bi:    nil,
			want:  Info{Version: "0.1.0", Commit: "fedcba98", Modified: true, Go: runtime.Version(), Platform: platform},
		},
		{
			name:  "go install with VCS stamping",
			stamp: stamp{},
			bi:    vcs,
			want:  Info{Version: "0.2.0", Commit: "0123456789abcdef0123456789abcdef01234567", Modified: true, Go: "go1.26.8", Platform: platform},
		},
		{
			name:  "plain go build without VCS information",
			stamp: stamp{},
			bi:    &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"}},
			want:  Info{Version: "devel", Commit: "unknown", Go: "go1.26.8", Platform: platform},
		},
		{
			name:  "no build information at all",
			stamp: stamp{},
			bi:    nil,
			want:  Info{Version: "devel", Commit: "unknown", Go: runtime.Version(), Platform: platform},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := resolve(tt.stamp, buildInfo(tt.bi))
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("resolve() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestString(t *testing.T) {
	tests := []struct {
		info Info
		want string
	}{
		{Info{Version: "0.1.0", Commit: "abc", Go: "go1.26.8", Platform: "linux/amd64"},
			"palisade 0.1.0 (commit abc, go1.26.8, linux/amd64)"},
		{Info{Version: "0.1.0", Commit: "abc", Modified: true, Go: "go1.26.8", Platform: "linux/arm64"},
			"palisade 0.1.0 (commit abc-dirty, go1.26.8, linux/arm64)"},
	}
	for _, tt := range tests {
		if got := tt.info.String(); got != tt.want {
			t.Errorf("String() = %q, want %q", got, tt.want)
		}
	}
}
