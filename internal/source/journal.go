package source

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/palisade-project/palisade/internal/sysexec"
)

// Process is a started long-running program whose output is streamed.
type Process interface {
	// Stdout is the program's standard output.
	Stdout() io.Reader
	// Wait waits for the program to exit (after Stdout hit EOF). A non-zero
	// exit is an error that carries the end of the program's stderr.
	Wait() error
}

// Starter starts long-running programs (internal/sysexec's Runner only runs
// programs to completion). Cancelling ctx kills the program.
type Starter interface {
	Start(ctx context.Context, c sysexec.Cmd) (Process, error)
}

// ExecStarter is the real Starter: argv only, no shell, a minimal
// environment, stderr kept (last 4 KiB) for error messages.
type ExecStarter struct{}

// Start implements Starter.
func (ExecStarter) Start(ctx context.Context, c sysexec.Cmd) (Process, error) {
	cmd := exec.CommandContext(ctx, c.Name, c.Args...)
	cmd.Env = append([]string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C", "SYSTEMD_COLORS=0"}, c.Env...)
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 3 * time.Second
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", c.String(), err)
	}
	p := &execProcess{cmd: cmd, out: out, name: c.String()}
	cmd.Stderr = &p.stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", c.String(), err)
	}
	return p, nil
}

type execProcess struct {
	cmd    *exec.Cmd
	out    io.Reader
	name   string
	stderr tailBuffer
}

func (p *execProcess) Stdout() io.Reader { return p.out }

func (p *execProcess) Wait() error {
	err := p.cmd.Wait()
	if err == nil {
		return nil
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return &sysexec.ExitError{Cmd: p.name, ExitCode: ee.ExitCode(), Stderr: p.stderr.String()}
	}
	return fmt.Errorf("%s: %w", p.name, err)
}

// tailBuffer keeps the last 4 KiB written to it.
type tailBuffer struct {
	mu  sync.Mutex
	buf []byte
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	if len(b.buf) > 4096 {
		b.buf = append(b.buf[:0], b.buf[len(b.buf)-4096:]...)
	}
	return len(p), nil
}

func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf)
}

// JournalConfig configures a Journal. Zero values pick the defaults.
type JournalConfig struct {
	// Starter starts journalctl (default ExecStarter).
	Starter Starter
	// Store persists cursors; nil keeps them in memory only.
	Store PositionStore
	// Logger receives diagnostics; nil discards them.
	Logger *slog.Logger
	// Journalctl is the program (default "journalctl").
	Journalctl string
	// CheckpointEvery is the minimum time between two cursor saves while
	// entries flow (default 1s); the cursor is always saved on stop.
	CheckpointEvery time.Duration
	// MinBackoff and MaxBackoff bound the delay before journalctl is
	// restarted after it died (defaults 1s and 30s, doubling).
	MinBackoff, MaxBackoff time.Duration
	// MaxEntry caps one JSON entry's size (default 1 MiB); bigger entries
	// are skipped and counted.
	MaxEntry int
	// Now is the clock (default time.Now).
	Now func() time.Time
	// MachineID restricts the system journal (a spec without Directory or
	// Files) to this machine's entries (default: the contents of
	// /etc/machine-id; "" when unreadable means no restriction). It is
	// needed because journalctl runs with --merge: without it, journalctl
	// 250+ limits --follow to the current boot and cannot resume from a
	// cursor of a previous boot; --merge would also take in remote
	// machines' journals.
	MachineID string
}

// JournalSpec says what to read from the journal. Subscriptions with equal
// specs (ignoring Lookback) share one journalctl process.
type JournalSpec struct {
	// Match is a filter's journalmatch value: each line is one alternative
	// (joined with "+"), made of shell-like words: FIELD=VALUE terms and
	// "+" (journalctl's OR), e.g. "_SYSTEMD_UNIT=sshd.service + _COMM=sshd".
	Match string
	// Directory reads the journal files in this directory (--directory)
	// instead of the system journal; Files reads these files or globs
	// (--file; note that journalctl before v254 cannot --follow --file).
	Directory string
	Files     []string
	// Lookback applies when no cursor is stored: entries newer than
	// now-Lookback are read first (fail2ban seeks back findtime). Zero
	// starts with new entries only. The first subscriber decides.
	Lookback time.Duration
	// Raw delivers MESSAGE alone instead of fail2ban's syslog-like
	// "HOST IDENT[PID]: MESSAGE".
	Raw bool
}

// JournalStats are one journalctl stream's counters.
type JournalStats struct {
	Key      string
	Status   Status
	Entries  uint64 // entries delivered
	Skipped  uint64 // entries that could not be decoded or were too big
	Restarts uint64 // journalctl (re)starts
	Cursor   string
}

// Journal follows the systemd journal through journalctl, one process per
// distinct JournalSpec, shared by its subscribers.
type Journal struct {
	cfg JournalConfig
	log *slog.Logger

	mu      sync.Mutex
	closed  bool
	streams map[string]*jstream
	wg      sync.WaitGroup
}

// NewJournal returns a Journal. Close it to stop every journalctl and save
// cursors.
func NewJournal(cfg JournalConfig) *Journal {
	if cfg.Starter == nil {
		cfg.Starter = ExecStarter{}
	}
	if cfg.Journalctl == "" {
		cfg.Journalctl = "journalctl"
	}
	if cfg.CheckpointEvery <= 0 {
		cfg.CheckpointEvery = time.Second
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = time.Second
	}
	if cfg.MaxBackoff < cfg.MinBackoff {
		cfg.MaxBackoff = max(30*time.Second, cfg.MinBackoff)
	}
	if cfg.MaxEntry <= 0 {
		cfg.MaxEntry = 1 << 20
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.MachineID == "" {
		if b, err := os.ReadFile("/etc/machine-id"); err == nil {
			if id := strings.TrimSpace(string(b)); validMachineID(id) {
				cfg.MachineID = id
			}
		}
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Journal{cfg: cfg, log: log, streams: map[string]*jstream{}}
}

func validMachineID(id string) bool {
	if len(id) != 32 {
		return false
	}
	for _, r := range id {
		if (r < '0' || r > '9') && (r < 'a' || r > 'f') {
			return false
		}
	}
	return true
}

// restrictMatches adds term to every "+"-separated alternative of matches
// (terms of different fields are ANDed by journalctl).
func restrictMatches(matches []string, term string) []string {
	out := make([]string, 0, len(matches)+4)
	for _, m := range matches {
		if m == "+" {
			out = append(out, term)
		}
		out = append(out, m)
	}
	return append(out, term)
}

// ParseJournalMatch turns a journalmatch value into journalctl match
// arguments: lines become alternatives separated by "+", each line is split
// into words like a POSIX shell would (quotes, backslashes; nothing is
// expanded). Every word must be "+" or FIELD=VALUE with FIELD made of
// A-Z, 0-9 and "_", or an absolute path (journalctl matches the binary).
func ParseJournalMatch(s string) ([]string, error) {
	var out []string
	for ln := range strings.SplitSeq(s, "\n") {
		words, err := sysexec.SplitArgs(ln)
		if err != nil {
			return nil, fmt.Errorf("journalmatch %q: %w", ln, err)
		}
		if len(words) == 0 {
			continue
		}
		for _, w := range words {
			if err := checkMatchWord(w); err != nil {
				return nil, fmt.Errorf("journalmatch %q: %w", ln, err)
			}
		}
		if len(out) > 0 && out[len(out)-1] != "+" && words[0] != "+" {
			out = append(out, "+")
		}
		out = append(out, words...)
	}
	return out, nil
}

func checkMatchWord(w string) error {
	if w == "+" || strings.HasPrefix(w, "/") {
		return nil
	}
	eq := strings.IndexByte(w, '=')
	if eq <= 0 {
		return fmt.Errorf("%q: want FIELD=VALUE or +", w)
	}
	for _, r := range w[:eq] {
		if (r < 'A' || r > 'Z') && (r < '0' || r > '9') && r != '_' {
			return fmt.Errorf("%q: field name must be A-Z, 0-9, _", w)
		}
	}
	return nil
}

// key identifies a spec's journalctl stream (and its stored cursor).
func (sp JournalSpec) key(matches []string) string {
	var b strings.Builder
	b.WriteString(strings.Join(matches, " "))
	if sp.Directory != "" {
		fmt.Fprintf(&b, " dir=%s", sp.Directory)
	}
	for _, f := range sp.Files {
		fmt.Fprintf(&b, " file=%s", f)
	}
	if sp.Raw {
		b.WriteString(" raw")
	}
	if b.Len() == 0 {
		return "all"
	}
	return strings.TrimSpace(b.String())
}

// JournalArgs builds journalctl's arguments for spec. cursor is a stored
// journal cursor, or "@UNIX" (seconds) to start at a time, or "" to start
// with new entries.
func JournalArgs(spec JournalSpec, matches []string, cursor string) []string {
	args := []string{"--follow", "--merge", "--output=json", "--all", "--no-pager", "--quiet"}
	if spec.Directory != "" {
		args = append(args, "--directory="+spec.Directory)
	}
	for _, f := range spec.Files {
		args = append(args, "--file="+f)
	}
	switch {
	case strings.HasPrefix(cursor, "@"):
		args = append(args, "--since="+cursor)
	case cursor != "":
		args = append(args, "--after-cursor="+cursor)
	default:
		args = append(args, "--lines=0")
	}
	return append(args, matches...)
}

// Subscribe attaches c to the journal stream described by spec, starting
// journalctl if no other subscriber shares it. The returned function
// detaches c; the last one out stops journalctl and saves the cursor.
func (j *Journal) Subscribe(spec JournalSpec, c Consumer) (func(), error) {
	matches, err := ParseJournalMatch(spec.Match)
	if err != nil {
		return nil, err
	}
	for _, f := range spec.Files {
		if strings.HasPrefix(f, "-") {
			return nil, fmt.Errorf("journal file %q: must not start with -", f)
		}
	}
	if spec.Directory == "" && len(spec.Files) == 0 && j.cfg.MachineID != "" {
		matches = restrictMatches(matches, "_MACHINE_ID="+j.cfg.MachineID)
	}
	key := spec.key(matches)
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.closed {
		return nil, errors.New("journal: closed")
	}
	s := &subscription{c: c}
	st := j.streams[key]
	if st == nil {
		st = j.newStream(key, spec, matches)
		j.streams[key] = st
		st.attach(s, true)
		j.wg.Add(1)
		go st.run()
	} else {
		st.attach(s, false)
		st.statsMu.Lock()
		cur := st.counts.Status
		st.statsMu.Unlock()
		j.mu.Unlock()
		s.status(cur) // the stream may be blocked waiting for journalctl
		j.mu.Lock()
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			j.mu.Lock()
			last := st.detach(s) == 0
			if last && j.streams[key] == st {
				delete(j.streams, key)
			}
			j.mu.Unlock()
			s.mu.Lock()
			s.cancelled = true
			s.mu.Unlock()
			if last {
				st.cancel()
				<-st.done
			}
		})
	}, nil
}

// Close stops every journalctl, saving cursors.
func (j *Journal) Close() error {
	j.mu.Lock()
	j.closed = true
	streams := j.streams
	j.streams = map[string]*jstream{}
	j.mu.Unlock()
	for _, st := range streams {
		st.cancel()
	}
	j.wg.Wait()
	return nil
}

// Stats returns the counters of every journalctl stream.
func (j *Journal) Stats() []JournalStats {
	j.mu.Lock()
	defer j.mu.Unlock()
	var out []JournalStats
	for _, st := range j.streams {
		st.statsMu.Lock()
		out = append(out, st.counts)
		st.statsMu.Unlock()
	}
	return out
}

type jstream struct {
	j       *Journal
	key     string
	source  string
	spec    JournalSpec
	matches []string
	ctx     context.Context
	cancel  context.CancelFunc
	done    chan struct{}

	subsMu sync.Mutex
	subs   []*subscription
	fresh  []*subscription

	cursor  string // last delivered entry's cursor, or "@UNIX"
	saved   string
	lastSv  time.Time
	st      Status
	statsMu sync.Mutex
	counts  JournalStats
}

func (j *Journal) newStream(key string, spec JournalSpec, matches []string) *jstream {
	ctx, cancel := context.WithCancel(context.Background())
	st := &jstream{
		j: j, key: key, source: "journal:" + key, spec: spec, matches: matches,
		ctx: ctx, cancel: cancel, done: make(chan struct{}),
	}
	st.st = Status{Source: st.source, State: StateMissing, Err: ErrNotOpened, Since: j.cfg.Now()}
	st.counts = JournalStats{Key: key, Status: st.st}
	st.initCursor()
	return st
}

// initCursor loads the stored cursor, or pins the start time (now minus
// Lookback) at subscription and stores it, so entries written before the
// first delivered one are not skipped after a restart.
func (st *jstream) initCursor() {
	cfg := st.j.cfg
	if cfg.Store != nil {
		c, ok, err := cfg.Store.LoadCursor(st.source)
		if err != nil {
			st.j.log.Warn("load journal cursor", "key", st.key, "err", err)
		} else if ok && c != "" {
			st.cursor, st.saved = c, c
			return
		}
	}
	st.cursor = "@" + strconv.FormatInt(cfg.Now().Add(-st.spec.Lookback).Unix(), 10)
	st.checkpoint(true)
}

func (st *jstream) attach(s *subscription, fresh bool) {
	st.subsMu.Lock()
	st.subs = append(st.subs, s)
	if fresh {
		st.fresh = append(st.fresh, s)
	}
	st.subsMu.Unlock()
}

func (st *jstream) detach(s *subscription) int {
	st.subsMu.Lock()
	defer st.subsMu.Unlock()
	for i, x := range st.subs {
		if x == s {
			st.subs = append(st.subs[:i:i], st.subs[i+1:]...)
			break
		}
	}
	for i, x := range st.fresh {
		if x == s {
			st.fresh = append(st.fresh[:i:i], st.fresh[i+1:]...)
			break
		}
	}
	return len(st.subs)
}

// consumers returns the subscribers, first sending the current status to
// new ones.
func (st *jstream) consumers() []*subscription {
	st.subsMu.Lock()
	fresh, subs := st.fresh, st.subs
	st.fresh = nil
	st.subsMu.Unlock()
	for _, s := range fresh {
		s.status(st.st)
	}
	return subs
}

func (st *jstream) setStatus(state State, err error) {
	if st.st.State == state && errString(st.st.Err) == errString(err) {
		return
	}
	st.st = Status{Source: st.source, State: state, Err: err, Since: st.j.cfg.Now()}
	st.statsMu.Lock()
	st.counts.Status = st.st
	st.statsMu.Unlock()
	if state == StateError {
		st.j.log.Warn("journal source", "key", st.key, "err", err)
	}
	st.subsMu.Lock()
	subs := st.subs
	st.fresh = nil
	st.subsMu.Unlock()
	for _, s := range subs {
		s.status(st.st)
	}
}

func (st *jstream) run() {
	defer st.j.wg.Done()
	defer close(st.done)
	cfg := st.j.cfg
	backoff := cfg.MinBackoff
	for {
		st.consumers()
		started := cfg.Now()
		err := st.once()
		st.checkpoint(true)
		if st.ctx.Err() != nil {
			return
		}
		if err == nil {
			err = errors.New("journalctl exited")
		}
		var ee *sysexec.ExitError
		if errors.As(err, &ee) && strings.Contains(strings.ToLower(ee.Stderr), "cursor") && !strings.HasPrefix(st.cursor, "@") && st.cursor != "" {
			st.j.log.Warn("journal cursor rejected, starting at new entries", "key", st.key)
			st.cursor = "@" + strconv.FormatInt(cfg.Now().Unix(), 10)
		}
		st.setStatus(StateError, err)
		if cfg.Now().Sub(started) > 4*cfg.MaxBackoff {
			backoff = cfg.MinBackoff
		}
		t := time.NewTimer(backoff)
		select {
		case <-st.ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		backoff = min(backoff*2, cfg.MaxBackoff)
	}
}

// once runs journalctl until it exits or the stream stops.
func (st *jstream) once() error {
	cfg := st.j.cfg
	cmd := sysexec.Cmd{Name: cfg.Journalctl, Args: JournalArgs(st.spec, st.matches, st.cursor)}
	st.statsMu.Lock()
	st.counts.Restarts++
	st.statsMu.Unlock()
	p, err := cfg.Starter.Start(st.ctx, cmd)
	if err != nil {
		return err
	}
	st.setStatus(StateOK, nil)
	br := bufio.NewReaderSize(p.Stdout(), 64<<10)
	var long []byte
	for {
		chunk, err := br.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			if len(long)+len(chunk) <= cfg.MaxEntry {
				long = append(long, chunk...)
			} else {
				long = append(long[:0], 0) // mark as oversized
			}
			continue
		}
		if len(long) > 0 {
			if long[0] == 0 || len(long)+len(chunk) > cfg.MaxEntry {
				st.skip("entry too big")
				long = long[:0]
				if err != nil {
					break
				}
				continue
			}
			chunk = append(long, chunk...)
			long = long[:0]
		}
		if len(bytes.TrimSpace(chunk)) > 0 {
			st.handle(chunk)
		}
		if err != nil {
			break
		}
	}
	return p.Wait()
}

func (st *jstream) skip(why string) {
	st.statsMu.Lock()
	st.counts.Skipped++
	n := st.counts.Skipped
	st.statsMu.Unlock()
	if n <= 10 || n%1000 == 0 {
		st.j.log.Warn("journal entry skipped", "key", st.key, "why", why, "skipped", n)
	}
}

func (st *jstream) handle(raw []byte) {
	e, err := DecodeJournalEntry(raw)
	if err != nil {
		st.skip(err.Error())
		return
	}
	l := Line{Text: e.Format(), Time: e.Time, Source: st.source}
	if st.spec.Raw {
		l.Text = strings.ReplaceAll(e.Message, "\n", `\n`)
	}
	batch := []Line{l}
	for _, s := range st.consumers() {
		s.deliver(batch)
	}
	if e.Cursor != "" {
		st.cursor = e.Cursor
	}
	st.statsMu.Lock()
	st.counts.Entries++
	st.counts.Cursor = st.cursor
	st.statsMu.Unlock()
	st.checkpoint(false)
}

func (st *jstream) checkpoint(force bool) {
	cfg := st.j.cfg
	if cfg.Store == nil || st.cursor == "" || st.cursor == st.saved {
		return
	}
	now := cfg.Now()
	if !force && now.Sub(st.lastSv) < cfg.CheckpointEvery {
		return
	}
	if err := cfg.Store.SaveCursor(st.source, st.cursor); err != nil {
		st.j.log.Warn("save journal cursor", "key", st.key, "err", err)
		return
	}
	st.saved, st.lastSv = st.cursor, now
}

// JournalEntry is the part of a journal entry palisade uses.
type JournalEntry struct {
	Message    string
	Cursor     string
	Time       time.Time // _SOURCE_REALTIME_TIMESTAMP, else __REALTIME_TIMESTAMP
	Hostname   string
	Identifier string // SYSLOG_IDENTIFIER, else _COMM
	PID        string // SYSLOG_PID, else _PID
	Monotonic  time.Duration
}

type rawEntry struct {
	Message        json.RawMessage `json:"MESSAGE"`
	Cursor         json.RawMessage `json:"__CURSOR"`
	Realtime       json.RawMessage `json:"__REALTIME_TIMESTAMP"`
	SourceRealtime json.RawMessage `json:"_SOURCE_REALTIME_TIMESTAMP"`
	Hostname       json.RawMessage `json:"_HOSTNAME"`
	Ident          json.RawMessage `json:"SYSLOG_IDENTIFIER"`
	Comm           json.RawMessage `json:"_COMM"`
	SyslogPID      json.RawMessage `json:"SYSLOG_PID"`
	PID            json.RawMessage `json:"_PID"`
	SourceMono     json.RawMessage `json:"_SOURCE_MONOTONIC_TIMESTAMP"`
	Mono           json.RawMessage `json:"__MONOTONIC_TIMESTAMP"`
}

// DecodeJournalEntry decodes one line of `journalctl -o json`. A field is a
// string, an array of byte values (journalctl's encoding of non-UTF-8
// data), null (too big, without --all), or an array of those when the
// field occurs several times (MESSAGE values are then joined with " ",
// like fail2ban; other fields keep the first).
func DecodeJournalEntry(b []byte) (JournalEntry, error) {
	var r rawEntry
	if err := json.Unmarshal(b, &r); err != nil {
		return JournalEntry{}, fmt.Errorf("journal entry: %w", err)
	}
	var e JournalEntry
	var err error
	field := func(raw json.RawMessage, name string, join bool) string {
		vals, ferr := fieldValues(raw)
		if ferr != nil && err == nil {
			err = fmt.Errorf("journal entry field %s: %w", name, ferr)
		}
		if len(vals) == 0 {
			return ""
		}
		if join {
			return strings.Join(vals, " ")
		}
		return vals[0]
	}
	first := func(a, b json.RawMessage, an, bn string) string {
		if v := field(a, an, false); v != "" {
			return v
		}
		return field(b, bn, false)
	}
	e.Message = field(r.Message, "MESSAGE", true)
	e.Cursor = field(r.Cursor, "__CURSOR", false)
	e.Hostname = field(r.Hostname, "_HOSTNAME", false)
	e.Identifier = first(r.Ident, r.Comm, "SYSLOG_IDENTIFIER", "_COMM")
	e.PID = first(r.SyslogPID, r.PID, "SYSLOG_PID", "_PID")
	if us := first(r.SourceRealtime, r.Realtime, "_SOURCE_REALTIME_TIMESTAMP", "__REALTIME_TIMESTAMP"); us != "" {
		n, perr := strconv.ParseInt(us, 10, 64)
		if perr != nil {
			return JournalEntry{}, fmt.Errorf("journal entry: realtime timestamp %q: %w", us, perr)
		}
		e.Time = time.UnixMicro(n)
	}
	if us := first(r.SourceMono, r.Mono, "_SOURCE_MONOTONIC_TIMESTAMP", "__MONOTONIC_TIMESTAMP"); us != "" {
		if n, perr := strconv.ParseInt(us, 10, 64); perr == nil {
			e.Monotonic = time.Duration(n) * time.Microsecond
		}
	}
	if err != nil {
		return JournalEntry{}, err
	}
	return e, nil
}

// fieldValues decodes one JSON field value into its values.
func fieldValues(raw json.RawMessage) ([]string, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	switch raw[0] {
	case '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, err
		}
		return []string{s}, nil
	case '[':
		var items []json.RawMessage
		if err := json.Unmarshal(raw, &items); err != nil {
			return nil, err
		}
		if len(items) == 0 {
			return []string{""}, nil
		}
		if t := bytes.TrimSpace(items[0]); len(t) > 0 && t[0] != '"' && t[0] != '[' && string(t) != "null" {
			// an array of byte values
			buf := make([]byte, len(items))
			for i, it := range items {
				n, err := strconv.ParseUint(string(bytes.TrimSpace(it)), 10, 8)
				if err != nil {
					return nil, fmt.Errorf("byte array: %w", err)
				}
				buf[i] = byte(n)
			}
			return []string{string(buf)}, nil
		}
		var out []string
		for _, it := range items { // several values
			v, err := fieldValues(it)
			if err != nil {
				return nil, err
			}
			out = append(out, v...)
		}
		return out, nil
	}
	return nil, fmt.Errorf("unexpected JSON %.20q", raw)
}

// Format renders the entry the way fail2ban's systemd backend does:
// "HOST IDENT[PID]: MESSAGE" (each part only when present; a kernel
// message gets "[MONOTONIC]" seconds after "kernel:"), newlines in the
// message written as `\n`.
func (e JournalEntry) Format() string {
	var b strings.Builder
	b.Grow(len(e.Hostname) + len(e.Identifier) + len(e.Message) + 16)
	if e.Hostname != "" {
		b.WriteString(e.Hostname)
	}
	if e.Identifier != "" {
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(e.Identifier)
		if e.PID != "" {
			b.WriteByte('[')
			if n, err := strconv.ParseInt(e.PID, 10, 64); err == nil && (e.PID == "0" || e.PID[0] != '0') {
				b.WriteString(strconv.FormatInt(n, 10))
			} else {
				b.WriteString(e.PID)
			}
			b.WriteByte(']')
		}
		b.WriteByte(':')
		if e.Identifier == "kernel" && e.PID == "" {
			fmt.Fprintf(&b, " [%12.6f]", e.Monotonic.Seconds())
		}
	}
	if b.Len() > 0 {
		b.WriteByte(' ')
	}
	b.WriteString(e.Message)
	return strings.ReplaceAll(b.String(), "\n", `\n`)
}
