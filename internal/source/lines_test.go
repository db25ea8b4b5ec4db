package source

import (
	"context"
	"errors"
	"strings"
	"testing"
	"testing/iotest"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
)

// reference is the Splitter's rules written the obvious way over the
// whole input: the lines it must emit and how many it must drop.
func reference(in string, maxLen int) (lines []string, dropped uint64) {
	parts := strings.Split(in, "\n")
	if parts[len(parts)-1] == "" {
		parts = parts[:len(parts)-1]
	}
	for _, p := range parts {
		if len(p) > maxLen {
			dropped++
			continue
		}
		p = strings.TrimRight(p, "\r")
		var b strings.Builder
		for i := 0; i < len(p); {
			r, size := utf8.DecodeRuneInString(p[i:])
			if r == utf8.RuneError && size == 1 {
				b.WriteRune(utf8.RuneError)
			} else {
				b.WriteString(p[i : i+size])
			}
			i += size
		}
		lines = append(lines, b.String())
	}
	return lines, dropped
}

// splitChunks feeds in to a Splitter in chunks of the given sizes (the
// rest in one chunk) and returns the lines and the line numbers emit saw.
func splitChunks(in string, maxLen int, sizes []int) ([]string, []int, uint64) {
	s := NewSplitter(maxLen)
	var got []string
	var numbers []int
	emit := func(b []byte) {
		got = append(got, string(b))
		numbers = append(numbers, len(got)+int(s.Dropped()))
	}
	data := []byte(in)
	for _, n := range sizes {
		if n > len(data) {
			n = len(data)
		}
		s.Split(data[:n], emit)
		data = data[n:]
	}
	s.Split(data, emit)
	s.Flush(emit)
	return got, numbers, s.Dropped()
}

func TestSplitter(t *testing.T) {
	const max = 10
	for _, tc := range []struct {
		name    string
		in      string
		want    []string
		numbers []int // 1-based line numbers at emit time (lines emitted + dropped)
		dropped uint64
	}{
		{name: "lines", in: "a\nbb\n", want: []string{"a", "bb"}, numbers: []int{1, 2}},
		{name: "unterminated last line", in: "a\nb", want: []string{"a", "b"}, numbers: []int{1, 2}},
		{name: "crlf, several cr, empty lines", in: "a\r\n\r\r\n\nb\r", want: []string{"a", "", "", "b"}, numbers: []int{1, 2, 3, 4}},
		{name: "cr inside a line stays", in: "a\rb\n", want: []string{"a\rb"}, numbers: []int{1}},
		{name: "invalid utf-8 per byte", in: "\xff\xfeok\xe2\x82\n", want: []string{"\uFFFD\uFFFDok\uFFFD\uFFFD"}, numbers: []int{1}},
		{name: "valid utf-8 untouched", in: "héllo ☃\n", want: []string{"héllo ☃"}, numbers: []int{1}},
		{name: "nul passes", in: "a\x00b\n", want: []string{"a\x00b"}, numbers: []int{1}},
		{name: "exactly the cap", in: "0123456789\n", want: []string{"0123456789"}, numbers: []int{1}},
		{name: "one over the cap is dropped, numbers go on", in: "x\n0123456789A\ny\n", want: []string{"x", "y"}, numbers: []int{1, 3}, dropped: 1},
		{name: "cr counts against the cap", in: "0123456789\r\n", dropped: 1},
		{name: "long unterminated last line dropped", in: "a\n0123456789ABC", want: []string{"a"}, numbers: []int{1}, dropped: 1},
		{name: "forged head never emitted", in: "Failed from 198.51.100.7" + strings.Repeat(" ", 20) + "real end\nnext\n", want: []string{"next"}, numbers: []int{2}, dropped: 1},
		{name: "empty input", in: ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Whole, byte by byte, and in chunks of 3: the same answer.
			for _, sizes := range [][]int{nil, repeat(1, len(tc.in)), repeat(3, len(tc.in)/3)} {
				got, numbers, dropped := splitChunks(tc.in, max, sizes)
				if diff := cmp.Diff(tc.want, got); diff != "" {
					t.Errorf("chunks %v: lines (-want +got):\n%s", sizes, diff)
				}
				if diff := cmp.Diff(tc.numbers, numbers); diff != "" {
					t.Errorf("chunks %v: line numbers (-want +got):\n%s", sizes, diff)
				}
				if dropped != tc.dropped {
					t.Errorf("chunks %v: dropped %d, want %d", sizes, dropped, tc.dropped)
				}
			}
		})
	}
}

func repeat(n, times int) []int {
	out := make([]int, times)
	for i := range out {
		out[i] = n
	}
	return out
}

func TestSplitterResetAndPending(t *testing.T) {
	s := NewSplitter(0)
	var got []string
	emit := func(b []byte) { got = append(got, string(b)) }
	s.Split([]byte("part"), emit)
	if s.Pending() != 4 || len(got) != 0 {
		t.Fatalf("pending %d, lines %q", s.Pending(), got)
	}
	s.Reset() // the file was truncated: the partial line is gone
	s.Split([]byte("new\n"), emit)
	if diff := cmp.Diff([]string{"new"}, got); diff != "" {
		t.Errorf("after reset (-want +got):\n%s", diff)
	}
	if s.max != MaxLineLen {
		t.Errorf("default cap %d, want MaxLineLen", s.max)
	}
}

func TestCleanText(t *testing.T) {
	for in, want := range map[string]string{"ok": "ok", "a\r\r": "a", "\xffx\r": "\uFFFDx", "a\rb": "a\rb", "": ""} {
		if got := CleanText(in); got != want {
			t.Errorf("CleanText(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestReadLines(t *testing.T) {
	in := "one\r\ntwo\n" + strings.Repeat("z", 300) + "\nthree"
	var got []string
	s := NewSplitter(100)
	if err := ReadLines(context.Background(), iotest.HalfReader(strings.NewReader(in)), s, func(b []byte) { got = append(got, string(b)) }); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"one", "two", "three"}, got); diff != "" || s.Dropped() != 1 {
		t.Errorf("lines (-want +got):\n%s, dropped %d", diff, s.Dropped())
	}
	boom := errors.New("boom")
	if err := ReadLines(context.Background(), iotest.ErrReader(boom), NewSplitter(0), func([]byte) {}); !errors.Is(err, boom) {
		t.Errorf("err = %v, want boom", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := ReadLines(ctx, strings.NewReader("a\n"), NewSplitter(0), func([]byte) { t.Error("line after cancel") }); !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
}

// FuzzSplitter: however the input is cut into chunks, the Splitter emits
// exactly what the whole-input reference does.
func FuzzSplitter(f *testing.F) {
	for _, s := range []string{"a\nb", "a\r\n\n", strings.Repeat("x", 40) + "\ny", "\xff\n", "\r\r\r", "0123456789\n"} {
		f.Add(s, []byte{1, 2, 3})
	}
	f.Fuzz(func(t *testing.T, in string, cuts []byte) {
		const max = 16
		sizes := make([]int, len(cuts))
		for i, c := range cuts {
			sizes[i] = int(c % 20)
		}
		got, numbers, dropped := splitChunks(in, max, sizes)
		want, wantDropped := reference(in, max)
		if len(want) != len(got) || strings.Join(want, "\n") != strings.Join(got, "\n") {
			t.Fatalf("chunks %v: got %q, want %q", sizes, got, want)
		}
		if dropped != wantDropped {
			t.Fatalf("dropped %d, want %d", dropped, wantDropped)
		}
		for i := 1; i < len(numbers); i++ {
			if numbers[i] <= numbers[i-1] {
				t.Fatalf("line numbers not increasing: %v", numbers)
			}
		}
		for _, l := range got {
			if !utf8.ValidString(l) || strings.HasSuffix(l, "\r") || strings.Contains(l, "\n") {
				t.Fatalf("line %q breaks the rules", l)
			}
		}
	})
}
