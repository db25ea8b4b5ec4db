// Package failjournal makes failure counting exactly-once across a crash,
// within a bounded file.
//
// Read positions are saved some time after lines are processed, so after a
// kill -9 the sources deliver again the lines processed since the last
// save, while the jails' in-memory counters are gone. The journal records
// every counted failure (jail, line identity, address, times). Records are
// buffered and written to the file (Flush) before any read position is
// saved (the daemon's PositionStore calls Flush first), so:
//
//   - a line whose position was saved has its record in the file: at
//     start-up (Open) the records still inside their jail's findtime are
//     replayed into the jails, and the identities of the lines recorded
//     after their source's last saved position (Checkpoint writes a marker
//     for it) are remembered, so that a line delivered again is not
//     counted twice;
//   - a line whose record was still buffered at the crash had no saved
//     position either: it is delivered again and counted then.
//
// A flushed write survives a killed process (page cache); a power loss may
// lose the last records, which then costs at most those counts.
//
// The file is bounded by size as well as by time. Compaction keeps the
// records that can still matter (inside findtime, of an address the jail
// still tracks, at most Limit per jail) and at most Options.MaxBytes/2 of
// them; it is due (Due) as soon as the records appended since the last
// compaction outgrow both what it kept and Options.MinCompact, so under a
// flood of distinct attackers the file stays near MaxBytes and a restart
// reads at most that much, streaming.
package failjournal

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"io/fs"
	"math"
	"os"
	"strconv"
	"sync"
	"time"
)

// Defaults for Options.
const (
	DefaultMaxBytes     = 16 << 20
	DefaultMinCompact   = 2 << 20
	DefaultDedupeWindow = 2 * time.Minute
	readBufferSize      = 256 << 10
	writeBufferSize     = 64 << 10
	journalFileMode     = 0o600
	tempSuffix          = ".tmp"
)

// Record is one counted failure: "jail\tkey\tid\tT\tNow\tsrc\n" in the
// file (times in unix ns; T is the failure's time, Now when it was
// observed; src is SourceKey of the line's source; records written before
// src existed have five fields and Src 0).
type Record struct {
	Jail string
	Key  uint64
	ID   string
	T    int64
	Now  int64
	Src  uint64
}

// markerJail is the jail field of a checkpoint marker (no jail is named
// so): "#\tsrc\t\t0\t0".
const markerJail = "#"

func (r Record) marker() bool { return r.Jail == markerJail }

func (r Record) appendTo(b []byte) []byte {
	b = append(b, r.Jail...)
	b = append(b, '\t')
	b = strconv.AppendUint(b, r.Key, 16)
	b = append(b, '\t')
	b = append(b, r.ID...)
	b = append(b, '\t')
	b = strconv.AppendInt(b, r.T, 10)
	b = append(b, '\t')
	b = strconv.AppendInt(b, r.Now, 10)
	if r.Src != 0 {
		b = append(b, '\t')
		b = strconv.AppendUint(b, r.Src, 16)
	}
	return append(b, '\n')
}

func parseRecord(line []byte) (Record, bool) {
	var f [6][]byte
	n := 0
	for n < 5 {
		i := bytes.IndexByte(line, '\t')
		if i < 0 {
			break
		}
		f[n], line = line[:i], line[i+1:]
		n++
	}
	if n < 4 || bytes.IndexByte(line, '\t') >= 0 || len(f[0]) == 0 {
		return Record{}, false
	}
	f[n] = line
	k, ok1 := parseHex(f[1])
	t, ok2 := parseDec(f[3])
	now, ok3 := parseDec(f[4])
	if !ok1 || !ok2 || !ok3 {
		return Record{}, false
	}
	r := Record{Jail: string(f[0]), Key: k, ID: string(f[2]), T: t, Now: now}
	if n == 5 {
		src, ok := parseHex(f[5])
		if !ok || src == 0 {
			return Record{}, false
		}
		r.Src = src
	}
	return r, true
}

// SourceKey identifies a line source (a file path, "journal:KEY") in
// records and checkpoint markers.
func SourceKey(src string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(src))
	if k := h.Sum64(); k != 0 {
		return k
	}
	return 1
}

// parseHex reads 1 to 16 lower-case hex digits (strconv.AppendUint's form).
func parseHex(b []byte) (uint64, bool) {
	if len(b) == 0 || len(b) > 16 {
		return 0, false
	}
	var v uint64
	for _, c := range b {
		switch {
		case c >= '0' && c <= '9':
			v = v<<4 | uint64(c-'0')
		case c >= 'a' && c <= 'f':
			v = v<<4 | uint64(c-'a'+10)
		default:
			return 0, false
		}
	}
	return v, true
}

// parseDec reads an optionally negative decimal that fits an int64 (unix
// nanoseconds).
func parseDec(b []byte) (int64, bool) {
	neg := len(b) > 0 && b[0] == '-'
	if neg {
		b = b[1:]
	}
	if len(b) == 0 || len(b) > 19 {
		return 0, false
	}
	var v uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + uint64(c-'0')
	}
	if v > math.MaxInt64 {
		return 0, false
	}
	if neg {
		return -int64(v), true
	}
	return int64(v), true
}

// LineKey identifies a line of a source for a jail.
func LineKey(jail, src, text string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(jail))
	h.Write([]byte{0})
	h.Write([]byte(src))
	h.Write([]byte{0})
	h.Write([]byte(text))
	return h.Sum64()
}

// each calls fn for every decodable record of the first size bytes of
// the file at path (size < 0: all of it). Undecodable lines, such as a
// torn last write, are skipped.
func each(path string, size int64, fn func(Record, int)) error {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("failure journal: %w", err)
	}
	defer f.Close()
	var r io.Reader = f
	if size >= 0 {
		r = io.LimitReader(f, size)
	}
	br := bufio.NewReaderSize(r, readBufferSize)
	for {
		line, err := br.ReadSlice('\n')
		if err == nil {
			if rec, ok := parseRecord(line[:len(line)-1]); ok {
				fn(rec, len(line))
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

// Options tune a Journal. Zero values pick the defaults.
type Options struct {
	// MaxBytes bounds the file: compaction keeps at most half of it, and
	// is due before the file outgrows it (default 16 MiB).
	MaxBytes int64
	// MinCompact is the least growth since the last compaction that makes
	// one due (default 2 MiB).
	MinCompact int64
	// DedupeWindow: the identities of the lines recorded within this
	// time before the newest record are remembered at Open, to recognise
	// lines delivered again (default 2m; positions are saved every
	// second or so, so older lines are never delivered again).
	DedupeWindow time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Policy says which records can still matter; Open and Compact apply it.
type Policy struct {
	// Keep accepts a record (nil: every record).
	Keep func(Record) bool
	// Limit is the most records kept for a jail, the newest (nil or <= 0:
	// no limit).
	Limit func(jail string) int
}

// Journal is the failure journal. It is safe for concurrent use.
type Journal struct {
	path string
	opts Options

	mu      sync.Mutex
	f       *os.File
	w       *bufio.Writer
	size    int64            // bytes in the file, buffered included
	base    int64            // size after the last compaction (or Open)
	records int              // records in the file
	seen    map[uint64]int64 // line identities replayed at Open → expiry (unix ns)
	buf     []byte
	due     chan struct{}

	compactMu sync.Mutex // one compaction at a time
}

// Stats describe the journal.
type Stats struct {
	Bytes   int64
	Records int
	// Remembered is the number of replayed line identities still
	// recognised.
	Remembered int
}

// Open reads the journal at path (creating it when missing), calls
// replay with every record policy keeps (oldest first, streamed: the
// records are never held in memory), rewrites the file with those
// records, and returns the journal ready for appending.
func Open(path string, opts Options, policy Policy, replay func(Record)) (*Journal, error) {
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = DefaultMaxBytes
	}
	if opts.MinCompact <= 0 {
		opts.MinCompact = DefaultMinCompact
	}
	if opts.DedupeWindow <= 0 {
		opts.DedupeWindow = DefaultDedupeWindow
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	j := &Journal{path: path, opts: opts, seen: map[uint64]int64{}, due: make(chan struct{}, 1)}
	var pass passInfo // filterInto's first pass
	expiry := opts.Now().Add(opts.DedupeWindow).UnixNano()
	j.mu.Lock()
	defer j.mu.Unlock()
	tmp, err := j.createTemp()
	if err != nil {
		return nil, err
	}
	n, err := filterInto(tmp, path, -1, policy, opts.MaxBytes/2, &pass, func(r Record, index int) {
		// A line recorded after its source's last saved position may be
		// delivered again: remember it. (Records without a source, from
		// an older palisade: those of the last DedupeWindow.)
		if (r.Src != 0 && index > pass.lastMarker[r.Src]) || (r.Src == 0 && r.Now >= pass.newest-opts.DedupeWindow.Nanoseconds()) {
			j.seen[r.Key] = expiry
		}
		if replay != nil {
			replay(r)
		}
	})
	if err == nil {
		err = j.install(tmp, n)
	}
	if err != nil {
		tmp.abort()
		return nil, err
	}
	return j, nil
}

// temp is a file being written to replace the journal.
type temp struct {
	f     *os.File
	w     *bufio.Writer
	path  string
	bytes int64
}

func (j *Journal) createTemp() (*temp, error) {
	p := j.path + tempSuffix
	f, err := os.OpenFile(p, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, journalFileMode)
	if err != nil {
		return nil, fmt.Errorf("failure journal: %w", err)
	}
	return &temp{f: f, w: bufio.NewWriterSize(f, writeBufferSize), path: p}, nil
}

func (t *temp) abort() {
	t.f.Close()
	os.Remove(t.path)
}

// passInfo is what filterInto's first pass learns.
type passInfo struct {
	newest     int64          // the newest record's Now
	lastMarker map[uint64]int // source → index of its last checkpoint marker
}

// filterInto writes the records of the first size bytes of src that
// policy keeps, at most budget bytes of them (dropping the oldest), and the
// last checkpoint marker of each source, in file order, to t, calling
// written with every record written and its index among the file's lines.
// It reads src twice; the first pass fills *pass (when not nil). It
// returns the number of records written.
func filterInto(t *temp, src string, size int64, policy Policy, budget int64, pass *passInfo, written func(Record, int)) (int, error) {
	keep := policy.Keep
	if keep == nil {
		keep = func(Record) bool { return true }
	}
	if pass == nil {
		pass = &passInfo{}
	}
	pass.lastMarker = map[uint64]int{}
	count := map[string]int{}
	var total int64
	index := 0
	if err := each(src, size, func(r Record, ln int) {
		index++
		if r.marker() {
			pass.lastMarker[r.Key] = index
			return
		}
		pass.newest = max(pass.newest, r.Now)
		if keep(r) {
			count[r.Jail]++
			total += int64(ln)
		}
	}); err != nil {
		return 0, err
	}
	skip := map[string]int{}
	if policy.Limit != nil {
		for name, n := range count {
			if l := policy.Limit(name); l > 0 && n > l {
				skip[name] = n - l
			}
		}
	}
	// Over the byte budget: drop the oldest kept records first. (The
	// estimate counts records the per-jail limit drops too; it errs on
	// the side of keeping more.)
	drop := max(total-budget, 0)
	var b []byte
	var werr error
	n := 0
	index = 0
	err := each(src, size, func(r Record, ln int) {
		index++
		if werr != nil {
			return
		}
		if r.marker() {
			if pass.lastMarker[r.Key] == index {
				b = r.appendTo(b[:0])
				_, werr = t.w.Write(b)
				t.bytes += int64(len(b))
			}
			return
		}
		if !keep(r) {
			return
		}
		if skip[r.Jail] > 0 {
			skip[r.Jail]--
			drop -= int64(ln)
			return
		}
		if drop > 0 {
			drop -= int64(ln)
			return
		}
		b = r.appendTo(b[:0])
		if _, werr = t.w.Write(b); werr == nil {
			t.bytes += int64(len(b))
			n++
			if written != nil {
				written(r, index)
			}
		}
	})
	if err == nil {
		err = werr
	}
	if err != nil {
		return 0, fmt.Errorf("failure journal: %w", err)
	}
	return n, nil
}

// install makes t the journal (flushed, synced, renamed) and opens it for
// appending (mu held).
func (j *Journal) install(t *temp, records int) error {
	err := t.w.Flush()
	if err == nil {
		err = t.f.Sync()
	}
	if cerr := t.f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(t.path, j.path)
	}
	if err != nil {
		os.Remove(t.path)
		return fmt.Errorf("failure journal: %w", err)
	}
	if j.f != nil {
		j.f.Close()
	}
	j.f, err = os.OpenFile(j.path, os.O_APPEND|os.O_WRONLY, journalFileMode)
	if err != nil {
		j.f, j.w = nil, nil
		return fmt.Errorf("failure journal: %w", err)
	}
	j.w = bufio.NewWriterSize(j.f, writeBufferSize)
	j.size, j.base, j.records = t.bytes, t.bytes, records
	return nil
}

// Replayed reports whether the line identity was replayed at Open (and
// so must not be counted again); each identity matches once.
func (j *Journal) Replayed(key uint64) bool {
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

// Append buffers a counted failure; Flush writes it out. When the file
// has grown enough, Due is signalled.
func (j *Journal) Append(r Record) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.w == nil {
		return errors.New("failure journal closed")
	}
	j.buf = r.appendTo(j.buf[:0])
	if _, err := j.w.Write(j.buf); err != nil {
		return fmt.Errorf("failure journal: %w", err)
	}
	j.size += int64(len(j.buf))
	j.records++
	if j.size-j.base > max(j.base, j.opts.MinCompact) || j.size > j.opts.MaxBytes {
		select {
		case j.due <- struct{}{}:
		default:
		}
	}
	return nil
}

// Checkpoint makes every record appended so far durable (Flush) and marks
// that the position of source src is about to be saved: lines of src
// recorded before the marker are never delivered again after a restart.
// Call it before saving src's read position.
func (j *Journal) Checkpoint(src string) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.w == nil {
		return nil
	}
	j.buf = Record{Jail: markerJail, Key: SourceKey(src)}.appendTo(j.buf[:0])
	if _, err := j.w.Write(j.buf); err != nil {
		return fmt.Errorf("failure journal: %w", err)
	}
	j.size += int64(len(j.buf))
	if err := j.w.Flush(); err != nil {
		return fmt.Errorf("failure journal: %w", err)
	}
	return nil
}

// Due is signalled when a compaction is due because of the file's size.
func (j *Journal) Due() <-chan struct{} { return j.due }

// Full reports whether the file has outgrown Options.MaxBytes: a due
// compaction must then not wait.
func (j *Journal) Full() bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.size > j.opts.MaxBytes
}

// Flush writes the buffered records to the file (before a read position
// is saved).
func (j *Journal) Flush() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.w == nil {
		return nil
	}
	if err := j.w.Flush(); err != nil {
		return fmt.Errorf("failure journal: %w", err)
	}
	return nil
}

// Compact rewrites the file with the records policy keeps (at most half of
// Options.MaxBytes, the newest). Appends continue while it runs: it reads
// the file up to where it stood at the start without holding the lock,
// then, holding it, copies what was appended meanwhile and swaps the files.
func (j *Journal) Compact(policy Policy) error {
	j.compactMu.Lock()
	defer j.compactMu.Unlock()
	j.mu.Lock()
	if j.w == nil {
		j.mu.Unlock()
		return errors.New("failure journal closed")
	}
	if err := j.w.Flush(); err != nil {
		j.mu.Unlock()
		return fmt.Errorf("failure journal: %w", err)
	}
	cut := j.size
	recordsAtCut := j.records
	j.mu.Unlock()

	t, err := j.createTemp()
	if err != nil {
		return err
	}
	n, err := filterInto(t, j.path, cut, policy, j.opts.MaxBytes/2, nil, nil)
	if err != nil {
		t.abort()
		return err
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.w == nil {
		t.abort()
		return errors.New("failure journal closed")
	}
	err = j.w.Flush()
	tail := j.size - cut
	tailRecords := j.records - recordsAtCut
	if err == nil && tail > 0 {
		err = copyTail(t, j.path, cut, tail)
	}
	if err == nil {
		kept := t.bytes
		err = j.install(t, n+tailRecords)
		j.base = kept - tail
	}
	if err != nil {
		t.abort()
		return err
	}
	now := j.opts.Now().UnixNano()
	for k, exp := range j.seen {
		if exp < now {
			delete(j.seen, k)
		}
	}
	return nil
}

// copyTail appends n bytes of the file at path from offset off to t.
func copyTail(t *temp, path string, off, n int64) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("failure journal: %w", err)
	}
	defer f.Close()
	w, err := io.Copy(t.w, io.NewSectionReader(f, off, n))
	t.bytes += w
	if err != nil {
		return fmt.Errorf("failure journal: %w", err)
	}
	return nil
}

// Stats returns the journal's size.
func (j *Journal) Stats() Stats {
	j.mu.Lock()
	defer j.mu.Unlock()
	return Stats{Bytes: j.size, Records: j.records, Remembered: len(j.seen)}
}

// Close flushes and closes the journal.
func (j *Journal) Close() error {
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
