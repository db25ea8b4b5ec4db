package jails

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// binary is the palisade binary built once by TestMain; empty when the
// tests cannot run here (not root), in which case they skip.
var binary string

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	if os.Geteuid() == 0 {
		dir, err := os.MkdirTemp("", "palisade-e2e-bin-")
		if err != nil {
			fmt.Fprintln(os.Stderr, "e2e:", err)
			return 1
		}
		defer os.RemoveAll(dir)
		bin := filepath.Join(dir, "palisade")
		goTool, err := exec.LookPath("go")
		if err != nil {
			goTool = "/usr/local/go/bin/go"
		}
		cmd := exec.Command(goTool, "build", "-o", bin, "github.com/palisade-project/palisade/cmd/palisade")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "e2e: build palisade: %v\n%s", err, out)
			return 1
		}
		binary = bin
	}
	return m.Run()
}

// palisade returns the binary, skipping the test when it was not built.
func palisade(t *testing.T) string {
	t.Helper()
	if binary == "" {
		t.Skip("e2e test: needs root (network namespaces, firewall, sshd)")
	}
	return binary
}
