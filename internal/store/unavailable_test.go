package store

import (
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/palisade-project/palisade/internal/store/storetest"
)

// stepClock is a clock tests move by hand.
type stepClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *stepClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *stepClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func oneBan(i int) []Ban {
	return []Ban{{Jail: "sshd", Prefix: netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 51, 100, byte(i)}), 32), Start: t0, Expires: t0.Add(time.Hour)}}
}

func noneMovedAside(t *testing.T, path string) {
	t.Helper()
	if m, _ := filepath.Glob(path + ".corrupt-*"); len(m) != 0 {
		t.Fatalf("database moved aside although only its file system failed: %v", m)
	}
}

// TestReadOnlyFileSystem: on a read-only file system the database is read
// (restore still works), writes fail with ErrUnavailable, nothing is moved
// aside, and once the file system is writable again the store is too.
func TestReadOnlyFileSystem(t *testing.T) {
	dir := storetest.TmpFS(t, 16<<20)
	path := filepath.Join(dir, "lib", "palisade.db")
	makeDB(t, path, 100)
	storetest.Remount(t, dir, 16<<20, true)
	clk := &stepClock{t: t0}
	s, err := Open(path, Options{Now: clk.Now})
	if err != nil {
		t.Fatalf("a read-only file system stopped Open: %v", err)
	}
	defer s.Close()
	if err := s.Err(); !errors.Is(err, syscall.EROFS) || !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Err = %v, want EROFS and ErrUnavailable", err)
	}
	if s.Lost() != "" {
		t.Fatalf("Lost = %q for an intact database", s.Lost())
	}
	if n, err := s.CountBans(); n != 100 || err != nil {
		t.Fatalf("read-only database: %d bans, %v", n, err)
	}
	if err := s.AddBans(oneBan(1)); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("AddBans on a read-only file system: %v", err)
	}
	storetest.Remount(t, dir, 16<<20, false)
	clk.Add(reopenEvery)
	if err := s.AddBans(oneBan(1)); err != nil {
		t.Fatalf("AddBans once writable again: %v", err)
	}
	if err := s.Err(); err != nil {
		t.Fatalf("Err after recovery: %v", err)
	}
	if n, _ := s.CountBans(); n != 101 {
		t.Fatalf("%d bans after recovery, want 101", n)
	}
	noneMovedAside(t, path)
}

// TestReadOnlyNoDatabase: nothing to read and nothing can be created; the
// store still opens, and creates the file once it can.
func TestReadOnlyNoDatabase(t *testing.T) {
	dir := storetest.TmpFS(t, 16<<20)
	storetest.Remount(t, dir, 16<<20, true)
	path := filepath.Join(dir, "lib", "palisade.db")
	clk := &stepClock{t: t0}
	s, err := Open(path, Options{Now: clk.Now, NoSync: true})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer s.Close()
	if bans, bad, err := s.Bans(); len(bans) != 0 || bad != 0 || err != nil {
		t.Fatalf("Bans = %v %d %v", bans, bad, err)
	}
	if _, found, err := s.LogPosition("/var/log/auth.log"); found || err != nil {
		t.Fatalf("LogPosition: %v %v", found, err)
	}
	if err := s.AddBans(oneBan(1)); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("AddBans: %v", err)
	}
	storetest.Remount(t, dir, 16<<20, false)
	// A retry within the second is not attempted.
	if err := s.AddBans(oneBan(1)); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("AddBans retried before its time: %v", err)
	}
	clk.Add(reopenEvery)
	if err := s.AddBans(oneBan(1)); err != nil {
		t.Fatalf("AddBans once writable: %v", err)
	}
	if n, _ := s.CountBans(); n != 1 {
		t.Fatalf("%d bans", n)
	}
}

// TestFullFileSystem: a full disk makes writes fail with ENOSPC and never
// corrupts or moves the database; what was committed stays, and writes
// work again once there is room.
func TestFullFileSystem(t *testing.T) {
	dir := storetest.TmpFS(t, 2<<20)
	path := filepath.Join(dir, "palisade.db")
	s, err := Open(path, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	committed := 0
	var full error
	for i := 0; i < 500 && full == nil; i++ {
		bans := genBans(1000, t0)
		for k := range bans {
			n := i*len(bans) + k
			bans[k].Prefix = netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(n >> 16), byte(n >> 8), byte(n)}), 32)
			bans[k].Reason = fmt.Sprintf("a long enough reason to fill the disk quickly %0100d", k)
		}
		if full = s.AddBans(bans); full == nil {
			committed += len(bans)
		}
	}
	if !errors.Is(full, syscall.ENOSPC) {
		t.Fatalf("filling a 2 MB file system: %v after %d bans, want ENOSPC", full, committed)
	}
	if n, err := s.CountBans(); n != committed || err != nil {
		t.Fatalf("after the failed write: %d bans (%v), want %d", n, err, committed)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(path, Options{NoSync: true})
	if err != nil {
		t.Fatalf("reopening on a full disk: %v", err)
	}
	defer s.Close()
	noneMovedAside(t, path)
	if n, _ := s.CountBans(); n != committed {
		t.Fatalf("after reopening: %d bans, want %d", n, committed)
	}
	storetest.Remount(t, dir, 64<<20, false)
	if err := s.AddBans(oneBan(1)); err != nil {
		t.Fatalf("AddBans with room again: %v", err)
	}
	if n, _ := s.CountBans(); n != committed+1 {
		t.Fatalf("%d bans, want %d", n, committed+1)
	}
}
