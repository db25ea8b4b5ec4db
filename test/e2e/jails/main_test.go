package jails

import (
	"fmt"
	"os"
	"testing"

	"github.com/palisade-project/palisade/internal/testbin"
)

// binary is the palisade binary built once by TestMain; empty when the
// tests cannot run here (not root), in which case they skip.
var binary string

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	if os.Geteuid() == 0 {
		bin, cleanup, err := testbin.Build()
		if err != nil {
			fmt.Fprintln(os.Stderr, "e2e:", err)
			return 1
		}
		defer cleanup()
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
