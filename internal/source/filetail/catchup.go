package filetail

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/palisade-project/palisade/internal/source"
)

// When a log rotates faster than the reader looks, whole generations can
// come and go under the log's name without the reader ever opening them:
// a file created and renamed away (PATH.1) between two looks, or the
// content a copytruncate copied away (PATH.1) before the reader had read
// it. catchUp finds those files under their rotated names and reads what
// the reader has not read of them, oldest first, before the reader goes
// on with the file now at the path.
//
// A file in the directory is a candidate when its name is the log's name
// plus a rotation suffix (".N", "-DATE", not compressed) and it was
// written after the previous catch-up's scan began (its modification
// time, with mtimeSlack for coarse file-system clocks; the reader's
// creation before the first scan). The reader remembers the last
// rememberMax files it read (device, inode, a hash of their first bytes,
// bytes read), so a candidate it already read (the renamed file it held,
// a copy of what it read) is read from where it stopped, or not at all.

// mtimeSlack allows for file-system clocks coarser than the reader's
// (modification times are taken from a clock that ticks every few ms).
const mtimeSlack = 250 * time.Millisecond

// rememberMax bounds the files a reader remembers.
const rememberMax = 256

// maxCatchUp bounds the files read in one catch-up (the directory scan
// looks at 1000 entries at most).
const maxCatchUp = 1000

// seenFile is a file the reader read.
type seenFile struct {
	dev, ino uint64
	headLen  int64  // how many first bytes headSum covers
	headSum  uint64 // hashHead of them
	read     int64  // bytes consumed
}

// remember records tf as read up to its offset.
func (r *reader) remember(tf *tfile) {
	kept := r.seen[:0]
	for _, s := range r.seen {
		if s.dev != tf.dev || s.ino != tf.ino {
			kept = append(kept, s)
		}
	}
	r.seen = append(kept, seenFile{dev: tf.dev, ino: tf.ino, headLen: int64(len(tf.head)), headSum: hashHead(tf.head), read: tf.offset})
	if len(r.seen) > rememberMax {
		r.seen = append(r.seen[:0], r.seen[len(r.seen)-rememberMax:]...)
	}
}

// rotatedName reports whether name is base with a rotation suffix:
// base.1, base-20240101, base.0-old (not compressed).
func rotatedName(base, name string) bool {
	suffix, ok := strings.CutPrefix(name, base)
	if !ok || len(suffix) < 2 || (suffix[0] != '.' && suffix[0] != '-' && suffix[0] != '_') {
		return false
	}
	for _, z := range []string{".gz", ".bz2", ".xz", ".zst", ".lz4", ".Z", ".zip"} {
		if strings.HasSuffix(suffix, z) {
			return false
		}
	}
	return strings.ContainsAny(suffix, "0123456789")
}

// reading reports whether the file (dev, ino) is the current file or one
// still being drained.
func (r *reader) reading(dev, ino uint64) bool {
	if r.cur != nil && r.cur.dev == dev && r.cur.ino == ino {
		return true
	}
	for _, o := range r.old {
		if o.dev == dev && o.ino == ino {
			return true
		}
	}
	return false
}

// startOf is where to read candidate f (size bytes, identity dev, ino):
// after what the reader read of it, or of the file it is a copy of; cont,
// when not nil, is the file being truncated, whose copy continues it.
// continues reports that f continues cont.
func (r *reader) startOf(f *os.File, dev, ino uint64, size int64, cont *tfile) (start int64, continues bool) {
	for i := len(r.seen) - 1; i >= 0; i-- {
		if s := r.seen[i]; s.dev == dev && s.ino == ino {
			return s.read, false
		}
	}
	if cont != nil && len(cont.head) > 0 && size >= cont.offset && startsWith(f, cont.head) {
		return cont.offset, true
	}
	for i := len(r.seen) - 1; i >= 0; i-- {
		if s := r.seen[i]; s.headLen > 0 && size >= s.headLen && headHashIs(f, s.headLen, s.headSum) {
			return s.read, false
		}
	}
	return 0, false
}

// headHashIs reports whether the hash of f's first n bytes is sum.
func headHashIs(f *os.File, n int64, sum uint64) bool {
	b := make([]byte, n)
	m, _ := f.ReadAt(b, 0)
	return int64(m) == n && hashHead(b) == sum
}

// startsWith reports whether f's first bytes are head.
func startsWith(f *os.File, head []byte) bool {
	b := make([]byte, len(head))
	n, _ := f.ReadAt(b, 0)
	return n == len(head) && bytes.Equal(b, head)
}

type candidate struct {
	path     string
	info     fs.FileInfo
	dev, ino uint64
}

// candidates lists the rotated files written since since that the
// reader is not reading, oldest first.
func (r *reader) candidates(since time.Time) []candidate {
	dir, base := filepath.Split(r.path)
	if dir == "" {
		dir = "."
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var out []candidate
	for i, e := range ents {
		if i >= 1000 {
			break
		}
		if e.IsDir() || !rotatedName(base, e.Name()) {
			continue
		}
		info, err := e.Info()
		if err != nil || !info.Mode().IsRegular() || info.ModTime().Before(since) {
			continue
		}
		dev, ino := fileID(info)
		if r.reading(dev, ino) {
			continue
		}
		out = append(out, candidate{path: filepath.Join(dir, e.Name()), info: info, dev: dev, ino: ino})
	}
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i].info.ModTime(), out[j].info.ModTime()
		if !a.Equal(b) {
			return a.Before(b)
		}
		return out[i].path < out[j].path
	})
	return out[:min(len(out), maxCatchUp)]
}

// catchUp reads the rotated files the reader missed (see above). cont is
// the current file when it was just found truncated: a copy of it is read
// on from cont's offset, with cont's partial line. Without cont, a copy of
// what the current file still holds is left alone (and looked at again
// by the next catch-up): the reader reads that content from the file.
func (r *reader) catchUp(cont *tfile) {
	next := time.Now()
	for _, c := range r.candidates(r.lastScan.Add(-mtimeSlack)) {
		f, err := openLog(c.path)
		if err != nil {
			continue
		}
		if cont == nil && r.cur != nil && len(r.cur.head) > 0 && startsWith(f, r.cur.head) {
			_ = f.Close()
			if m := c.info.ModTime(); m.Before(next) {
				next = m
			}
			continue
		}
		start, continues := r.startOf(f, c.dev, c.ino, c.info.Size(), cont)
		if start >= c.info.Size() && !continues {
			_ = f.Close()
			continue
		}
		o := r.newFile(f, c.dev, c.ino, start)
		if continues {
			o.sp, cont.sp = cont.sp, source.NewSplitter(r.t.cfg.MaxLineLen)
			o.head = cont.head
		}
		r.t.log.Debug("reading a rotated log the reader had not seen", "path", r.path, "rotated", c.path, "from", start)
		for i := 0; r.drain(o) && r.ctx.Err() == nil && i < 1<<16; i++ {
		}
		r.retire(o) // a writer may still append to a renamed file
	}
	r.lastScan = next
}

// readBefore returns how much of tf's content (size bytes) the reader has
// already read from another file: a copy catchUp read while tf still held
// the same content. tf goes on from there.
func (r *reader) readBefore(tf *tfile, size int64) int64 {
	for _, o := range r.old {
		if len(o.head) > 0 && o.offset <= size && startsWith(tf.f, o.head) {
			return o.offset
		}
	}
	for i := len(r.seen) - 1; i >= 0; i-- {
		if s := r.seen[i]; s.headLen > 0 && s.read <= size && headHashIs(tf.f, s.headLen, s.headSum) {
			return s.read
		}
	}
	return 0
}
