package daemon

import (
	"fmt"
	"io/fs"
	"syscall"
	"testing"
)

// TestUnwritableDir: only a directory that cannot be written sends the
// failure journal to the temporary directory; other errors stay fatal.
func TestUnwritableDir(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{&fs.PathError{Op: "open", Path: "/db/p.db.failures.tmp", Err: syscall.EROFS}, true},
		{fmt.Errorf("failure journal: %w", &fs.PathError{Op: "write", Path: "x", Err: syscall.ENOSPC}), true},
		{&fs.PathError{Op: "open", Path: "x", Err: syscall.EACCES}, true},
		{&fs.PathError{Op: "open", Path: "x", Err: syscall.EIO}, false},
		{fmt.Errorf("failure journal: bad record"), false},
	} {
		if got := unwritableDir(tc.err); got != tc.want {
			t.Errorf("unwritableDir(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}
