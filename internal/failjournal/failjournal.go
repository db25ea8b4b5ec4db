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
// The journal is bounded by size as well as by time. Compaction keeps the
// records that can still matter (inside findtime, of an address the jail
// still tracks, at most Limit per jail) and at most Options.MaxBytes/2 of
// them; it is due (Due) as soon as the records appended since the last
// compaction outgrow both what it kept and Options.MinCompact. The bound
// does not depend on compaction keeping up: the write path itself rotates
// segments. Records go to the active file (path); when it would grow past
// MaxBytes/2 it becomes the sealed segment (path + ".1"), replacing the
// one before, whose records (the oldest) are dropped, and a new active
// file starts. Rotation is a rename and an open, done by the writer
// without holding up appends. So the files together never hold more than
// Options.MaxBytes, however fast a flood, and a restart reads at most that
// much, streaming.
package failjournal

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"net/netip"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults for Options.
const (
	DefaultMaxBytes     = 16 << 20
	DefaultMinCompact   = 2 << 20
	DefaultDedupeWindow = 2 * time.Minute
	readBufferSize      = 256 << 10
	writeBufferSize     = 64 << 10
	writeQueue          = 16 // buffers handed to the writer, at most
	journalFileMode     = 0o600
	tempSuffix          = ".tmp"
	// SealedSuffix names the sealed segment (path + SealedSuffix).
	SealedSuffix = ".1"
)

// Record is one counted failure: "jail\tkey\tid\tT\tNow\tsrc\n" in the
// file (times in unix ns; T is the failure's time, Now when it was
// observed; src is SourceKey of the line's source; records written before
// src existed have five fields and Src 0).
type Record struct {
	Jail string
	Key  uint64
	ID   string
	// Addr, when valid, is the id (an address): it is written in ID's
	// place without making its string first. Records read back have ID.
	Addr netip.Addr
	T    int64
	Now  int64
	Src  uint64
}

// Identity is the record's id as written: Addr's text when it is valid,
// else ID.
func (r Record) Identity() string {
	if r.Addr.IsValid() {
		return r.Addr.String()
	}
	return r.ID
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
	if r.Addr.IsValid() {
		b = r.Addr.AppendTo(b)
	} else {
		b = append(b, r.ID...)
	}
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
	if k := fnv1a(fnvOffset, src); k != 0 {
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
	return LineKeys(jail, src).Line(text)
}

// Keys are a jail's source's SourceKey and the hash of the part of a
// LineKey that is the same for each of its lines, for a reader that keys
// many lines of one source (LineKeys(jail, src).Line(text) is
// LineKey(jail, src, text)).
type Keys struct {
	Src    uint64 // SourceKey(src)
	prefix uint64
}

// LineKeys returns the keys of jail's lines of src.
func LineKeys(jail, src string) Keys {
	h := fnv1a(fnvOffset, jail)
	h = fnv1a(h, "\x00")
	h = fnv1a(h, src)
	h = fnv1a(h, "\x00")
	return Keys{Src: SourceKey(src), prefix: h}
}

// Line is LineKey(jail, src, text) for the jail and src of k.
func (k Keys) Line(text string) uint64 { return fnv1a(k.prefix, text) }

// FNV-1a, 64 bits (hash/fnv's New64a), over strings without copying them
// to byte slices: LineKey runs for every line with a failure.
const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

func fnv1a(h uint64, s string) uint64 {
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= fnvPrime
	}
	return h
}

// segment is a part of the journal to read: the file at path (or f when
// set), its first size bytes (size < 0: all of it).
type segment struct {
	path string
	f    *os.File
	size int64
}

// each calls fn for every decodable record of the segments, in order.
// Undecodable lines, such as a torn last write, are skipped. A missing
// file is an empty segment.
func each(segs []segment, fn func(Record, int)) error {
	for _, s := range segs {
		if err := eachOf(s, fn); err != nil {
			return err
		}
	}
	return nil
}

func eachOf(s segment, fn func(Record, int)) error {
	var r io.Reader
	if s.f != nil {
		if s.size < 0 {
			return errors.New("failure journal: open segment without a size")
		}
		r = io.NewSectionReader(s.f, 0, s.size)
	} else {
		f, err := os.Open(s.path)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("failure journal: %w", err)
		}
		defer f.Close()
		r = f
		if s.size >= 0 {
			r = io.LimitReader(f, s.size)
		}
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
	// MaxBytes bounds the journal's files together: compaction keeps at
	// most half of it, and the active file is sealed when it would grow
	// past half of it (default 16 MiB).
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
//
// Appends only copy the record into a buffer under mu. A full buffer (and
// Flush's) is handed, in order, to the journal's writer goroutine, which
// writes, and seals and starts files, under wmu; so jails on other
// goroutines go on appending while a write, a rotation or the end of a
// compaction is under way. Lock order: mu, then wmu.
type Journal struct {
	path string
	opts Options

	mu       sync.Mutex
	closed   bool
	pend     []byte           // records not yet handed to the writer
	pendRecs int              // records in pend
	seen     map[uint64]int64 // line identities replayed at Open → expiry (unix ns)
	due      chan struct{}
	writes   chan write // to the writer, sent under mu (so in order)
	pool     sync.Pool  // of write buffers
	stopped  chan struct{}

	// nseen is len(seen), so that Replayed needs no lock once every
	// replayed identity matched or expired (the usual case).
	nseen atomic.Int64
	// disk is the bytes in the files (sealed and active), recs the
	// records in them, queued the bytes and records handed to the
	// writer and not yet written, base the bytes a compaction (or Open)
	// kept.
	disk, recs, queued, queuedRecs, base atomic.Int64

	wmu        sync.Mutex
	f          *os.File // the active file
	active     int64    // bytes in the active file
	activeRecs int64
	sealed     int64 // bytes in the sealed segment (0: none)
	sealedRecs int64
	rotations  uint64 // since Open
	werr       error  // the writer's first error since it was taken
	werrSet    atomic.Int32

	compactMu sync.Mutex // one compaction at a time
}

// write is a buffer of records for the writer; done (when set) is closed
// once it is written, with err set.
type write struct {
	buf  *[]byte
	recs int64
	done chan error
}

// Stats describe the journal.
type Stats struct {
	// Bytes and Records are in the files (sealed segment, active file)
	// and the write buffer.
	Bytes   int64
	Records int
	// Rotations counts the active files sealed since Open.
	Rotations uint64
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
	j := &Journal{path: path, opts: opts, seen: map[uint64]int64{}, due: make(chan struct{}, 1),
		writes: make(chan write, writeQueue), stopped: make(chan struct{})}
	var pass passInfo // filterInto's first pass
	expiry := opts.Now().Add(opts.DedupeWindow).UnixNano()
	j.mu.Lock()
	defer j.mu.Unlock()
	tmp, err := j.createTemp()
	if err != nil {
		return nil, err
	}
	segs := []segment{{path: path + SealedSuffix, size: -1}, {path: path, size: -1}}
	n, err := filterInto(tmp, segs, policy, opts.MaxBytes/2, &pass, func(r Record, index int) {
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
		err = tmp.finish()
	}
	if err == nil {
		err = j.install(tmp, int64(n))
	}
	if err != nil {
		tmp.abort()
		return nil, err
	}
	j.nseen.Store(int64(len(j.seen)))
	go j.writer()
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

// finish writes out and syncs what t holds so far.
func (t *temp) finish() error {
	err := t.w.Flush()
	if err == nil {
		err = t.f.Sync()
	}
	if err != nil {
		return fmt.Errorf("failure journal: %w", err)
	}
	return nil
}

// passInfo is what filterInto's first pass learns.
type passInfo struct {
	newest     int64          // the newest record's Now
	lastMarker map[uint64]int // source → index of its last checkpoint marker
}

// filterInto writes the records of the segments that policy keeps, at most budget bytes of them (dropping the oldest), and the
// last checkpoint marker of each source, in file order, to t, calling
// written with every record written and its index among the segments'
// lines. It reads the segments twice; the first pass fills *pass (when
// not nil). It returns the number of records written.
func filterInto(t *temp, segs []segment, policy Policy, budget int64, pass *passInfo, written func(Record, int)) (int, error) {
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
	var kept []uint64 // bit i: the policy keeps the record at index i
	index := 0
	if err := each(segs, func(r Record, ln int) {
		index++
		if r.marker() {
			pass.lastMarker[r.Key] = index
			return
		}
		pass.newest = max(pass.newest, r.Now)
		if keep(r) {
			// Remember the answer: policies can be costly (a look-up in
			// the jail, under its lock, per record).
			for len(kept) <= index/64 {
				kept = append(kept, 0)
			}
			kept[index/64] |= 1 << (index % 64)
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
	err := each(segs, func(r Record, ln int) {
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
		if index/64 >= len(kept) || kept[index/64]&(1<<(index%64)) == 0 {
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

// install makes t (finished) the journal: the sealed segment, whose kept
// records t holds, is removed, t is renamed over the active file and
// opened for appending (wmu held, or the journal not yet shared). A
// crash between the removal and the rename costs the sealed segment's
// records, the oldest, which a rotation would drop next anyway; never a
// record counted twice.
func (j *Journal) install(t *temp, records int64) error {
	err := t.f.Close()
	if err == nil {
		err = os.Remove(j.path + SealedSuffix)
		if errors.Is(err, fs.ErrNotExist) {
			err = nil
		}
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
		j.f = nil
		return fmt.Errorf("failure journal: %w", err)
	}
	j.active, j.activeRecs, j.sealed, j.sealedRecs = t.bytes, records, 0, 0
	j.disk.Store(t.bytes)
	j.recs.Store(records)
	return nil
}

// Replayed reports whether the line identity was replayed at Open (and
// so must not be counted again); each identity matches once.
func (j *Journal) Replayed(key uint64) bool {
	if j.nseen.Load() == 0 {
		return false
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if _, ok := j.seen[key]; ok {
		delete(j.seen, key)
		j.nseen.Store(int64(len(j.seen)))
		return true
	}
	return false
}

// Append buffers a counted failure; Flush writes it out. When the journal
// has grown enough, Due is signalled. It reports the error of an earlier
// write, once.
func (j *Journal) Append(r Record) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.closed {
		return errors.New("failure journal closed")
	}
	if j.pend == nil {
		j.pend = j.buffer()
	}
	j.pend = r.appendTo(j.pend)
	j.pendRecs++
	size := j.disk.Load() + j.queued.Load() + int64(len(j.pend))
	if base := j.base.Load(); size-base > max(base, j.opts.MinCompact) {
		j.signalDue()
	}
	if len(j.pend) >= j.writeAt() {
		j.handOff(nil)
	}
	return j.takeError()
}

// writeAt is the buffered size that makes Append hand the buffer to the
// writer: 64 KiB, less for a small bound (tests), so one write is a small
// part of MaxBytes.
func (j *Journal) writeAt() int {
	return int(min(writeBufferSize, j.opts.MaxBytes/16))
}

func (j *Journal) buffer() []byte {
	if b, ok := j.pool.Get().(*[]byte); ok {
		return (*b)[:0]
	}
	return make([]byte, 0, j.writeAt()+512)
}

// handOff gives the buffered records (possibly none) to the writer (mu
// held); done, when set, is closed once they are written.
func (j *Journal) handOff(done chan error) {
	buf := j.pend
	j.queued.Add(int64(len(buf)))
	j.queuedRecs.Add(int64(j.pendRecs))
	j.writes <- write{buf: &buf, recs: int64(j.pendRecs), done: done}
	j.pend, j.pendRecs = nil, 0
}

// takeError returns (and clears) the writer's first error since it was
// last taken (mu held).
func (j *Journal) takeError() error {
	if j.werrSet.Load() == 0 {
		return nil
	}
	j.wmu.Lock()
	err := j.werr
	j.werr = nil
	j.werrSet.Store(0)
	j.wmu.Unlock()
	return err
}

func (j *Journal) signalDue() {
	select {
	case j.due <- struct{}{}:
	default:
	}
}

// writer writes the buffers handed to it, in order, until the channel is
// closed (Close).
func (j *Journal) writer() {
	defer close(j.stopped)
	for w := range j.writes {
		j.wmu.Lock()
		err := j.write(*w.buf, w.recs)
		if err != nil && j.werr == nil {
			j.werr = err
			j.werrSet.Store(1)
		}
		j.wmu.Unlock()
		j.queued.Add(-int64(len(*w.buf)))
		j.queuedRecs.Add(-w.recs)
		if cap(*w.buf) <= 2*writeBufferSize {
			j.pool.Put(w.buf)
		}
		if w.done != nil {
			w.done <- err
		}
	}
}

// write appends buf (recs records) to the active file (wmu held). It
// seals the active file first when buf would take it past MaxBytes/2, or
// the files together past MaxBytes (after a compaction installed a file
// larger than half).
func (j *Journal) write(buf []byte, recs int64) error {
	if len(buf) == 0 {
		return nil
	}
	if j.f == nil {
		return errors.New("failure journal closed")
	}
	var rerr error
	if n := int64(len(buf)); j.active > 0 && (j.active+n > j.opts.MaxBytes/2 || j.sealed+j.active+n > j.opts.MaxBytes) {
		rerr = j.rotate()
	}
	n, err := j.f.Write(buf)
	j.active += int64(n)
	j.disk.Add(int64(n))
	if err != nil {
		// The records of a torn write are skipped when read.
		return fmt.Errorf("failure journal: %w", err)
	}
	j.activeRecs += recs
	j.recs.Add(recs)
	return rerr
}

// rotate seals the active file, dropping the sealed segment before it,
// and starts a new active file (wmu held). When the rename fails the
// journal goes on in the active file (over its bound rather than losing
// records); when the new file cannot be made, in the sealed one. Either
// is reported; the next write tries again.
func (j *Journal) rotate() error {
	sealed := j.path + SealedSuffix
	if err := os.Rename(j.path, sealed); err != nil {
		return fmt.Errorf("failure journal: seal the active file: %w", err)
	}
	dropped, droppedRecs := j.sealed, j.sealedRecs
	j.sealed, j.sealedRecs = j.active, j.activeRecs
	j.active, j.activeRecs = 0, 0
	j.disk.Add(-dropped)
	j.recs.Add(-droppedRecs)
	j.rotations++
	f, err := os.OpenFile(j.path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, journalFileMode)
	if err != nil {
		// Writes go on into the sealed file (j.f still has it open):
		// records stay in order.
		j.active, j.activeRecs = j.sealed, j.sealedRecs
		j.sealed, j.sealedRecs = 0, 0
		return fmt.Errorf("failure journal: new active file: %w", err)
	}
	j.f.Close()
	j.f = f
	j.signalDue()
	return nil
}

// flush hands the buffered records to the writer and waits until every
// record appended before it is written; extra is appended first (a
// checkpoint marker).
func (j *Journal) flush(extra []byte) error {
	j.mu.Lock()
	if j.closed {
		j.mu.Unlock()
		return nil
	}
	if len(extra) > 0 {
		if j.pend == nil {
			j.pend = j.buffer()
		}
		j.pend = append(j.pend, extra...)
	}
	done := make(chan error, 1)
	j.handOff(done)
	err := j.takeError()
	j.mu.Unlock()
	if werr := <-done; err == nil {
		err = werr
	}
	return err
}

// Checkpoint makes every record appended so far durable (Flush) and marks
// that the position of source src is about to be saved: lines of src
// recorded before the marker are never delivered again after a restart.
// Call it before saving src's read position.
func (j *Journal) Checkpoint(src string) error {
	return j.flush(Record{Jail: markerJail, Key: SourceKey(src)}.appendTo(nil))
}

// Due is signalled when a compaction is due because of the journal's
// size (and after each rotation).
func (j *Journal) Due() <-chan struct{} { return j.due }

// Flush writes the buffered records to the file (before a read position
// is saved). It returns once every record appended before it is written.
func (j *Journal) Flush() error { return j.flush(nil) }

// Compact rewrites the journal with the records policy keeps (at most
// half of Options.MaxBytes, the newest) in one active file. Appends go on
// while it runs: it reads the segments up to where they stood at the
// start, and copies most of what was appended meanwhile, without a lock;
// then, holding the writer's lock (appends go on into the buffer) for
// the last bytes only, it swaps the files. When the active file was
// sealed meanwhile (a flood at the bound) the work is dropped: the
// rotation already bounded the journal, and the next compaction starts
// from the new segments.
func (j *Journal) Compact(policy Policy) error {
	j.compactMu.Lock()
	defer j.compactMu.Unlock()
	if err := j.Flush(); err != nil {
		return err
	}
	j.wmu.Lock()
	if j.f == nil {
		j.wmu.Unlock()
		return errors.New("failure journal closed")
	}
	cut, cutRecs, sealedSize, rotations := j.active, j.activeRecs, j.sealed, j.rotations
	var segs []segment
	var files []*os.File
	var err error
	if sealedSize > 0 {
		var sf *os.File
		if sf, err = os.Open(j.path + SealedSuffix); err == nil {
			files = append(files, sf)
			segs = append(segs, segment{f: sf, size: sealedSize})
		}
	}
	var af *os.File
	if err == nil {
		if af, err = os.Open(j.path); err == nil {
			files = append(files, af)
			segs = append(segs, segment{f: af, size: cut})
		}
	}
	j.wmu.Unlock()
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	if err != nil {
		return fmt.Errorf("failure journal: %w", err)
	}

	t, err := j.createTemp()
	if err != nil {
		return err
	}
	n, err := filterInto(t, segs, policy, j.opts.MaxBytes/2, nil, nil)
	if err == nil {
		err = t.finish()
	}
	kept := t.bytes
	// What was appended since the cut, most of it without a lock.
	copied := cut
	if err == nil {
		j.wmu.Lock()
		upTo, same := j.active, j.rotations == rotations
		j.wmu.Unlock()
		if same && upTo > copied {
			err = copyTail(t, af, copied, upTo-copied)
			copied = upTo
		}
	}
	if err != nil {
		t.abort()
		return err
	}
	j.wmu.Lock()
	if j.f == nil {
		j.wmu.Unlock()
		t.abort()
		return errors.New("failure journal closed")
	}
	if j.rotations != rotations || kept+j.active-cut > j.opts.MaxBytes-int64(j.writeAt()) {
		// Sealed meanwhile, or so much was appended meanwhile that the
		// new file would hold more than the bound.
		j.wmu.Unlock()
		t.abort()
		return nil
	}
	tailRecs := j.activeRecs - cutRecs
	if j.active > copied {
		err = copyTail(t, af, copied, j.active-copied)
	}
	if err == nil {
		err = t.w.Flush()
	}
	if err == nil {
		err = j.install(t, int64(n)+tailRecs)
		j.base.Store(kept)
	}
	j.wmu.Unlock()
	if err != nil {
		t.abort()
		return err
	}
	now := j.opts.Now().UnixNano()
	j.mu.Lock()
	for k, exp := range j.seen {
		if exp < now {
			delete(j.seen, k)
		}
	}
	j.nseen.Store(int64(len(j.seen)))
	j.mu.Unlock()
	return nil
}

// copyTail appends n bytes of f from offset off to t.
func copyTail(t *temp, f *os.File, off, n int64) error {
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
	pend, pendRecs, remembered := len(j.pend), j.pendRecs, len(j.seen)
	j.mu.Unlock()
	j.wmu.Lock()
	rot := j.rotations
	j.wmu.Unlock()
	return Stats{Bytes: j.disk.Load() + j.queued.Load() + int64(pend),
		Records:   int(j.recs.Load()+j.queuedRecs.Load()) + pendRecs,
		Rotations: rot, Remembered: remembered}
}

// Close flushes and closes the journal.
func (j *Journal) Close() error {
	err := j.Flush()
	j.mu.Lock()
	if j.closed {
		j.mu.Unlock()
		return nil
	}
	j.closed = true
	close(j.writes)
	j.mu.Unlock()
	<-j.stopped
	j.wmu.Lock()
	defer j.wmu.Unlock()
	if j.f == nil {
		return err
	}
	if cerr := j.f.Close(); err == nil {
		err = cerr
	}
	j.f = nil
	return err
}
