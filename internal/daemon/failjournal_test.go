package daemon

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func rec(jail string, i int) failRecord {
	return failRecord{Jail: jail, Key: lineKey(jail, "/var/log/auth.log", fmt.Sprint("line ", i)),
		ID: fmt.Sprintf("192.0.2.%d", i), T: int64(1000 + i), Now: int64(2000 + i)}
}

func keepAll(failRecord) bool { return true }

func TestFailJournalFlushOpenReplay(t *testing.T) {
	path := filepath.Join(t.TempDir(), "p.db.failures")
	j, recs, err := openFailJournal(path, keepAll)
	if err != nil || len(recs) != 0 {
		t.Fatalf("open empty: %v %v", recs, err)
	}
	for i := 1; i <= 3; i++ {
		if err := j.append(rec("sshd", i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := j.flush(); err != nil {
		t.Fatal(err)
	}
	// Buffered, never flushed: lost with the process (its line's position
	// was not saved either, so the line is read and counted again).
	if err := j.append(rec("sshd", 4)); err != nil {
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
	j2, recs, err := openFailJournal(path, func(r failRecord) bool { return r.ID != "192.0.2.2" })
	if err != nil {
		t.Fatal(err)
	}
	defer j2.Close()
	if len(recs) != 2 || recs[0] != rec("sshd", 1) || recs[1] != rec("sshd", 3) {
		t.Fatalf("records = %+v", recs)
	}
	// Replayed identities match once.
	j2.remember(recs[0].Key, time.Now().Add(time.Hour))
	if !j2.replayed(recs[0].Key) || j2.replayed(recs[0].Key) || j2.replayed(rec("sshd", 4).Key) {
		t.Fatal("replayed identities must match exactly once")
	}
	// The file was rewritten with the kept records only.
	_, again, err := openFailJournal(path, keepAll)
	if err != nil || len(again) != 2 {
		t.Fatalf("after rewrite: %+v %v", again, err)
	}
}

func TestFailJournalCompact(t *testing.T) {
	path := filepath.Join(t.TempDir(), "j")
	j, _, err := openFailJournal(path, keepAll)
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	for i := 1; i <= 10; i++ {
		j.append(rec("sshd", i))
		j.append(rec("web", i))
		j.append(rec("gone", i))
	}
	err = j.compact(func(r failRecord) bool { return r.Jail != "gone" && r.ID != "192.0.2.10" },
		func(jail string) int {
			if jail == "sshd" {
				return 3
			}
			return 100
		})
	if err != nil {
		t.Fatal(err)
	}
	if j.size() != 3+9 {
		t.Fatalf("size after compaction = %d, want 12", j.size())
	}
	j.append(rec("web", 11))
	j.flush()
	var got []string
	if err := eachRecord(path, func(r failRecord) { got = append(got, r.Jail+" "+r.ID) }); err != nil {
		t.Fatal(err)
	}
	want := []string{"sshd 192.0.2.7", "sshd 192.0.2.8", "sshd 192.0.2.9"}
	for i := 1; i <= 9; i++ {
		want = append(want, fmt.Sprintf("web 192.0.2.%d", i))
	}
	// Compaction keeps file order: interleave check by set, then the
	// appended record last.
	if len(got) != len(want)+1 || got[len(got)-1] != "web 192.0.2.11" {
		t.Fatalf("records = %v", got)
	}
	seen := map[string]bool{}
	for _, g := range got {
		seen[g] = true
	}
	for _, w := range want {
		if !seen[w] {
			t.Errorf("missing %q in %v", w, got)
		}
	}
}

func TestParseRecordRejectsGarbage(t *testing.T) {
	for _, s := range []string{"", "a\tb", "sshd\tnothex\t1.2.3.4\t1\t2", "\t1\tx\t1\t2", "sshd\t1\tx\t1\t2\textra"} {
		if _, ok := parseRecord([]byte(s)); ok {
			t.Errorf("parsed %q", s)
		}
	}
	r := rec("sshd", 5)
	b := r.appendTo(nil)
	if got, ok := parseRecord(b[:len(b)-1]); !ok || got != r {
		t.Fatalf("round trip %+v → %q → %+v", r, b, got)
	}
}
