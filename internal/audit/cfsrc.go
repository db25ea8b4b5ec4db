package audit

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/palisade-project/palisade/internal/cloudflare"
	"github.com/palisade-project/palisade/internal/config"
	"github.com/palisade-project/palisade/internal/firewall"
)

// CloudflareReader reports the Cloudflare lock without a daemon.
type CloudflareReader interface {
	// Status reads the lock's state for the configuration cfg; rs is the
	// kernel's ruleset (nil when unreadable).
	Status(ctx context.Context, cfg *config.Config, rs *Ruleset) (*cloudflare.Status, error)
}

// CloudflareOffline reads the lock's saved state from palisade's database,
// opened read-only (so it works only while no daemon holds the database),
// and the kernel's side from the ruleset; it is the status "palisade
// cloudflare status" prints without a daemon, and it writes nothing.
type CloudflareOffline struct {
	// DBPath is the database (the configuration's dbfile under the root).
	DBPath string
}

// Status implements CloudflareReader.
func (c CloudflareOffline) Status(ctx context.Context, cfg *config.Config, rs *Ruleset) (*cloudflare.Status, error) {
	recs := noRecords{}
	var store cloudflare.Store = recs
	if _, err := os.Stat(c.DBPath); err == nil {
		db, err := bolt.Open(c.DBPath, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
		switch {
		case errors.Is(err, fs.ErrPermission):
			return nil, fmt.Errorf("%s: %w", c.DBPath, ErrNotReadable)
		case err != nil:
			return nil, fmt.Errorf("open %s read-only: %w", c.DBPath, err)
		}
		defer db.Close()
		store = boltRecords{db: db}
	}
	lock := rulesetLock{rs: rs}
	sc := cfg.Daemon.Cloudflare
	m, err := cloudflare.New(cloudflare.Config{Enabled: sc.Enabled, Ports: sc.Ports, URL: sc.URL, Interval: sc.Interval, Allow: sc.Allow, Block: sc.BlockType},
		cloudflare.Deps{Lock: lock, Store: store})
	if err != nil {
		return nil, err
	}
	st := m.Status(ctx)
	return &st, nil
}

// errReadOnly refuses every change: the audit never writes.
var errReadOnly = errors.New("the audit is read-only")

// recordsBucket is the store's bucket of record spaces (internal/store,
// records.go): one nested bucket per space.
const recordsBucket = "records"

// boltRecords reads record spaces from a read-only database.
type boltRecords struct{ db *bolt.DB }

func (b boltRecords) Record(space, key string) ([]byte, bool, error) {
	var out []byte
	err := b.db.View(func(tx *bolt.Tx) error {
		root := tx.Bucket([]byte(recordsBucket))
		if root == nil {
			return nil
		}
		sp := root.Bucket([]byte(space))
		if sp == nil {
			return nil
		}
		if v := sp.Get([]byte(key)); v != nil {
			out = append([]byte(nil), v...)
		}
		return nil
	})
	return out, out != nil, err
}

func (boltRecords) PutRecords(string, map[string][]byte, []string) error { return errReadOnly }

// noRecords is an empty store (no database yet).
type noRecords struct{}

func (noRecords) Record(string, string) ([]byte, bool, error)          { return nil, false, nil }
func (noRecords) PutRecords(string, map[string][]byte, []string) error { return errReadOnly }

// rulesetLock is the lock as the ruleset shows it.
type rulesetLock struct{ rs *Ruleset }

func (l rulesetLock) State(context.Context) (firewall.LockState, error) {
	if l.rs == nil {
		return firewall.LockState{}, errors.New("the kernel's ruleset is not readable")
	}
	return l.rs.CloudflareLock(), nil
}

func (rulesetLock) Apply(context.Context, firewall.LockSpec) error { return errReadOnly }
func (rulesetLock) Remove(context.Context) error                   { return errReadOnly }
