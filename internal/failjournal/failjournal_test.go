package failjournal

import (
	"fmt"
	"hash/fnv"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"
)

// t0 is a realistic time (unix ns have 19 digits).
const t0 = int64(1796608295000000000)

func rec(jail string, i int) Record {
	return Record{Jail: jail, Key: LineKey(jail, "/var/log/auth.log", fmt.Sprint("line ", i)),
		ID: fmt.Sprintf("192.0.2.%d", i%250), T: t0 + int64(i), Now: t0 + int64(1000+i)}
}

func collect(path string, t *testing.T) []Record {
	t.Helper()
	var out []Record
	segs := []segment{{path: path + SealedSuffix, size: -1}, {path: path, size: -1}}
	if err := each(segs, func(r Record, _ int) { out = append(out, r) }); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestFlushOpenReplay(t *testing.T) {
	path := filepath.Join(t.TempDir(), "p.db.failures")
	var replayed []Record
	j, err := Open(path, Options{}, Policy{}, func(r Record) { replayed = append(replayed, r) })
	if err != nil || len(replayed) != 0 {
		t.Fatalf("open empty: %v %v", replayed, err)
	}
	for i := 1; i <= 3; i++ {
		if err := j.Append(rec("sshd", i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := j.Flush(); err != nil {
		t.Fatal(err)
	}
	// Buffered, never flushed: lost with the process (its line's position
	// was not saved either, so the line is read and counted again).
	if err := j.Append(rec("sshd", 4)); err != nil {
		t.Fatal(err)
	}
	// A torn write at the end of the file is skipped.
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("sshd\tzz\t192.0.2")
	f.Close()

	// "kill -9": no Close; a new process opens the journal.
	replayed = nil
	j2, err := Open(path, Options{}, Policy{Keep: func(r Record) bool { return r.ID != "192.0.2.2" }}, func(r Record) { replayed = append(replayed, r) })
	if err != nil {
		t.Fatal(err)
	}
	defer j2.Close()
	if len(replayed) != 2 || replayed[0] != rec("sshd", 1) || replayed[1] != rec("sshd", 3) {
		t.Fatalf("records = %+v", replayed)
	}
	// Replayed identities match once.
	if !j2.Replayed(replayed[0].Key) || j2.Replayed(replayed[0].Key) || j2.Replayed(rec("sshd", 4).Key) {
		t.Fatal("replayed identities must match exactly once")
	}
	// The file was rewritten with the kept records only.
	if got := collect(path, t); len(got) != 2 {
		t.Fatalf("after rewrite: %+v", got)
	}
	if st := j2.Stats(); st.Records != 2 || st.Bytes <= 0 {
		t.Fatalf("stats %+v", st)
	}
}

// TestCheckpointMarkers: only the lines recorded after their source's last
// saved position can be delivered again after a restart, so only they are
// remembered; the markers survive the rewrite and compaction.
func TestCheckpointMarkers(t *testing.T) {
	path := filepath.Join(t.TempDir(), "j")
	j, err := Open(path, Options{}, Policy{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	a, b := SourceKey("/var/log/auth.log"), SourceKey("journal:x")
	r := func(key uint64, src uint64) Record {
		return Record{Jail: "sshd", Key: key, ID: "192.0.2.1", T: t0, Now: t0, Src: src}
	}
	j.Append(r(1, a))
	j.Append(r(2, b))
	j.Checkpoint("/var/log/auth.log") // 1 is before auth.log's saved position
	j.Append(r(3, a))
	j.Checkpoint("journal:x") // 2 and 4 are before the journal's
	j.Append(r(5, a))
	j.Append(r(6, b))
	j.Close()
	reopen := func() *Journal {
		t.Helper()
		n := 0
		j, err := Open(path, Options{}, Policy{}, func(Record) { n++ })
		if err != nil {
			t.Fatal(err)
		}
		if n != 5 {
			t.Fatalf("replayed %d records, want 5", n)
		}
		return j
	}
	j = reopen()
	if st := j.Stats(); st.Remembered != 3 || st.Records != 5 {
		t.Fatalf("stats %+v, want 3 remembered (3, 5, 6) of 5", st)
	}
	for _, k := range []uint64{3, 5, 6} {
		if !j.Replayed(k) {
			t.Errorf("line %d (after its checkpoint) not remembered", k)
		}
	}
	for _, k := range []uint64{1, 2} {
		if j.Replayed(k) {
			t.Errorf("line %d (before its checkpoint) remembered", k)
		}
	}
	if err := j.Compact(Policy{}); err != nil {
		t.Fatal(err)
	}
	j.Close()
	// The rewritten and compacted file still knows the checkpoints.
	j = reopen()
	defer j.Close()
	if st := j.Stats(); st.Remembered != 3 {
		t.Fatalf("after rewrite and compaction: %d remembered, want 3", st.Remembered)
	}
}

// TestDedupeWindow: records of an older palisade carry no source: the
// lines recorded shortly before the newest record are remembered.
func TestDedupeWindow(t *testing.T) {
	path := filepath.Join(t.TempDir(), "j")
	j, err := Open(path, Options{}, Policy{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	old := Record{Jail: "sshd", Key: 1, ID: "192.0.2.1", T: 0, Now: 0}
	recent := Record{Jail: "sshd", Key: 2, ID: "192.0.2.2", T: int64(time.Hour), Now: int64(time.Hour)}
	j.Append(old)
	j.Append(recent)
	j.Close()
	n := 0
	j, err = Open(path, Options{DedupeWindow: time.Minute}, Policy{}, func(Record) { n++ })
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	if n != 2 || j.Stats().Remembered != 1 || !j.Replayed(2) || j.Replayed(1) {
		t.Fatalf("replayed %d, remembered %d", n, j.Stats().Remembered)
	}
}

func TestCompact(t *testing.T) {
	path := filepath.Join(t.TempDir(), "j")
	j, err := Open(path, Options{}, Policy{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	for i := 1; i <= 10; i++ {
		j.Append(rec("sshd", i))
		j.Append(rec("web", i))
		j.Append(rec("gone", i))
	}
	err = j.Compact(Policy{
		Keep: func(r Record) bool { return r.Jail != "gone" && r.ID != "192.0.2.10" },
		Limit: func(jail string) int {
			if jail == "sshd" {
				return 3
			}
			return 100
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if n := j.Stats().Records; n != 3+9 {
		t.Fatalf("records after compaction = %d, want 12", n)
	}
	j.Append(rec("web", 11))
	j.Flush()
	var got []string
	for _, r := range collect(path, t) {
		got = append(got, r.Jail+" "+r.ID)
	}
	want := []string{"sshd 192.0.2.7", "web 192.0.2.7", "sshd 192.0.2.8", "web 192.0.2.8", "sshd 192.0.2.9", "web 192.0.2.9"}
	// Compaction keeps file order; the record appended after it comes last.
	if len(got) != 13 || got[len(got)-1] != "web 192.0.2.11" {
		t.Fatalf("records = %v", got)
	}
	for i, w := range want {
		if got[6+i] != w {
			t.Fatalf("records = %v, want ... %v then web 192.0.2.11", got, want)
		}
	}
}

// fileBytes is the size of the journal's files on disk together.
func fileBytes(t *testing.T, path string) int64 {
	t.Helper()
	var n int64
	for _, p := range []string{path, path + SealedSuffix} {
		fi, err := os.Stat(p)
		if err == nil {
			n += fi.Size()
		} else if !os.IsNotExist(err) {
			t.Fatal(err)
		}
	}
	return n
}

// TestBoundedBySize: under a flood of records that all still matter, the
// files never hold more than MaxBytes, with or without compactions
// keeping up (compaction is due as soon as the growth outgrows what was
// kept, and keeps at most half of MaxBytes; the write path seals the
// active file and drops the oldest segment when the bound is reached),
// and the newest records are kept.
func TestBoundedBySize(t *testing.T) {
	for _, compact := range []bool{true, false} {
		t.Run(fmt.Sprintf("compact=%v", compact), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "j")
			const maxBytes = 64 << 10
			j, err := Open(path, Options{MaxBytes: maxBytes, MinCompact: 8 << 10}, Policy{}, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer j.Close()
			compactions := 0
			var largest, largestStats int64
			for i := 0; i < 20000; i++ {
				if err := j.Append(rec("sshd", i)); err != nil {
					t.Fatal(err)
				}
				largest = max(largest, fileBytes(t, path))
				largestStats = max(largestStats, j.Stats().Bytes)
				select {
				case <-j.Due():
					if !compact {
						break
					}
					if err := j.Compact(Policy{}); err != nil {
						t.Fatal(err)
					}
					compactions++
				default:
				}
			}
			if (compact && compactions < 5) || largest > maxBytes || largestStats > maxBytes+(writeQueue+1)*maxBytes/16 {
				t.Fatalf("%d compactions, largest files %d bytes (%d with the buffer; MaxBytes %d)", compactions, largest, largestStats, maxBytes)
			}
			if st := j.Stats(); st.Rotations == 0 {
				t.Fatalf("stats %+v: a flood past the bound must rotate", st)
			}
			j.Flush()
			recs := collect(path, t)
			if last := recs[len(recs)-1]; last != rec("sshd", 19999) {
				t.Fatalf("newest record lost: last is %+v", last)
			}
			for i, r := range recs {
				if want := rec("sshd", 20000-len(recs)+i); r != want {
					t.Fatalf("kept records are not the newest, in order: record %d of %d is %+v, want %+v", i, len(recs), r, want)
				}
			}
			// At least what the sealed segment holds: MaxBytes/2 less one
			// write.
			if len(recs) < (maxBytes/2-maxBytes/16)/len(rec("sshd", 1).appendTo(nil)) || len(recs) != j.Stats().Records {
				t.Fatalf("%d records kept (stats say %d): fewer than MaxBytes/2 holds", len(recs), j.Stats().Records)
			}
			// A restart ("kill -9": no Close) replays both segments, oldest
			// first, and leaves one file.
			var replayed []Record
			j2, err := Open(path, Options{MaxBytes: maxBytes}, Policy{}, func(r Record) { replayed = append(replayed, r) })
			if err != nil {
				t.Fatal(err)
			}
			defer j2.Close()
			if len(replayed) == 0 || replayed[len(replayed)-1] != rec("sshd", 19999) || len(replayed) > len(recs) {
				t.Fatalf("replayed %d records (of %d), last %+v", len(replayed), len(recs), replayed[len(replayed)-1])
			}
			if _, err := os.Stat(path + SealedSuffix); !os.IsNotExist(err) {
				t.Fatalf("sealed segment left after Open: %v", err)
			}
		})
	}
}

// TestFloodBoundedConcurrently: two jails flooding at once while
// compactions run (under -race): the files stay under the bound, and
// every record of the newest half of the bound is kept.
func TestFloodBoundedConcurrently(t *testing.T) {
	path := filepath.Join(t.TempDir(), "j")
	const maxBytes = 128 << 10
	j, err := Open(path, Options{MaxBytes: maxBytes, MinCompact: 8 << 10}, Policy{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	stop := make(chan struct{})
	compacted := make(chan int)
	go func() {
		n := 0
		for {
			select {
			case <-stop:
				compacted <- n
				return
			case <-j.Due():
				if err := j.Compact(Policy{}); err != nil {
					t.Error(err)
				}
				n++
			}
		}
	}()
	var largest atomicMax
	done := make(chan struct{})
	for _, name := range []string{"a", "b"} {
		go func() {
			defer func() { done <- struct{}{} }()
			for i := 0; i < 20000; i++ {
				if err := j.Append(rec(name, i)); err != nil {
					t.Error(err)
					return
				}
				if i%50 == 0 {
					largest.see(fileBytes(t, path))
				}
			}
		}()
	}
	<-done
	<-done
	close(stop)
	n := <-compacted
	j.Flush()
	if l := largest.get(); l > maxBytes || fileBytes(t, path) > maxBytes {
		t.Fatalf("files grew to %d bytes, bound %d", l, maxBytes)
	}
	// Per jail, the records kept are its newest, in order (the flood of
	// one jail may end first, and all of its records be the oldest).
	recs := collect(path, t)
	byJail := map[string][]Record{}
	for _, r := range recs {
		byJail[r.Jail] = append(byJail[r.Jail], r)
	}
	for name, rs := range byJail {
		for i, r := range rs {
			if want := rec(name, 20000-len(rs)+i); r != want {
				t.Fatalf("jail %s: record %d of %d kept is %+v, want %+v", name, i, len(rs), r, want)
			}
		}
	}
	if size := len(rec("a", 19999).appendTo(nil)); len(recs) < (maxBytes/2-maxBytes/16)/size {
		t.Fatalf("%d records kept (%d compactions), fewer than half the bound holds", len(recs), n)
	}
}

// atomicMax is the largest value seen, for goroutines.
type atomicMax struct {
	mu sync.Mutex
	v  int64
}

func (m *atomicMax) see(v int64) {
	m.mu.Lock()
	m.v = max(m.v, v)
	m.mu.Unlock()
}

func (m *atomicMax) get() int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.v
}

// TestCompactKeepsConcurrentAppends: records appended while a compaction
// runs are kept.
func TestCompactKeepsConcurrentAppends(t *testing.T) {
	path := filepath.Join(t.TempDir(), "j")
	j, err := Open(path, Options{}, Policy{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	for i := 0; i < 5000; i++ {
		j.Append(rec("sshd", i))
	}
	inKeep := make(chan struct{})
	resume := make(chan struct{})
	var once bool
	done := make(chan error)
	go func() {
		done <- j.Compact(Policy{Keep: func(r Record) bool {
			if !once {
				once = true
				close(inKeep)
				<-resume
			}
			return (r.T-t0)%2 == 0 // keep half
		}})
	}()
	<-inKeep
	for i := 5000; i < 5100; i++ {
		if err := j.Append(rec("sshd", i)); err != nil {
			t.Fatal(err)
		}
	}
	close(resume)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	j.Flush()
	recs := collect(path, t)
	if len(recs) != 2500+100 || j.Stats().Records != len(recs) {
		t.Fatalf("%d records in the file, stats %d; want 2600", len(recs), j.Stats().Records)
	}
	for i, r := range recs[2500:] {
		if r != rec("sshd", 5000+i) {
			t.Fatalf("appended record %d = %+v", i, r)
		}
	}
}

func TestParseRecordRejectsGarbage(t *testing.T) {
	for _, s := range []string{"", "a\tb", "sshd\tnothex\t1.2.3.4\t1\t2", "\t1\tx\t1\t2", "sshd\t1\tx\t1\t2\textra", "sshd\t1\tx\t1\t2\t3\t4"} {
		if _, ok := parseRecord([]byte(s)); ok {
			t.Errorf("parsed %q", s)
		}
	}
	for _, r := range []Record{rec("sshd", 5), {Jail: "sshd", Key: 7, ID: "2001:db8::1", T: t0, Now: t0, Src: SourceKey("x")}} {
		b := r.appendTo(nil)
		if got, ok := parseRecord(b[:len(b)-1]); !ok || got != r {
			t.Fatalf("round trip %+v → %q → %+v", r, b, got)
		}
	}
	// An id given as Addr is written as its text.
	for _, a := range []string{"192.0.2.7", "2001:db8::7"} {
		r := Record{Jail: "sshd", Key: 9, Addr: netip.MustParseAddr(a), T: t0, Now: t0, Src: 3}
		b := r.appendTo(nil)
		want := r
		want.ID, want.Addr = a, netip.Addr{}
		if got, ok := parseRecord(b[:len(b)-1]); !ok || got != want {
			t.Fatalf("%+v → %q → %+v, want %+v", r, b, got, want)
		}
	}
	if _, ok := parseRecord([]byte("sshd\t1\tx\t1\t2\t0")); ok {
		t.Error("parsed a zero source")
	}
}

// writeFlood writes n records of distinct addresses to path, as a flood of
// distinct attackers leaves them.
func writeFlood(tb testing.TB, path string, n int) int64 {
	tb.Helper()
	f, err := os.Create(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	var b []byte
	for i := 0; i < n; i++ {
		r := Record{Jail: "sshd", Key: uint64(i) * 0x9e3779b97f4a7c15,
			ID: fmt.Sprintf("%d.%d.%d.%d", 11+(i>>24), byte(i>>16), byte(i>>8), byte(i)), T: t0 + int64(i), Now: t0 + int64(i)}
		b = r.appendTo(b)
		if len(b) > 1<<20 {
			f.Write(b)
			b = b[:0]
		}
	}
	f.Write(b)
	fi, _ := f.Stat()
	return fi.Size()
}

// BenchmarkOpenAtBound measures a restart's journal read at the size
// bound (DefaultMaxBytes, the largest file a flood leaves): time, and the
// heap the replay needs beyond the records themselves.
func BenchmarkOpenAtBound(b *testing.B) {
	path := filepath.Join(b.TempDir(), "j")
	n := 0
	for size := int64(0); size < DefaultMaxBytes; n += 50000 {
		size = writeFlood(b, path, n+50000)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		writeFlood(b, path, n)
		runtime.GC()
		var before runtime.MemStats
		runtime.ReadMemStats(&before)
		b.StartTimer()
		count := 0
		j, err := Open(path, Options{}, Policy{}, func(Record) { count++ })
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		var after runtime.MemStats
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(count), "records")
		b.ReportMetric(float64(after.TotalAlloc-before.TotalAlloc)/(1<<20), "alloc-MB")
		b.ReportMetric(float64(after.HeapInuse)/(1<<20), "heap-MB")
		j.Close()
		b.StartTimer()
	}
}

func TestParseNumbers(t *testing.T) {
	for _, tc := range []struct {
		in string
		ok bool
	}{{"0", true}, {"ffffffffffffffff", true}, {"1ffffffffffffffff", false}, {"", false}, {"G", false}, {"A", false}} {
		v, ok := parseHex([]byte(tc.in))
		if ok != tc.ok || (ok && fmt.Sprintf("%x", v) != tc.in) {
			t.Errorf("parseHex(%q) = %x %v", tc.in, v, ok)
		}
	}
	for _, tc := range []struct {
		in string
		ok bool
	}{{"0", true}, {"-5", true}, {"1796608295000000000", true}, {"9223372036854775807", true}, {"9223372036854775808", false},
		{"-9223372036854775807", true}, {"12345678901234567890", false}, {"", false}, {"-", false}, {"1x", false}} {
		v, ok := parseDec([]byte(tc.in))
		if ok != tc.ok || (ok && fmt.Sprint(v) != tc.in) {
			t.Errorf("parseDec(%q) = %d %v", tc.in, v, ok)
		}
	}
}

// TestKeysAreFNV: the keys are stored in journals written by earlier
// versions, so they stay hash/fnv's FNV-1a of the same bytes.
func TestKeysAreFNV(t *testing.T) {
	for _, c := range []struct{ jail, src, text string }{
		{"", "", ""},
		{"sshd", "/var/log/auth.log", "Failed password for root from 192.0.2.1 port 22 ssh2"},
		{"x", "journal:abc", "caf\u00e9 \xff"},
	} {
		h := fnv.New64a()
		h.Write([]byte(c.jail + "\x00" + c.src + "\x00" + c.text))
		if got, want := LineKey(c.jail, c.src, c.text), h.Sum64(); got != want {
			t.Errorf("LineKey%q = %x, want %x", c, got, want)
		}
		ks := LineKeys(c.jail, c.src)
		if got, want := ks.Line(c.text), h.Sum64(); got != want {
			t.Errorf("LineKeys(%q, %q).Line(%q) = %x, want %x", c.jail, c.src, c.text, got, want)
		}
		if ks.Src != SourceKey(c.src) {
			t.Errorf("LineKeys(%q, %q).Src = %x, want SourceKey %x", c.jail, c.src, ks.Src, SourceKey(c.src))
		}
		h.Reset()
		h.Write([]byte(c.src))
		if got, want := SourceKey(c.src), h.Sum64(); got != want && want != 0 {
			t.Errorf("SourceKey(%q) = %x, want %x", c.src, got, want)
		}
	}
}
