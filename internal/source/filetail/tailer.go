// Package filetail follows log files for palisade's jails: literal paths
// and globs, one reader per file shared by every subscription whose
// patterns match it, safe across rename-and-create rotation,
// copytruncate, truncation, deletion and restarts.
//
// The Tailer (this file) owns the subscriptions: it expands their
// patterns, starts one reader per matching file and stops it when its last
// subscriber leaves, and turns fsnotify events and a safety-net poll into
// wake-ups. A reader (reader.go) follows one path: it opens the file,
// reads what is new, keeps draining a file rotated away for a grace
// period, splits lines with source.Splitter and saves positions
// (position.go decides where a reader resumes).
//
// Where a file is first read: a file present at Subscribe with no stored
// position starts at its end as of Subscribe (or at its start with
// Options.Head, fail2ban's `logpath = FILE head`, leaving the consumer to
// skip lines older than findtime by their dates); a file that appears
// later is read from its start; a stored position always wins. A position
// is saved at most every Config.CheckpointEvery while lines flow, and
// always when a reader stops.
package filetail

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/palisade-project/palisade/internal/source"
)

// Config configures a Tailer. Zero values pick the defaults.
type Config struct {
	// Store persists file positions; nil keeps them in memory only.
	Store source.PositionStore
	// Logger receives diagnostics; nil discards them.
	Logger *slog.Logger
	// PollInterval is the safety-net poll period (default 1s). fsnotify
	// wakes readers immediately; polling catches what it misses.
	PollInterval time.Duration
	// MaxLineLen caps a line's length in bytes (default
	// source.MaxLineLen); longer lines are dropped and counted.
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

// Options are per-subscription choices.
type Options struct {
	// Head reads a file seen for the first time (no stored position, file
	// present at subscription) from its start instead of from its end, like
	// fail2ban's `logpath = FILE head`. The consumer then sees old lines and
	// skips those older than its findtime by their timestamps. The default
	// (false) starts at the end. Files that appear later are always read
	// from their start; a stored position always wins. The first
	// subscriber of a file decides.
	Head bool
}

// Stats are a tailed file's counters.
type Stats struct {
	Path   string
	Status source.Status
	Lines  uint64 // lines delivered
	Bytes  uint64 // bytes consumed
	// TooLong counts lines longer than Config.MaxLineLen, dropped whole.
	TooLong    uint64
	Rotations  uint64 // file replaced (rename+create, delete+recreate)
	Truncation uint64 // file shrank or was rewritten (copytruncate, truncate)
	Offset     int64  // current read offset
	// Reads counts the reads that returned data, Steps the reader's
	// looks at its files (one per wake-up: an event, a poll).
	Reads, Steps uint64
}

// Tailer follows log files. There is one reader per file, shared by every
// subscription whose patterns match it.
type Tailer struct {
	cfg Config
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

// New returns a Tailer. Close it to stop every reader and save positions.
func New(cfg Config) *Tailer {
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = time.Second
	}
	if cfg.MaxLineLen <= 0 {
		cfg.MaxLineLen = source.MaxLineLen
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

// subscription is one Subscribe call: its patterns, the files they
// matched, and the serialised consumer.
type subscription struct {
	*source.Subscriber
	patterns []string
	opts     Options
	files    map[string]bool
	noMatch  map[string]bool // glob patterns currently matching nothing
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
func (t *Tailer) Subscribe(patterns []string, opts Options, c source.Consumer) (func(), error) {
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
		Subscriber: source.NewSubscriber(c),
		patterns:   append([]string(nil), patterns...), opts: opts,
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

// errNoMatch is the Err of a glob's Status (whose Source is the glob)
// while no file matches it.
var errNoMatch = errors.New("no file matches")

func hasMeta(p string) bool { return strings.ContainsAny(p, `*?[\`) }

// refreshLocked expands s's patterns and attaches s to new files. initial
// is true at Subscribe time: files present then start at their end (or
// head, per Options); files found later start at 0.
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
				st := source.Status{Source: p, State: source.StateMissing, Err: errNoMatch, Since: time.Now()}
				t.notes = append(t.notes, func() { s.Status(st) })
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
			if r != nil && r.fan.Detach(s.Subscriber) == 0 {
				delete(t.readers, r.path)
				r.stop()
			}
		}
	}
}

func (t *Tailer) unsubscribe(s *subscription) {
	t.mu.Lock()
	delete(t.subs, s)
	var stopping []*reader
	for f := range s.files {
		if r := t.readers[f]; r != nil && r.fan.Detach(s.Subscriber) == 0 {
			delete(t.readers, f)
			stopping = append(stopping, r)
		}
	}
	t.watchDirsLocked()
	t.mu.Unlock()
	s.Cancel()
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
			if !t.event(ev) {
				return
			}
		case err, ok := <-errs:
			if !ok {
				errs = nil
				continue
			}
			t.log.Warn("fsnotify", "err", err)
		case <-tick.C:
			if !t.locked(t.refreshAllLocked) {
				return
			}
		}
	}
}

// locked runs f with t.mu held, unless the Tailer is closed (then it
// reports false), and then runs the consumer notifications f queued.
func (t *Tailer) locked(f func()) bool {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return false
	}
	f()
	t.unlock()
	return true
}

// event handles one fsnotify event; it reports false once closed.
func (t *Tailer) event(ev fsnotify.Event) bool {
	name := filepath.Clean(ev.Name)
	return t.locked(func() {
		if r := t.readers[name]; r != nil {
			r.wake()
		}
		if ev.Has(fsnotify.Remove) || ev.Has(fsnotify.Rename) {
			delete(t.watched, name) // when a watched directory went away
		}
		if ev.Has(fsnotify.Create) || ev.Has(fsnotify.Rename) || ev.Has(fsnotify.Remove) {
			t.refreshAllLocked()
		}
	})
}

// refreshAllLocked re-expands every subscription's patterns.
func (t *Tailer) refreshAllLocked() {
	for s := range t.subs {
		t.refreshLocked(s, false)
	}
	t.watchDirsLocked()
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
		s.Cancel()
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
func (t *Tailer) Stats() []Stats {
	t.mu.Lock()
	rs := make([]*reader, 0, len(t.readers))
	for _, r := range t.readers {
		rs = append(rs, r)
	}
	t.mu.Unlock()
	out := make([]Stats, 0, len(rs))
	for _, r := range rs {
		out = append(out, r.stats())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}
