package source

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
)

// ReaderSource reads the lines of an io.Reader once: standard input, or a
// log file given to `palisade regex`. It applies the Tailer's line rules:
// "\n" ends a line, a trailing "\r" is dropped, bytes pass through
// unchanged, lines longer than the cap are cut, and a last line without
// "\n" is delivered at the end of the input.
type ReaderSource struct {
	name      string
	r         io.Reader
	maxLen    int
	truncated uint64
}

// NewReaderSource returns a source reading r; name becomes Line.Source.
// maxLen caps a line (0: MaxLineLen).
func NewReaderSource(name string, r io.Reader, maxLen int) *ReaderSource {
	if maxLen <= 0 {
		maxLen = MaxLineLen
	}
	return &ReaderSource{name: name, r: r, maxLen: maxLen}
}

// Name implements LineSource.
func (s *ReaderSource) Name() string { return s.name }

// Truncated returns how many lines were cut at the cap.
func (s *ReaderSource) Truncated() uint64 { return s.truncated }

// Run implements LineSource. It reports StateOK when it starts and
// StateError if reading fails.
func (s *ReaderSource) Run(ctx context.Context, c Consumer) error {
	c.Status(Status{Source: s.name, State: StateOK})
	br := bufio.NewReaderSize(s.r, 64<<10)
	var buf []byte // the line so far, at most maxLen bytes
	total := 0     // the line's real length
	for n := 0; ; n++ {
		if n%1024 == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		chunk, err := br.ReadSlice('\n')
		complete := err == nil
		data := chunk
		if complete {
			data = chunk[:len(chunk)-1]
		}
		if room := s.maxLen - len(buf); room > 0 {
			buf = append(buf, data[:min(len(data), room)]...)
		}
		total += len(data)
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if complete || total > 0 {
			if total > s.maxLen {
				s.truncated++
			}
			line := buf
			if k := len(line); k > 0 && line[k-1] == '\r' {
				line = line[:k-1]
			}
			c.Line(Line{Text: string(line), Source: s.name})
		}
		buf, total = buf[:0], 0
		if err == io.EOF {
			return nil
		}
		if err != nil {
			err = fmt.Errorf("read %s: %w", s.name, err)
			c.Status(Status{Source: s.name, State: StateError, Err: err})
			return err
		}
	}
}
