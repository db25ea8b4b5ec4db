// Package stdin reads the lines of an io.Reader once: standard input, or a
// file read from its start to its end. It splits lines with
// source.Splitter, so they are the same bytes the file tailer and
// `palisade regex` produce.
package stdin

import (
	"context"
	"fmt"

	"io"

	"github.com/palisade-project/palisade/internal/source"
)

// Source reads the lines of an io.Reader once. It implements
// source.LineSource.
type Source struct {
	name string
	r    io.Reader
	sp   *source.Splitter
}

// New returns a source reading r; name becomes Line.Source. maxLen caps a
// line (0: source.MaxLineLen); longer lines are dropped and counted.
func New(name string, r io.Reader, maxLen int) *Source {
	return &Source{name: name, r: r, sp: source.NewSplitter(maxLen)}
}

// Name implements source.LineSource.
func (s *Source) Name() string { return s.name }

// TooLong returns how many lines were dropped for being longer than the
// cap.
func (s *Source) TooLong() uint64 { return s.sp.Dropped() }

// Run implements source.LineSource. It reports StateOK when it starts and
// StateError if reading fails.
func (s *Source) Run(ctx context.Context, c source.Consumer) error {
	c.Status(source.Status{Source: s.name, State: source.StateOK})
	err := source.ReadLines(ctx, s.r, s.sp, func(b []byte) {
		c.Line(source.Line{Text: string(b), Source: s.name})
	})
	if err != nil && ctx.Err() == nil {
		err = fmt.Errorf("read %s: %w", s.name, err)
		c.Status(source.Status{Source: s.name, State: source.StateError, Err: err})
	}
	return err
}
