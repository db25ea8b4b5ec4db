package filetail

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/palisade-project/palisade/internal/source"
	"github.com/palisade-project/palisade/internal/source/sourcetest"
	"github.com/palisade-project/palisade/internal/testutil/poll"
)

func appendFile(t *testing.T, path, s string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(s); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

func lines(prefix string, from, to int) string {
	var b strings.Builder
	for i := from; i <= to; i++ {
		fmt.Fprintf(&b, "%s%d\n", prefix, i)
	}
	return b.String()
}

func names(prefix string, from, to int) []string {
	var out []string
	for i := from; i <= to; i++ {
		out = append(out, fmt.Sprintf("%s%d", prefix, i))
	}
	return out
}

// manual returns a Tailer that only reads when kicked (no fsnotify, polls
// an hour apart), so a test decides exactly when the reader looks.
func manual(t *testing.T, store source.PositionStore) *Tailer {
	t.Helper()
	tl := New(Config{Store: store, PollOnly: true, PollInterval: time.Hour, RotateGrace: time.Hour})
	t.Cleanup(func() { _ = tl.Close() })
	return tl
}

// live returns a Tailer with fsnotify and a fast poll.
func live(t *testing.T, store source.PositionStore) *Tailer {
	t.Helper()
	tl := New(Config{Store: store, PollInterval: 20 * time.Millisecond, RotateGrace: 200 * time.Millisecond})
	t.Cleanup(func() { _ = tl.Close() })
	return tl
}

// kick makes every reader of tl look at its file now and waits until it
// has done so (its step counter moved past the kick).
func kick(t *testing.T, tl *Tailer) {
	t.Helper()
	tl.mu.Lock()
	rs := make([]*reader, 0, len(tl.readers))
	for _, r := range tl.readers {
		rs = append(rs, r)
	}
	tl.mu.Unlock()
	for _, r := range rs {
		before := r.steps.Load()
		r.wake()
		// A step in progress when we woke it may have missed the change:
		// wait for two more completed steps' worth of progress.
		poll.Until(t, poll.Default, "reader step", func() bool { return r.steps.Load() >= before+1 })
		if r.steps.Load() == before+1 {
			r.wake()
			poll.Until(t, poll.Default, "reader step", func() bool { return r.steps.Load() >= before+2 })
		}
	}
}

func subscribe(t *testing.T, tl *Tailer, opts Options, patterns ...string) (*sourcetest.Collector, func()) {
	t.Helper()
	c := &sourcetest.Collector{}
	unsub, err := tl.Subscribe(patterns, opts, c)
	if err != nil {
		t.Fatal(err)
	}
	return c, unsub
}

func TestTailStartsAtEndOrHead(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts Options
		want []string
	}{
		{"end", Options{}, names("new", 1, 2)},
		{"head", Options{Head: true}, append(names("old", 1, 3), names("new", 1, 2)...)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "auth.log")
			appendFile(t, path, lines("old", 1, 3))
			tl := manual(t, nil)
			c, _ := subscribe(t, tl, tc.opts, path)
			kick(t, tl)
			appendFile(t, path, lines("new", 1, 2))
			kick(t, tl)
			sourcetest.WaitLines(t, c, tc.want)
			if st, ok := c.LastStatus(path); !ok || st.State != source.StateOK {
				t.Errorf("status = %v, %v; want ok", st, ok)
			}
		})
	}
}

// TestTailEndIsFixedAtSubscribe: "start at the end" means the end when
// Subscribe returned, however late the reader goroutine first looks.
func TestTailEndIsFixedAtSubscribe(t *testing.T) {
	for i := 0; i < 20; i++ {
		path := filepath.Join(t.TempDir(), "x.log")
		appendFile(t, path, "old\n")
		tl := manual(t, nil)
		c, _ := subscribe(t, tl, Options{}, path)
		appendFile(t, path, "new\n")
		kick(t, tl)
		sourcetest.WaitLines(t, c, []string{"new"})
		_ = tl.Close()
	}
}

func TestTailStartAtEndKeepsUnfinishedLine(t *testing.T) {
	for _, tc := range []struct{ before, after, want string }{
		{"old1\nold2\npart", "ial\nnext\n", "partial"},
		{"only-part", "ial\nnext\n", "only-partial"},
		{"old1\n", "new\nnext\n", "new"},
		{"", "new\nnext\n", "new"},
	} {
		path := filepath.Join(t.TempDir(), "x.log")
		appendFile(t, path, tc.before)
		tl := manual(t, nil)
		c, _ := subscribe(t, tl, Options{}, path)
		kick(t, tl)
		appendFile(t, path, tc.after)
		kick(t, tl)
		sourcetest.WaitLines(t, c, []string{tc.want, "next"})
	}
}

// TestTailRotation drives every rotation case with a reader that looks only
// when told to, so each case asserts one exact sequence.
func TestTailRotation(t *testing.T) {
	type env struct {
		t    *testing.T
		path string
		tl   *Tailer
	}
	for _, tc := range []struct {
		name string
		run  func(e env)
		want []string
		// expected counters
		rotations, truncations uint64
	}{
		{
			name: "rename and create with unread lines left in the old file",
			run: func(e env) {
				appendFile(e.t, e.path, lines("a", 4, 5)) // not yet read
				if err := os.Rename(e.path, e.path+".1"); err != nil {
					e.t.Fatal(err)
				}
				appendFile(e.t, e.path+".1", lines("a", 6, 6)) // the writer still holds the old file
				appendFile(e.t, e.path, lines("b", 1, 2))
				kick(e.t, e.tl)
				appendFile(e.t, e.path+".1", lines("a", 7, 7)) // late write before the writer reopens
				appendFile(e.t, e.path, lines("b", 3, 3))
			},
			want:      append(append(names("a", 1, 6), names("b", 1, 2)...), "a7", "b3"),
			rotations: 1,
		},
		{
			name: "copytruncate",
			run: func(e env) {
				data, err := os.ReadFile(e.path)
				if err != nil {
					e.t.Fatal(err)
				}
				if err := os.WriteFile(e.path+".1", data, 0o644); err != nil {
					e.t.Fatal(err)
				}
				if err := os.Truncate(e.path, 0); err != nil {
					e.t.Fatal(err)
				}
				appendFile(e.t, e.path, lines("b", 1, 2))
			},
			want:        append(names("a", 1, 3), names("b", 1, 2)...),
			truncations: 1,
		},
		{
			name: "truncate then refill past the old offset before the reader looks",
			run: func(e env) {
				if err := os.Truncate(e.path, 0); err != nil {
					e.t.Fatal(err)
				}
				appendFile(e.t, e.path, lines("bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb", 1, 2))
			},
			want:        append(names("a", 1, 3), names("bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb", 1, 2)...),
			truncations: 1,
		},
		{
			name: "truncate to zero",
			run: func(e env) {
				if err := os.Truncate(e.path, 0); err != nil {
					e.t.Fatal(err)
				}
				kick(e.t, e.tl)
				appendFile(e.t, e.path, lines("b", 1, 1))
			},
			want:        append(names("a", 1, 3), "b1"),
			truncations: 1,
		},
		{
			name: "delete and re-create",
			run: func(e env) {
				appendFile(e.t, e.path, lines("a", 4, 4))
				if err := os.Remove(e.path); err != nil {
					e.t.Fatal(err)
				}
				kick(e.t, e.tl)
				appendFile(e.t, e.path, lines("b", 1, 2))
			},
			want:      append(names("a", 1, 4), names("b", 1, 2)...),
			rotations: 1,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "app.log")
			appendFile(t, path, "")
			tl := manual(t, nil)
			c, _ := subscribe(t, tl, Options{}, path)
			kick(t, tl)
			appendFile(t, path, lines("a", 1, 3))
			kick(t, tl)
			sourcetest.WaitLines(t, c, names("a", 1, 3))
			tc.run(env{t, path, tl})
			kick(t, tl)
			sourcetest.WaitLines(t, c, tc.want)
			st := tl.Stats()
			if len(st) != 1 || st[0].Rotations != tc.rotations || st[0].Truncation != tc.truncations || st[0].Lines != uint64(len(tc.want)) {
				t.Errorf("stats = %+v, want %d rotations, %d truncations, %d lines", st, tc.rotations, tc.truncations, len(tc.want))
			}
		})
	}
}

func TestTailFileAppearsLater(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "later.log")
	tl := live(t, nil)
	c, _ := subscribe(t, tl, Options{}, path)
	poll.Until(t, poll.Default, "missing status", func() bool {
		st, ok := c.LastStatus(path)
		return ok && st.State == source.StateMissing
	})
	appendFile(t, path, lines("x", 1, 3))
	sourcetest.WaitLines(t, c, names("x", 1, 3))
	if st, _ := c.LastStatus(path); st.State != source.StateOK {
		t.Errorf("status after creation = %v, want ok", st)
	}
}

// TestTailLiveRotation runs rename-and-create and delete-and-recreate with
// fsnotify and polling racing the writer: every line must arrive exactly
// once and in order within its file.
func TestTailLiveRotation(t *testing.T) {
	for _, mode := range []string{"rename", "delete", "copytruncate"} {
		t.Run(mode, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "svc.log")
			appendFile(t, path, "")
			tl := live(t, nil)
			c, _ := subscribe(t, tl, Options{}, path)
			poll.Until(t, poll.Default, "ok status", func() bool { st, ok := c.LastStatus(path); return ok && st.State == source.StateOK })
			var want []string
			for gen := 0; gen < 5; gen++ {
				f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
				if err != nil {
					t.Fatal(err)
				}
				for i := 0; i < 200; i++ {
					s := fmt.Sprintf("g%d-%d", gen, i)
					want = append(want, s)
					if _, err := f.WriteString(s + "\n"); err != nil {
						t.Fatal(err)
					}
					if i == 0 {
						// A file created and rotated away before the reader
						// ever looks cannot be found: let the reader open
						// this generation, then race it for the rest.
						n := len(want)
						poll.Until(t, poll.Default, "reader on the new file", func() bool { return c.Count() >= n })
					}
				}
				switch mode {
				case "rename":
					if err := os.Rename(path, fmt.Sprintf("%s.%d", path, gen)); err != nil {
						t.Fatal(err)
					}
					_ = f.Close()
				case "delete":
					_ = f.Close()
					// Wait until the reader has everything before deleting:
					// lines written to a file nobody can open any more are
					// only readable through an fd held before the delete.
					poll.Until(t, poll.Default, "lines before delete", func() bool { return c.Count() == len(want) })
					if err := os.Remove(path); err != nil {
						t.Fatal(err)
					}
				case "copytruncate":
					_ = f.Close()
					poll.Until(t, poll.Default, "lines before truncate", func() bool { return c.Count() == len(want) })
					if err := os.Truncate(path, 0); err != nil {
						t.Fatal(err)
					}
				}
			}
			_ = poll.Wait(poll.Default, func() error {
				if c.Count() < len(want) {
					return errors.New("not yet")
				}
				return nil
			})
			got := c.Texts()
			// Lines of one generation keep their order; across a rotation
			// the old file's tail may interleave with the new file's head.
			if len(got) != len(want) {
				t.Fatalf("got %d lines, want %d; stats %+v", len(got), len(want), tl.Stats())
			}
			seen := map[string]bool{}
			last := map[string]int{}
			for _, s := range got {
				if seen[s] {
					t.Fatalf("line %q delivered twice", s)
				}
				seen[s] = true
				var gen, i int
				if _, err := fmt.Sscanf(s, "g%d-%d", &gen, &i); err != nil {
					t.Fatalf("unexpected line %q", s)
				}
				g := fmt.Sprint(gen)
				if prev, ok := last[g]; ok && i != prev+1 {
					t.Fatalf("generation %s out of order: %d after %d", g, i, prev)
				}
				last[g] = i
			}
		})
	}
}

func TestTailRestart(t *testing.T) {
	type env struct {
		t    *testing.T
		path string
	}
	for _, tc := range []struct {
		name    string
		stopped func(e env) // runs while no Tailer is running
		want    []string
	}{
		{
			name:    "lines appended while stopped are read exactly once",
			stopped: func(e env) { appendFile(e.t, e.path, lines("a", 4, 6)) },
			want:    append(names("a", 4, 6), "c1"),
		},
		{
			name:    "nothing appended",
			stopped: func(env) {},
			want:    []string{"c1"},
		},
		{
			name: "replaced while stopped: hash mismatch, read new file from start",
			stopped: func(e env) {
				if err := os.Remove(e.path); err != nil {
					e.t.Fatal(err)
				}
				appendFile(e.t, e.path, lines("new-content-that-is-longer-than-before-", 1, 2))
			},
			want: append(names("new-content-that-is-longer-than-before-", 1, 2), "c1"),
		},
		{
			name: "rewritten in place while stopped (same inode, new head)",
			stopped: func(e env) {
				if err := os.WriteFile(e.path, []byte(lines("z", 1, 9)), 0o644); err != nil {
					e.t.Fatal(err)
				}
			},
			want: append(names("z", 1, 9), "c1"),
		},
		{
			name: "truncated while stopped",
			stopped: func(e env) {
				if err := os.Truncate(e.path, 0); err != nil {
					e.t.Fatal(err)
				}
				appendFile(e.t, e.path, "b1\n")
			},
			want: []string{"b1", "c1"},
		},
		{
			name: "rotated while stopped: rest of the old file, then the new one",
			stopped: func(e env) {
				appendFile(e.t, e.path, lines("a", 4, 5))
				if err := os.Rename(e.path, e.path+".1"); err != nil {
					e.t.Fatal(err)
				}
				appendFile(e.t, e.path, lines("b", 1, 2))
			},
			want: append(append(names("a", 4, 5), names("b", 1, 2)...), "c1"),
		},
		{
			name: "deleted while stopped, appears later",
			stopped: func(e env) {
				if err := os.Remove(e.path); err != nil {
					e.t.Fatal(err)
				}
			},
			want: []string{"c1"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "auth.log")
			appendFile(t, path, lines("old", 1, 2))
			store := source.NewMemStore()
			tl1 := manual(t, store)
			c1, _ := subscribe(t, tl1, Options{}, path)
			kick(t, tl1)
			appendFile(t, path, lines("a", 1, 3)+"partial")
			kick(t, tl1)
			sourcetest.WaitLines(t, c1, names("a", 1, 3))
			if err := tl1.Close(); err != nil {
				t.Fatal(err)
			}
			// the partial line was not delivered and is not covered by the
			// stored position: complete it while stopped, unless the case
			// replaces the file anyway.
			if p, ok, _ := store.LoadPosition(path); !ok || p.Offset != int64(len(lines("old", 1, 2)+lines("a", 1, 3))) {
				t.Fatalf("stored position = %+v, %v", p, ok)
			}
			if err := os.Truncate(path, int64(len(lines("old", 1, 2)+lines("a", 1, 3)))); err != nil {
				t.Fatal(err)
			}
			tc.stopped(env{t, path})

			tl2 := manual(t, store)
			c2, _ := subscribe(t, tl2, Options{}, path)
			kick(t, tl2)
			appendFile(t, path, "c1\n")
			kick(t, tl2)
			sourcetest.WaitLines(t, c2, tc.want)
		})
	}
}

// TestTailPartialAndLongLines: the tailer's lines follow source.Splitter's
// rules, and a line over the cap is dropped whole and counted, never
// delivered cut to its head, however the line arrives in pieces.
func TestTailPartialAndLongLines(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.log")
	appendFile(t, path, "")
	tl := New(Config{PollOnly: true, PollInterval: time.Hour, MaxLineLen: 100})
	t.Cleanup(func() { _ = tl.Close() })
	c, _ := subscribe(t, tl, Options{}, path)
	kick(t, tl)

	appendFile(t, path, "hel")
	kick(t, tl)
	appendFile(t, path, "lo\r\nbad \xff\xfe utf8\n")
	kick(t, tl)
	long := strings.Repeat("L", 250_000)
	appendFile(t, path, long[:70]) // partial, still under the cap
	kick(t, tl)
	appendFile(t, path, long[70:]+"\nafter\n")
	kick(t, tl)
	forged := "sshd[1]: Failed password for root from 198.51.100.7 port 22 ssh2"
	appendFile(t, path, strings.Repeat("M", 100)+"\n"+strings.Repeat("N", 101)+"\n"+forged+strings.Repeat(" ", 100)+"tail\n")
	kick(t, tl)
	appendFile(t, path, "last\n")
	kick(t, tl)
	sourcetest.WaitLines(t, c, []string{"hello", "bad \uFFFD\uFFFD utf8", "after", strings.Repeat("M", 100), "last"})
	st := tl.Stats()
	if len(st) != 1 || st[0].TooLong != 3 || st[0].Lines != 5 {
		t.Errorf("stats = %+v, want 5 lines, 3 too long", st)
	}
	// Seven appends, each read after its kick (the 250,000-byte one in
	// four reads of the 64 KiB buffer): nine reads, a step per kick.
	if len(st) == 1 && (st[0].Reads != 9 || st[0].Steps < 7) {
		t.Errorf("reads %d, steps %d: want 9 reads, at least 7 steps", st[0].Reads, st[0].Steps)
	}
}

func TestTailPartialLineHeldUntilComplete(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.log")
	appendFile(t, path, "")
	tl := manual(t, nil)
	c, _ := subscribe(t, tl, Options{}, path)
	kick(t, tl)
	appendFile(t, path, "first\nsecond-half")
	kick(t, tl)
	sourcetest.WaitLines(t, c, []string{"first"})
	if st := tl.Stats(); st[0].Offset != int64(len("first\nsecond-half")) {
		t.Fatalf("reader did not consume the partial line: %+v", st)
	}
	if got := c.Texts(); len(got) != 1 {
		t.Fatalf("partial line delivered early: %q", got)
	}
	appendFile(t, path, "-done\n")
	kick(t, tl)
	sourcetest.WaitLines(t, c, []string{"first", "second-half-done"})
}

func TestTailGlobAndSharedReader(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.log"), filepath.Join(dir, "b.log")
	appendFile(t, a, "")
	appendFile(t, b, "")
	tl := live(t, nil)
	c1, _ := subscribe(t, tl, Options{}, filepath.Join(dir, "*.log"))
	c2, unsub2 := subscribe(t, tl, Options{}, a)
	poll.Until(t, poll.Default, "both readers ok", func() bool {
		s1, ok1 := c1.LastStatus(a)
		s2, ok2 := c1.LastStatus(b)
		return ok1 && ok2 && s1.State == source.StateOK && s2.State == source.StateOK
	})
	appendFile(t, a, "a1\n")
	sourcetest.WaitLines(t, c2, []string{"a1"})
	sourcetest.WaitLines(t, c1, []string{"a1"})
	appendFile(t, b, "b1\n")
	sourcetest.WaitLines(t, c1, []string{"a1", "b1"})
	// a new file matching the glob is read from its start
	cc := filepath.Join(dir, "c.log")
	appendFile(t, cc, "c1\nc2\n")
	sourcetest.WaitLines(t, c1, []string{"a1", "b1", "c1", "c2"})
	if n := len(tl.Stats()); n != 3 {
		t.Errorf("%d readers, want 3 (one per file)", n)
	}
	unsub2()
	appendFile(t, a, "a2\n")
	sourcetest.WaitLines(t, c1, []string{"a1", "b1", "c1", "c2", "a2"})
	if got := c2.Texts(); len(got) != 1 {
		t.Errorf("unsubscribed consumer got %q", got)
	}
}

func TestTailGlobNoMatchAndErrors(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.log")
	appendFile(t, good, "")
	notFile := filepath.Join(dir, "adir")
	if err := os.Mkdir(notFile, 0o755); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "fifo.log")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	glob := filepath.Join(dir, "none-*.log")
	tl := live(t, nil)
	c, _ := subscribe(t, tl, Options{}, glob, notFile, fifo, good)
	poll.Until(t, poll.Default, "statuses", func() bool {
		g, ok1 := c.LastStatus(glob)
		n, ok2 := c.LastStatus(notFile)
		o, ok3 := c.LastStatus(good)
		f, ok4 := c.LastStatus(fifo)
		return ok1 && ok2 && ok3 && ok4 && g.State == source.StateMissing && n.State == source.StateError && o.State == source.StateOK && f.State == source.StateError
	})
	// Each status text names its file once.
	missing := filepath.Join(dir, "missing.log")
	c2, _ := subscribe(t, tl, Options{}, missing)
	poll.Until(t, poll.Default, "the missing file looked at", func() bool {
		st, _ := c2.LastStatus(missing)
		return st.State == source.StateMissing && st.Err != source.ErrNotOpened
	})
	for _, tc := range []struct {
		c    *sourcetest.Collector
		src  string
		want string
	}{
		{c, glob, glob + ": missing: no file matches"},
		{c, notFile, notFile + ": error: not a regular file"},
		{c, fifo, fifo + ": error: not a regular file"},
		{c2, missing, missing + ": missing: file not found"},
	} {
		if st, _ := tc.c.LastStatus(tc.src); st.String() != tc.want {
			t.Errorf("status %q, want %q", st.String(), tc.want)
		}
	}
	appendFile(t, good, "still works\n")
	sourcetest.WaitLines(t, c, []string{"still works"})
	// errors are retried: the directory gives way to a log file
	if err := os.Remove(notFile); err != nil {
		t.Fatal(err)
	}
	appendFile(t, notFile, "recovered\n")
	sourcetest.WaitLines(t, c, []string{"still works", "recovered"})
	if st, _ := c.LastStatus(notFile); st.State != source.StateOK {
		t.Errorf("status after recovery = %v", st)
	}
	if _, err := tl.Subscribe([]string{"[bad"}, Options{}, c); err == nil {
		t.Error("bad glob accepted")
	}
	if _, err := tl.Subscribe(nil, Options{}, c); err == nil {
		t.Error("no path accepted")
	}
}

func TestTailUnsubscribeSavesPosition(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.log")
	appendFile(t, path, "")
	store := source.NewMemStore()
	tl := manual(t, store)
	c, unsub := subscribe(t, tl, Options{}, path)
	kick(t, tl)
	appendFile(t, path, "one\ntwo\n")
	kick(t, tl)
	sourcetest.WaitLines(t, c, []string{"one", "two"})
	unsub()
	p, ok, _ := store.LoadPosition(path)
	if !ok || p.Offset != 8 || p.HeadLen != 8 || p.Hash != hashHead([]byte("one\ntwo\n")) {
		t.Fatalf("position = %+v, %v", p, ok)
	}
	if n := len(tl.Stats()); n != 0 {
		t.Errorf("%d readers left after last unsubscribe", n)
	}
}
