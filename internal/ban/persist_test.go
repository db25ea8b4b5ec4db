package ban

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/palisade-project/palisade/internal/firewall"
	"github.com/palisade-project/palisade/internal/store"
	"github.com/palisade-project/palisade/internal/store/storetest"
)

// faultStore is a store whose writes fail on demand (a full or read-only
// disk) and which counts the writes attempted.
type faultStore struct {
	*store.Store
	mu     sync.Mutex
	err    error
	writes int
}

func (f *faultStore) setErr(err error) {
	f.mu.Lock()
	f.err = err
	f.mu.Unlock()
}

func (f *faultStore) attempt() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.writes++
	return f.err
}

func (f *faultStore) attempts() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.writes
}

func (f *faultStore) AddBans(b []store.Ban) error {
	if err := f.attempt(); err != nil {
		return err
	}
	return f.Store.AddBans(b)
}

func (f *faultStore) UpdateBans(b []store.Ban) error {
	if err := f.attempt(); err != nil {
		return err
	}
	return f.Store.UpdateBans(b)
}

func (f *faultStore) DeleteBans(k []store.BanKey) error {
	if err := f.attempt(); err != nil {
		return err
	}
	return f.Store.DeleteBans(k)
}

func newFaultStore(t *testing.T) *faultStore {
	t.Helper()
	st, err := store.Open(filepath.Join(t.TempDir(), "p.db"), store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return &faultStore{Store: st}
}

var errDiskFull = errors.New("write p.db: no space left on device")

// TestStoreFailure: with a database that cannot be written, banning goes
// on from memory, bans still end on time, status can tell, no write is
// attempted before the retry is due, and the first retry that works
// writes everything.
func TestStoreFailure(t *testing.T) {
	fs := newFaultStore(t)
	fw := firewall.NewFake()
	now := &clock{t: t0}
	m, err := New(Config{RetryDelay: time.Second, MaxRetryDelay: 4 * time.Second}, Deps{Store: fs, Backend: fw, Now: now.Now})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := m.Ban(ctx, "sshd", pfx("192.0.2.9"), time.Hour, "before"); err != nil {
		t.Fatal(err)
	}
	fs.setErr(errDiskFull)

	e, err := m.Ban(ctx, "sshd", pfx("192.0.2.1"), time.Hour, "4 failures")
	if err != nil {
		t.Fatalf("a full disk stopped a ban: %v", err)
	}
	if !e.Unsaved || !e.Enforced || e.Offence != 1 {
		t.Fatalf("entry %+v: want enforced, unsaved, offence 1 (from the history)", e)
	}
	if got := fwPrefixes(t, fw); !slices.Contains(got, "sshd 192.0.2.1/32") {
		t.Fatalf("not enforced: %v", got)
	}
	h := m.Health()
	if h.OK || !strings.Contains(h.Error, "no space left") || h.Unsaved != 1 || !h.Since.Equal(t0) || !h.NextRetry.Equal(t0.Add(time.Second)) {
		t.Fatalf("health %+v", h)
	}
	// Until the retry is due, bans do not touch the failing store.
	writes := fs.attempts()
	if _, err := m.Ban(ctx, "sshd", pfx("192.0.2.2"), -1, ""); err != nil {
		t.Fatal(err)
	}
	if fs.attempts() != writes {
		t.Fatalf("store written %d times before the retry was due", fs.attempts()-writes)
	}
	// Bans end on time although the store cannot delete them.
	now.Add(time.Hour)
	if n, err := m.ExpireDue(ctx); n != 2 || err != nil {
		t.Fatalf("ExpireDue = %d, %v; want both timed bans lifted", n, err)
	}
	if got := fwPrefixes(t, fw); !slices.Equal(got, []string{"sshd 192.0.2.2/32"}) {
		t.Fatalf("firewall after expiry %v", got)
	}
	// The expiry was past the retry time, so it tried the store (and
	// failed): the next retry waits twice as long, then 4s at most.
	if h := m.Health(); h.PendingDeletes != 2 || h.Unsaved != 1 || h.PendingOffences != 1 || !h.NextRetry.Equal(now.Now().Add(2*time.Second)) {
		t.Fatalf("health after expiry %+v", h)
	}
	for _, want := range []time.Duration{4 * time.Second, 4 * time.Second} {
		if err := m.Flush(ctx); err == nil {
			t.Fatal("Flush succeeded on a failing store")
		}
		if h := m.Health(); !h.NextRetry.Equal(now.Now().Add(want)) {
			t.Fatalf("next retry in %v, want %v", h.NextRetry.Sub(now.Now()), want)
		}
	}
	// Writable again: one flush writes everything.
	fs.setErr(nil)
	if err := m.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if h := m.Health(); !h.OK || h.Unsaved != 0 || h.PendingDeletes != 0 || h.Error != "" {
		t.Fatalf("health after recovery %+v", h)
	}
	if got := storedPrefixes(t, fs.Store); !slices.Equal(got, []string{"sshd 192.0.2.2/32"}) {
		t.Fatalf("store after recovery %v, want only the active permanent ban", got)
	}
	if l := m.List(""); len(l) != 1 || l[0].Unsaved || l[0].Offence != 1 {
		t.Fatalf("list after recovery %+v", l)
	}
	if n, _, _ := m.Offences("sshd", pfx("192.0.2.1"), false); n != 1 {
		t.Fatalf("offence of the ban made while the disk was full: %d, want 1", n)
	}
}

// TestStoreRecoversInRun: Run retries on its own, and a later successful
// write carries the backlog.
func TestStoreRecoversInRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fs := newFaultStore(t)
		fw := firewall.NewFake()
		m, err := New(Config{ReconcileInterval: -1, RetryDelay: time.Second, MaxRetryDelay: 30 * time.Second},
			Deps{Store: fs, Backend: fw})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { done <- m.Run(ctx) }()
		fs.setErr(errDiskFull)
		for _, ip := range []string{"192.0.2.1", "192.0.2.2", "192.0.2.3"} {
			if _, err := m.Ban(ctx, "sshd", pfx(ip), 24*time.Hour, ""); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := m.Unban(ctx, "sshd", pfx("192.0.2.3")); err != nil {
			t.Fatalf("unban with a full disk: %v", err)
		}
		time.Sleep(10 * time.Second)
		synctest.Wait()
		if h := m.Health(); h.OK || h.Retries < 2 {
			t.Fatalf("health while failing: %+v", h)
		}
		fs.setErr(nil)
		time.Sleep(time.Minute)
		synctest.Wait()
		if h := m.Health(); !h.OK || h.Unsaved != 0 || h.PendingDeletes != 0 {
			t.Fatalf("not recovered by Run: %+v", h)
		}
		if got := storedPrefixes(t, fs.Store); !slices.Equal(got, []string{"sshd 192.0.2.1/32", "sshd 192.0.2.2/32"}) {
			t.Fatalf("store %v", got)
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	})
}

// TestStoreUnavailableAtStart: a store that reports itself unwritable
// from the start shows in Health before any ban.
func TestStoreUnavailableAtStart(t *testing.T) {
	fs := &errStore{faultStore: newFaultStore(t), openErr: errors.New("read-only file system")}
	m, err := New(Config{}, Deps{Store: fs, Backend: firewall.NewFake(), Now: (&clock{t: t0}).Now})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Restore(context.Background()); err != nil {
		t.Fatal(err)
	}
	if h := m.Health(); h.OK || !strings.Contains(h.Error, "read-only") {
		t.Fatalf("health %+v", h)
	}
	fs.openErr = nil
	if err := m.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if h := m.Health(); !h.OK {
		t.Fatalf("health after the store recovered %+v", h)
	}
}

// errStore reports a write problem through Err, as *store.Store does
// when it could only be opened read-only.
type errStore struct {
	*faultStore
	openErr error
}

func (e *errStore) Err() error { return e.openErr }

// TestFullDiskRealStore: the manager over a real database on a file
// system that fills up: banning goes on, and once there is room again one
// flush persists every ban made meanwhile.
func TestFullDiskRealStore(t *testing.T) {
	dir := storetest.TmpFS(t, 1<<20)
	st, err := store.Open(filepath.Join(dir, "palisade.db"), store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	fw := firewall.NewFake()
	clk := &clock{t: t0}
	m, err := New(Config{}, Deps{Store: st, Backend: fw, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	const n = 20000
	reqs := make([]Request, 0, 500)
	for i := 0; i < n; i++ {
		reqs = append(reqs, Request{Jail: "sshd", Prefix: stormAddr(i), Duration: time.Hour,
			Reason: fmt.Sprintf("a reason long enough to fill a small disk soon %0200d", i)})
		if len(reqs) == cap(reqs) {
			for _, r := range m.BanMany(ctx, reqs) {
				if r.Err != nil {
					t.Fatalf("ban with a filling disk: %v", r.Err)
				}
			}
			reqs = reqs[:0]
			clk.Add(time.Second)
		}
	}
	h := m.Health()
	if h.OK || !strings.Contains(h.Error, "no space left") || h.Unsaved == 0 {
		t.Fatalf("health after %d bans on a 1 MB disk: %+v", n, h)
	}
	if l, _ := fw.List(ctx); len(l) != n {
		t.Fatalf("firewall enforces %d of %d bans", len(l), n)
	}
	storetest.Remount(t, dir, 64<<20, false)
	clk.Add(time.Minute)
	if err := m.Flush(ctx); err != nil {
		t.Fatalf("flush with room again: %v", err)
	}
	if h := m.Health(); !h.OK || h.Unsaved != 0 {
		t.Fatalf("health after the flush %+v", h)
	}
	if c, _ := st.CountBans(); c != n {
		t.Fatalf("%d of %d bans in the database after the flush", c, n)
	}
}
