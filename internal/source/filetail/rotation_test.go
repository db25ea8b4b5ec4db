package filetail

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/palisade-project/palisade/internal/source"
	"github.com/palisade-project/palisade/internal/source/sourcetest"
	"github.com/palisade-project/palisade/internal/testutil/poll"
)

// rotateFast writes gens generations of perLine lines each to path,
// rotating after each one without ever waiting for the reader: by
// rename-and-create (PATH.N) or by copytruncate (copy to PATH.N, then
// truncate), as logrotate would, hundreds of times a second. It returns
// every line written, in order; the last one is written after the last
// rotation.
func rotateFast(t *testing.T, path, mode string, gens, perGen int) []string {
	t.Helper()
	var want []string
	for gen := range gens {
		f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		var chunk []byte
		for i := range perGen {
			s := fmt.Sprintf("g%d-%d", gen, i)
			want = append(want, s)
			chunk = append(chunk, s+"\n"...)
			if i%7 == 6 { // several writes per generation
				if _, err := f.Write(chunk); err != nil {
					t.Fatal(err)
				}
				chunk = chunk[:0]
			}
		}
		if _, err := f.Write(chunk); err != nil {
			t.Fatal(err)
		}
		rotated := fmt.Sprintf("%s.%d", path, gen)
		switch mode {
		case "rename":
			if err := os.Rename(path, rotated); err != nil {
				t.Fatal(err)
			}
			_ = f.Close()
		case "copytruncate":
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(rotated, data, 0o644); err != nil {
				t.Fatal(err)
			}
			if err := f.Truncate(0); err != nil {
				t.Fatal(err)
			}
			_ = f.Close()
		}
	}
	appendFile(t, path, "last\n")
	return append(want, "last")
}

// TestTailFastRotation: with rotations many times a second, every line
// that reached a file before its rotation is delivered exactly once, even
// from generations the reader never saw under the log's own name.
func TestTailFastRotation(t *testing.T) {
	for _, mode := range []string{"rename", "copytruncate"} {
		t.Run(mode, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "svc.log")
			appendFile(t, path, "")
			// A rotated file from before the subscription: never read.
			appendFile(t, path+".0-old", "before-1\nbefore-2\n")
			hourAgo := time.Now().Add(-time.Hour)
			if err := os.Chtimes(path+".0-old", hourAgo, hourAgo); err != nil {
				t.Fatal(err)
			}
			tl := live(t, nil)
			c, _ := subscribe(t, tl, Options{}, path)
			c.WaitState(t, path, source.StateOK)
			want := rotateFast(t, path, mode, 200, 25)
			err := poll.Wait(poll.Default, func() error {
				if c.Count() < len(want) {
					return errors.New("not yet")
				}
				return nil
			})
			assertExactlyOnce(t, c, want, err, tl)
		})
	}
}

// assertExactlyOnce checks that c got every line of want once, each
// generation in order.
func assertExactlyOnce(t *testing.T, c *sourcetest.Collector, want []string, waitErr error, tl *Tailer) {
	t.Helper()
	got := c.Texts()
	seen := map[string]int{}
	for _, s := range got {
		seen[s]++
	}
	var missing, twice []string
	for _, s := range want {
		switch seen[s] {
		case 0:
			missing = append(missing, s)
		case 1:
		default:
			twice = append(twice, s)
		}
	}
	if len(missing) > 0 || len(twice) > 0 || len(got) != len(want) {
		t.Fatalf("%d lines delivered, want %d (wait: %v); %d missing (first %q), %d twice (first %q); stats %+v",
			len(got), len(want), waitErr, len(missing), first(missing), len(twice), first(twice), tl.Stats())
	}
	last := map[int]int{}
	for _, s := range got {
		var gen, i int
		if s == "last" {
			continue
		}
		if _, err := fmt.Sscanf(s, "g%d-%d", &gen, &i); err != nil {
			t.Fatalf("unexpected line %q", s)
		}
		if prev, ok := last[gen]; ok && i != prev+1 {
			t.Fatalf("generation %d out of order: %d after %d", gen, i, prev)
		}
		last[gen] = i
	}
}

func first(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[0]
}
