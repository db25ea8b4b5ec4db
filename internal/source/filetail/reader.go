package filetail

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/palisade-project/palisade/internal/source"
)

// tfile is one open file being read.
type tfile struct {
	f        *os.File
	dev, ino uint64
	offset   int64  // next byte to read
	lineEnd  int64  // offset just after the last complete line
	head     []byte // the file's first bytes (up to HeadHashLen) as last seen
	sp       *source.Splitter
	deadline time.Time
}

// pin is the file and offset "the end" meant when the reader was created.
type pin struct {
	dev, ino uint64
	offset   int64
}

// reader follows one path.
type reader struct {
	t      *Tailer
	path   string
	atEnd  bool // first open, no stored position: start at the end
	tried  bool // an open was attempted
	opened bool // a file was opened before
	stored *source.Position
	pinned *pin // start-at-end offset fixed at subscription
	wakeC  chan struct{}
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
	gone   atomic.Bool // no open file and the path is missing
	steps  atomic.Uint64
	fan    *source.Fanout
	buf    []byte
	batch  []source.Line
	emitFn func([]byte) // appends one line to the arena
	// arena holds the text of the lines of the batch being made, ends
	// where each ends: deliver makes it one string and the lines
	// substrings of it, one allocation per read instead of one per line.
	arena []byte
	ends  []int
	cur   *tfile
	old   []*tfile
	seen  []seenFile // files read lately (catchup.go)
	// lastScan is when the last catch-up scan began (at first: when the
	// reader was created); a rotated file written after it may hold lines
	// the reader never saw.
	lastScan time.Time

	saved   source.Position
	hasSave bool
	lastSv  time.Time

	statsMu sync.Mutex
	counts  Stats
}

func (t *Tailer) newReader(path string, atEnd bool) *reader {
	ctx, cancel := context.WithCancel(t.ctx)
	r := &reader{
		t: t, path: path, atEnd: atEnd, lastScan: time.Now(),
		wakeC: make(chan struct{}, 1), ctx: ctx, cancel: cancel, done: make(chan struct{}),
		buf: make([]byte, 64<<10),
		fan: source.NewFanout(source.Status{Source: path, State: source.StateMissing, Err: source.ErrNotOpened, Since: time.Now()}),
	}
	r.emitFn = func(b []byte) {
		r.arena = append(r.arena, b...)
		r.ends = append(r.ends, len(r.arena))
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
				p := &pin{offset: lastLineStart(f, fi.Size(), t.cfg.MaxLineLen)}
				p.dev, p.ino = fileID(fi)
				r.pinned = p
			}
			_ = f.Close()
		}
	}
	return r
}

func (r *reader) newFile(f *os.File, dev, ino uint64, offset int64) *tfile {
	return &tfile{f: f, dev: dev, ino: ino, offset: offset, lineEnd: offset, sp: source.NewSplitter(r.t.cfg.MaxLineLen)}
}

func (r *reader) wake() {
	select {
	case r.wakeC <- struct{}{}:
	default:
	}
}

func (r *reader) attach(s *subscription) {
	r.fan.Attach(s.Subscriber)
	r.wake()
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

// A Status names its file (Source): its error does not name it again.
var (
	errNotFound   = errors.New("file not found")
	errNotRegular = errors.New("not a regular file")
)

// withoutPath drops the path from an *fs.PathError ("open /x: permission
// denied" becomes "open: permission denied"): the Status names the file.
func withoutPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s: %w", pe.Op, pe.Err)
	}
	return err
}

func (r *reader) setStatus(state source.State, err error) {
	err = withoutPath(err)
	if r.fan.SetStatus(source.Status{Source: r.path, State: state, Err: err, Since: time.Now()}) && state == source.StateError {
		r.t.log.Warn("log source", "path", r.path, "err", err)
	}
}

// step reads everything new. It reports whether it stopped early with
// more data waiting.
func (r *reader) step() (more bool) {
	r.fan.Subscribers() // send the current status to new subscribers
	now := time.Now()
	kept := r.old[:0]
	for _, o := range r.old {
		if r.drain(o) {
			more = true
		}
		if now.After(o.deadline) {
			r.flushPending(o)
			r.remember(o)
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
			r.setStatus(source.StateMissing, errNotFound)
		}
		break
	}
	r.gone.Store(r.cur == nil && len(r.old) == 0)
	r.checkpoint(false)
	return more
}

func (r *reader) count(f func(*Stats)) {
	r.statsMu.Lock()
	f(&r.counts)
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
			r.setStatus(source.StateMissing, errNotFound)
		} else {
			r.setStatus(source.StateError, err)
		}
		return false
	}
	fi, err := f.Stat()
	if err != nil {
		_ = f.Close()
		r.setStatus(source.StateError, err)
		return false
	}
	if !fi.Mode().IsRegular() {
		_ = f.Close()
		r.setStatus(source.StateError, errNotRegular)
		return false
	}
	dev, ino := fileID(fi)
	tf := r.newFile(f, dev, ino, 0)
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
		r.count(func(s *Stats) { s.Rotations++ }) // a new file under the path: rotation, re-creation
	}
	rotated := r.opened
	r.opened = true
	r.cur = tf
	refreshHead(tf)
	r.setStatus(source.StateOK, nil)
	if rotated {
		// Generations created and rotated away before this open.
		r.catchUp(nil)
	}
	return true
}

// maxStepBytes bounds one drain so a fast writer cannot starve the
// reader's other files and the stop signal.
const maxStepBytes = 16 << 20

// drain reads tf to its end (at most maxStepBytes) and delivers the
// complete lines. It reports whether it stopped early with more to read.
func (r *reader) drain(tf *tfile) (more bool) {
	fi, err := tf.f.Stat()
	if err != nil {
		r.setStatus(source.StateError, err)
		return false
	}
	size := fi.Size()
	if size < tf.offset || !headUnchanged(tf, size) {
		r.truncated(tf, size)
	}
	hadHead := len(tf.head) > 0
	var read int64
	for tf.offset < size || read == 0 {
		if read >= maxStepBytes || r.ctx.Err() != nil {
			return true
		}
		n, err := tf.f.ReadAt(r.buf, tf.offset)
		if n > 0 && len(tf.head) > 0 && !startsWith(tf.f, tf.head) {
			// Truncated (and maybe refilled) while being read: the bytes
			// just read may be the new content at the old offset. Drop
			// them; the copy a copytruncate made holds the old ones.
			r.truncated(tf, 0)
			return true
		}
		if n > 0 {
			keepHead(tf, r.buf[:n])
			read += int64(n)
			r.split(tf, r.buf[:n])
			tf.offset += int64(n)
			r.deliver()
			r.count(func(s *Stats) { s.Bytes += uint64(n); s.Reads++ })
		}
		if err != nil && err != io.EOF {
			r.setStatus(source.StateError, err)
			return false
		}
		if n == 0 || err == io.EOF {
			break
		}
	}
	if !hadHead && len(tf.head) > 0 && tf == r.cur {
		// The first content of this file: a generation copied away and
		// truncated before it could not be told from this one; look for
		// its copy.
		r.catchUp(nil)
	}
	return false
}

// truncated handles tf found shrunk or rewritten (copytruncate, truncate;
// size is its size now, 0 when unknown): what a copy holds beyond tf's
// offset is read first, then tf starts over, after what a copy of its new
// content already gave.
func (r *reader) truncated(tf *tfile, size int64) {
	r.count(func(s *Stats) { s.Truncation++ })
	if tf != r.cur {
		tf.offset, tf.lineEnd, tf.head = 0, 0, nil
		tf.sp.Reset()
		return
	}
	r.catchUp(tf)
	tf.offset, tf.lineEnd, tf.head = 0, 0, nil
	tf.sp.Reset()
	if size > 0 {
		tf.offset = r.readBefore(tf, size)
		tf.lineEnd = tf.offset
		refreshHead(tf)
	}
}

// split cuts data (which starts at file offset tf.offset) into lines,
// appending them to the arena; the splitter keeps a trailing partial line.
func (r *reader) split(tf *tfile, data []byte) {
	before := tf.sp.Dropped()
	tf.sp.Split(data, r.emitFn)
	if i := bytes.LastIndexByte(data, '\n'); i >= 0 {
		tf.lineEnd = tf.offset + int64(i) + 1
	}
	if d := tf.sp.Dropped() - before; d > 0 {
		r.count(func(s *Stats) { s.TooLong += d })
	}
}

// flushPending delivers a file's unterminated last line when the file is
// finished (rotated away and no longer written).
func (r *reader) flushPending(tf *tfile) {
	n := tf.sp.Pending()
	before := tf.sp.Dropped()
	tf.sp.Flush(r.emitFn)
	tf.lineEnd += int64(n)
	if d := tf.sp.Dropped() - before; d > 0 {
		r.count(func(s *Stats) { s.TooLong += d })
	}
	r.deliver()
}

// deliver hands the lines split since the last call to the subscribers.
// Their texts share one string (a consumer that keeps one line keeps the
// read's lines, at most one read buffer and one long line).
func (r *reader) deliver() {
	if len(r.ends) == 0 {
		return
	}
	text := string(r.arena)
	start := 0
	for _, end := range r.ends {
		r.batch = append(r.batch, source.Line{Text: text[start:end], Source: r.path})
		start = end
	}
	r.arena, r.ends = r.arena[:0], r.ends[:0]
	r.fan.Deliver(r.batch)
	n := uint64(len(r.batch))
	r.count(func(s *Stats) { s.Lines += n })
	clear(r.batch)
	r.batch = r.batch[:0]
}

// position is where the current file stands, for the store.
func (r *reader) position() (source.Position, bool) {
	tf := r.cur
	if tf == nil {
		return source.Position{}, false
	}
	p := source.Position{Device: tf.dev, Inode: tf.ino, Offset: tf.lineEnd}
	if hl := min(int64(len(tf.head)), tf.lineEnd, source.HeadHashLen); hl > 0 {
		p.HeadLen = hl
		p.Hash = hashHead(tf.head[:hl])
	}
	return p, true
}

func (r *reader) checkpoint(force bool) {
	p, ok := r.position()
	if ok {
		off := r.cur.offset
		r.count(func(s *Stats) { s.Offset = off })
	}
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

func (r *reader) stats() Stats {
	r.statsMu.Lock()
	s := r.counts
	r.statsMu.Unlock()
	s.Path = r.path
	s.Status = r.fan.Status()
	s.Steps = r.steps.Load()
	return s
}
