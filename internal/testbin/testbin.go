// Package testbin builds the palisade binary for end-to-end tests and
// benchmarks that run the real program (it is imported only by tests).
package testbin

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// Build compiles cmd/palisade (static, CGO_ENABLED=0) into a new temporary
// directory. It returns the binary's path and a function that removes it.
func Build() (string, func(), error) {
	dir, err := os.MkdirTemp("", "palisade-e2e-bin-")
	if err != nil {
		return "", nil, err
	}
	cleanup := func() { os.RemoveAll(dir) }
	bin := filepath.Join(dir, "palisade")
	goTool, err := exec.LookPath("go")
	if err != nil {
		goTool = "/usr/local/go/bin/go"
	}
	cmd := exec.Command(goTool, "build", "-o", bin, "github.com/palisade-project/palisade/cmd/palisade")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		cleanup()
		return "", nil, fmt.Errorf("build palisade: %v\n%s", err, out)
	}
	return bin, cleanup, nil
}
