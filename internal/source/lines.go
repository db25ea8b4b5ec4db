package source

import (
	"bytes"
	"context"
	"io"
	"unicode/utf8"
)

// MaxLineLen caps one line's length in bytes (its "\n" not counted), for
// every source and for `palisade regex`. A longer line is dropped whole and
// counted, never cut: the head of a cut line is not a line anybody wrote,
// and a rule anchored at the line's end would match it where the real line
// goes on (an attacker pads a forged line to the cut).
const MaxLineLen = 64 << 10

// Splitter cuts a byte stream into lines, with the rules every source and
// `palisade regex` share:
//
//   - "\n" ends a line; the "\r"s just before it are removed (CRLF logs);
//   - each byte that is not part of valid UTF-8 becomes U+FFFD, as
//     fail2ban's decoding with errors="replace" does (per byte);
//   - NUL and other control bytes pass through unchanged;
//   - a line longer than the cap is dropped whole and counted (Dropped);
//   - an unterminated last line is a line when the input ends (Flush).
//
// A Splitter keeps the unfinished line between calls, so the input may
// arrive in chunks of any size. It is not safe for concurrent use.
type Splitter struct {
	max     int
	pending []byte // the unfinished line so far (at most max bytes)
	long    bool   // the unfinished line is over max: drop it at its end
	fixed   []byte // scratch for UTF-8 repair
	dropped uint64
}

// NewSplitter returns a Splitter with the cap maxLen (0 or less:
// MaxLineLen).
func NewSplitter(maxLen int) *Splitter {
	if maxLen <= 0 {
		maxLen = MaxLineLen
	}
	return &Splitter{max: maxLen}
}

// Split consumes data and calls emit with every line it completes, in
// order. The slice emit receives is only valid during the call.
func (s *Splitter) Split(data []byte, emit func([]byte)) {
	for len(data) > 0 {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			s.hold(data)
			return
		}
		seg := data[:i]
		data = data[i+1:]
		switch {
		case s.long:
			s.long = false
			s.dropped++
		case len(s.pending) > 0:
			if len(s.pending)+len(seg) > s.max {
				s.dropped++
			} else {
				s.pending = append(s.pending, seg...)
				emit(s.clean(s.pending))
			}
			s.pending = s.pending[:0]
		case len(seg) > s.max:
			s.dropped++
		default:
			emit(s.clean(seg))
		}
	}
}

// hold keeps b, the start of an unfinished line.
func (s *Splitter) hold(b []byte) {
	if s.long {
		return
	}
	if len(s.pending)+len(b) > s.max {
		s.pending, s.long = s.pending[:0], true
		return
	}
	s.pending = append(s.pending, b...)
}

// Flush ends the input: an unfinished line is emitted as the last line
// (or dropped and counted when it is over the cap).
func (s *Splitter) Flush(emit func([]byte)) {
	switch {
	case s.long:
		s.dropped++
	case len(s.pending) > 0:
		emit(s.clean(s.pending))
	}
	s.Reset()
}

// Reset forgets the unfinished line (the input started over, as after a
// truncation). Dropped keeps counting.
func (s *Splitter) Reset() {
	s.pending, s.long = s.pending[:0], false
}

// Pending is the length of the unfinished line held (0 while it is over
// the cap).
func (s *Splitter) Pending() int { return len(s.pending) }

// Dropped counts the lines dropped for being longer than the cap. When
// emit is called for a line, every longer line before it has been counted,
// so lines emitted plus Dropped is the line's number.
func (s *Splitter) Dropped() uint64 { return s.dropped }

func (s *Splitter) clean(line []byte) []byte {
	line = trimCR(line)
	if utf8.Valid(line) {
		return line
	}
	s.fixed = appendValid(s.fixed[:0], line)
	return s.fixed
}

// CleanText applies the Splitter's per-line rules to one line that did
// not come through a Splitter (a journal entry): the "\r"s at its end are
// removed and invalid UTF-8 bytes replaced. It does not apply the cap.
func CleanText(s string) string {
	for len(s) > 0 && s[len(s)-1] == '\r' {
		s = s[:len(s)-1]
	}
	if utf8.ValidString(s) {
		return s
	}
	return string(appendValid(nil, []byte(s)))
}

func trimCR(b []byte) []byte {
	for len(b) > 0 && b[len(b)-1] == '\r' {
		b = b[:len(b)-1]
	}
	return b
}

// appendValid appends b to dst with every byte that is not part of valid
// UTF-8 replaced by U+FFFD.
func appendValid(dst, b []byte) []byte {
	for len(b) > 0 {
		r, size := utf8.DecodeRune(b)
		if r == utf8.RuneError && size == 1 {
			dst = utf8.AppendRune(dst, utf8.RuneError)
		} else {
			dst = append(dst, b[:size]...)
		}
		b = b[size:]
	}
	return dst
}

// readChunk is how much ReadLines reads at a time.
const readChunk = 256 << 10

// ReadLines reads r to its end through s and calls emit with every line,
// the unterminated last one included. It stops early when ctx is done
// (checked before each read) and returns the first read error other than
// io.EOF, or ctx's error.
func ReadLines(ctx context.Context, r io.Reader, s *Splitter, emit func([]byte)) error {
	buf := make([]byte, readChunk)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		n, err := r.Read(buf)
		if n > 0 {
			s.Split(buf[:n], emit)
		}
		if err == io.EOF {
			s.Flush(emit)
			return nil
		}
		if err != nil {
			return err
		}
	}
}
