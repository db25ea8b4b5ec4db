package nstest

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/palisade-project/palisade/internal/sysexec"
)

// PrivateUFW gives ns its own copy of /etc/ufw and /etc/default ("ip netns
// exec" bind-mounts /etc/netns/NAME/* over /etc, so ufw run there, by a test
// or by a daemon started in ns, never touches the host's configuration:
// "ufw default" writes /etc/default/ufw), then enables ufw
// there with incoming traffic allowed. It returns a Runner for ns. The copy
// is removed when the test ends. It skips when ufw is not installed.
func PrivateUFW(t testing.TB, ns *NS) sysexec.Runner {
	t.Helper()
	RequireProgram(t, "ip", "ufw", "iptables")
	if _, err := os.Stat("/etc/ufw"); err != nil {
		t.Skip("kernel test: /etc/ufw missing")
	}
	dir := filepath.Join("/etc/netns", ns.Name)
	t.Cleanup(func() {
		if err := os.RemoveAll(dir); err != nil {
			t.Errorf("remove %s: %v", dir, err)
		}
	})
	for _, d := range []string{"ufw", "default"} {
		if err := copyTree(filepath.Join("/etc", d), filepath.Join(dir, d)); err != nil {
			t.Fatal(err)
		}
	}
	r := Runner{NS: ns, Inner: sysexec.NewExec(time.Minute)}
	for _, args := range [][]string{{"default", "allow", "incoming"}, {"--force", "enable"}} {
		if _, err := r.Run(context.Background(), sysexec.Cmd{Name: "ufw", Args: args}); err != nil {
			t.Fatalf("ufw %v: %v", args, err)
		}
	}
	return r
}

// copyTree copies the directories and regular files under src to dst.
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			return os.MkdirAll(target, info.Mode().Perm())
		case info.Mode().IsRegular():
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			return os.WriteFile(target, data, info.Mode().Perm())
		}
		return nil // symlinks and others are not needed
	})
}
