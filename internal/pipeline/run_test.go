package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/palisade-project/palisade/internal/ban"
	"github.com/palisade-project/palisade/internal/failjournal"
	"github.com/palisade-project/palisade/internal/jail"
	"github.com/palisade-project/palisade/internal/source"
	"github.com/palisade-project/palisade/internal/source/filetail"
	"github.com/palisade-project/palisade/internal/source/journal"
	"github.com/palisade-project/palisade/internal/sysexec"
)

// bans records the bans asked for.
type bans struct {
	mu   sync.Mutex
	list []string // "jail prefix"
	ch   chan string
}

func newBans() *bans { return &bans{ch: make(chan string, 100)} }

func (*bans) Holds(string, netip.Prefix, time.Duration) bool { return false }

func (b *bans) BanMany(_ context.Context, reqs []ban.Request) []ban.Result {
	res := make([]ban.Result, len(reqs))
	for i, r := range reqs {
		b.mu.Lock()
		b.list = append(b.list, r.Jail+" "+r.Prefix.String())
		b.mu.Unlock()
		b.ch <- r.Jail + " " + r.Prefix.String()
		res[i].Entry = ban.Entry{Jail: r.Jail, Prefix: r.Prefix}
	}
	return res
}

func (b *bans) got() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.list)
}

// waitBan waits (bounded) for the next ban.
func (b *bans) waitBan(t *testing.T, within time.Duration) string {
	t.Helper()
	select {
	case s := <-b.ch:
		return s
	case <-time.After(within):
		t.Fatalf("no ban within %v (bans so far %v)", within, b.got())
		return ""
	}
}

// hangRunner runs nothing: every run blocks until its context ends.
type hangRunner struct{ started chan string }

func (h hangRunner) Run(ctx context.Context, c sysexec.Cmd) (sysexec.Result, error) {
	h.started <- c.String()
	<-ctx.Done()
	return sysexec.Result{}, ctx.Err()
}

// hangResolver blocks every lookup until its context ends.
type hangResolver struct{ started chan string }

func (h hangResolver) LookupNetIP(ctx context.Context, _, host string) ([]netip.Addr, error) {
	h.started <- host
	<-ctx.Done()
	return nil, ctx.Err()
}

type fakeResolver map[string][]netip.Addr

func (r fakeResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	if a, ok := r[host]; ok {
		return a, nil
	}
	return nil, errors.New("no such host")
}

type tailSources struct{ t *filetail.Tailer }

func (s tailSources) Files(patterns []string, head bool, c source.Consumer) (func(), error) {
	return s.t.Subscribe(patterns, filetail.Options{Head: head}, c)
}

func (s tailSources) Journal(journal.Spec, source.Consumer) (func(), error) {
	return nil, errors.New("no journal in this test")
}

func sshLine(ip string, n int) string {
	return fmt.Sprintf("%s host sshd[%d]: Failed password for root from %s port %d ssh2\n", time.Now().Format("Jan _2 15:04:05"), 100+n, ip, 2000+n)
}

func appendLines(t *testing.T, path string, lines ...string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, l := range lines {
		if _, err := f.WriteString(l); err != nil {
			t.Fatal(err)
		}
	}
}

func start(t *testing.T, p *Plan, deps Deps, srcs Sources) *Jail {
	t.Helper()
	r, err := New(p, deps)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Start(srcs); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Stop)
	return r
}

// TestSlowStageDoesNotDelayOtherJails: two jails read one file; one's
// ignorecommand hangs, or its resolver does. The other bans on time, and
// the slow one is cancelled on stop.
func TestSlowStageDoesNotDelayOtherJails(t *testing.T) {
	for _, slow := range []string{"ignorecommand", "resolver"} {
		t.Run(slow, func(t *testing.T) {
			dir := t.TempDir()
			logf := filepath.Join(dir, "auth.log")
			appendLines(t, logf)
			slowJail := "[slow]\nenabled = true\nlogpath = " + logf + "\nmaxretry = 3\n"
			if slow == "ignorecommand" {
				slowJail += "filter = sshd\nignorecommand = /usr/local/bin/is-friend <ip>\n"
			} else {
				// a filter whose failures are identified by host names
				slowJail += "filter = hosts\nusedns = yes\n"
			}
			cfg := load(t, map[string]string{"jail.local": slowJail +
				"[fast]\nenabled = true\nfilter = sshd\nlogpath = " + logf + "\nmaxretry = 3\n",
				"filter.d/hosts.conf": "[Definition]\nfailregex = ^fail from <F-ID>\\S+</F-ID>$\n"})
			tailer := filetail.New(filetail.Config{PollInterval: 20 * time.Millisecond})
			defer tailer.Close()
			srcs := tailSources{tailer}
			b := newBans()
			runs := make(chan string, 100)
			deps := Deps{Bans: b, Runner: hangRunner{runs}, Resolver: hangResolver{runs}, SelfAddrs: func() []netip.Addr { return nil }}
			slowJ := start(t, buildOne(t, cfg, "slow"), deps, srcs)
			start(t, buildOne(t, cfg, "fast"), deps, srcs)

			if slow == "resolver" {
				appendLines(t, logf, "fail from attacker.example.net\n", "fail from attacker.example.net\n", "fail from attacker.example.net\n")
			} else {
				appendLines(t, logf, sshLine("192.0.2.9", 1), sshLine("192.0.2.9", 2), sshLine("192.0.2.9", 3))
			}
			select {
			case <-runs:
			case <-time.After(10 * time.Second):
				t.Fatal("the slow jail never asked")
			}
			if slow == "resolver" {
				appendLines(t, logf, sshLine("192.0.2.10", 4), sshLine("192.0.2.10", 5), sshLine("192.0.2.10", 6))
			}
			// The fast jail bans while the slow jail's work hangs.
			for got := ""; !strings.HasPrefix(got, "fast "); {
				got = b.waitBan(t, 10*time.Second)
			}
			if c := slowJ.Counters(); c.Lines == 0 || c.Failures != 0 {
				t.Fatalf("slow jail counters %+v: its failures are waiting on the stage", c)
			}
			for _, g := range b.got() {
				if strings.HasPrefix(g, "slow ") {
					t.Fatalf("ban %q although the ignorecommand never answered", g)
				}
			}
			// Stop cancels the hanging work (bounded by the test timeout).
			stopped := make(chan struct{})
			go func() { slowJ.Stop(); close(stopped) }()
			select {
			case <-stopped:
			case <-time.After(10 * time.Second):
				t.Fatal("Stop did not cancel the hanging work")
			}
		})
	}
}

// TestIgnoreCommand: argv with <ip>, exit 0 ignores, 1 does not, other
// failures do not, answers cached.
func TestIgnoreCommand(t *testing.T) {
	cfg := load(t, map[string]string{"jail.local": "[sshd]\nenabled = true\nlogpath = /dev/null\nmaxretry = 2\n" +
		"ignorecommand = /usr/local/bin/is-friend --addr <ip>\n"})
	run := &sysexec.Fake{}
	run.On("/usr/local/bin/is-friend --addr 192.0.2.50", sysexec.Result{}, nil)
	run.On("/usr/local/bin/is-friend --addr 192.0.2.51", sysexec.Result{ExitCode: 1}, &sysexec.ExitError{Cmd: "is-friend", ExitCode: 1})
	run.On("/usr/local/bin/is-friend --addr 192.0.2.52", sysexec.Result{ExitCode: 2}, &sysexec.ExitError{Cmd: "is-friend", ExitCode: 2})
	b := newBans()
	r, err := New(buildOne(t, cfg, "sshd"), Deps{Bans: b, Runner: run, SelfAddrs: func() []netip.Addr { return nil }})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Stop()
	for i, ip := range []string{"192.0.2.50", "192.0.2.51", "192.0.2.52", "192.0.2.50", "192.0.2.51", "192.0.2.52"} {
		r.Line(source.Line{Text: sshLine(ip, i)[:len(sshLine(ip, i))-1], Source: "/var/log/auth.log"})
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(b.got()) < 2 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	got := b.got()
	slices.Sort(got)
	if !slices.Equal(got, []string{"sshd 192.0.2.51/32", "sshd 192.0.2.52/32"}) {
		t.Fatalf("bans %v: the friend must be ignored, the others banned", got)
	}
	if n := len(run.Calls()); n != 3 {
		t.Fatalf("%d runs, want 3 (answers are cached): %v", n, run.Calls())
	}
	// The workers run the commands in any order.
	if !slices.ContainsFunc(run.Calls(), func(c sysexec.Cmd) bool {
		return c.Name == "/usr/local/bin/is-friend" && slices.Equal(c.Args, []string{"--addr", "192.0.2.50"})
	}) {
		t.Fatalf("no run with argv [/usr/local/bin/is-friend --addr 192.0.2.50]: %v", run.Calls())
	}
	ex := r.Explain(netip.MustParseAddr("192.0.2.50"), time.Now())
	if ex.Ignore == nil || ex.Ignore.Rule != jail.RuleCommand {
		t.Fatalf("explain ignore %+v", ex.Ignore)
	}
}

// TestUseDNS: host-name ids are resolved beside the jail (yes, warn) or
// not counted (no, raw).
func TestUseDNS(t *testing.T) {
	res := fakeResolver{"bad.example.net": {netip.MustParseAddr("192.0.2.80"), netip.MustParseAddr("2001:db8::80")}}
	for _, tc := range []struct {
		use     string
		id      string
		counted uint64
		skipped uint64
	}{
		{"yes", "bad.example.net", 2, 0},
		{"warn", "bad.example.net", 2, 0},
		{"no", "bad.example.net", 0, 1},
		{"raw", "bad.example.net", 0, 1},
		{"yes", "unknown.example.net", 0, 1},
	} {
		t.Run(tc.use+"/"+tc.id, func(t *testing.T) {
			cfg := load(t, map[string]string{"jail.local": "[sshd]\nenabled = true\nlogpath = /dev/null\nusedns = " + tc.use + "\n" +
				"filter = hosts\n", "filter.d/hosts.conf": "[Definition]\nfailregex = ^fail from <F-ID>\\S+</F-ID>$\n"})
			r, err := New(buildOne(t, cfg, "sshd"), Deps{Bans: newBans(), Resolver: res, SelfAddrs: func() []netip.Addr { return nil }})
			if err != nil {
				t.Fatal(err)
			}
			defer r.Stop()
			r.Line(source.Line{Text: "fail from " + tc.id, Time: time.Now(), Source: "x"})
			deadline := time.Now().Add(10 * time.Second)
			for {
				c := r.Counters()
				if c.Failures == tc.counted && c.Skipped == tc.skipped {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("counters %+v, want %d counted %d skipped", c, tc.counted, tc.skipped)
				}
				time.Sleep(5 * time.Millisecond)
			}
		})
	}
}

// TestLogEncodingLatin1: a Latin-1 log line is decoded before matching.
func TestLogEncodingLatin1(t *testing.T) {
	files := map[string]string{
		"filter.d/accent.conf": "[Definition]\nfailregex = ^login failed for j\u00e9r\u00f4me from <HOST>$\n",
	}
	line := "login failed for j\xe9r\xf4me from 192.0.2.7" // Latin-1 bytes
	for _, tc := range []struct {
		enc  string
		want uint64
	}{{"latin-1", 1}, {"utf-8", 0}} {
		files["jail.local"] = "[web]\nenabled = true\nfilter = accent\nlogpath = /dev/null\nlogencoding = " + tc.enc + "\n"
		cfg := load(t, files)
		r, err := New(buildOne(t, cfg, "web"), Deps{Bans: newBans(), SelfAddrs: func() []netip.Addr { return nil }})
		if err != nil {
			t.Fatal(err)
		}
		r.Line(source.Line{Text: line, Time: time.Now(), Source: "x"})
		if c := r.Counters(); c.Failures != tc.want {
			t.Errorf("logencoding %s: %d failures, want %d", tc.enc, c.Failures, tc.want)
		}
		r.Stop()
	}
}

// TestIPv4PrefixBans: ipv4prefix = 24 counts a /24 together and bans it.
func TestIPv4PrefixBans(t *testing.T) {
	cfg := load(t, map[string]string{"jail.local": "[sshd]\nenabled = true\nlogpath = /dev/null\nmaxretry = 3\nipv4prefix = 24\n"})
	b := newBans()
	r, err := New(buildOne(t, cfg, "sshd"), Deps{Bans: b, SelfAddrs: func() []netip.Addr { return nil }})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Stop()
	for i, ip := range []string{"198.51.100.1", "198.51.100.77", "198.51.100.200"} {
		l := sshLine(ip, i)
		r.Line(source.Line{Text: l[:len(l)-1], Source: "x"})
	}
	if got := b.waitBan(t, 5*time.Second); got != "sshd 198.51.100.0/24" {
		t.Fatalf("ban %q, want the /24", got)
	}
}

// memJournal is an in-memory failure journal.
type memJournal struct {
	mu       sync.Mutex
	recs     []failjournal.Record
	replayed map[uint64]bool
}

func (m *memJournal) Replayed(k uint64) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.replayed[k] {
		delete(m.replayed, k)
		return true
	}
	return false
}

func (m *memJournal) Append(r failjournal.Record) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.recs = append(m.recs, r)
	return nil
}

// TestJournalRecordsAndReplay: counted failures are recorded; a replayed
// record counts again without a ban or a new record; a line already
// counted before the restart is not counted twice.
func TestJournalRecordsAndReplay(t *testing.T) {
	cfg := load(t, map[string]string{"jail.local": "[sshd]\nenabled = true\nlogpath = /dev/null\nmaxretry = 3\n"})
	jn := &memJournal{replayed: map[uint64]bool{}}
	b := newBans()
	r, err := New(buildOne(t, cfg, "sshd"), Deps{Bans: b, Journal: jn, SelfAddrs: func() []netip.Addr { return nil }})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Stop()
	l := sshLine("192.0.2.30", 1)
	l = l[:len(l)-1]
	r.Line(source.Line{Text: l, Source: "/var/log/auth.log"})
	if len(jn.recs) != 1 || jn.recs[0].Identity() != "192.0.2.30" || jn.recs[0].Key != failjournal.LineKey("sshd", "/var/log/auth.log", l) {
		t.Fatalf("records %+v", jn.recs)
	}
	// A restart: the record replays (counts), the same line delivered again
	// is recognised.
	r2, err := New(buildOne(t, cfg, "sshd"), Deps{Bans: b, Journal: jn, SelfAddrs: func() []netip.Addr { return nil }})
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Stop()
	rec := jn.recs[0]
	jn.replayed[rec.Key] = true
	r2.Replay(rec)
	r2.Replay(rec) // twice: counts twice (two records of the line)
	r2.Line(source.Line{Text: l, Source: "/var/log/auth.log"})
	if c := r2.Counters(); c.Failures != 2 || len(jn.recs) != 1 || len(b.got()) != 0 {
		t.Fatalf("after replay: counters %+v, records %d, bans %v", c, len(jn.recs), b.got())
	}
}

// logBuffer collects log lines.
type logBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestEvictionsCountedAndLogged: a full failure table evicts, counts and
// says so in the log (at most once a minute).
func TestEvictionsCountedAndLogged(t *testing.T) {
	cfg := load(t, map[string]string{"jail.local": "[sshd]\nenabled = true\nlogpath = /dev/null\nfailtable.size = 10\n"})
	var logs logBuffer
	r, err := New(buildOne(t, cfg, "sshd"), Deps{Bans: newBans(), SelfAddrs: func() []netip.Addr { return nil },
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Stop()
	for i := range 25 {
		l := sshLine(fmt.Sprintf("203.0.113.%d", i+1), i)
		r.Line(source.Line{Text: l[:len(l)-1], Source: "x"})
	}
	if c := r.Counters(); c.Evicted != 15 || c.Tracked != 10 {
		t.Fatalf("counters %+v, want 15 evicted, 10 tracked", c)
	}
	if n := strings.Count(logs.String(), "failure table full"); n != 1 {
		t.Fatalf("%d eviction messages, want 1 (rate-limited):\n%s", n, logs.String())
	}
}
