package stdin

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/google/go-cmp/cmp"

	"github.com/palisade-project/palisade/internal/source"
	"github.com/palisade-project/palisade/internal/source/sourcetest"
)

func TestSource(t *testing.T) {
	long := strings.Repeat("x", 100_000)
	for _, tc := range []struct {
		name    string
		in      string
		want    []string
		tooLong uint64
	}{
		{"plain", "a\nb\n", []string{"a", "b"}, 0},
		{"last line without newline", "a\nb", []string{"a", "b"}, 0},
		{"crlf and empty lines", "a\r\n\r\n\nb\r", []string{"a", "", "", "b"}, 0},
		{"invalid utf-8 replaced", "\xff\xfe\n", []string{"\uFFFD\uFFFD"}, 0},
		{"long lines dropped", long + "\nshort\n" + long, []string{"short"}, 2},
		{"exactly the cap", long[:1000] + "\n", []string{long[:1000]}, 0},
		{"empty", "", nil, 0},
	} {
		for _, oneByte := range []bool{false, true} {
			t.Run(tc.name, func(t *testing.T) {
				var r io.Reader = strings.NewReader(tc.in)
				if oneByte {
					r = iotest.OneByteReader(r)
				}
				src := New("stdin", r, 1000)
				c := &sourcetest.Collector{}
				if err := src.Run(context.Background(), c); err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(tc.want, c.Texts()); diff != "" {
					t.Errorf("lines (-want +got):\n%s", diff)
				}
				if src.TooLong() != tc.tooLong {
					t.Errorf("too long = %d, want %d", src.TooLong(), tc.tooLong)
				}
				if st, ok := c.LastStatus("stdin"); !ok || st.State != source.StateOK || src.Name() != "stdin" {
					t.Errorf("status %v, name %q", st, src.Name())
				}
			})
		}
	}
}

func TestSourceErrors(t *testing.T) {
	boom := errors.New("boom")
	c := &sourcetest.Collector{}
	err := New("in", io.MultiReader(strings.NewReader("a\n"), iotest.ErrReader(boom)), 0).Run(context.Background(), c)
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v, want boom", err)
	}
	if st, _ := c.LastStatus("in"); st.State != source.StateError {
		t.Errorf("status = %v, want error", st)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := New("in", strings.NewReader("a\n"), 0).Run(ctx, c); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled run err = %v", err)
	}
}
