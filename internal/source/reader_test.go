package source

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/google/go-cmp/cmp"
)

func TestReaderSource(t *testing.T) {
	long := strings.Repeat("x", 100_000)
	for _, tc := range []struct {
		name      string
		in        string
		want      []string
		truncated uint64
	}{
		{"plain", "a\nb\n", []string{"a", "b"}, 0},
		{"last line without newline", "a\nb", []string{"a", "b"}, 0},
		{"crlf and empty lines", "a\r\n\r\n\nb\r", []string{"a", "", "", "b"}, 0},
		{"invalid utf-8 passes", "\xff\xfe\n", []string{"\xff\xfe"}, 0},
		{"long lines cut", long + "\nshort\n" + long, []string{long[:1000], "short", long[:1000]}, 2},
		{"exactly the cap", long[:1000] + "\n", []string{long[:1000]}, 0},
		{"empty", "", nil, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := NewReaderSource("stdin", iotest.OneByteReader(strings.NewReader(tc.in)), 1000)
			if tc.name == "long lines cut" {
				src = NewReaderSource("stdin", strings.NewReader(tc.in), 1000)
			}
			c := &collector{}
			if err := src.Run(context.Background(), c); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, c.texts()); diff != "" {
				t.Errorf("lines (-want +got):\n%s", diff)
			}
			if src.Truncated() != tc.truncated {
				t.Errorf("truncated = %d, want %d", src.Truncated(), tc.truncated)
			}
			if src.Name() != "stdin" {
				t.Errorf("name %q", src.Name())
			}
		})
	}
}

func TestReaderSourceErrors(t *testing.T) {
	boom := errors.New("boom")
	c := &collector{}
	err := NewReaderSource("in", io.MultiReader(strings.NewReader("a\n"), iotest.ErrReader(boom)), 0).Run(context.Background(), c)
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v, want boom", err)
	}
	if st, _ := c.lastStatus("in"); st.State != StateError {
		t.Errorf("status = %v, want error", st)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := NewReaderSource("in", strings.NewReader("a\n"), 0).Run(ctx, c); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled run err = %v", err)
	}
}
