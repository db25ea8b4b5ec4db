package source

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/fsnotify/fsnotify"
)

// TailerConfig configures a Tailer. Zero values pick the defaults.
type TailerConfig struct {
	// Store persists file positions; nil keeps them in memory only.
	Store PositionStore
	// Logger receives diagnostics; nil discards them.
	Logger *slog.Logger
	// PollInterval is the safety-net poll period (default 1s). fsnotify
	// wakes readers immediately; polling catches what it misses.
	PollInterval time.Duration
	// MaxLineLen caps a line's length in bytes (default MaxLineLen).
	MaxLineLen int
	// RotateGrace is how long a file that was rotated away or deleted keeps
	// being drained, for writers that have not reopened yet (default 5s).
	RotateGrace time.Duration
	// CheckpointEvery is the minimum time between two position saves of
	// one file while lines flow (default 1s). Positions are always saved
	// when a reader stops (Unsubscribe of its last consumer, Close).
	CheckpointEvery time.Duration
	// PollOnly disables fsnotify (polling only).
	PollOnly bool
}

// TailOptions are per-subscription choices.
type TailOptions struct {
	// Head reads a file seen for the first time (no stored position, file
	// present at subscription) from its start instead of from its end, like
	// fail2ban's `logpath = FILE head`. The consumer then sees old lines and
	// skips those older than its findtime by their timestamps. The default
	// (false) starts at the end. Files that appear later are always read
	// from their start; a stored position always wins. The first
	// subscriber of a file decides.
	Head bool
}

// FileStats are a tailed file's counters.
type FileStats struct {
	Path       string
	Status     Status
	Lines      uint64 // lines delivered
	Bytes      uint64 // bytes consumed
	Truncated  uint64 // lines cut at MaxLineLen
	Rotations  uint64 // file replaced (rename+create, delete+recreate)
	Truncation uint64 // file shrank or was rewritten (copytruncate, truncate)
	Offset     int64  // current read offset
}

// Tailer follows log files. There is one reader per file, shared by every
// subscription whose patterns match it.
type Tailer struct {
	cfg TailerConfig
	log *slog.Logger

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	closed  bool
	readers map[string]*reader
	subs    map[*subscription]struct{}
	watched map[string]bool // directories added to the watcher
	watcher *fsnotify.Watcher
	notes   []func() // consumer calls queued under mu, run after unlocking
}

// unlock releases t.mu and then runs the queued consumer notifications, so
// no consumer is ever called with t.mu held.
func (t *Tailer) unlock() {
	notes := t.notes
	t.notes = nil
	t.mu.Unlock()
	for _, f := range notes {
		f()
	}
}

// NewTailer returns a Tailer. Close it to stop every reader and save
// positions.
func NewTailer(cfg TailerConfig) *Tailer {
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = time.Second
	}
	if cfg.MaxLineLen <= 0 {
		cfg.MaxLineLen = MaxLineLen
	}
	if cfg.RotateGrace <= 0 {
		cfg.RotateGrace = 5 * time.Second
	}
	if cfg.CheckpointEvery <= 0 {
		cfg.CheckpointEvery = time.Second
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t := &Tailer{
		cfg: cfg, log: log, ctx: ctx, cancel: cancel,
		readers: map[string]*reader{},
		subs:    map[*subscription]struct{}{},
		watched: map[string]bool{},
	}
	if !cfg.PollOnly {
		w, err := fsnotify.NewWatcher()
		if err != nil {
			log.Warn("fsnotify unavailable, polling only", "err", err)
		} else {
			t.watcher = w
		}
	}
	t.wg.Add(1)
	go t.manage()
	return t
}

// subscription is one Subscribe call. Its mutex serialises the calls to
// its consumer from the readers of its files.
type subscription struct {
	patterns []string
	opts     TailOptions
	c        Consumer

	mu        sync.Mutex // serialises consumer calls
	files     map[string]bool
	noMatch   map[string]bool // glob patterns currently matching nothing
	cancelled bool
}

func (s *subscription) deliver(lines []Line) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cancelled {
		return
	}
	for _, l := range lines {
		s.c.Line(l)
	}
}

func (s *subscription) status(st Status) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.cancelled {
		s.c.Status(st)
	}
}

// Subscribe attaches c to every file matching one of patterns (literal
// paths or filepath.Match globs). A literal path that does not exist yet is
// watched until it appears; globs are re-expanded at every poll and on
// directory events. c receives a Status for each file (and for each glob
// that matches nothing). Calls to c are serialised, also across the
// files of one subscription. The returned function detaches c (never call
// it from inside c); a reader whose last consumer leaves saves its
// position and stops. On reload, subscribe the new consumer before
// detaching the old one to keep the reader (and its position) running.
func (t *Tailer) Subscribe(patterns []string, opts TailOptions, c Consumer) (func(), error) {
	if len(patterns) == 0 {
		return nil, errors.New("tail: no log path")
	}
	for _, p := range patterns {
		if p == "" {
			return nil, errors.New("tail: empty log path")
		}
		if _, err := filepath.Match(p, ""); err != nil {
			return nil, fmt.Errorf("tail: log path %q: %w", p, err)
		}
	}
	s := &subscription{
		patterns: append([]string(nil), patterns...), opts: opts, c: c,
		files: map[string]bool{}, noMatch: map[string]bool{},
	}
	t.mu.Lock()
	defer t.unlock()
	if t.closed {
		return nil, errors.New("tail: closed")
	}
	t.subs[s] = struct{}{}
	t.refreshLocked(s, true)
	t.watchDirsLocked()
	var once sync.Once
	return func() { once.Do(func() { t.unsubscribe(s) }) }, nil
}

func hasMeta(p string) bool { return strings.ContainsAny(p, `*?[\`) }

// refreshLocked expands s's patterns and attaches s to new files. initial
// is true at Subscribe time: files present then start at their end (or
// head, per TailOptions); files found later start at 0.
func (t *Tailer) refreshLocked(s *subscription, initial bool) {
	want := map[string]bool{}
	for _, p := range s.patterns {
		if !hasMeta(p) {
			want[filepath.Clean(p)] = true
			continue
		}
		m, _ := filepath.Glob(p) // pattern syntax was checked in Subscribe
		if len(m) == 0 {
			if !s.noMatch[p] {
				s.noMatch[p] = true
				st := Status{Source: p, State: StateMissing, Err: fmt.Errorf("no file matches %s", p), Since: time.Now()}
				t.notes = append(t.notes, func() { s.status(st) })
			}
			continue
		}
		delete(s.noMatch, p)
		for _, f := range m {
			if fi, err := os.Stat(f); err == nil && fi.IsDir() {
				continue
			}
			want[filepath.Clean(f)] = true
		}
	}
	for f := range want {
		if s.files[f] {
			continue
		}
		s.files[f] = true
		r := t.readers[f]
		if r == nil {
			r = t.newReader(f, initial && !s.opts.Head)
			t.readers[f] = r
			r.attach(s) // before the reader's first step
			t.wg.Add(1)
			go r.run()
			continue
		}
		r.attach(s)
	}
	// Forget glob-matched files that are gone for good.
	for f := range s.files {
		if want[f] {
			continue
		}
		if r := t.readers[f]; r == nil || r.gone.Load() {
			delete(s.files, f)
			if r != nil {
				t.detachLocked(r, s)
			}
		}
	}
}

func (t *Tailer) detachLocked(r *reader, s *subscription) {
	if r.detach(s) == 0 {
		delete(t.readers, r.path)
		r.stop()
	}
}

func (t *Tailer) unsubscribe(s *subscription) {
	t.mu.Lock()
	delete(t.subs, s)
	var stopping []*reader
	for f := range s.files {
		if r := t.readers[f]; r != nil {
			if r.detach(s) == 0 {
				delete(t.readers, f)
				stopping = append(stopping, r)
			}
		}
	}
	t.watchDirsLocked()
	t.mu.Unlock()
	s.mu.Lock()
	s.cancelled = true
	s.mu.Unlock()
	for _, r := range stopping {
		r.stopWait()
	}
}

// watchDirsLocked keeps the fsnotify watch list equal to the set of
// directories (without glob characters) of every subscribed pattern.
func (t *Tailer) watchDirsLocked() {
	if t.watcher == nil {
		return
	}
	want := map[string]bool{}
	for s := range t.subs {
		for _, p := range s.patterns {
			d := filepath.Dir(filepath.Clean(p))
			if !hasMeta(d) {
				want[d] = true
			}
		}
	}
	for d := range t.watched {
		if !want[d] {
			_ = t.watcher.Remove(d)
			delete(t.watched, d)
		}
	}
	for d := range want {
		if t.watched[d] {
			continue
		}
		if err := t.watcher.Add(d); err == nil {
			t.watched[d] = true
		}
	}
}

// manage dispatches fsnotify events to readers and re-expands globs.
func (t *Tailer) manage() {
	defer t.wg.Done()
	tick := time.NewTicker(t.cfg.PollInterval)
	defer tick.Stop()
	var events chan fsnotify.Event
	var errs chan error
	if t.watcher != nil {
		events, errs = t.watcher.Events, t.watcher.Errors
	}
	for {
		select {
		case <-t.ctx.Done():
			return
		case ev, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			name := filepath.Clean(ev.Name)
			t.mu.Lock()
			if t.closed {
				t.mu.Unlock()
				return
			}
			if r := t.readers[name]; r != nil {
				r.wake()
			}
			if ev.Has(fsnotify.Remove) || ev.Has(fsnotify.Rename) {
				if t.watched[name] { // a watched directory went away
					delete(t.watched, name)
				}
			}
			if ev.Has(fsnotify.Create) || ev.Has(fsnotify.Rename) || ev.Has(fsnotify.Remove) {
				for s := range t.subs {
					t.refreshLocked(s, false)
				}
				t.watchDirsLocked()
			}
			t.unlock()
		case err, ok := <-errs:
			if !ok {
				errs = nil
				continue
			}
			t.log.Warn("fsnotify", "err", err)
		case <-tick.C:
			t.mu.Lock()
			if t.closed {
				t.mu.Unlock()
				return
			}
			for s := range t.subs {
				t.refreshLocked(s, false)
			}
			t.watchDirsLocked()
			t.unlock()
		}
	}
}

// Close stops every reader, saving its position, and releases the watcher.
func (t *Tailer) Close() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	readers := make([]*reader, 0, len(t.readers))
	for _, r := range t.readers {
		readers = append(readers, r)
	}
	t.readers = map[string]*reader{}
	subs := t.subs
	t.subs = map[*subscription]struct{}{}
	t.notes = nil
	t.mu.Unlock()
	for s := range subs {
		s.mu.Lock()
		s.cancelled = true
		s.mu.Unlock()
	}
	for _, r := range readers {
		r.stopWait()
	}
	t.cancel()
	var err error
	if t.watcher != nil {
		err = t.watcher.Close()
	}
	t.wg.Wait()
	return err
}

// Stats returns the counters of every tailed file, sorted by path.
func (t *Tailer) Stats() []FileStats {
	t.mu.Lock()
	rs := make([]*reader, 0, len(t.readers))
	for _, r := range t.readers {
		rs = append(rs, r)
	}
	t.mu.Unlock()
	out := make([]FileStats, 0, len(rs))
	for _, r := range rs {
		out = append(out, r.stats())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}

// tfile is one open file being read.
type tfile struct {
	f        *os.File
	dev, ino uint64
	offset   int64  // next byte to read
	lineEnd  int64  // offset just after the last complete line
	head     []byte // the file's first bytes (up to HeadHashLen) as last seen
	pending  []byte // partial line
	discard  bool   // inside an over-long line, dropping bytes until '\n'
	deadline time.Time
}

// pin is the file and offset "the end" meant when the reader was created.
type pin struct {
	dev, ino uint64
	offset   int64
}

// reader follows one path.
type reader struct {
	t       *Tailer
	path    string
	atEnd   bool // first open, no stored position: start at the end
	tried   bool // an open was attempted
	opened  bool // a file was opened before
	stored  *Position
	wakeC   chan struct{}
	ctx     context.Context
	cancel  context.CancelFunc
	done    chan struct{}
	pinned  *pin        // start-at-end offset fixed at subscription
	gone    atomic.Bool // no open file and the path is missing
	steps   atomic.Uint64
	buf     []byte
	batch   []Line
	subsMu  sync.Mutex
	subs    []*subscription
	fresh   []*subscription // attached, not yet sent the current status
	cur     *tfile
	old     []*tfile
	st      Status
	saved   Position
	hasSave bool
	lastSv  time.Time

	statsMu sync.Mutex
	counts  FileStats
}

func (t *Tailer) newReader(path string, atEnd bool) *reader {
	ctx, cancel := context.WithCancel(t.ctx)
	r := &reader{
		t: t, path: path, atEnd: atEnd,
		wakeC: make(chan struct{}, 1), ctx: ctx, cancel: cancel, done: make(chan struct{}),
		buf: make([]byte, 64<<10),
		st:  Status{Source: path, State: StateMissing, Err: ErrNotOpened, Since: time.Now()},
	}
	if t.cfg.Store != nil {
		p, ok, err := t.cfg.Store.LoadPosition(path)
		if err != nil {
			t.log.Warn("load log position", "path", path, "err", err)
		} else if ok {
			r.stored = &p
			r.saved, r.hasSave = p, true
		}
	}
	if atEnd && r.stored == nil {
		// Fix "the end" now, so lines written after Subscribe returns are
		// delivered even if the reader goroutine looks later.
		if f, err := openLog(path); err == nil {
			if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() {
				p := &pin{offset: r.lastLineStart(f, fi.Size())}
				p.dev, p.ino = fileID(fi)
				r.pinned = p
			}
			_ = f.Close()
		}
	}
	return r
}

func (r *reader) wake() {
	select {
	case r.wakeC <- struct{}{}:
	default:
	}
}

func (r *reader) attach(s *subscription) {
	r.subsMu.Lock()
	r.subs = append(r.subs, s)
	r.fresh = append(r.fresh, s)
	r.subsMu.Unlock()
	r.wake()
}

// detach removes s and returns how many subscriptions remain.
func (r *reader) detach(s *subscription) int {
	r.subsMu.Lock()
	defer r.subsMu.Unlock()
	for i, x := range r.subs {
		if x == s {
			r.subs = append(r.subs[:i:i], r.subs[i+1:]...)
			break
		}
	}
	for i, x := range r.fresh {
		if x == s {
			r.fresh = append(r.fresh[:i:i], r.fresh[i+1:]...)
			break
		}
	}
	return len(r.subs)
}

func (r *reader) stop() { r.cancel() }

func (r *reader) stopWait() {
	r.cancel()
	<-r.done
}

func (r *reader) run() {
	defer r.t.wg.Done()
	defer close(r.done)
	tick := time.NewTicker(r.t.cfg.PollInterval)
	defer tick.Stop()
	defer r.finish()
	for {
		if r.ctx.Err() != nil {
			return
		}
		if r.step() { // more to read right away
			r.wake()
		}
		r.steps.Add(1)
		select {
		case <-r.ctx.Done():
			return
		case <-r.wakeC:
		case <-tick.C:
		}
	}
}

// finish saves the position and closes every file.
func (r *reader) finish() {
	r.checkpoint(true)
	for _, o := range r.old {
		_ = o.f.Close()
	}
	r.old = nil
	if r.cur != nil {
		_ = r.cur.f.Close()
		r.cur = nil
	}
}

func (r *reader) consumers() []*subscription {
	r.subsMu.Lock()
	defer r.subsMu.Unlock()
	fresh := r.fresh
	r.fresh = nil
	subs := r.subs
	r.subsMu.Unlock()
	for _, s := range fresh {
		s.status(r.st)
	}
	r.subsMu.Lock()
	return subs
}

func (r *reader) setStatus(state State, err error) {
	if r.st.State == state && errString(r.st.Err) == errString(err) {
		return
	}
	r.st = Status{Source: r.path, State: state, Err: err, Since: time.Now()}
	r.statsMu.Lock()
	r.counts.Status = r.st
	r.statsMu.Unlock()
	if state == StateError {
		r.t.log.Warn("log source", "path", r.path, "err", err)
	}
	r.subsMu.Lock()
	subs := r.subs
	r.fresh = nil
	r.subsMu.Unlock()
	for _, s := range subs {
		s.status(r.st)
	}
}

func errString(e error) string {
	if e == nil {
		return ""
	}
	return e.Error()
}

func fileID(fi fs.FileInfo) (dev, ino uint64) {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return uint64(st.Dev), st.Ino //nolint:unconvert // Dev's type differs across platforms
	}
	return 0, 0
}

// step reads everything new. It reports whether it stopped early with
// more data waiting.
func (r *reader) step() (more bool) {
	r.consumers() // send the current status to new subscribers
	now := time.Now()
	kept := r.old[:0]
	for _, o := range r.old {
		if r.drain(o) {
			more = true
		}
		if now.After(o.deadline) {
			r.flushPending(o)
			_ = o.f.Close()
			continue
		}
		kept = append(kept, o)
	}
	clear(r.old[len(kept):])
	r.old = kept

	for range 3 { // open, drain, detect replacement, open the new file: bounded
		if r.cur == nil {
			if !r.open() {
				break
			}
		}
		if r.drain(r.cur) {
			more = true
			break
		}
		fi, err := os.Stat(r.path)
		if err == nil {
			dev, ino := fileID(fi)
			if dev == r.cur.dev && ino == r.cur.ino {
				break
			}
			// Replaced (rename and create, delete and re-create): the old
			// file was drained above; keep draining it for a grace period
			// and read the new one from its start.
			r.retire(r.cur)
			r.cur = nil
			continue
		}
		if errors.Is(err, fs.ErrNotExist) {
			// Renamed away or deleted, nothing new yet.
			r.retire(r.cur)
			r.cur = nil
			r.setStatus(StateMissing, fmt.Errorf("%s: file not found", r.path))
		}
		break
	}
	r.gone.Store(r.cur == nil && len(r.old) == 0)
	r.checkpoint(false)
	return more
}

func (r *reader) countRotation() {
	r.statsMu.Lock()
	r.counts.Rotations++
	r.statsMu.Unlock()
}

func (r *reader) retire(tf *tfile) {
	tf.deadline = time.Now().Add(r.t.cfg.RotateGrace)
	r.old = append(r.old, tf)
}

// open opens the path and decides where to start. It reports success.
func (r *reader) open() bool {
	first := !r.tried
	r.tried = true
	f, err := openLog(r.path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			r.setStatus(StateMissing, fmt.Errorf("%s: file not found", r.path))
		} else {
			r.setStatus(StateError, err)
		}
		return false
	}
	fi, err := f.Stat()
	if err != nil {
		_ = f.Close()
		r.setStatus(StateError, err)
		return false
	}
	if !fi.Mode().IsRegular() {
		_ = f.Close()
		r.setStatus(StateError, fmt.Errorf("%s: not a regular file", r.path))
		return false
	}
	tf := &tfile{f: f}
	tf.dev, tf.ino = fileID(fi)
	size := fi.Size()
	switch {
	case r.stored != nil:
		p := *r.stored
		r.stored = nil
		tf.offset = r.resume(tf, p, size)
	case first && r.pinned != nil:
		// The file that was there at subscription, unless it was
		// replaced or truncated since (then it is read from its start).
		if p := r.pinned; p.dev == tf.dev && p.ino == tf.ino && p.offset <= size {
			tf.offset = p.offset
		}
	}
	r.pinned = nil
	tf.lineEnd = tf.offset
	if r.opened {
		r.countRotation() // a new file under the path: rotation, re-creation
	}
	r.opened = true
	r.cur = tf
	r.refreshHead(tf)
	r.setStatus(StateOK, nil)
	return true
}

// lastLineStart is where to start reading "at the end" of a file: its
// size, or the start of an unterminated last line (a writer caught
// mid-line), so that line is delivered whole once completed.
func (r *reader) lastLineStart(f *os.File, size int64) int64 {
	if size == 0 {
		return 0
	}
	n := min(size, int64(r.t.cfg.MaxLineLen))
	b := make([]byte, n)
	if m, err := f.ReadAt(b, size-n); int64(m) != n && err != nil {
		return size
	}
	if b[n-1] == '\n' {
		return size
	}
	if i := bytes.LastIndexByte(b, '\n'); i >= 0 {
		return size - n + int64(i) + 1
	}
	if n == size {
		return 0
	}
	return size
}

// resume decides where to continue in the newly opened file tf from the
// stored position p. When the file was replaced while palisade was
// stopped and the old file is still there under a rotated name
// (PATH.1, PATH-20240101, ...), the rest of the old file is drained first.
func (r *reader) resume(tf *tfile, p Position, size int64) int64 {
	if size >= p.Offset && headMatches(tf.f, p) {
		if tf.dev == p.Device && tf.ino == p.Inode {
			return p.Offset
		}
		if p.Offset > 0 && p.HeadLen > 0 {
			return p.Offset // same content under a new inode (copied back, restored)
		}
	}
	if p.Offset > 0 && (tf.dev != p.Device || tf.ino != p.Inode) {
		if old := findRotated(r.path, p); old != nil {
			r.t.log.Info("draining rotated log left while stopped", "path", r.path, "rotated", old.Name())
			o := &tfile{f: old, dev: p.Device, ino: p.Inode, offset: p.Offset, lineEnd: p.Offset}
			for i := 0; r.drain(o) && r.ctx.Err() == nil && i < 1<<16; i++ {
			}
			r.flushPending(o)
			_ = old.Close()
		}
	}
	r.countRotation()
	return 0
}

// findRotated looks in path's directory for the file identified by p under
// a rotated name (uncompressed) and opens it.
func findRotated(path string, p Position) *os.File {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	for i, e := range ents {
		if i >= 1000 {
			break
		}
		n := e.Name()
		if n == base || !strings.HasPrefix(n, base) || e.IsDir() {
			continue
		}
		info, err := e.Info()
		if err != nil {
			continue
		}
		if dev, ino := fileID(info); dev != p.Device || ino != p.Inode || info.Size() < p.Offset {
			continue
		}
		f, err := openLog(filepath.Join(dir, n))
		if err != nil {
			continue
		}
		if headMatches(f, p) {
			return f
		}
		_ = f.Close()
	}
	return nil
}

func headMatches(f *os.File, p Position) bool {
	if p.HeadLen <= 0 {
		return true
	}
	b := make([]byte, p.HeadLen)
	if n, err := f.ReadAt(b, 0); int64(n) != p.HeadLen && err != nil {
		return false
	}
	return hashHead(b) == p.Hash
}

func hashHead(b []byte) uint64 {
	sum := sha256.Sum256(b)
	return binary.BigEndian.Uint64(sum[:8])
}

// refreshHead re-reads the first bytes of tf up to min(lineEnd, HeadHashLen).
func (r *reader) refreshHead(tf *tfile) {
	want := min(tf.lineEnd, HeadHashLen)
	if int64(len(tf.head)) >= want {
		return
	}
	b := make([]byte, want)
	n, _ := tf.f.ReadAt(b, 0)
	tf.head = b[:n]
}

// maxStepBytes bounds one drain so a fast writer cannot starve the
// reader's other files and the stop signal.
const maxStepBytes = 16 << 20

// drain reads tf to its end (at most maxStepBytes) and delivers the
// complete lines. It reports whether it stopped early with more to read.
func (r *reader) drain(tf *tfile) (more bool) {
	fi, err := tf.f.Stat()
	if err != nil {
		r.setStatus(StateError, err)
		return false
	}
	size := fi.Size()
	if size < tf.offset || !r.headUnchanged(tf, size) {
		// copytruncate / truncate (possibly already refilled): start over.
		r.statsMu.Lock()
		r.counts.Truncation++
		r.statsMu.Unlock()
		tf.offset, tf.lineEnd, tf.pending, tf.discard, tf.head = 0, 0, tf.pending[:0], false, nil
	}
	var read int64
	for tf.offset < size || read == 0 {
		if read >= maxStepBytes || r.ctx.Err() != nil {
			return true
		}
		n, err := tf.f.ReadAt(r.buf, tf.offset)
		if n > 0 {
			read += int64(n)
			r.statsMu.Lock()
			r.counts.Bytes += uint64(n)
			r.statsMu.Unlock()
			r.split(tf, r.buf[:n])
			tf.offset += int64(n)
			r.deliver()
		}
		if err != nil && err != io.EOF {
			r.setStatus(StateError, err)
			return false
		}
		if n == 0 || err == io.EOF {
			break
		}
	}
	r.refreshHead(tf)
	return false
}

// headUnchanged reports whether the bytes at the start of tf are still
// those seen before (a rewritten file that already grew past the old
// offset is caught here).
func (r *reader) headUnchanged(tf *tfile, size int64) bool {
	if len(tf.head) == 0 || size < int64(len(tf.head)) {
		return size >= int64(len(tf.head))
	}
	var b [HeadHashLen]byte
	n, _ := tf.f.ReadAt(b[:len(tf.head)], 0)
	return bytes.Equal(b[:n], tf.head)
}

// split cuts data (which starts at file offset tf.offset) into lines,
// appending them to r.batch and keeping a trailing partial line.
func (r *reader) split(tf *tfile, data []byte) {
	maxLen := r.t.cfg.MaxLineLen
	base := tf.offset
	pos := 0
	for pos < len(data) {
		i := bytes.IndexByte(data[pos:], '\n')
		if i < 0 {
			rest := data[pos:]
			if tf.discard {
				return
			}
			if len(tf.pending)+len(rest) > maxLen {
				tf.pending = append(tf.pending, rest[:maxLen-len(tf.pending)]...)
				r.emit(tf.pending, true)
				tf.pending = tf.pending[:0]
				tf.discard = true
				return
			}
			tf.pending = append(tf.pending, rest...)
			return
		}
		seg := data[pos : pos+i]
		pos += i + 1
		tf.lineEnd = base + int64(pos)
		if tf.discard {
			tf.discard = false
			continue
		}
		if len(tf.pending) > 0 {
			tf.pending = append(tf.pending, seg...)
			seg = tf.pending
		}
		cut := false
		if len(seg) > maxLen {
			seg, cut = seg[:maxLen], true
		}
		r.emit(seg, cut)
		tf.pending = tf.pending[:0]
	}
}

func (r *reader) emit(b []byte, cut bool) {
	if n := len(b); n > 0 && b[n-1] == '\r' {
		b = b[:n-1]
	}
	r.batch = append(r.batch, Line{Text: string(b), Source: r.path})
	if cut {
		r.statsMu.Lock()
		r.counts.Truncated++
		r.statsMu.Unlock()
	}
}

// flushPending delivers a file's unterminated last line when the file is
// finished (rotated away and no longer written).
func (r *reader) flushPending(tf *tfile) {
	if len(tf.pending) > 0 && !tf.discard {
		r.emit(tf.pending, false)
		tf.lineEnd += int64(len(tf.pending))
		tf.pending = tf.pending[:0]
		r.deliver()
	}
}

func (r *reader) deliver() {
	if len(r.batch) == 0 {
		return
	}
	r.subsMu.Lock()
	subs := r.subs
	r.subsMu.Unlock()
	for _, s := range subs {
		s.deliver(r.batch)
	}
	r.statsMu.Lock()
	r.counts.Lines += uint64(len(r.batch))
	r.statsMu.Unlock()
	clear(r.batch)
	r.batch = r.batch[:0]
}

// position is where the current file stands, for the store.
func (r *reader) position() (Position, bool) {
	tf := r.cur
	if tf == nil {
		return Position{}, false
	}
	p := Position{Device: tf.dev, Inode: tf.ino, Offset: tf.lineEnd}
	if hl := min(int64(len(tf.head)), tf.lineEnd, HeadHashLen); hl > 0 {
		p.HeadLen = hl
		p.Hash = hashHead(tf.head[:hl])
	}
	return p, true
}

func (r *reader) checkpoint(force bool) {
	p, ok := r.position()
	r.statsMu.Lock()
	r.counts.Path = r.path
	r.counts.Status = r.st
	if ok {
		r.counts.Offset = r.cur.offset
	}
	r.statsMu.Unlock()
	if !ok || r.t.cfg.Store == nil || (r.hasSave && p == r.saved) {
		return
	}
	now := time.Now()
	if !force && now.Sub(r.lastSv) < r.t.cfg.CheckpointEvery {
		return
	}
	if err := r.t.cfg.Store.SavePosition(r.path, p); err != nil {
		r.t.log.Warn("save log position", "path", r.path, "err", err)
		return
	}
	r.saved, r.hasSave, r.lastSv = p, true, now
}

func (r *reader) stats() FileStats {
	r.statsMu.Lock()
	defer r.statsMu.Unlock()
	s := r.counts
	s.Path = r.path
	return s
}

// openLog opens a log file for reading without blocking: a FIFO or device
// put where a log file belongs must not hang the reader (it is then
// refused as not a regular file).
func openLog(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
}
