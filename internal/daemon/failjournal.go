package daemon

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"io/fs"
	"os"
	"strconv"
	"sync"
	"time"
)

// failJournal makes failure counting exactly-once across a crash.
//
// Read positions are saved some time after lines are processed, so after a
// kill -9 the sources deliver again the lines processed since the last
// save, while the jails' in-memory counters are gone. The journal records
// every counted failure (jail, line identity, address, times). Records are
// buffered and written to the file (flush) before any read position is
// saved (the daemon's PositionStore calls flush first), so:
//
//   - a line whose position was saved has its record in the file: at
//     start-up the records still inside their jail's findtime are replayed
//     into the jails, and their line identities remembered so that a line
//     delivered again is not counted twice;
//   - a line whose record was still buffered at the crash had no saved
//     position either: it is delivered again and counted then.
//
// A flushed write survives a killed process (page cache); a power loss may
// lose the last records, which then costs at most those counts. The file
// is compacted to the records that can still matter: inside findtime, and
// at most failtable.size × maxretry per jail.
type failJournal struct {
	path string

	mu   sync.Mutex
	f    *os.File
	w    *bufio.Writer
	n    int              // records written since the last compaction
	seen map[uint64]int64 // line identities replayed at start-up → expiry (unix ns)
	buf  []byte
}

// failRecord is one journal line: "jail\tkey\tid\tT\tNow\n" (times in unix
// ns; T is the failure's time, Now when it was observed).
type failRecord struct {
	Jail string
	Key  uint64
	ID   string
	T    int64
	Now  int64
}

func (r failRecord) appendTo(b []byte) []byte {
	b = append(b, r.Jail...)
	b = append(b, '\t')
	b = strconv.AppendUint(b, r.Key, 16)
	b = append(b, '\t')
	b = append(b, r.ID...)
	b = append(b, '\t')
	b = strconv.AppendInt(b, r.T, 10)
	b = append(b, '\t')
	b = strconv.AppendInt(b, r.Now, 10)
	return append(b, '\n')
}

func parseRecord(line []byte) (failRecord, bool) {
	f := bytes.Split(line, []byte{'\t'})
	if len(f) != 5 || len(f[0]) == 0 {
		return failRecord{}, false
	}
	k, err1 := strconv.ParseUint(string(f[1]), 16, 64)
	t, err2 := strconv.ParseInt(string(f[3]), 10, 64)
	n, err3 := strconv.ParseInt(string(f[4]), 10, 64)
	if err1 != nil || err2 != nil || err3 != nil {
		return failRecord{}, false
	}
	return failRecord{Jail: string(f[0]), Key: k, ID: string(f[2]), T: t, Now: n}, true
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

// eachRecord calls fn for every decodable record of the file at path
// (undecodable lines, such as a torn last write, are skipped).
func eachRecord(path string, fn func(failRecord)) error {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("failure journal: %w", err)
	}
	defer f.Close()
	br := bufio.NewReaderSize(f, 64<<10)
	for {
		line, err := br.ReadSlice('\n')
		if err == nil {
			if r, ok := parseRecord(line[:len(line)-1]); ok {
				fn(r)
			}
			continue
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			// Not a record of ours: skip to the next newline.
			for errors.Is(err, bufio.ErrBufferFull) {
				_, err = br.ReadSlice('\n')
			}
			continue
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		return fmt.Errorf("failure journal: %w", err)
	}
}

// openFailJournal reads the journal at path and returns it with the
// records keep accepts (oldest first).
func openFailJournal(path string, keep func(failRecord) bool) (*failJournal, []failRecord, error) {
	var recs []failRecord
	if err := eachRecord(path, func(r failRecord) {
		if keep(r) {
			recs = append(recs, r)
		}
	}); err != nil {
		return nil, nil, err
	}
	j := &failJournal{path: path, seen: map[uint64]int64{}}
	j.mu.Lock()
	defer j.mu.Unlock()
	if err := j.rewriteLocked(func(w *bufio.Writer) error {
		var b []byte
		for _, r := range recs {
			b = r.appendTo(b[:0])
			if _, err := w.Write(b); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return nil, nil, err
	}
	j.n = len(recs)
	return j, recs, nil
}

// rewriteLocked replaces the journal with what fill writes (crash-safe:
// temp file, fsync, rename) and opens it for appending.
func (j *failJournal) rewriteLocked(fill func(*bufio.Writer) error) error {
	tmp := j.path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("failure journal: %w", err)
	}
	w := bufio.NewWriterSize(f, 64<<10)
	err = fill(w)
	if err == nil {
		err = w.Flush()
	}
	if err == nil {
		err = f.Sync()
	}
	f.Close()
	if err == nil {
		err = os.Rename(tmp, j.path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("failure journal: %w", err)
	}
	if j.f != nil {
		j.f.Close()
	}
	j.f, err = os.OpenFile(j.path, os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		j.f, j.w = nil, nil
		return fmt.Errorf("failure journal: %w", err)
	}
	j.w = bufio.NewWriterSize(j.f, 64<<10)
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

// append buffers a counted failure; flush writes it out.
func (j *failJournal) append(r failRecord) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.w == nil {
		return errors.New("failure journal closed")
	}
	j.buf = r.appendTo(j.buf[:0])
	j.n++
	_, err := j.w.Write(j.buf)
	return err
}

// flush writes the buffered records to the file (before a read position
// is saved).
func (j *failJournal) flush() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.w == nil {
		return nil
	}
	return j.w.Flush()
}

// compact keeps the records keep accepts, at most limit(jail) per jail
// (the newest), streaming the file.
func (j *failJournal) compact(keep func(failRecord) bool, limit func(jail string) int) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.w == nil {
		return errors.New("failure journal closed")
	}
	if err := j.w.Flush(); err != nil {
		return fmt.Errorf("failure journal: %w", err)
	}
	count := map[string]int{}
	if err := eachRecord(j.path, func(r failRecord) {
		if keep(r) {
			count[r.Jail]++
		}
	}); err != nil {
		return err
	}
	skip := map[string]int{}
	total := 0
	for name, n := range count {
		if l := limit(name); n > l {
			skip[name] = n - l
			n = l
		}
		total += n
	}
	err := j.rewriteLocked(func(w *bufio.Writer) error {
		var b []byte
		var werr error
		err := eachRecord(j.path, func(r failRecord) {
			if werr != nil || !keep(r) {
				return
			}
			if skip[r.Jail] > 0 {
				skip[r.Jail]--
				return
			}
			b = r.appendTo(b[:0])
			_, werr = w.Write(b)
		})
		if err != nil {
			return err
		}
		return werr
	})
	if err != nil {
		return err
	}
	j.n = total
	now := time.Now().UnixNano()
	for k, exp := range j.seen {
		if exp < now {
			delete(j.seen, k)
		}
	}
	return nil
}

// size is the number of records written since the last compaction.
func (j *failJournal) size() int {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.n
}

// Close flushes and closes the journal.
func (j *failJournal) Close() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.f == nil {
		return nil
	}
	ferr := j.w.Flush()
	err := j.f.Close()
	j.f, j.w = nil, nil
	if ferr != nil {
		return ferr
	}
	return err
}
