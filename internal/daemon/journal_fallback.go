package daemon

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"

	"github.com/palisade-project/palisade/internal/failjournal"
)

// unwritableDir reports whether err says the database directory cannot be
// written (read-only or full file system, no permission): the daemon must
// keep running then, as the ban manager does.
func unwritableDir(err error) bool {
	return errors.Is(err, syscall.EROFS) || errors.Is(err, syscall.ENOSPC) ||
		errors.Is(err, syscall.EDQUOT) || errors.Is(err, os.ErrPermission)
}

// fallbackJournal opens the failure journal in the temporary directory
// when its place beside the database cannot be written: failures are
// still recorded, but those counted before this start are not restored
// and the journal does not survive a reboot. Said once, as an error.
func (d *Daemon) fallbackJournal(path string, cause error, replay func(failjournal.Record)) (*failjournal.Journal, error) {
	alt := filepath.Join(os.TempDir(), "palisade-"+filepath.Base(path))
	fj, err := failjournal.Open(alt, d.opts.Journal, d.journalPolicy(false), replay)
	if err != nil {
		return nil, errors.Join(cause, err)
	}
	d.log.Error("FAILURE JOURNAL NOT WRITABLE beside the database: failures counted before this start are not restored; recording in the temporary directory instead",
		"path", path, "err", cause, "instead", alt)
	return fj, nil
}
