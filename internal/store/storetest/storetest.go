// Package storetest lets tests put a database on a file system that
// really runs full or read-only: a small tmpfs mounted on a temporary
// directory. It needs root; without it the test is skipped. Only tests
// import it.
package storetest

import (
	"fmt"
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

// TmpFS mounts a tmpfs of size bytes on a new temporary directory and
// returns the directory; the mount is removed when the test ends.
func TmpFS(t testing.TB, size int) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a tmpfs")
	}
	dir := t.TempDir()
	if err := unix.Mount("palisade-test", dir, "tmpfs", 0, options(size)); err != nil {
		t.Skipf("cannot mount a tmpfs: %v", err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	return dir
}

// Remount changes a TmpFS: its size, and read-only when readOnly is set.
// A file system with files open for writing cannot become read-only.
func Remount(t testing.TB, dir string, size int, readOnly bool) {
	t.Helper()
	flags := uintptr(unix.MS_REMOUNT)
	if readOnly {
		flags |= unix.MS_RDONLY
	}
	if err := unix.Mount("palisade-test", dir, "tmpfs", flags, options(size)); err != nil {
		t.Fatalf("remount %s: %v", dir, err)
	}
}

func options(size int) string { return fmt.Sprintf("size=%d,mode=0700", size) }
