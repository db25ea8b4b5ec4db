package daemon

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"os"
	"sync"
	"time"
)

// failJournal makes failure counting exactly-once across a crash.
//
// Read positions are saved some time after lines are processed, so after a
// kill -9 the sources deliver again the lines processed since the last
// save, while the jails' in-memory counters are gone. The journal records
// every counted failure (jail, line identity, address, time) with a plain
// write before the line's processing returns, hence before its position
// can be saved. At start-up the records still inside their jail's findtime
// are replayed into the jails (the counters come back) and their line
// identities are remembered, so the lines delivered again are recognised
// and not counted twice. Records that fall out of every findtime are
// dropped when the journal is compacted.
//
// A write survives a killed process (it is in the page cache); a power
// loss may lose the last records, which then costs at most those counts.
type failJournal struct {
	path string

	mu   sync.Mutex
	f    *os.File
	w    *bufio.Writer
	n    int              // records written since the last compaction
	seen map[uint64]int64 // line identities replayed at start-up → expiry (unix ns)
}

// failRecord is one journal line.
type failRecord struct {
	Jail string `json:"j"`
	Key  uint64 `json:"k"`
	ID   string `json:"id"`
	// T is the failure's time, Now when it was observed (unix ns).
	T   int64 `json:"t"`
	Now int64 `json:"n"`
}

// lineKey identifies a line of a source for a jail.
func lineKey(jail, src, text string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(jail))
	h.Write([]byte{0})
	h.Write([]byte(src))
	h.Write([]byte{0})
	h.Write([]byte(text))
	return h.Sum64()
}

// openFailJournal reads the journal at path and returns it with its
// records (oldest first). A missing journal is empty; undecodable lines
// (a torn last write) are skipped.
func openFailJournal(path string) (*failJournal, []failRecord, error) {
	var recs []failRecord
	data, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, nil, fmt.Errorf("failure journal: %w", err)
	}
	start := 0
	for i := 0; i < len(data); i++ {
		if data[i] != '\n' {
			continue
		}
		var r failRecord
		if json.Unmarshal(data[start:i], &r) == nil && r.Jail != "" {
			recs = append(recs, r)
		}
		start = i + 1
	}
	j := &failJournal{path: path, seen: map[uint64]int64{}}
	if err := j.rewrite(recs); err != nil {
		return nil, nil, err
	}
	return j, recs, nil
}

// rewrite replaces the journal with recs (crash-safe: temp file + rename)
// and opens it for appending.
func (j *failJournal) rewrite(recs []failRecord) error {
	tmp := j.path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("failure journal: %w", err)
	}
	w := bufio.NewWriter(f)
	enc := json.NewEncoder(w)
	for _, r := range recs {
		if err := enc.Encode(r); err != nil {
			f.Close()
			return fmt.Errorf("failure journal: %w", err)
		}
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return fmt.Errorf("failure journal: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("failure journal: %w", err)
	}
	f.Close()
	if err := os.Rename(tmp, j.path); err != nil {
		return fmt.Errorf("failure journal: %w", err)
	}
	if j.f != nil {
		j.f.Close()
	}
	j.f, err = os.OpenFile(j.path, os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("failure journal: %w", err)
	}
	j.w = bufio.NewWriterSize(j.f, 4096)
	j.n = len(recs)
	return nil
}

// remember marks a replayed line identity until expires.
func (j *failJournal) remember(key uint64, expires time.Time) {
	j.mu.Lock()
	j.seen[key] = expires.UnixNano()
	j.mu.Unlock()
}

// replayed reports whether the line identity was replayed at start-up
// (and so must not be counted again); each identity matches once.
func (j *failJournal) replayed(key uint64) bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	if len(j.seen) == 0 {
		return false
	}
	if _, ok := j.seen[key]; ok {
		delete(j.seen, key)
		return true
	}
	return false
}

// append records a counted failure; the write reaches the kernel before
// append returns.
func (j *failJournal) append(r failRecord) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.w == nil {
		return errors.New("failure journal closed")
	}
	j.w.Write(b)
	j.w.WriteByte('\n')
	j.n++
	return j.w.Flush()
}

// compact keeps the records keep accepts (records still within findtime).
func (j *failJournal) compact(keep func(failRecord) bool) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.w != nil {
		j.w.Flush()
	}
	_, recs, err := readRecords(j.path)
	if err != nil {
		return err
	}
	out := recs[:0]
	for _, r := range recs {
		if keep(r) {
			out = append(out, r)
		}
	}
	now := time.Now().UnixNano()
	for k, exp := range j.seen {
		if exp < now {
			delete(j.seen, k)
		}
	}
	return j.rewrite(out)
}

// size is the number of records written since the last compaction.
func (j *failJournal) size() int {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.n
}

func readRecords(path string) (int, []failRecord, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return 0, nil, nil
		}
		return 0, nil, fmt.Errorf("failure journal: %w", err)
	}
	defer f.Close()
	var recs []failRecord
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	bad := 0
	for sc.Scan() {
		var r failRecord
		if json.Unmarshal(sc.Bytes(), &r) == nil && r.Jail != "" {
			recs = append(recs, r)
		} else {
			bad++
		}
	}
	return bad, recs, sc.Err()
}

func (j *failJournal) Close() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.f == nil {
		return nil
	}
	j.w.Flush()
	err := j.f.Close()
	j.f, j.w = nil, nil
	return err
}
