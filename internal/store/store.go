// Package store is palisade's persistent state: a single bbolt database
// holding the active bans, the per-address offence history that ban-time
// escalation needs, the read positions of log files and the cursors of
// journal readers.
//
// The store is the source of truth after a crash: every ban is committed
// (fsync) before it is enforced, so a kill -9 never loses one. A database
// that cannot be read is moved aside (renamed to NAME.corrupt-TIMESTAMP) with
// a loud log message and an empty one takes its place: palisade never
// refuses to start because of its own database.
package store

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"runtime/debug"
	"sort"
	"strconv"
	"sync"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
	"golang.org/x/sys/unix"
)

// SchemaVersion is the layout version written to new databases. A database
// with another version is treated like a corrupt one (moved aside).
const SchemaVersion = 1

var (
	bucketMeta    = []byte("meta")
	bucketBans    = []byte("bans")
	bucketHistory = []byte("history")
	bucketLogPos  = []byte("logpos")
	bucketJournal = []byte("journal")
	keySchema     = []byte("schema")
)

// Options tune Open. The zero value is usable.
type Options struct {
	// Logger receives the corruption report; nil discards.
	Logger *slog.Logger
	// Now stamps the name of a moved-aside file; nil means time.Now.
	Now func() time.Time
	// LockTimeout bounds the wait for another process holding the
	// database (default 2s). A timeout is an error, not corruption.
	LockTimeout time.Duration
	// NoSync disables fsync on commit. Only for tests and benchmarks.
	NoSync bool

	readOnly bool
}

// Store is an open database. It is safe for concurrent use.
//
// A database that cannot be written (read-only file system, no space, a
// directory that cannot be created) does not stop palisade: Open then
// returns a Store that reads what it can (the file opened read-only, or
// nothing) and whose writes fail with an error wrapping ErrUnavailable.
// Each write, and Err, tries again to open the file for writing, at most
// once per second; the first success makes the store fully usable.
type Store struct {
	path    string
	opts    Options
	log     *slog.Logger
	movedTo string
	// openError is why the file was moved aside.
	openError error
	// created: the file did not exist before this Open.
	created bool

	mu sync.RWMutex // guards the fields below; held for reading during transactions
	db *bolt.DB     // nil when the file could not be opened at all
	// unavail is why writes cannot work (db nil or opened read-only).
	unavail  error
	readOnly bool
	lastTry  time.Time
}

// ErrUnavailable wraps every write refused because the database could not
// be opened for writing.
var ErrUnavailable = errors.New("database not writable")

// reopenEvery bounds how often a store that cannot be written tries to
// open its file again.
const reopenEvery = time.Second

// Open opens (or creates) the database at path. When the file exists but is
// not a readable palisade database, it is renamed to
// path+".corrupt-YYYYMMDDTHHMMSSZ", an error is logged and a fresh database
// is created; MovedAside reports the new name. When the file cannot be
// opened for writing because of its file system (read-only, full, quota,
// I/O error, permission), the Store is returned degraded (see Store) and
// Err reports why. Open fails only when another process holds the
// database, or when path cannot be a database (a directory, say).
func Open(path string, opts Options) (*Store, error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.LockTimeout <= 0 {
		opts.LockTimeout = 2 * time.Second
	}
	s := &Store{path: path, log: log, opts: opts}
	if _, err := os.Lstat(path); errors.Is(err, fs.ErrNotExist) {
		s.created = true
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		if !unavailable(err) {
			return nil, fmt.Errorf("store: create directory for %s: %w", path, err)
		}
		s.degrade(fmt.Errorf("create directory for %s: %w", path, err))
		return s, nil
	}
	db, cause := openChecked(path, opts)
	if cause != nil {
		var fatal *fatalError
		switch {
		case errors.As(cause, &fatal):
			return nil, fmt.Errorf("store: open %s: %w", path, fatal.err)
		case unavailable(cause):
			s.degrade(cause)
			return s, nil
		}
		aside := path + ".corrupt-" + opts.Now().UTC().Format("20060102T150405Z")
		if err := os.Rename(path, aside); err != nil {
			if unavailable(err) {
				s.degrade(fmt.Errorf("%s is unreadable (%v) and cannot be moved aside: %w", path, cause, err))
				return s, nil
			}
			return nil, fmt.Errorf("store: %s is unreadable (%v) and cannot be moved aside: %w", path, cause, err)
		}
		log.Error("DATABASE CORRUPT: moved aside, starting with an empty database; bans the firewall still holds are adopted",
			"path", path, "moved_to", aside, "cause", cause.Error())
		s.movedTo = aside
		s.openError = cause
		db, cause = openChecked(path, opts)
		if cause != nil {
			if unavailable(cause) {
				s.degrade(cause)
				return s, nil
			}
			return nil, fmt.Errorf("store: open fresh %s after moving the corrupt one aside: %w", path, cause)
		}
	}
	s.db = db
	return s, nil
}

// unavailable reports whether err comes from the file system refusing to
// store data (so the file must neither be moved aside nor stop palisade).
func unavailable(err error) bool {
	for _, e := range []error{syscall.EROFS, syscall.ENOSPC, syscall.EDQUOT, syscall.EIO, syscall.EACCES, syscall.EPERM, fs.ErrPermission} {
		if errors.Is(err, e) {
			return true
		}
	}
	return errors.Is(err, berrors.ErrDatabaseReadOnly)
}

// degrade puts a store that cannot be written into its fallback: the file
// opened read-only when that works, nothing otherwise (mu held or not yet
// shared).
func (s *Store) degrade(cause error) {
	s.unavail = cause
	s.lastTry = s.opts.Now()
	s.db, s.readOnly = nil, false
	if db, err := openReadOnly(s.path, s.opts); err == nil {
		s.db, s.readOnly = db, true
	}
	state := "nothing could be read from it"
	if s.readOnly {
		state = "its bans are read, changes are kept in memory"
	}
	s.log.Error("DATABASE NOT WRITABLE: palisade keeps running; "+state+" and written when it can be", "path", s.path, "err", cause.Error())
}

// openReadOnly opens an existing database for reading only.
func openReadOnly(path string, opts Options) (*bolt.DB, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, err
	}
	ro := opts
	ro.readOnly = true
	db, err := boltOpen(path, ro)
	if err != nil {
		return nil, err
	}
	if err := validateRead(db); err != nil {
		_ = db.Close()
		return nil, err
	}
	return db, nil
}

// Err returns nil when the database can be written, or why not. A store
// that could not be opened for writing tries again (at most once per
// second), so Err also tells when the file system has recovered.
func (s *Store) Err() error {
	return s.writable()
}

// writable makes sure the database is open for writing, reopening it if
// it was not and a retry is due.
func (s *Store) writable() error {
	s.mu.RLock()
	ok, cause := s.unavail == nil, s.unavail
	s.mu.RUnlock()
	if ok {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.unavail == nil {
		return nil
	}
	now := s.opts.Now()
	if now.Sub(s.lastTry) < reopenEvery {
		return fmt.Errorf("store: %w: %w", ErrUnavailable, cause)
	}
	s.lastTry = now
	if err := os.MkdirAll(filepath.Dir(s.path), 0o700); err != nil {
		s.unavail = fmt.Errorf("create directory for %s: %w", s.path, err)
		return fmt.Errorf("store: %w: %w", ErrUnavailable, s.unavail)
	}
	// Our own read-only handle holds a shared lock: release it first.
	if s.db != nil {
		_ = s.db.Close()
		s.db = nil
	}
	db, err := openChecked(s.path, s.opts)
	if err != nil {
		s.unavail = err
		if ro, rerr := openReadOnly(s.path, s.opts); rerr == nil {
			s.db, s.readOnly = ro, true
		}
		return fmt.Errorf("store: %w: %w", ErrUnavailable, err)
	}
	s.db, s.readOnly, s.unavail = db, false, nil
	s.log.Warn("database writable again", "path", s.path)
	return nil
}

// update runs fn in a write transaction.
func (s *Store) update(fn func(*bolt.Tx) error) error {
	if err := s.writable(); err != nil {
		return err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.db == nil || s.readOnly {
		return fmt.Errorf("%w: %w", ErrUnavailable, s.unavail)
	}
	return s.db.Update(fn)
}

// view runs fn in a read transaction; without a database (or without its
// buckets) there is nothing to read and fn is not called.
func (s *Store) view(fn func(*bolt.Tx) error) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.db == nil {
		return nil
	}
	return s.db.View(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketBans, bucketHistory, bucketLogPos, bucketJournal} {
			if tx.Bucket(b) == nil {
				return nil
			}
		}
		return fn(tx)
	})
}

// fatalError marks open failures that are not the file's fault (lock held,
// a path that cannot be a file): the file must not be moved aside for those.
type fatalError struct{ err error }

func (e *fatalError) Error() string { return e.err.Error() }

func openChecked(path string, opts Options) (db *bolt.DB, err error) {
	db, err = boltOpen(path, opts)
	if err != nil {
		if errors.Is(err, berrors.ErrTimeout) {
			return nil, &fatalError{fmt.Errorf("database is locked by another process: %w", err)}
		}
		if unavailable(err) {
			return nil, err
		}
		var pe *fs.PathError
		if errors.As(err, &pe) && pe.Op == "open" {
			return nil, &fatalError{err}
		}
		return nil, err
	}
	// Grow the file in small steps: with a large mmap reserved, bbolt
	// would otherwise pad the file by its 16 MiB default.
	db.AllocSize = 1 << 20
	if err := validate(db); err != nil {
		_ = db.Close()
		return nil, err
	}
	releaseMap(db)
	return db, nil
}

// releaseMap drops the database's pages from the process's memory map
// after a walk over all of them (the validation at open, EachBan at
// start-up). They stay in the kernel's page cache and are read again on
// demand, but no longer count in palisade's resident memory: after a
// storm of 300,000 bans that was 120 MB. A read transaction holds bbolt's
// mmap lock, so the map cannot move meanwhile.
func releaseMap(db *bolt.DB) {
	_ = db.View(func(tx *bolt.Tx) error {
		if size := tx.Size(); size > 0 {
			_, _, _ = unix.Syscall(unix.SYS_MADVISE, db.Info().Data, uintptr(size), unix.MADV_DONTNEED)
		}
		return nil
	})
}

// boltOpen opens the file, turning bbolt's panics on damaged pages (and
// memory faults on truncated files) into errors. If bbolt panics midway its
// file descriptor cannot be closed; that one-time leak is accepted.
func boltOpen(path string, opts Options) (db *bolt.DB, err error) {
	old := debug.SetPanicOnFault(true)
	defer debug.SetPanicOnFault(old)
	defer func() {
		if r := recover(); r != nil {
			db, err = nil, fmt.Errorf("database structure is damaged: %v", r)
		}
	}()
	return bolt.Open(path, 0o600, &bolt.Options{
		Timeout:      opts.LockTimeout,
		NoSync:       opts.NoSync,
		ReadOnly:     opts.readOnly,
		FreelistType: bolt.FreelistMapType,
		// Reserve address space up front so bulk writes do not remap
		// (and copy every dirty node) each time the file grows.
		InitialMmapSize: 64 << 20,
	})
}

// validate checks the schema and walks every page once. A truncated file
// maps fewer pages than the tree references; faults while reading it are
// turned into panics (SetPanicOnFault) and recovered into an error.
func validate(db *bolt.DB) error {
	if err := validateRead(db); err != nil {
		return err
	}
	return db.Update(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketMeta) == nil {
			m, err := tx.CreateBucket(bucketMeta)
			if err != nil {
				return err
			}
			if err := m.Put(keySchema, []byte(strconv.Itoa(SchemaVersion))); err != nil {
				return err
			}
		}
		for _, b := range [][]byte{bucketBans, bucketHistory, bucketLogPos, bucketJournal} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
}

// validateRead is the reading half of validate.
func validateRead(db *bolt.DB) (err error) {
	old := debug.SetPanicOnFault(true)
	defer debug.SetPanicOnFault(old)
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("database structure is damaged: %v", r)
		}
	}()
	// Read everything before writing anything: a write grows the file,
	// which would hide a truncation behind zero-filled pages.
	err = db.View(func(tx *bolt.Tx) error {
		if err := tx.ForEach(func(_ []byte, b *bolt.Bucket) error {
			return walk(b, 0)
		}); err != nil {
			return err
		}
		meta := tx.Bucket(bucketMeta)
		if meta == nil {
			if tx.Bucket(bucketBans) != nil {
				return errors.New("meta bucket missing")
			}
			return nil
		}
		if v := string(meta.Get(keySchema)); v != strconv.Itoa(SchemaVersion) {
			return fmt.Errorf("schema version %q, want %d", v, SchemaVersion)
		}
		return nil
	})
	return err
}

// walk visits every key of b and its sub-buckets, touching every page.
func walk(b *bolt.Bucket, depth int) error {
	if depth > 4 {
		return errors.New("buckets nested too deep")
	}
	c := b.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if v == nil {
			nb := b.Bucket(k)
			if nb == nil {
				return fmt.Errorf("key %q has no value and is no bucket", k)
			}
			if err := walk(nb, depth+1); err != nil {
				return err
			}
		}
	}
	return nil
}

// Close closes the database.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.db == nil {
		return nil
	}
	db := s.db
	s.db = nil
	if err := db.Close(); err != nil {
		return fmt.Errorf("store: close %s: %w", s.path, err)
	}
	return nil
}

// Path is the database file.
func (s *Store) Path() string { return s.path }

// Lost says why the database may not hold every ban palisade made: the
// file was corrupt and moved aside, or it did not exist when Open ran.
// It is "" when the database opened as it was. The ban manager then
// adopts the bans palisade's own firewall sets still hold.
func (s *Store) Lost() string {
	switch {
	case s.movedTo != "":
		return fmt.Sprintf("the database was unreadable (%v) and was moved to %s", s.openError, s.movedTo)
	case s.created:
		return "the database " + s.path + " did not exist"
	}
	return ""
}

// MovedAside returns where a corrupt database was moved by Open and why, or
// "" and nil when the database opened cleanly.
func (s *Store) MovedAside() (string, error) { return s.movedTo, s.openError }

// ---- bans ----

// Ban is one stored ban.
type Ban struct {
	Jail   string
	Prefix netip.Prefix
	// Start is when the ban was applied.
	Start time.Time
	// Expires is when the ban ends; zero means permanent.
	Expires time.Time
	// Offence is the ban's number for this address (1 = first ban), as
	// counted by the offence history when the ban was added.
	Offence int
	// Reason is free text for `explain` (the jail's rule, "manual", ...).
	Reason string
}

// Permanent reports whether the ban never expires.
func (b Ban) Permanent() bool { return b.Expires.IsZero() }

// prefixKey is family(1) | address(16) | bits(1): sorts by family then address.
func prefixKey(p netip.Prefix) []byte {
	var k [18]byte
	if p.Addr().Is4() {
		k[0] = 4
	} else {
		k[0] = 6
	}
	a := p.Addr().As16()
	copy(k[1:17], a[:])
	k[17] = byte(p.Bits())
	return k[:]
}

func parsePrefixKey(k []byte) (netip.Prefix, error) {
	if len(k) < 18 {
		return netip.Prefix{}, fmt.Errorf("bad prefix key length %d", len(k))
	}
	a := netip.AddrFrom16([16]byte(k[1:17]))
	switch k[0] {
	case 4:
		if !a.Is4In6() {
			return netip.Prefix{}, errors.New("IPv4 key holds an IPv6 address")
		}
		a = a.Unmap()
	case 6:
	default:
		return netip.Prefix{}, fmt.Errorf("bad family %d", k[0])
	}
	p := netip.PrefixFrom(a, int(k[17]))
	if !p.IsValid() {
		return netip.Prefix{}, fmt.Errorf("bad prefix length %d for %s", k[17], a)
	}
	return p, nil
}

func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromUnixNano(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
}

// ban value: start(8) | expires(8) | offence(4) | reason
func encodeBan(b Ban) []byte {
	v := make([]byte, 20+len(b.Reason))
	binary.BigEndian.PutUint64(v[0:], uint64(unixNano(b.Start)))
	binary.BigEndian.PutUint64(v[8:], uint64(unixNano(b.Expires)))
	binary.BigEndian.PutUint32(v[16:], uint32(b.Offence))
	copy(v[20:], b.Reason)
	return v
}

func decodeBan(jail string, k, v []byte) (Ban, error) {
	p, err := parsePrefixKey(k)
	if err != nil {
		return Ban{}, err
	}
	if len(v) < 20 {
		return Ban{}, fmt.Errorf("bad ban value length %d", len(v))
	}
	return Ban{
		Jail:    jail,
		Prefix:  p,
		Start:   fromUnixNano(int64(binary.BigEndian.Uint64(v[0:]))),
		Expires: fromUnixNano(int64(binary.BigEndian.Uint64(v[8:]))),
		Offence: int(binary.BigEndian.Uint32(v[16:])),
		Reason:  string(v[20:]),
	}, nil
}

// history key: prefixKey | jail ; value: count(4) | lastBan(8) | lastDuration(8, <0 permanent)
func historyKey(p netip.Prefix, jail string) []byte {
	return append(prefixKey(p), jail...)
}

func checkBan(b Ban) error {
	if b.Jail == "" {
		return errors.New("ban without a jail")
	}
	if !b.Prefix.IsValid() {
		return fmt.Errorf("ban in jail %s: invalid prefix", b.Jail)
	}
	return nil
}

// AddBans stores new bans in one transaction and counts each as an offence
// in the history: bans[i].Offence is set to the address's new ban count in
// that jail. An existing ban for the same jail and prefix is replaced.
func (s *Store) AddBans(bans []Ban) error {
	return s.putBans(bans, true)
}

// UpdateBans stores bans in one transaction without touching the offence
// history (used to refresh an existing ban's expiry).
func (s *Store) UpdateBans(bans []Ban) error {
	return s.putBans(bans, false)
}

func (s *Store) putBans(bans []Ban, record bool) error {
	for _, b := range bans {
		if err := checkBan(b); err != nil {
			return fmt.Errorf("store: %w", err)
		}
	}
	err := s.update(func(tx *bolt.Tx) error {
		root := tx.Bucket(bucketBans)
		hist := tx.Bucket(bucketHistory)
		var jb *bolt.Bucket
		jname := ""
		for i := range bans {
			b := &bans[i]
			if jb == nil || b.Jail != jname {
				var err error
				if jb, err = root.CreateBucketIfNotExists([]byte(b.Jail)); err != nil {
					return err
				}
				jname = b.Jail
			}
			b.Prefix = b.Prefix.Masked()
			if record {
				hk := historyKey(b.Prefix, b.Jail)
				o := decodeOffences(hist.Get(hk))
				o.Count++
				o.LastBan = b.Start
				o.LastDuration = -1
				if !b.Expires.IsZero() {
					o.LastDuration = b.Expires.Sub(b.Start)
				}
				b.Offence = o.Count
				if err := hist.Put(hk, encodeOffences(o)); err != nil {
					return err
				}
			}
			if err := jb.Put(prefixKey(b.Prefix), encodeBan(*b)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: add %d bans: %w", len(bans), err)
	}
	return nil
}

// BanKey names one ban.
type BanKey struct {
	Jail   string
	Prefix netip.Prefix
}

// DeleteBans removes bans in one transaction; missing ones are ignored.
// The offence history is kept.
func (s *Store) DeleteBans(keys []BanKey) error {
	err := s.update(func(tx *bolt.Tx) error {
		root := tx.Bucket(bucketBans)
		for _, k := range keys {
			jb := root.Bucket([]byte(k.Jail))
			if jb == nil || !k.Prefix.IsValid() {
				continue
			}
			if err := jb.Delete(prefixKey(k.Prefix.Masked())); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: delete %d bans: %w", len(keys), err)
	}
	return nil
}

// Bans returns every stored ban, ordered by jail then prefix. Undecodable
// records are skipped and counted in the second result.
func (s *Store) Bans() ([]Ban, int, error) {
	var out []Ban
	bad, err := s.EachBan(func(b Ban) error {
		out = append(out, b)
		return nil
	})
	return out, bad, err
}

// EachBan calls fn for every stored ban, ordered by jail then prefix,
// without building a list (start-up restores hundreds of thousands). The
// bans of one jail share one Jail string. Undecodable records are skipped
// and counted in the first result; an error from fn stops the walk and is
// returned.
func (s *Store) EachBan(fn func(Ban) error) (int, error) {
	bad := 0
	err := s.view(func(tx *bolt.Tx) error {
		root := tx.Bucket(bucketBans)
		return root.ForEachBucket(func(name []byte) error {
			jb := root.Bucket(name)
			jail := string(name)
			return jb.ForEach(func(k, v []byte) error {
				b, err := decodeBan(jail, k, v)
				if err != nil {
					bad++
					return nil
				}
				return fn(b)
			})
		})
	})
	if err != nil {
		return bad, fmt.Errorf("store: read bans: %w", err)
	}
	s.mu.RLock()
	if s.db != nil {
		releaseMap(s.db)
	}
	s.mu.RUnlock()
	return bad, nil
}

// CountBans returns the number of stored bans.
func (s *Store) CountBans() (int, error) {
	n := 0
	err := s.view(func(tx *bolt.Tx) error {
		root := tx.Bucket(bucketBans)
		return root.ForEachBucket(func(name []byte) error {
			n += root.Bucket(name).Stats().KeyN
			return nil
		})
	})
	if err != nil {
		return 0, fmt.Errorf("store: count bans: %w", err)
	}
	return n, nil
}

// ---- offence history ----

// Offences is an address's ban history.
type Offences struct {
	// Count is how many times the address was banned.
	Count int
	// LastBan is when the latest ban started.
	LastBan time.Time
	// LastDuration is the latest ban's length; negative means permanent.
	LastDuration time.Duration
}

func encodeOffences(o Offences) []byte {
	v := make([]byte, 20)
	binary.BigEndian.PutUint32(v[0:], uint32(o.Count))
	binary.BigEndian.PutUint64(v[4:], uint64(unixNano(o.LastBan)))
	binary.BigEndian.PutUint64(v[12:], uint64(int64(o.LastDuration)))
	return v
}

func decodeOffences(v []byte) Offences {
	if len(v) < 20 {
		return Offences{}
	}
	return Offences{
		Count:        int(binary.BigEndian.Uint32(v[0:])),
		LastBan:      fromUnixNano(int64(binary.BigEndian.Uint64(v[4:]))),
		LastDuration: time.Duration(int64(binary.BigEndian.Uint64(v[12:]))),
	}
}

// Offences returns the ban history of prefix in jail, or, with overall set,
// across every jail (counts summed, the latest ban's time and length), as
// fail2ban's bantime.overalljails does.
func (s *Store) Offences(jail string, p netip.Prefix, overall bool) (Offences, error) {
	var o Offences
	p = p.Masked()
	err := s.view(func(tx *bolt.Tx) error {
		hist := tx.Bucket(bucketHistory)
		if !overall {
			o = decodeOffences(hist.Get(historyKey(p, jail)))
			return nil
		}
		pk := prefixKey(p)
		c := hist.Cursor()
		for k, v := c.Seek(pk); k != nil && bytes.HasPrefix(k, pk); k, v = c.Next() {
			x := decodeOffences(v)
			o.Count += x.Count
			if x.LastBan.After(o.LastBan) {
				o.LastBan = x.LastBan
				o.LastDuration = x.LastDuration
			}
		}
		return nil
	})
	if err != nil {
		return Offences{}, fmt.Errorf("store: offences of %s: %w", p, err)
	}
	return o, nil
}

// PruneHistory forgets offences whose latest ban started before
// now-maxAge and ended long ago (start + 3 × length before now-maxAge), as
// fail2ban's database purge does. Permanent bans are never forgotten. It
// returns how many records were removed.
func (s *Store) PruneHistory(now time.Time, maxAge time.Duration) (int, error) {
	const outdatedFactor = 3
	limit := now.Add(-maxAge)
	n := 0
	err := s.update(func(tx *bolt.Tx) error {
		hist := tx.Bucket(bucketHistory)
		c := hist.Cursor()
		for k, v := c.First(); k != nil; {
			o := decodeOffences(v)
			if o.LastDuration >= 0 && o.LastBan.Before(limit) &&
				o.LastBan.Add(outdatedFactor*o.LastDuration).Before(limit) {
				if err := c.Delete(); err != nil {
					return err
				}
				n++
				k, v = c.Seek(k)
				continue
			}
			k, v = c.Next()
		}
		return nil
	})
	if err != nil {
		return n, fmt.Errorf("store: prune history: %w", err)
	}
	return n, nil
}

// ---- log positions and journal cursors ----

// LogPosition is where a reader stopped in a log file, and how to recognise
// the same file again after a restart or rotation.
type LogPosition struct {
	Device uint64 `json:"dev"`
	Inode  uint64 `json:"ino"`
	Offset int64  `json:"off"`
	// FirstLineHash identifies the file's content (hash of its first line).
	FirstLineHash []byte `json:"hash,omitempty"`
}

// SetLogPositions stores positions keyed by path in one transaction.
func (s *Store) SetLogPositions(pos map[string]LogPosition) error {
	keys := make([]string, 0, len(pos))
	for k := range pos {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	err := s.update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketLogPos)
		for _, k := range keys {
			v, err := json.Marshal(pos[k])
			if err != nil {
				return err
			}
			if err := b.Put([]byte(k), v); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: save %d log positions: %w", len(pos), err)
	}
	return nil
}

// LogPosition returns the stored position of path.
func (s *Store) LogPosition(path string) (LogPosition, bool, error) {
	var pos LogPosition
	found := false
	err := s.view(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketLogPos).Get([]byte(path))
		if v == nil {
			return nil
		}
		found = true
		return json.Unmarshal(v, &pos)
	})
	if err != nil {
		return LogPosition{}, false, fmt.Errorf("store: log position of %s: %w", path, err)
	}
	return pos, found, nil
}

// DeleteLogPosition forgets path.
func (s *Store) DeleteLogPosition(path string) error {
	err := s.update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketLogPos).Delete([]byte(path))
	})
	if err != nil {
		return fmt.Errorf("store: delete log position of %s: %w", path, err)
	}
	return nil
}

// SetJournalCursor stores a journal cursor under key (the jail and its
// journal match, e.g. "sshd/_SYSTEMD_UNIT=sshd.service").
func (s *Store) SetJournalCursor(key, cursor string) error {
	err := s.update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketJournal).Put([]byte(key), []byte(cursor))
	})
	if err != nil {
		return fmt.Errorf("store: save journal cursor %s: %w", key, err)
	}
	return nil
}

// JournalCursor returns the cursor stored under key.
func (s *Store) JournalCursor(key string) (string, bool, error) {
	var cur string
	found := false
	err := s.view(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketJournal).Get([]byte(key)); v != nil {
			cur, found = string(v), true
		}
		return nil
	})
	if err != nil {
		return "", false, fmt.Errorf("store: journal cursor %s: %w", key, err)
	}
	return cur, found, nil
}
