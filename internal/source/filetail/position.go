package filetail

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/palisade-project/palisade/internal/source"
)

// resume decides where to continue in the newly opened file tf from the
// stored position p. When the file was replaced while palisade was
// stopped and the old file is still there under a rotated name
// (PATH.1, PATH-20240101, ...), the rest of the old file is drained first.
func (r *reader) resume(tf *tfile, p source.Position, size int64) int64 {
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
			o := r.newFile(old, p.Device, p.Inode, p.Offset)
			for i := 0; r.drain(o) && r.ctx.Err() == nil && i < 1<<16; i++ {
			}
			r.flushPending(o)
			r.remember(o)
			_ = old.Close()
		}
	}
	r.count(func(s *Stats) { s.Rotations++ })
	return 0
}

// findRotated looks in path's directory for the file identified by p under
// a rotated name (uncompressed) and opens it.
func findRotated(path string, p source.Position) *os.File {
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

// lastLineStart is where to start reading "at the end" of a file: its
// size, or the start of an unterminated last line (a writer caught
// mid-line, looked for in the last maxLen bytes), so that line is
// delivered whole once completed.
func lastLineStart(f *os.File, size int64, maxLen int) int64 {
	if size == 0 {
		return 0
	}
	n := min(size, int64(maxLen))
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

func headMatches(f *os.File, p source.Position) bool {
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
func refreshHead(tf *tfile) {
	want := min(tf.lineEnd, source.HeadHashLen)
	if int64(len(tf.head)) >= want {
		return
	}
	b := make([]byte, want)
	n, _ := tf.f.ReadAt(b, 0)
	tf.head = b[:n]
}

// keepHead adds to tf.head the bytes of data (read at tf.offset) that lie
// in the file's first HeadHashLen bytes. The head is what was read, not
// what the file holds now: a file rewritten while being read must not
// lend its new first bytes to the content read before.
func keepHead(tf *tfile, data []byte) {
	if tf.offset >= source.HeadHashLen || int64(len(tf.head)) != tf.offset {
		return
	}
	tf.head = append(tf.head, data[:min(int64(len(data)), source.HeadHashLen-tf.offset)]...)
}

// headUnchanged reports whether the bytes at the start of tf are still
// those seen before (a rewritten file that already grew past the old
// offset is caught here).
func headUnchanged(tf *tfile, size int64) bool {
	if len(tf.head) == 0 || size < int64(len(tf.head)) {
		return size >= int64(len(tf.head))
	}
	var b [source.HeadHashLen]byte
	n, _ := tf.f.ReadAt(b[:len(tf.head)], 0)
	return bytes.Equal(b[:n], tf.head)
}

func fileID(fi fs.FileInfo) (dev, ino uint64) {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return uint64(st.Dev), st.Ino //nolint:unconvert // Dev's type differs across platforms
	}
	return 0, 0
}

// openLog opens a log file for reading without blocking: a FIFO or device
// put where a log file belongs must not hang the reader (it is then
// refused as not a regular file).
func openLog(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
}
