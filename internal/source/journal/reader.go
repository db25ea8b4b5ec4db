// Package journal follows the systemd journal for palisade's jails
// through `journalctl --follow --merge -o json` (started through
// internal/sysexec): one process per distinct Spec, shared by its
// subscribers, restarted with a back-off when it dies, resuming after the
// last delivered entry's cursor.
//
// Entries are rendered the way fail2ban's systemd backend renders them
// ("HOST IDENT[PID]: MESSAGE") and pass the same line rules as every other
// source (source.CleanText, source.MaxLineLen).
//
// A journalmatch decides which entries reach a jail, so it decides who
// can make palisade ban an address. Every alternative of a match must name
// a field journald sets itself and a local user cannot forge
// (_SYSTEMD_UNIT, _SYSTEMD_SLICE, _SYSTEMD_CGROUP, _UID, _TRANSPORT=kernel
// or audit); an alternative that names none (_COMM=sshd alone, or no
// match at all) is restricted to root's entries (_UID=0), so
// `logger -t sshd "Failed password for root from 198.51.100.7 port 22
// ssh2"` run by a user never reaches the sshd jail.
//
// The journal starts at the stored cursor, else at now minus
// Spec.Lookback, pinned (and stored) at subscription.
package journal

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/palisade-project/palisade/internal/source"
	"github.com/palisade-project/palisade/internal/sysexec"
)

// Config configures a Reader. Zero values pick the defaults.
type Config struct {
	// Starter starts journalctl (default sysexec.ExecStarter).
	Starter sysexec.Starter
	// Store persists cursors; nil keeps them in memory only.
	Store source.PositionStore
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
	// MaxLineLen caps the rendered line (default source.MaxLineLen);
	// longer lines are dropped and counted in Stats.TooLong.
	MaxLineLen int
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

// Spec says what to read from the journal. Subscriptions with equal specs
// (ignoring Lookback) share one journalctl process.
type Spec struct {
	// Match is a filter's journalmatch value: each line is one alternative
	// (joined with "+"), made of shell-like words: FIELD=VALUE terms and
	// "+" (journalctl's OR), e.g. "_SYSTEMD_UNIT=sshd.service + _COMM=sshd".
	// Alternatives without a trusted field are restricted to _UID=0 (see
	// the package documentation).
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

// Stats are one journalctl stream's counters.
type Stats struct {
	Key      string
	Status   source.Status
	Entries  uint64 // entries delivered
	Skipped  uint64 // entries that could not be decoded or were too big
	TooLong  uint64 // entries whose line was longer than MaxLineLen, dropped
	Restarts uint64 // journalctl (re)starts
	Cursor   string
	// RootOnly lists the match alternatives restricted to _UID=0 because
	// they name no trusted field.
	RootOnly []string
}

// Reader follows the systemd journal through journalctl, one process per
// distinct Spec, shared by its subscribers.
type Reader struct {
	cfg Config
	log *slog.Logger

	mu      sync.Mutex
	closed  bool
	streams map[string]*stream
	wg      sync.WaitGroup
}

// New returns a Reader. Close it to stop every journalctl and save
// cursors.
func New(cfg Config) *Reader {
	if cfg.Starter == nil {
		cfg.Starter = sysexec.ExecStarter{}
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
	if cfg.MaxLineLen <= 0 {
		cfg.MaxLineLen = source.MaxLineLen
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
	return &Reader{cfg: cfg, log: log, streams: map[string]*stream{}}
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

// key identifies a spec's journalctl stream (and its stored cursor).
func (sp Spec) key(matches []string) string {
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

// Args builds journalctl's arguments for spec. cursor is a stored journal
// cursor, or "@UNIX" (seconds) to start at a time, or "" to start with new
// entries.
func Args(spec Spec, matches []string, cursor string) []string {
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
func (j *Reader) Subscribe(spec Spec, c source.Consumer) (func(), error) {
	matches, rootOnly, err := j.matches(spec)
	if err != nil {
		return nil, err
	}
	key := spec.key(matches)
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.closed {
		return nil, errors.New("journal: closed")
	}
	s := source.NewSubscriber(c)
	st := j.streams[key]
	if st == nil {
		st = j.newStream(key, spec, matches, rootOnly)
		j.streams[key] = st
		st.fan.Attach(s)
		j.wg.Add(1)
		go st.run()
	} else {
		j.mu.Unlock()
		st.fan.AttachNow(s) // the stream may be blocked waiting for journalctl
		j.mu.Lock()
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			j.mu.Lock()
			last := st.fan.Detach(s) == 0
			if last && j.streams[key] == st {
				delete(j.streams, key)
			}
			j.mu.Unlock()
			s.Cancel()
			if last {
				st.cancel()
				<-st.done
			}
		})
	}, nil
}

// matches turns spec into journalctl's match arguments: its journalmatch
// with the alternatives that name no trusted field restricted to root
// (listed in rootOnly), and the system journal restricted to this machine.
func (j *Reader) matches(spec Spec) (matches, rootOnly []string, err error) {
	if matches, err = ParseMatch(spec.Match); err != nil {
		return nil, nil, err
	}
	for _, f := range spec.Files {
		if strings.HasPrefix(f, "-") {
			return nil, nil, fmt.Errorf("journal file %q: must not start with -", f)
		}
	}
	matches, rootOnly = restrictUntrusted(matches)
	if spec.Directory == "" && len(spec.Files) == 0 && j.cfg.MachineID != "" {
		matches = restrictMatches(matches, "_MACHINE_ID="+j.cfg.MachineID)
	}
	return matches, rootOnly, nil
}

// ReadAll reads spec's journal once, from its oldest entry to its newest,
// without following it, and hands fn each entry's line as a jail would
// get it (the same matches, restrictions, rendering and line rules):
// palisade regex's systemd-journal. spec.Lookback, when set, starts at
// now minus it. The Stats count what was read and skipped.
func (j *Reader) ReadAll(ctx context.Context, spec Spec, fn func(source.Line)) (Stats, error) {
	matches, rootOnly, err := j.matches(spec)
	if err != nil {
		return Stats{}, err
	}
	args := []string{"--merge", "--output=json", "--all", "--no-pager", "--quiet"}
	if spec.Directory != "" {
		args = append(args, "--directory="+spec.Directory)
	}
	for _, f := range spec.Files {
		args = append(args, "--file="+f)
	}
	if spec.Lookback > 0 {
		args = append(args, "--since=@"+strconv.FormatInt(j.cfg.Now().Add(-spec.Lookback).Unix(), 10))
	}
	args = append(args, matches...)
	st := Stats{Key: spec.key(matches), RootOnly: rootOnly}
	p, err := j.cfg.Starter.Start(ctx, sysexec.Cmd{Name: j.cfg.Journalctl, Args: args})
	if err != nil {
		return st, err
	}
	src := "journal:" + st.Key
	readEntries(p.Stdout(), j.cfg.MaxEntry, func(raw []byte) {
		e, err := DecodeEntry(raw)
		if err != nil {
			st.Skipped++
			return
		}
		text := render(e, spec.Raw)
		if len(text) > j.cfg.MaxLineLen {
			st.TooLong++
			return
		}
		st.Entries++
		fn(source.Line{Text: source.CleanText(text), Time: e.Time, Source: src})
	}, func(string) { st.Skipped++ })
	if err := p.Wait(); err != nil {
		return st, fmt.Errorf("journalctl: %w", err)
	}
	return st, nil
}

// readEntries splits journalctl's JSON output into entries, one a line,
// and hands each to handle; an entry longer than maxEntry goes to skip.
func readEntries(r io.Reader, maxEntry int, handle func([]byte), skip func(why string)) {
	br := bufio.NewReaderSize(r, 64<<10)
	var long []byte
	for {
		chunk, err := br.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			if len(long)+len(chunk) <= maxEntry {
				long = append(long, chunk...)
			} else {
				long = append(long[:0], 0) // mark as oversized
			}
			continue
		}
		if len(long) > 0 {
			if long[0] == 0 || len(long)+len(chunk) > maxEntry {
				skip("entry too big")
				long = long[:0]
				if err != nil {
					return
				}
				continue
			}
			chunk = append(long, chunk...)
			long = long[:0]
		}
		if len(bytes.TrimSpace(chunk)) > 0 {
			handle(chunk)
		}
		if err != nil {
			return
		}
	}
}

// render is an entry's line: fail2ban's "HOST IDENT[PID]: MESSAGE", or
// with raw the message alone on one line.
func render(e Entry, raw bool) string {
	if raw {
		return strings.ReplaceAll(e.Message, "\n", `\n`)
	}
	return e.Format()
}

// Close stops every journalctl, saving cursors.
func (j *Reader) Close() error {
	j.mu.Lock()
	j.closed = true
	streams := j.streams
	j.streams = map[string]*stream{}
	j.mu.Unlock()
	for _, st := range streams {
		st.cancel()
	}
	j.wg.Wait()
	return nil
}

// Stats returns the counters of every journalctl stream.
func (j *Reader) Stats() []Stats {
	j.mu.Lock()
	defer j.mu.Unlock()
	var out []Stats
	for _, st := range j.streams {
		out = append(out, st.stats())
	}
	return out
}

// stream is one journalctl process and its subscribers.
type stream struct {
	j       *Reader
	key     string
	source  string
	spec    Spec
	matches []string
	ctx     context.Context
	cancel  context.CancelFunc
	done    chan struct{}
	fan     *source.Fanout

	cursor string // last delivered entry's cursor, or "@UNIX"
	saved  string
	lastSv time.Time

	statsMu sync.Mutex
	counts  Stats
}

func (j *Reader) newStream(key string, spec Spec, matches, rootOnly []string) *stream {
	ctx, cancel := context.WithCancel(context.Background())
	st := &stream{
		j: j, key: key, source: "journal:" + key, spec: spec, matches: matches,
		ctx: ctx, cancel: cancel, done: make(chan struct{}),
	}
	st.fan = source.NewFanout(source.Status{Source: st.source, State: source.StateMissing, Err: source.ErrNotOpened, Since: j.cfg.Now()})
	st.counts = Stats{Key: key, RootOnly: rootOnly}
	for _, alt := range rootOnly {
		j.log.Warn("journalmatch alternative names no field a local user cannot forge: only root's entries are read for it",
			"key", key, "alternative", alt, "fix", "match on _SYSTEMD_UNIT=NAME.service")
	}
	st.initCursor()
	return st
}

func (st *stream) stats() Stats {
	st.statsMu.Lock()
	s := st.counts
	st.statsMu.Unlock()
	s.Status = st.fan.Status()
	return s
}

func (st *stream) count(f func(*Stats)) {
	st.statsMu.Lock()
	f(&st.counts)
	st.statsMu.Unlock()
}

// initCursor loads the stored cursor, or pins the start time (now minus
// Lookback) at subscription and stores it, so entries written before the
// first delivered one are not skipped after a restart.
func (st *stream) initCursor() {
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

func (st *stream) setStatus(state source.State, err error) {
	if st.fan.SetStatus(source.Status{Source: st.source, State: state, Err: err, Since: st.j.cfg.Now()}) && state == source.StateError {
		st.j.log.Warn("journal source", "key", st.key, "err", err)
	}
}

func (st *stream) run() {
	defer st.j.wg.Done()
	defer close(st.done)
	cfg := st.j.cfg
	backoff := cfg.MinBackoff
	for {
		st.fan.Subscribers() // send the current status to new subscribers
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
		st.setStatus(source.StateError, shortErr(err))
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

// shortErr is journalctl's failure for the Status, whose Source already
// names the match: exit status and journalctl's own words, not the
// command line again.
func shortErr(err error) error {
	var ee *sysexec.ExitError
	if !errors.As(err, &ee) {
		return err
	}
	msg := strings.TrimSpace(ee.Stderr)
	if i := strings.LastIndexByte(msg, '\n'); i >= 0 {
		msg = msg[i+1:] // the last line says what went wrong
	}
	if msg == "" {
		return fmt.Errorf("journalctl failed (exit %d)", ee.ExitCode)
	}
	return fmt.Errorf("journalctl failed (exit %d): %s", ee.ExitCode, msg)
}

// once runs journalctl until it exits or the stream stops.
func (st *stream) once() error {
	cfg := st.j.cfg
	cmd := sysexec.Cmd{Name: cfg.Journalctl, Args: Args(st.spec, st.matches, st.cursor)}
	st.count(func(s *Stats) { s.Restarts++ })
	p, err := cfg.Starter.Start(st.ctx, cmd)
	if err != nil {
		return err
	}
	st.setStatus(source.StateOK, nil)
	readEntries(p.Stdout(), cfg.MaxEntry, st.handle, st.skip)
	return p.Wait()
}

func (st *stream) skip(why string) {
	var n uint64
	st.count(func(s *Stats) { s.Skipped++; n = s.Skipped })
	if n <= 10 || n%1000 == 0 {
		st.j.log.Warn("journal entry skipped", "key", st.key, "why", why, "skipped", n)
	}
}

func (st *stream) handle(raw []byte) {
	e, err := DecodeEntry(raw)
	if err != nil {
		st.skip(err.Error())
		return
	}
	text := render(e, st.spec.Raw)
	if e.Cursor != "" {
		st.cursor = e.Cursor
	}
	if len(text) > st.j.cfg.MaxLineLen {
		var n uint64
		st.count(func(s *Stats) { s.TooLong++; n = s.TooLong; s.Cursor = st.cursor })
		if n <= 10 || n%1000 == 0 {
			st.j.log.Warn("journal entry longer than the line cap dropped", "key", st.key, "bytes", len(text), "cap", st.j.cfg.MaxLineLen, "dropped", n)
		}
	} else {
		st.fan.Deliver([]source.Line{{Text: source.CleanText(text), Time: e.Time, Source: st.source}})
		st.count(func(s *Stats) { s.Entries++; s.Cursor = st.cursor })
	}
	st.checkpoint(false)
}

func (st *stream) checkpoint(force bool) {
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
