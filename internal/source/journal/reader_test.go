package journal

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/palisade-project/palisade/internal/source"
	"github.com/palisade-project/palisade/internal/source/sourcetest"
	"github.com/palisade-project/palisade/internal/sysexec"
	"github.com/palisade-project/palisade/internal/testutil/poll"
)

func TestDecodeEntry(t *testing.T) {
	for _, tc := range []struct {
		name    string
		in      string
		want    Entry
		text    string
		wantErr bool
	}{
		{
			name: "string message with syslog identifier and pid",
			in:   `{"__CURSOR":"s=1;i=2","__REALTIME_TIMESTAMP":"1700000000123456","_HOSTNAME":"web1","SYSLOG_IDENTIFIER":"sshd","_COMM":"sshd-session","_PID":"812","MESSAGE":"Failed password for root from 192.0.2.7 port 22 ssh2"}`,
			want: Entry{Message: "Failed password for root from 192.0.2.7 port 22 ssh2", Cursor: "s=1;i=2", Time: time.UnixMicro(1700000000123456), Hostname: "web1", Identifier: "sshd", PID: "812"},
			text: "web1 sshd[812]: Failed password for root from 192.0.2.7 port 22 ssh2",
		},
		{
			name: "byte-array message (non-UTF-8)",
			in:   `{"__CURSOR":"c","__REALTIME_TIMESTAMP":"1","MESSAGE":[98,97,100,32,255,254,10,120],"_COMM":"app"}`,
			want: Entry{Message: "bad \xff\xfe\nx", Cursor: "c", Time: time.UnixMicro(1), Identifier: "app"},
			text: "app: bad \xff\xfe\\nx",
		},
		{
			name: "field given twice: values joined like fail2ban",
			in:   `{"MESSAGE":["one",[116,119,111]],"SYSLOG_IDENTIFIER":["x","y"]}`,
			want: Entry{Message: "one two", Identifier: "x"},
			text: "x: one two",
		},
		{
			name: "source realtime wins, SYSLOG_PID wins, no host",
			in:   `{"__REALTIME_TIMESTAMP":"2000000","_SOURCE_REALTIME_TIMESTAMP":"1000000","SYSLOG_IDENTIFIER":"su","SYSLOG_PID":"7","_PID":"8","MESSAGE":"m"}`,
			want: Entry{Message: "m", Time: time.UnixMicro(1000000), Identifier: "su", PID: "7"},
			text: "su[7]: m",
		},
		{
			name: "non-numeric pid kept as text",
			in:   `{"SYSLOG_IDENTIFIER":"d","SYSLOG_PID":"abc","MESSAGE":"m"}`,
			want: Entry{Message: "m", Identifier: "d", PID: "abc"},
			text: "d[abc]: m",
		},
		{
			name: "kernel message gets the monotonic time",
			in:   `{"_HOSTNAME":"h","SYSLOG_IDENTIFIER":"kernel","__MONOTONIC_TIMESTAMP":"12345678","MESSAGE":"oops"}`,
			want: Entry{Message: "oops", Hostname: "h", Identifier: "kernel", Monotonic: 12345678 * time.Microsecond},
			text: "h kernel: [   12.345678] oops",
		},
		{
			name: "message only; null field ignored",
			in:   `{"MESSAGE":"just this","_HOSTNAME":null}`,
			want: Entry{Message: "just this"},
			text: "just this",
		},
		{name: "not JSON", in: `{"MESSAGE":`, wantErr: true},
		{name: "bad byte", in: `{"MESSAGE":[300]}`, wantErr: true},
		{name: "bad timestamp", in: `{"__REALTIME_TIMESTAMP":"soon","MESSAGE":"m"}`, wantErr: true},
		{name: "number where a string belongs", in: `{"MESSAGE":5}`, wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := DecodeEntry([]byte(tc.in))
			if tc.wantErr {
				if err == nil {
					t.Fatalf("no error, got %+v", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("entry (-want +got):\n%s", diff)
			}
			if s := got.Format(); s != tc.text {
				t.Errorf("Format = %q, want %q", s, tc.text)
			}
		})
	}
}

func TestParseMatch(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    []string
		wantErr bool
	}{
		{in: "_SYSTEMD_UNIT=sshd.service + _COMM=sshd", want: []string{"_SYSTEMD_UNIT=sshd.service", "+", "_COMM=sshd"}},
		{in: "_SYSTEMD_UNIT=a.service _PID=1\n_COMM=b\n", want: []string{"_SYSTEMD_UNIT=a.service", "_PID=1", "+", "_COMM=b"}},
		{in: `_COMM="my prog" MESSAGE='a b' X=c\ d`, want: []string{"_COMM=my prog", "MESSAGE=a b", "X=c d"}},
		{in: "/usr/sbin/sshd", want: []string{"/usr/sbin/sshd"}},
		{in: "", want: nil},
		{in: "--output=cat", wantErr: true},
		{in: "_comm=x", wantErr: true},
		{in: `_COMM="open`, wantErr: true},
		{in: "plainword", wantErr: true},
	} {
		got, err := ParseMatch(tc.in)
		if (err != nil) != tc.wantErr {
			t.Errorf("ParseMatch(%q) error = %v, wantErr %v", tc.in, err, tc.wantErr)
			continue
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("ParseMatch(%q) (-want +got):\n%s", tc.in, diff)
		}
	}
}

func TestArgs(t *testing.T) {
	m := []string{"_COMM=sshd"}
	base := []string{"--follow", "--merge", "--output=json", "--all", "--no-pager", "--quiet"}
	for _, tc := range []struct {
		spec   Spec
		cursor string
		want   []string
	}{
		{Spec{}, "s=abc", append(slices.Clone(base), "--after-cursor=s=abc", "_COMM=sshd")},
		{Spec{Directory: "/j"}, "@1700000000", append(slices.Clone(base), "--directory=/j", "--since=@1700000000", "_COMM=sshd")},
		{Spec{Files: []string{"/a/*.journal"}}, "", append(slices.Clone(base), "--file=/a/*.journal", "--lines=0", "_COMM=sshd")},
	} {
		if diff := cmp.Diff(tc.want, Args(tc.spec, m, tc.cursor)); diff != "" {
			t.Errorf("Args(%+v, %q) (-want +got):\n%s", tc.spec, tc.cursor, diff)
		}
	}
}

func TestRestrictMatches(t *testing.T) {
	const m = "_MACHINE_ID=ab"
	for _, tc := range []struct{ in, want []string }{
		{nil, []string{m}},
		{[]string{"A=1"}, []string{"A=1", m}},
		{[]string{"A=1", "B=2", "+", "C=3"}, []string{"A=1", "B=2", m, "+", "C=3", m}},
	} {
		if diff := cmp.Diff(tc.want, restrictMatches(tc.in, m)); diff != "" {
			t.Errorf("restrictMatches(%q) (-want +got):\n%s", tc.in, diff)
		}
	}
}

func entryJSON(cursor string, us int64, msg string) string {
	return fmt.Sprintf(`{"__CURSOR":%q,"__REALTIME_TIMESTAMP":"%d","_HOSTNAME":"h","SYSLOG_IDENTIFIER":"sshd","_PID":"9","MESSAGE":%q}`+"\n", cursor, us, msg)
}

func nextProc(t *testing.T, f *sysexec.FakeStarter) *sysexec.FakeProcess {
	t.Helper()
	p, err := f.Next(poll.Default)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func argValue(args []string, prefix string) (string, bool) {
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, prefix); ok {
			return v, true
		}
	}
	return "", false
}

func TestJournalCursorPersistence(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	store := source.NewMemStore()
	fake := sysexec.NewFakeStarter()
	cfg := Config{Starter: fake, Store: store, Now: func() time.Time { return now }, MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond,
		MachineID: "0123456789abcdef0123456789abcdef"}
	spec := Spec{Match: "_SYSTEMD_UNIT=sshd.service + _COMM=sshd", Lookback: 10 * time.Minute}

	j1 := New(cfg)
	c1 := &sourcetest.Collector{}
	if _, err := j1.Subscribe(spec, c1); err != nil {
		t.Fatal(err)
	}
	p := nextProc(t, fake)
	wantArgs := []string{"--follow", "--merge", "--output=json", "--all", "--no-pager", "--quiet", "--since=@1699999400",
		"_SYSTEMD_UNIT=sshd.service", "_MACHINE_ID=0123456789abcdef0123456789abcdef", "+", "_COMM=sshd", "_UID=0", "_MACHINE_ID=0123456789abcdef0123456789abcdef"}
	if p.Cmd().Name != "journalctl" || !cmp.Equal(p.Cmd().Args, wantArgs) {
		t.Fatalf("first start: %s %q, want journalctl %q", p.Cmd().Name, p.Cmd().Args, wantArgs)
	}
	for _, e := range []string{entryJSON("c1", 1_699_999_999_000_001, "first"), "not json\n", entryJSON("c2", 1_699_999_999_500_000, "second")} {
		if err := p.Write(e); err != nil {
			t.Fatal(err)
		}
	}
	sourcetest.WaitLines(t, c1, []string{"h sshd[9]: first", "h sshd[9]: second"})
	l := c1.Lines()[1]
	if !l.Time.Equal(time.UnixMicro(1_699_999_999_500_000)) || !strings.HasPrefix(l.Source, "journal:") {
		t.Errorf("line = %+v", l)
	}
	if st := j1.Stats(); len(st) != 1 || st[0].Entries != 2 || st[0].Skipped != 1 || st[0].Cursor != "c2" {
		t.Errorf("stats = %+v", st)
	}
	if err := j1.Close(); err != nil {
		t.Fatal(err)
	}
	if c, ok, _ := store.LoadCursor(l.Source); !ok || c != "c2" {
		t.Fatalf("stored cursor = %q, %v; want c2", c, ok)
	}

	// A restart resumes after the stored cursor.
	j2 := New(cfg)
	defer j2.Close()
	c2 := &sourcetest.Collector{}
	if _, err := j2.Subscribe(spec, c2); err != nil {
		t.Fatal(err)
	}
	p = nextProc(t, fake)
	if v, _ := argValue(p.Cmd().Args, "--after-cursor="); v != "c2" {
		t.Fatalf("restart args %q, want --after-cursor=c2", p.Cmd().Args)
	}
	if _, ok := argValue(p.Cmd().Args, "--since="); ok {
		t.Fatalf("restart args %q: --since with a cursor", p.Cmd().Args)
	}
	if err := p.Write(entryJSON("c3", 1_700_000_000_000_000, "third")); err != nil {
		t.Fatal(err)
	}
	sourcetest.WaitLines(t, c2, []string{"h sshd[9]: third"})
}

func TestJournalRestartsAndReportsErrors(t *testing.T) {
	store := source.NewMemStore()
	fake := sysexec.NewFakeStarter()
	j := New(Config{Starter: fake, Store: store, MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond, CheckpointEvery: time.Hour})
	defer j.Close()
	c := &sourcetest.Collector{}
	unsub, err := j.Subscribe(Spec{Match: "_COMM=sshd", Directory: "/var/log/journal"}, c)
	if err != nil {
		t.Fatal(err)
	}
	src := "journal:_COMM=sshd _UID=0 dir=/var/log/journal"
	p := nextProc(t, fake)
	poll.Until(t, poll.Default, "ok status", func() bool { s, ok := c.LastStatus(src); return ok && s.State == source.StateOK })
	if err := p.Write(entryJSON("k1", 1, "a")); err != nil {
		t.Fatal(err)
	}
	sourcetest.WaitLines(t, c, []string{"h sshd[9]: a"})

	// journalctl dies: error status, restart after the last cursor.
	p.Exit(&sysexec.ExitError{Cmd: "journalctl", ExitCode: 1, Stderr: "Failed to open journal: Permission denied"})
	p = nextProc(t, fake)
	if v, _ := argValue(p.Cmd().Args, "--after-cursor="); v != "k1" {
		t.Fatalf("restart args %q, want --after-cursor=k1", p.Cmd().Args)
	}
	var sawErr bool
	for _, s := range c.Statuses() {
		// journalctl's words, not its command line again after the source
		sawErr = sawErr || (s.State == source.StateError && s.Err.Error() == "journalctl failed (exit 1): Failed to open journal: Permission denied")
	}
	if !sawErr {
		t.Errorf("no error status reported: %+v", c.Statuses())
	}

	// A rejected cursor is dropped for a time.
	p.Exit(&sysexec.ExitError{Cmd: "journalctl", ExitCode: 1, Stderr: "Failed to seek to cursor: Invalid argument"})
	p = nextProc(t, fake)
	if _, ok := argValue(p.Cmd().Args, "--since=@"); !ok {
		t.Fatalf("after a rejected cursor args %q, want --since", p.Cmd().Args)
	}

	// journalctl cannot start at all: error, retried, then recovers.
	fake.FailStarts(errors.New(`exec: "journalctl": executable file not found in $PATH`))
	p.Exit(errors.New("killed"))
	poll.Until(t, poll.Default, "start failure status", func() bool {
		s, ok := c.LastStatus(src)
		return ok && s.State == source.StateError && strings.Contains(s.Err.Error(), "not found")
	})
	fake.FailStarts(nil)
	p = nextProc(t, fake)
	poll.Until(t, poll.Default, "recovered status", func() bool { s, ok := c.LastStatus(src); return ok && s.State == source.StateOK })
	if err := p.Write(entryJSON("k2", 2, "b")); err != nil {
		t.Fatal(err)
	}
	sourcetest.WaitLines(t, c, []string{"h sshd[9]: a", "h sshd[9]: b"})
	unsub()
	select {
	case <-p.Exited():
	case <-time.After(poll.Default):
		t.Fatal("journalctl not stopped after the last unsubscribe")
	}
	if cur, _, _ := store.LoadCursor(src); cur != "k2" {
		t.Errorf("cursor saved on stop = %q, want k2", cur)
	}
}

func TestJournalSharedStreams(t *testing.T) {
	fake := sysexec.NewFakeStarter()
	j := New(Config{Starter: fake, MaxEntry: 200})
	defer j.Close()
	a, b, other := &sourcetest.Collector{}, &sourcetest.Collector{}, &sourcetest.Collector{}
	spec := Spec{Match: "_COMM=sshd"}
	if _, err := j.Subscribe(spec, a); err != nil {
		t.Fatal(err)
	}
	p := nextProc(t, fake)
	if _, err := j.Subscribe(spec, b); err != nil {
		t.Fatal(err)
	}
	if _, err := j.Subscribe(Spec{Match: "_COMM=sshd", Raw: true}, other); err != nil {
		t.Fatal(err)
	}
	q := nextProc(t, fake)
	if len(fake.Cmds()) != 2 {
		t.Fatalf("%d journalctl started, want 2 (one per distinct spec)", len(fake.Cmds()))
	}
	big := entryJSON("x", 1, strings.Repeat("A", 70_000)) // longer than MaxEntry and the read buffer
	if err := p.Write(big + entryJSON("y", 2, "shared")); err != nil {
		t.Fatal(err)
	}
	if err := q.Write(entryJSON("z", 3, "raw\nline")); err != nil {
		t.Fatal(err)
	}
	sourcetest.WaitLines(t, a, []string{"h sshd[9]: shared"})
	sourcetest.WaitLines(t, b, []string{"h sshd[9]: shared"})
	sourcetest.WaitLines(t, other, []string{`raw\nline`})
	if _, err := j.Subscribe(Spec{Match: "-o cat"}, a); err == nil {
		t.Error("option-like match accepted")
	}
}

// TestJournalSystem reads journal files made by systemd-journal-remote with
// the real journalctl: decoding, following new files, cursor resume.
func TestJournalSystem(t *testing.T) {
	sourcetest.RequireJournalTools(t)
	const boot1, boot2 = "6c7c6013a8674f52b0a3bef6f6a09f4c", "7d8d7124b9785f63c1b4cf07f7b1a05d"
	dir := t.TempDir()
	base := time.Now().Add(-time.Minute).Truncate(time.Microsecond)
	sourcetest.WriteJournal(t, filepath.Join(dir, "a.journal"),
		sourcetest.ExportEntry(boot1, base, 1_000_001, 41, "Failed password for root from 192.0.2.1 port 22 ssh2"),
		sourcetest.ExportEntry(boot1, base.Add(time.Second), 1_000_002, 42, "bad \xff bytes"),
	)
	store := source.NewMemStore()
	cfg := Config{Store: store, MinBackoff: 100 * time.Millisecond, CheckpointEvery: time.Millisecond}
	spec := Spec{Match: "_SYSTEMD_UNIT=sshd.service", Directory: dir, Lookback: 10 * time.Minute}

	j1 := New(cfg)
	c1 := &sourcetest.Collector{}
	if _, err := j1.Subscribe(spec, c1); err != nil {
		t.Fatal(err)
	}
	want := []string{"host1 sshd[41]: Failed password for root from 192.0.2.1 port 22 ssh2", "host1 sshd[42]: bad \uFFFD bytes"}
	sourcetest.WaitLines(t, c1, want)
	if l := c1.Lines()[0]; !l.Time.Equal(base) {
		t.Errorf("time = %v, want %v", l.Time, base)
	}
	// followed live: a new journal file in the directory
	sourcetest.WriteJournal(t, filepath.Join(dir, "b.journal"), sourcetest.ExportEntry(boot1, base.Add(2*time.Second), 1_000_003, 43, "third"))
	want = append(want, "host1 sshd[43]: third")
	sourcetest.WaitLines(t, c1, want)
	if err := j1.Close(); err != nil {
		t.Fatal(err)
	}

	// written while stopped: read exactly once after the restart
	// ... after a reboot: the stored cursor is from the previous boot
	sourcetest.WriteJournal(t, filepath.Join(dir, "c.journal"), sourcetest.ExportEntry(boot2, base.Add(3*time.Second), 1_004, 44, "fourth"))
	j2 := New(cfg)
	defer j2.Close()
	c2 := &sourcetest.Collector{}
	if _, err := j2.Subscribe(spec, c2); err != nil {
		t.Fatal(err)
	}
	sourcetest.WaitLines(t, c2, []string{"host1 sshd[44]: fourth"})
	sourcetest.WriteJournal(t, filepath.Join(dir, "d.journal"), sourcetest.ExportEntry(boot2, base.Add(4*time.Second), 1_005, 45, "fifth"))
	sourcetest.WaitLines(t, c2, []string{"host1 sshd[44]: fourth", "host1 sshd[45]: fifth"})
}

func TestJournalSystemUnreadable(t *testing.T) {
	if _, err := exec.LookPath("journalctl"); err != nil {
		t.Skip("journalctl not installed")
	}
	j := New(Config{MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond})
	defer j.Close()
	c := &sourcetest.Collector{}
	if _, err := j.Subscribe(Spec{Directory: filepath.Join(t.TempDir(), "missing")}, c); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, poll.Default, "error status", func() bool {
		for _, s := range c.Statuses() {
			if s.State == source.StateError && strings.Contains(s.Err.Error(), "No such file") {
				return true
			}
		}
		return false
	})
}

// TestReadAll reads a journal once, oldest entry first, with the matches
// and the untrusted-match restriction a jail's subscription gets.
func TestReadAll(t *testing.T) {
	sourcetest.RequireJournalTools(t)
	const boot = "6c7c6013a8674f52b0a3bef6f6a09f4c"
	dir := t.TempDir()
	base := time.Now().Add(-time.Hour).Truncate(time.Microsecond)
	sourcetest.WriteJournal(t, filepath.Join(dir, "a.journal"),
		sourcetest.ExportEntry(boot, base, 1_000_001, 41, "Failed password for root from 192.0.2.1 port 22 ssh2"),
		sourcetest.ExportEntry(boot, base.Add(time.Second), 1_000_002, 42, "bad \xff bytes"),
	)
	j := New(Config{})
	for _, tc := range []struct {
		spec     Spec
		want     []string
		rootOnly int
	}{
		{Spec{Match: "_SYSTEMD_UNIT=sshd.service", Directory: dir},
			[]string{"host1 sshd[41]: Failed password for root from 192.0.2.1 port 22 ssh2", "host1 sshd[42]: bad \uFFFD bytes"}, 0},
		{Spec{Match: "_SYSTEMD_UNIT=sshd.service", Directory: dir, Raw: true},
			[]string{"Failed password for root from 192.0.2.1 port 22 ssh2", "bad \uFFFD bytes"}, 0},
		{Spec{Match: "_SYSTEMD_UNIT=nginx.service", Directory: dir}, nil, 0},
		// no trusted field: root's entries only, and these carry no _UID
		{Spec{Match: "SYSLOG_IDENTIFIER=sshd", Directory: dir}, nil, 1},
		{Spec{Match: "_SYSTEMD_UNIT=sshd.service", Directory: dir, Lookback: 30 * time.Minute}, nil, 0},
	} {
		var got []string
		st, err := j.ReadAll(context.Background(), tc.spec, func(l source.Line) {
			got = append(got, l.Text)
			if len(got) == 1 && !l.Time.Equal(base) {
				t.Errorf("%+v: time %v, want %v", tc.spec, l.Time, base)
			}
		})
		if err != nil {
			t.Fatalf("%+v: %v", tc.spec, err)
		}
		if !slices.Equal(got, tc.want) || len(st.RootOnly) != tc.rootOnly || st.Entries != uint64(len(tc.want)) {
			t.Errorf("%+v: lines %q, stats %+v; want %q", tc.spec, got, st, tc.want)
		}
	}
}
