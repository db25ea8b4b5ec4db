// Package version says what this binary is: its release version, the commit
// it was built from and the Go toolchain that built it. It is the one source
// of the version palisade reports (`palisade version`, `--version`, the
// daemon's ping reply and its start-up log line).
//
// The Makefile stamps the release version (the repository's VERSION file, or
// VERSION=... on the make command line) and the commit at link time with
// -ldflags -X. A binary built any other way falls back to what the Go
// toolchain recorded in its build information (the module version of
// `go install ...@vX.Y.Z`, vcs.revision when VCS stamping was on), and
// otherwise says "devel" and "unknown".
package version

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"
)

// Stamped by the linker (-X); nothing writes them at run time.
var (
	version  string
	commit   string
	modified string // "true" when the working tree had uncommitted changes
)

// Info describes the running binary. Its JSON form is the stable output of
// `palisade version --json`.
type Info struct {
	// Version is the release version, e.g. "0.1.0" ("devel" when unknown).
	Version string `json:"version"`
	// Commit is the full commit hash the binary was built from ("unknown").
	Commit string `json:"commit"`
	// Modified is true when the tree had uncommitted changes at build time.
	Modified bool `json:"modified"`
	// Go is the toolchain version, e.g. "go1.26.8".
	Go string `json:"go"`
	// Platform is GOOS/GOARCH, e.g. "linux/amd64".
	Platform string `json:"platform"`
}

// Get returns the running binary's Info.
func Get() Info {
	return resolve(stamp{version, commit, modified}, debug.ReadBuildInfo)
}

// String is the one-line form printed by `palisade version` and
// `palisade --version`:
//
//	palisade 0.1.0 (commit 3a6587e..., go1.26.8, linux/amd64)
func (i Info) String() string {
	c := i.Commit
	if i.Modified {
		c += "-dirty"
	}
	return fmt.Sprintf("palisade %s (commit %s, %s, %s)", i.Version, c, i.Go, i.Platform)
}

// stamp holds the link-time values.
type stamp struct{ version, commit, modified string }

// resolve merges the link-time stamp with the toolchain's build information:
// a stamped value wins, build information fills what is missing.
func resolve(s stamp, readBuildInfo func() (*debug.BuildInfo, bool)) Info {
	info := Info{
		Version:  s.version,
		Commit:   s.commit,
		Modified: s.modified == "true",
		Go:       runtime.Version(),
		Platform: runtime.GOOS + "/" + runtime.GOARCH,
	}
	if bi, ok := readBuildInfo(); ok {
		if bi.GoVersion != "" {
			info.Go = bi.GoVersion
		}
		if info.Version == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			// Module versions are "v0.1.0"; palisade's are "0.1.0".
			info.Version = strings.TrimPrefix(bi.Main.Version, "v")
		}
		if info.Commit == "" {
			for _, kv := range bi.Settings {
				switch kv.Key {
				case "vcs.revision":
					info.Commit = kv.Value
				case "vcs.modified":
					info.Modified = kv.Value == "true"
				}
			}
		}
	}
	if info.Version == "" {
		info.Version = "devel"
	}
	if info.Commit == "" {
		info.Commit = "unknown"
	}
	return info
}
