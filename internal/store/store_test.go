package store

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	bolt "go.etcd.io/bbolt"
)

var t0 = time.Date(2026, 11, 24, 19, 0, 0, 0, time.UTC)

func openTemp(t testing.TB, opts Options) (*Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "palisade.db")
	s, err := Open(path, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s, path
}

func pfx(s string) netip.Prefix {
	if strings.Contains(s, "/") {
		return netip.MustParsePrefix(s)
	}
	a := netip.MustParseAddr(s)
	return netip.PrefixFrom(a, a.BitLen())
}

func TestBansRoundTrip(t *testing.T) {
	s, _ := openTemp(t, Options{NoSync: true})
	in := []Ban{
		{Jail: "sshd", Prefix: pfx("192.0.2.1"), Start: t0, Expires: t0.Add(time.Hour), Reason: "4 failures"},
		{Jail: "sshd", Prefix: pfx("2001:db8::/64"), Start: t0, Reason: "permanent"},
		{Jail: "recidive", Prefix: pfx("198.51.100.7"), Start: t0, Expires: t0.Add(7 * 24 * time.Hour)},
	}
	if err := s.AddBans(in); err != nil {
		t.Fatal(err)
	}
	got, bad, err := s.Bans()
	if err != nil || bad != 0 {
		t.Fatalf("Bans: %v bad=%d", err, bad)
	}
	want := []Ban{
		{Jail: "recidive", Prefix: pfx("198.51.100.7"), Start: t0, Expires: t0.Add(7 * 24 * time.Hour), Offence: 1},
		{Jail: "sshd", Prefix: pfx("192.0.2.1"), Start: t0, Expires: t0.Add(time.Hour), Offence: 1, Reason: "4 failures"},
		{Jail: "sshd", Prefix: pfx("2001:db8::/64"), Start: t0, Offence: 1, Reason: "permanent"},
	}
	if d := cmp.Diff(want, got, cmp.Comparer(func(a, b time.Time) bool { return a.Equal(b) }), cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); d != "" {
		t.Fatalf("bans (-want +got):\n%s", d)
	}
	if !got[2].Permanent() || got[1].Permanent() {
		t.Fatalf("Permanent() wrong: %v %v", got[2].Permanent(), got[1].Permanent())
	}
	if err := s.DeleteBans([]BanKey{{"sshd", pfx("192.0.2.1")}, {"nojail", pfx("192.0.2.9")}}); err != nil {
		t.Fatal(err)
	}
	if n, _ := s.CountBans(); n != 2 {
		t.Fatalf("CountBans after delete = %d, want 2", n)
	}
}

func TestOffenceHistory(t *testing.T) {
	s, _ := openTemp(t, Options{NoSync: true})
	ip := pfx("203.0.113.5")
	for i := 0; i < 3; i++ {
		b := []Ban{{Jail: "sshd", Prefix: ip, Start: t0.Add(time.Duration(i) * time.Hour), Expires: t0.Add(time.Duration(i)*time.Hour + 10*time.Minute)}}
		if err := s.AddBans(b); err != nil {
			t.Fatal(err)
		}
		if b[0].Offence != i+1 {
			t.Fatalf("ban %d: Offence = %d", i, b[0].Offence)
		}
	}
	if err := s.AddBans([]Ban{{Jail: "postfix", Prefix: ip, Start: t0.Add(5 * time.Hour)}}); err != nil {
		t.Fatal(err)
	}
	// Refreshing does not count.
	if err := s.UpdateBans([]Ban{{Jail: "sshd", Prefix: ip, Start: t0, Expires: t0.Add(99 * time.Hour)}}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		jail    string
		overall bool
		want    Offences
	}{
		{"per jail", "sshd", false, Offences{Count: 3, LastBan: t0.Add(2 * time.Hour), LastDuration: 10 * time.Minute}},
		{"other jail", "postfix", false, Offences{Count: 1, LastBan: t0.Add(5 * time.Hour), LastDuration: -1}},
		{"overall", "sshd", true, Offences{Count: 4, LastBan: t0.Add(5 * time.Hour), LastDuration: -1}},
		{"unknown jail", "nginx", false, Offences{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.Offences(tc.jail, ip, tc.overall)
			if err != nil {
				t.Fatal(err)
			}
			if got.Count != tc.want.Count || !got.LastBan.Equal(tc.want.LastBan) || got.LastDuration != tc.want.LastDuration {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
	// A neighbouring address shares no history (prefix scan must be exact).
	if o, _ := s.Offences("sshd", pfx("203.0.113.50"), true); o.Count != 0 {
		t.Fatalf("neighbour has history %+v", o)
	}
}

func TestPruneHistory(t *testing.T) {
	s, _ := openTemp(t, Options{NoSync: true})
	now := t0.Add(30 * 24 * time.Hour)
	bans := []Ban{
		{Jail: "sshd", Prefix: pfx("192.0.2.1"), Start: t0, Expires: t0.Add(time.Hour)},                            // old: pruned
		{Jail: "sshd", Prefix: pfx("192.0.2.2"), Start: t0},                                                        // permanent: kept
		{Jail: "sshd", Prefix: pfx("192.0.2.3"), Start: now.Add(-time.Hour), Expires: now.Add(time.Hour)},          // recent: kept
		{Jail: "sshd", Prefix: pfx("192.0.2.4"), Start: t0, Expires: t0.Add(10 * 24 * time.Hour)},                  // 3x length reaches past the limit: kept
		{Jail: "sshd", Prefix: pfx("192.0.2.5"), Start: t0.Add(time.Minute), Expires: t0.Add(2 * time.Minute)},     // pruned
		{Jail: "sshd", Prefix: pfx("192.0.2.6"), Start: t0.Add(2 * time.Minute), Expires: t0.Add(3 * time.Minute)}, // pruned
	}
	if err := s.AddBans(bans); err != nil {
		t.Fatal(err)
	}
	n, err := s.PruneHistory(now, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if n != 3 {
		t.Fatalf("pruned %d, want 3", n)
	}
	for ip, want := range map[string]int{"192.0.2.1": 0, "192.0.2.2": 1, "192.0.2.3": 1, "192.0.2.4": 1, "192.0.2.5": 0, "192.0.2.6": 0} {
		o, _ := s.Offences("sshd", pfx(ip), false)
		if o.Count != want {
			t.Errorf("%s: count %d, want %d", ip, o.Count, want)
		}
	}
}

func TestLogPositionsAndCursors(t *testing.T) {
	s, _ := openTemp(t, Options{NoSync: true})
	in := map[string]LogPosition{
		"/var/log/auth.log": {Device: 2049, Inode: 1234, Offset: 98765, FirstLineHash: []byte{1, 2, 3}},
		"/var/log/mail.log": {Device: 2049, Inode: 99, Offset: 0},
	}
	if err := s.SetLogPositions(in); err != nil {
		t.Fatal(err)
	}
	for p, want := range in {
		got, ok, err := s.LogPosition(p)
		if err != nil || !ok {
			t.Fatalf("%s: ok=%v err=%v", p, ok, err)
		}
		if d := cmp.Diff(want, got); d != "" {
			t.Fatalf("%s (-want +got):\n%s", p, d)
		}
	}
	if _, ok, _ := s.LogPosition("/nope"); ok {
		t.Fatal("unknown path found")
	}
	if err := s.DeleteLogPosition("/var/log/mail.log"); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := s.LogPosition("/var/log/mail.log"); ok {
		t.Fatal("deleted path found")
	}
	if err := s.SetJournalCursor("sshd/_SYSTEMD_UNIT=sshd.service", "s=abc;i=1"); err != nil {
		t.Fatal(err)
	}
	c, ok, err := s.JournalCursor("sshd/_SYSTEMD_UNIT=sshd.service")
	if err != nil || !ok || c != "s=abc;i=1" {
		t.Fatalf("cursor = %q %v %v", c, ok, err)
	}
}

// makeDB writes n bans and returns the size of the data in use (the file
// may be longer).
func makeDB(t *testing.T, path string, n int) int64 {
	t.Helper()
	s, err := Open(path, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.AddBans(genBans(n, t0)); err != nil {
		t.Fatal(err)
	}
	var used int64
	_ = s.db.View(func(tx *bolt.Tx) error { used = tx.Size(); return nil })
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return used
}

func genBans(n int, start time.Time) []Ban {
	out := make([]Ban, n)
	for i := range out {
		a := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		out[i] = Ban{Jail: "sshd", Prefix: netip.PrefixFrom(a, 32), Start: start, Expires: start.Add(time.Hour), Reason: "bench"}
	}
	return out
}

func TestCorruptMovedAside(t *testing.T) {
	tests := []struct {
		name  string
		spoil func(t *testing.T, path string)
	}{
		{"garbage", func(t *testing.T, path string) {
			if err := os.WriteFile(path, bytes.Repeat([]byte("not a database "), 2000), 0o600); err != nil {
				t.Fatal(err)
			}
		}},
		{"tiny", func(t *testing.T, path string) {
			if err := os.WriteFile(path, []byte("x"), 0o600); err != nil {
				t.Fatal(err)
			}
		}},
		{"truncated", func(t *testing.T, path string) {
			used := makeDB(t, path, 20000)
			if err := os.Truncate(path, used/3); err != nil {
				t.Fatal(err)
			}
		}},
		{"truncated after the meta pages", func(t *testing.T, path string) {
			makeDB(t, path, 5000)
			if err := os.Truncate(path, 2*int64(os.Getpagesize())+100); err != nil {
				t.Fatal(err)
			}
		}},
		{"data page overwritten", func(t *testing.T, path string) {
			makeDB(t, path, 20000)
			f, err := os.OpenFile(path, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			// Keep the two meta pages, smash the pages after them.
			if _, err := f.WriteAt(bytes.Repeat([]byte{0xA5}, 64*1024), 4*4096); err != nil {
				t.Fatal(err)
			}
		}},
		{"wrong schema", func(t *testing.T, path string) {
			s, err := Open(path, Options{NoSync: true})
			if err != nil {
				t.Fatal(err)
			}
			_ = s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Put(keySchema, []byte("99")) })
			_ = s.Close()
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "palisade.db")
			tc.spoil(t, path)
			var logbuf bytes.Buffer
			log := slog.New(slog.NewTextHandler(&logbuf, nil))
			now := func() time.Time { return t0 }
			s, err := Open(path, Options{Logger: log, Now: now, NoSync: true})
			if err != nil {
				t.Fatalf("Open refused a corrupt database: %v", err)
			}
			defer s.Close()
			aside, cause := s.MovedAside()
			want := path + ".corrupt-20261124T190000Z"
			if aside != want || cause == nil {
				t.Fatalf("MovedAside = %q, %v; want %q", aside, cause, want)
			}
			if _, err := os.Stat(want); err != nil {
				t.Fatalf("corrupt file not kept: %v", err)
			}
			if !strings.Contains(logbuf.String(), "level=ERROR") || !strings.Contains(logbuf.String(), "CORRUPT") {
				t.Fatalf("no loud log message: %q", logbuf.String())
			}
			// The fresh database works.
			if err := s.AddBans([]Ban{{Jail: "sshd", Prefix: pfx("192.0.2.1"), Start: t0}}); err != nil {
				t.Fatal(err)
			}
			if n, _ := s.CountBans(); n != 1 {
				t.Fatalf("fresh db has %d bans", n)
			}
		})
	}
}

func TestCleanOpenNotMoved(t *testing.T) {
	path := filepath.Join(t.TempDir(), "palisade.db")
	makeDB(t, path, 100)
	s, err := Open(path, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if a, c := s.MovedAside(); a != "" || c != nil {
		t.Fatalf("clean db moved aside: %q %v", a, c)
	}
	if n, _ := s.CountBans(); n != 100 {
		t.Fatalf("CountBans = %d", n)
	}
}

func TestLockedIsAnErrorNotCorruption(t *testing.T) {
	s, path := openTemp(t, Options{NoSync: true})
	_ = s
	_, err := Open(path, Options{LockTimeout: 50 * time.Millisecond})
	if err == nil || !strings.Contains(err.Error(), "locked") {
		t.Fatalf("second Open: err = %v, want a lock error", err)
	}
	matches, _ := filepath.Glob(path + ".corrupt-*")
	if len(matches) != 0 {
		t.Fatalf("a locked database was moved aside: %v", matches)
	}
}

// TestCommittedSurvivesCrash copies the file while the database is still
// open (no Close, as after kill -9) and opens the copy.
func TestCommittedSurvivesCrash(t *testing.T) {
	s, path := openTemp(t, Options{})
	if err := s.AddBans(genBans(500, t0)); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	crash := filepath.Join(t.TempDir(), "crashed.db")
	if err := os.WriteFile(crash, data, 0o600); err != nil {
		t.Fatal(err)
	}
	s2, err := Open(crash, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if a, _ := s2.MovedAside(); a != "" {
		t.Fatalf("crash copy treated as corrupt")
	}
	if n, _ := s2.CountBans(); n != 500 {
		t.Fatalf("after crash: %d bans, want 500", n)
	}
}

func TestBadInput(t *testing.T) {
	s, _ := openTemp(t, Options{NoSync: true})
	for _, b := range []Ban{{Prefix: pfx("192.0.2.1")}, {Jail: "sshd"}} {
		if err := s.AddBans([]Ban{b}); err == nil {
			t.Errorf("AddBans(%+v) accepted", b)
		}
	}
	if _, err := Open(filepath.Join("/proc/definitely/not", "x.db"), Options{}); err == nil {
		t.Error("Open in an impossible directory succeeded")
	}
	var fe *fatalError
	if errors.As(fmt.Errorf("x"), &fe) {
		t.Error("unreachable")
	}
}

func BenchmarkStoreAddBan(b *testing.B) {
	for _, sync := range []bool{true, false} {
		b.Run(fmt.Sprintf("fsync=%v", sync), func(b *testing.B) {
			s, _ := openTemp(b, Options{NoSync: !sync})
			bans := genBans(b.N, t0)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if err := s.AddBans(bans[i : i+1]); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkStoreAddBans100kOneTx(b *testing.B) {
	bans := genBans(100000, t0)
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		s, _ := openTemp(b, Options{})
		b.StartTimer()
		if err := s.AddBans(bans); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkOpenAndLoad100k(b *testing.B) {
	path := filepath.Join(b.TempDir(), "p.db")
	s, err := Open(path, Options{NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	if err := s.AddBans(genBans(100000, t0)); err != nil {
		b.Fatal(err)
	}
	_ = s.Close()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		s, err := Open(path, Options{})
		if err != nil {
			b.Fatal(err)
		}
		bans, _, err := s.Bans()
		if err != nil || len(bans) != 100000 {
			b.Fatal(len(bans), err)
		}
		_ = s.Close()
	}
}

func FuzzDecodeRecords(f *testing.F) {
	good := encodeBan(Ban{Start: t0, Expires: t0.Add(time.Hour), Offence: 2, Reason: "x"})
	f.Add(prefixKey(pfx("192.0.2.1")), good)
	f.Add(prefixKey(pfx("2001:db8::/64")), good[:10])
	f.Add([]byte{4, 1, 2}, []byte{})
	f.Add(append(prefixKey(pfx("192.0.2.1"))[:17], 200), good)
	f.Fuzz(func(t *testing.T, k, v []byte) {
		b, err := decodeBan("j", k, v)
		if err == nil {
			if !b.Prefix.IsValid() {
				t.Fatalf("decoded an invalid prefix from %x", k)
			}
			if got := prefixKey(b.Prefix); !bytes.Equal(got, k[:18]) {
				t.Fatalf("key round trip %x -> %x", k[:18], got)
			}
		}
		_ = decodeOffences(v)
	})
}

// rssFileKB is the process's resident file-backed memory.
func rssFileKB(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Skip("no /proc/self/status")
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "RssFile:" {
			var n int
			fmt.Sscan(f[1], &n)
			return n
		}
	}
	t.Skip("no RssFile in /proc/self/status")
	return 0
}

// TestEachBanReleasesTheMap: after the walk at start-up the database's
// pages are no longer resident in palisade's map (they were 120 MB after
// a storm of 300,000 bans), and everything still reads.
func TestEachBanReleasesTheMap(t *testing.T) {
	path := filepath.Join(t.TempDir(), "palisade.db")
	const n = 30000
	makeDB(t, path, n)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	s, err := Open(path, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// Touch every page, as a long-running daemon does over time.
	_ = s.db.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(_ []byte, b *bolt.Bucket) error { return walk(b, 0) })
	})
	before := rssFileKB(t)
	got := 0
	if _, err := s.EachBan(func(Ban) error { got++; return nil }); err != nil || got != n {
		t.Fatalf("EachBan: %d, %v", got, err)
	}
	after := rssFileKB(t)
	if dbKB := int(fi.Size() >> 10); before-after < dbKB/2 {
		t.Fatalf("resident file memory %d kB before, %d kB after; the %d kB database was not released", before, after, dbKB)
	}
	if c, _ := s.CountBans(); c != n {
		t.Fatalf("CountBans after the release: %d", c)
	}
}
