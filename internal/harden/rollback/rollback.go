// Package rollback keeps risky configuration changes from locking the
// admin out. Before a change, Begin saves a copy of every file it will
// touch and records a transaction (state.json) with a deadline; a detached
// watcher process restores the copies when the deadline passes without a
// confirmation. The state lives in /var/lib/palisade/harden (root-prefixed):
//
//	state.json         the last transaction
//	lock               flock(2) serialising harden, confirm and rollback
//	backups/ID/N       the saved copy of the transaction's N-th file
//	watcher.log        output of the watcher process
package rollback

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/palisade-project/palisade/internal/harden/fsx"
)

// DefaultDir is the state directory (root-prefixed by callers).
const DefaultDir = "/var/lib/palisade/harden"

// keepBackups is how many transactions' backups are kept.
const keepBackups = 10

// File is one file a transaction changes.
type File struct {
	Path    string `json:"path"`
	Existed bool   `json:"existed"`
	Mode    uint32 `json:"mode,omitempty"`
	Backup  string `json:"backup,omitempty"` // the saved copy; "" when the file did not exist
	// Link is the target of Path when Path is a symbolic link (as written
	// in the link); the saved copy is of the file it names, and Restore
	// puts the link back as it was.
	Link string `json:"link,omitempty"`
	// NewDir is the outermost directory of a new file's path that did not
	// exist either; Restore removes it again when it is empty.
	NewDir string `json:"new_dir,omitempty"`
}

// PortOp is a firewall opening made or planned by a transaction.
type PortOp struct {
	Port  int    `json:"port"`
	Proto string `json:"proto"`
	Via   string `json:"via"` // "nftables", "ufw" or "none"
}

// State is a transaction.
type State struct {
	ID       string    `json:"id"`
	Kind     string    `json:"kind"` // "ssh", "ftp"
	Created  time.Time `json:"created"`
	Deadline time.Time `json:"deadline"`
	// Root is the --root the change was made under.
	Root  string `json:"root,omitempty"`
	Files []File `json:"files"`
	// Opened are ports opened for the change (closed again on rollback);
	// CloseOnConfirm are the old ports closed once the change is confirmed.
	Opened         []PortOp `json:"opened,omitempty"`
	CloseOnConfirm []PortOp `json:"close_on_confirm,omitempty"`
	// Reload names how the service is reloaded after a restore.
	Reload     string `json:"reload,omitempty"`
	Confirmed  bool   `json:"confirmed"`
	RolledBack bool   `json:"rolled_back"`
	WatcherPID int    `json:"watcher_pid,omitempty"`
}

// Pending reports whether the transaction awaits confirmation.
func (s *State) Pending() bool { return !s.Confirmed && !s.RolledBack }

// Store is the state directory.
type Store struct {
	Dir string
}

// New returns the store under root.
func New(root string) *Store { return &Store{Dir: fsx.Path(root, DefaultDir)} }

// StatePath is the state file.
func (s *Store) StatePath() string { return filepath.Join(s.Dir, "state.json") }

// LogPath is the watcher's log file.
func (s *Store) LogPath() string { return filepath.Join(s.Dir, "watcher.log") }

// Lock takes the store's exclusive lock, waiting at most until ctx ends.
func (s *Store) Lock(ctx context.Context) (func(), error) {
	if err := os.MkdirAll(s.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("state directory: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(s.Dir, "lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock: %w", err)
	}
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return func() { _ = unix.Flock(int(f.Fd()), unix.LOCK_UN); f.Close() }, nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("lock: %w", err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", s.Dir, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Load reads the last transaction; (nil, nil) when there is none.
func (s *Store) Load() (*State, error) {
	data, err := fsx.ReadFile(s.StatePath())
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read state: %w", err)
	}
	var st State
	if err := json.Unmarshal(data, &st); err != nil {
		return nil, fmt.Errorf("read state %s: %w", s.StatePath(), err)
	}
	return &st, nil
}

// Save writes st as the last transaction.
func (s *Store) Save(st *State) error {
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	return fsx.WriteAtomic(s.StatePath(), append(data, '\n'), 0o600)
}

// Begin saves a copy of each path (full paths) and returns a new, unsaved
// transaction. Nothing outside the state directory is touched.
func (s *Store) Begin(kind, root string, paths []string, within time.Duration, now time.Time) (*State, error) {
	var rnd [6]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return nil, err
	}
	st := &State{ID: now.UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(rnd[:]), Kind: kind, Root: root, Created: now, Deadline: now.Add(within)}
	dir := filepath.Join(s.Dir, "backups", st.ID)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("backup directory: %w", err)
	}
	for i, p := range paths {
		f := File{Path: p}
		if fi, err := os.Lstat(p); err == nil && fi.Mode()&os.ModeSymlink != 0 {
			if f.Link, err = os.Readlink(p); err != nil {
				return nil, fmt.Errorf("backup %s: %w", p, err)
			}
		}
		real, err := fsx.Resolve(root, p)
		if err != nil {
			return nil, fmt.Errorf("backup %s: %w", p, err)
		}
		fi, err := os.Stat(real)
		switch {
		case errors.Is(err, os.ErrNotExist):
			for d := filepath.Dir(real); d != filepath.Dir(d); d = filepath.Dir(d) {
				if _, err := os.Lstat(d); err == nil {
					break
				}
				f.NewDir = d
			}
		case err != nil:
			return nil, fmt.Errorf("backup %s: %w", p, err)
		default:
			data, err := fsx.ReadFile(real)
			if err != nil {
				return nil, fmt.Errorf("backup %s: %w", p, err)
			}
			f.Existed, f.Mode = true, uint32(fi.Mode().Perm())
			f.Backup = filepath.Join(dir, strconv.Itoa(i))
			if err := fsx.WriteAtomic(f.Backup, data, 0o600); err != nil {
				return nil, fmt.Errorf("backup %s: %w", p, err)
			}
		}
		st.Files = append(st.Files, f)
	}
	s.prune(st.ID)
	return st, nil
}

// prune removes the backups of all but the newest transactions.
func (s *Store) prune(keep string) {
	ents, err := os.ReadDir(filepath.Join(s.Dir, "backups"))
	if err != nil {
		return
	}
	var ids []string
	for _, e := range ents {
		if e.IsDir() && e.Name() != keep {
			ids = append(ids, e.Name())
		}
	}
	slices.Sort(ids)
	for len(ids) > keepBackups-1 {
		os.RemoveAll(filepath.Join(s.Dir, "backups", ids[0]))
		ids = ids[1:]
	}
}

// Discard removes a transaction's backups (for a change that was never made).
func (s *Store) Discard(st *State) {
	os.RemoveAll(filepath.Join(s.Dir, "backups", st.ID))
}

// Restore puts every file of st back as it was: saved copies are written
// back with their mode (through a symbolic link that was one, which is
// put back first if it was replaced), files that did not exist are
// removed.
func Restore(st *State) error {
	var errs []error
	for _, f := range st.Files {
		if f.Link != "" {
			if cur, err := os.Readlink(f.Path); err != nil || cur != f.Link {
				if err := fsx.Symlink(f.Link, f.Path); err != nil {
					errs = append(errs, fmt.Errorf("restore %s: %w", f.Path, err))
					continue
				}
			}
		}
		real, err := fsx.Resolve(st.Root, f.Path)
		if err != nil {
			errs = append(errs, fmt.Errorf("restore %s: %w", f.Path, err))
			continue
		}
		if !f.Existed {
			if err := os.Remove(real); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, err)
			}
			if f.NewDir != "" {
				// Remove the directories made for the file, innermost
				// first, as long as they are empty.
				for d := filepath.Dir(real); d == f.NewDir || strings.HasPrefix(d, f.NewDir+"/"); d = filepath.Dir(d) {
					if os.Remove(d) != nil {
						break
					}
				}
			}
			continue
		}
		data, err := fsx.ReadFile(f.Backup)
		if err != nil {
			errs = append(errs, fmt.Errorf("restore %s: %w", f.Path, err))
			continue
		}
		if err := fsx.WriteAtomic(real, data, os.FileMode(f.Mode)); err != nil {
			errs = append(errs, err)
			continue
		}
		_ = os.Chmod(real, os.FileMode(f.Mode))
	}
	return errors.Join(errs...)
}

// WaitUnconfirmed blocks until the transaction id is confirmed, replaced
// by another, or rolled back (false), or its deadline passes while it is
// still pending (true). It polls the state file every interval.
func (s *Store) WaitUnconfirmed(ctx context.Context, id string, interval time.Duration, now func() time.Time) (bool, error) {
	for {
		st, err := s.Load()
		if err != nil {
			return false, err
		}
		if st == nil || st.ID != id || !st.Pending() {
			return false, nil
		}
		left := st.Deadline.Sub(now())
		if left <= 0 {
			return true, nil
		}
		select {
		case <-ctx.Done():
			return false, ctx.Err()
		case <-time.After(min(left, interval)):
		}
	}
}

// StopWatcher ends the watcher process of st, if it is still running and
// still is a palisade rollback watcher for this state file.
func (s *Store) StopWatcher(st *State) {
	if st.WatcherPID <= 0 {
		return
	}
	cmdline, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(st.WatcherPID), "cmdline"))
	if err != nil || !strings.Contains(string(cmdline), "--if-unconfirmed") || !strings.Contains(string(cmdline), s.StatePath()) {
		return
	}
	_ = syscall.Kill(st.WatcherPID, syscall.SIGTERM)
}
