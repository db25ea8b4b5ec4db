package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/palisade-project/palisade/internal/ban"
	"github.com/palisade-project/palisade/internal/config"
	"github.com/palisade-project/palisade/internal/failjournal"
	"github.com/palisade-project/palisade/internal/filter"
	"github.com/palisade-project/palisade/internal/jail"
	"github.com/palisade-project/palisade/internal/source"
	"github.com/palisade-project/palisade/internal/source/journal"
	"github.com/palisade-project/palisade/internal/sysexec"
)

// Bounds of a jail's slow work (lookups and ignorecommand runs).
const (
	DefaultWorkers = 4
	DefaultQueue   = 1024
	banTimeout     = 30 * time.Second
	evictionReport = time.Minute
)

// Sources are where a jail subscribes for lines: the daemon's shared file
// tailer and journal reader.
type Sources interface {
	Files(patterns []string, head bool, c source.Consumer) (unsubscribe func(), err error)
	Journal(spec journal.Spec, c source.Consumer) (unsubscribe func(), err error)
}

// Journal is the failure journal as a jail uses it (*failjournal.Journal).
type Journal interface {
	Replayed(key uint64) bool
	Append(failjournal.Record) error
}

// Banner enforces ban decisions (*ban.Manager).
type Banner interface {
	BanMany(ctx context.Context, reqs []ban.Request) []ban.Result
	// Holds reports whether a ban already serves a decision to ban p in
	// jail for d; the jail then drops the decision (Counters.Held).
	Holds(jail string, p netip.Prefix, d time.Duration) bool
}

// Deps are a running jail's collaborators. Bans is required.
type Deps struct {
	Bans Banner
	// History is the offence history for bantime.increment.
	History jail.History
	// Active answers for the bans in force (see jail.ActiveBans).
	Active jail.ActiveBans
	// Journal records counted failures (nil: none).
	Journal Journal
	// Runner runs the ignorecommand (default sysexec.Exec; the stage
	// bounds each run by StageConfig.CommandTimeout).
	Runner sysexec.Runner
	// Resolver resolves host names (default net.DefaultResolver).
	Resolver Resolver
	// SelfAddrs lists the host's addresses for ignoreself (default
	// SelfAddrs).
	SelfAddrs func() []netip.Addr
	// Now is the clock (default time.Now).
	Now    func() time.Time
	Logger *slog.Logger
	// OnBan is called after each new automatic ban (benchmarks).
	OnBan func(jail string, p netip.Prefix)
	// Implicit exempts addresses the daemon protects in every jail (see
	// jail.Deps.Implicit).
	Implicit func(a netip.Addr) *jail.IgnoreMatch
	// Workers and Queue bound the slow work (defaults DefaultWorkers,
	// DefaultQueue): a failure that needs a lookup or a command waits in
	// the queue; when it is full the failure is dropped and counted.
	Workers, Queue int
}

// Counters are a jail's status numbers.
type Counters struct {
	jail.Stats
	Lines uint64
	// Dropped are failures dropped because the slow-work queue was full.
	Dropped uint64
	// Held are ban decisions not carried out because the address's ban
	// already served them (Banner.Holds): a banned address still failing.
	Held uint64
}

// work is a failure waiting for a lookup or the ignorecommand.
type work struct {
	f      filter.Failure
	key    uint64 // the line's identity (failjournal.LineKey)
	src    uint64 // its source (failjournal.SourceKey)
	now    time.Time
	replay bool
	// decs, when set, collects the ban decisions of a read's lines,
	// handed to the ban queue together when the read is done (Lines).
	decs *[]*jail.Decision
}

// Jail is one running jail: its filter, the stage beside it and its jail
// logic, fed by its sources. It implements source.Consumer.
type Jail struct {
	name  string
	deps  Deps
	log   *slog.Logger
	logic *jail.Jail
	ctx   context.Context
	stop  context.CancelFunc

	mu     sync.Mutex // guards filt and clock (filters are not safe for concurrent use)
	filt   *filter.Filter
	clock  *filter.ReadClock // filt's clock (nil: its own)
	latin1 bool
	ptime  bool // use ProcessAt (journal lines)

	plan  atomic.Pointer[Plan]
	stage atomic.Pointer[stage]

	queue     chan work
	startOnce sync.Once
	workers   sync.WaitGroup
	ready     chan struct{} // closed after the first ignore refresh

	smu      sync.Mutex // guards srcState, unsub, problems, base
	srcState map[string]string
	unsub    func()
	problems map[string]string // outside problems by kind ("firewall", "source")
	base     jail.Stats
	jnl      atomic.Pointer[journalRef]

	banq banQueue // decisions on their way to Deps.Bans

	lines, dropped, held atomic.Uint64
	evicted              atomic.Uint64 // since the last report
	lastEvictLog         atomic.Int64
}

// New makes a running jail from a plan (taking the plan's compiled
// filter). It reads nothing until Start.
func New(p *Plan, deps Deps) (*Jail, error) {
	if deps.Bans == nil {
		return nil, errors.New("pipeline: Deps.Bans is required")
	}
	if p.Filter == nil || p.Filter.Filter == nil {
		return nil, fmt.Errorf("jail %s: plan has no filter", p.Name())
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	if deps.Runner == nil {
		deps.Runner = sysexec.NewExec(DefaultCommandTimeout)
	}
	if deps.SelfAddrs == nil {
		deps.SelfAddrs = SelfAddrs
	}
	if deps.Workers <= 0 {
		deps.Workers = DefaultWorkers
	}
	if deps.Queue <= 0 {
		deps.Queue = DefaultQueue
	}
	logic, err := jail.New(p.Logic, jail.Deps{History: deps.History, Bans: deps.Active, Logger: deps.Logger, Implicit: deps.Implicit})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &Jail{name: p.Name(), deps: deps, log: deps.Logger, logic: logic, ctx: ctx, stop: cancel,
		queue: make(chan work, deps.Queue), ready: make(chan struct{}), srcState: map[string]string{}, problems: map[string]string{}}
	if deps.Journal != nil {
		r.jnl.Store(&journalRef{deps.Journal})
	}
	r.setFilter(p)
	r.plan.Store(p)
	r.stage.Store(r.newStage(p.Stage))
	logic.SetIgnoreExtra(deps.SelfAddrs(), nil)
	return r, nil
}

func (r *Jail) newStage(cfg StageConfig) *stage {
	res := r.deps.Resolver
	if res == nil {
		res = defaultResolver{}
	}
	return &stage{cfg: cfg, logic: r.logic, runner: r.deps.Runner, resolver: res, self: r.deps.SelfAddrs,
		clock: r.deps.Now, log: r.log, ctx: r.ctx, cmds: map[netip.Addr]cmdAnswer{}, dns: map[string]dnsAnswer{}}
}

// setFilter takes the plan's compiled filter (once: a filter has state).
func (r *Jail) setFilter(p *Plan) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.filt = p.Filter.Filter
	r.clock = p.Filter.clock
	r.latin1 = p.Settings.Encoding == config.EncodingLatin1
	r.ptime = p.Source.Journal
	p.Filter.Filter = nil
}

// Name is the jail's name.
func (r *Jail) Name() string { return r.name }

// Plan is the plan the jail runs.
func (r *Jail) Plan() *Plan { return r.plan.Load() }

// Logic is the jail logic (for explain and manual bans).
func (r *Jail) Logic() *jail.Jail { return r.logic }

// Start subscribes the jail to its source and starts the stage's
// background refresh of ignoreip host names and the host's addresses.
func (r *Jail) Start(srcs Sources) error {
	go r.refreshLoop()
	return r.subscribe(srcs, r.Plan().Source)
}

func (r *Jail) subscribe(srcs Sources, s SourcePlan) error {
	c := &consumer{r: r}
	var unsub func()
	var err error
	if s.Journal {
		unsub, err = srcs.Journal(s.JournalSpec, c)
	} else {
		unsub, err = srcs.Files(s.Files, s.Head, c)
	}
	if err != nil {
		return fmt.Errorf("jail %s: source: %w", r.name, err)
	}
	r.smu.Lock()
	old := r.unsub
	r.unsub = func() { c.off.Store(true); unsub() }
	r.smu.Unlock()
	if old != nil {
		old()
	}
	return nil
}

// consumer is one subscription's receiver; off stops it from counting
// once it was replaced.
type consumer struct {
	r   *Jail
	off atomic.Bool
}

func (c *consumer) Line(l source.Line) {
	if !c.off.Load() {
		c.r.Line(l)
	}
}

// Lines implements source.BatchConsumer.
func (c *consumer) Lines(ls []source.Line) {
	if !c.off.Load() {
		c.r.Lines(ls)
	}
}

func (c *consumer) Status(s source.Status) {
	if !c.off.Load() {
		c.r.Status(s)
	}
}

func (r *Jail) refreshLoop() {
	st := r.stage.Load()
	st.refreshIgnore(r.ctx)
	close(r.ready)
	t := time.NewTicker(hostRefresh)
	defer t.Stop()
	for {
		select {
		case <-r.ctx.Done():
			return
		case <-t.C:
			r.stage.Load().refreshIgnore(r.ctx)
		}
	}
}

// WaitReady waits (until ctx is done) for the first lookup of the
// ignoreip host names.
func (r *Jail) WaitReady(ctx context.Context) bool {
	select {
	case <-r.ready:
		return true
	case <-ctx.Done():
		return false
	}
}

// Update makes the running jail follow a new plan whose counting (Logic)
// is unchanged: a changed filter, source or stage is swapped in; the
// failure table and counters stay.
func (r *Jail) Update(p *Plan, srcs Sources) error {
	old := r.Plan()
	op, np := old.Parts(), p.Parts()
	if op.Logic != np.Logic {
		return fmt.Errorf("jail %s: counting changed: a new jail is needed", r.name)
	}
	if op.Filter != np.Filter || old.Source.Journal != p.Source.Journal {
		r.setFilter(p)
	}
	if op.Stage != np.Stage {
		r.stage.Store(r.newStage(p.Stage))
		go r.stage.Load().refreshIgnore(r.ctx)
	}
	r.plan.Store(p)
	if op.Source != np.Source {
		return r.subscribe(srcs, p.Source)
	}
	return nil
}

// Carry adds a replaced jail's counters to this one's, so status totals
// survive a reload.
func (r *Jail) Carry(old *Jail) {
	c := old.Counters()
	c.Tracked = 0
	r.smu.Lock()
	r.base = r.base.Add(c.Stats)
	r.smu.Unlock()
	r.lines.Add(c.Lines)
	r.dropped.Add(c.Dropped)
	r.held.Add(c.Held)
}

// Stop detaches the jail from its source and stops its slow work (a
// running lookup or command is cancelled).
func (r *Jail) Stop() {
	r.smu.Lock()
	unsub := r.unsub
	r.unsub = nil
	r.smu.Unlock()
	if unsub != nil {
		unsub()
	}
	r.stop()
	r.workers.Wait()
	r.closeBans()
}

// journalRef holds the failure journal (set once it is open).
type journalRef struct{ Journal }

// SetJournal gives the jail the failure journal (opened after the jails,
// since opening it replays into them).
func (r *Jail) SetJournal(j Journal) { r.jnl.Store(&journalRef{j}) }

func (r *Jail) journal() Journal {
	if j := r.jnl.Load(); j != nil {
		return j.Journal
	}
	return nil
}

// SetProblem records a problem of the given kind found outside the jail
// ("firewall": its backend refused its set-up; "source": it could not
// subscribe), shown by status; "" clears it. It reports whether the
// problem changed.
func (r *Jail) SetProblem(kind, msg string) bool {
	r.smu.Lock()
	defer r.smu.Unlock()
	if r.problems[kind] == msg {
		return false
	}
	if msg == "" {
		delete(r.problems, kind)
	} else {
		r.problems[kind] = msg
	}
	return true
}

// Problems are the jail's current problems, for status: "" when it is
// working.
func (r *Jail) Problems() string {
	r.smu.Lock()
	defer r.smu.Unlock()
	var parts []string
	for _, k := range []string{"firewall", "source"} {
		if v := r.problems[k]; v != "" {
			parts = append(parts, v)
		}
	}
	keys := make([]string, 0, len(r.srcState))
	for k := range r.srcState {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if v := r.srcState[k]; v != "" {
			parts = append(parts, v)
		}
	}
	return strings.Join(parts, "; ")
}

// Problem is the outside problem of that kind ("" when none).
func (r *Jail) Problem(kind string) string {
	r.smu.Lock()
	defer r.smu.Unlock()
	return r.problems[kind]
}

// SourceStates are the jail's sources' problems as last reported (source
// → problem, "" when fine).
func (r *Jail) SourceStates() map[string]string {
	r.smu.Lock()
	defer r.smu.Unlock()
	out := make(map[string]string, len(r.srcState))
	for k, v := range r.srcState {
		out[k] = v
	}
	return out
}

// FilterStats are the filter's counters (regex time-outs, backtracking).
func (r *Jail) FilterStats() filter.Stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.filt.Stats()
}

// Counters are the jail's numbers, totals including those of the jails it
// replaced on reload.
func (r *Jail) Counters() Counters {
	st := r.logic.Stats()
	r.smu.Lock()
	st = st.Add(r.base)
	r.smu.Unlock()
	return Counters{Stats: st, Lines: r.lines.Load(), Dropped: r.dropped.Load(), Held: r.held.Load()}
}

// LineCount is Counters().Lines without the jail logic's lock: the lines
// read so far (for a waiter polling it while lines flow).
func (r *Jail) LineCount() uint64 { return r.lines.Load() }

// Explain is the jail logic's explanation with the ignorecommand's
// cached answer.
func (r *Jail) Explain(a netip.Addr, now time.Time) jail.Explanation {
	ex := r.logic.Explain(a, now)
	if ex.Ignore == nil {
		ex.Ignore = r.stage.Load().cachedIgnore(a)
	}
	return ex
}

// Status implements source.Consumer.
func (r *Jail) Status(s source.Status) {
	msg := ""
	if s.State != source.StateOK {
		msg = s.String()
	}
	r.smu.Lock()
	prev := r.srcState[s.Source]
	r.srcState[s.Source] = msg
	r.smu.Unlock()
	if msg == prev {
		return
	}
	switch {
	case errors.Is(s.Err, source.ErrNotOpened):
		// The reader's placeholder before its first look at the file.
	case msg != "":
		r.log.Warn("log source problem", "jail", r.name, "source", s.Source, "state", s.State.String(), "err", errString(s.Err))
	case prev != "":
		r.log.Info("log source ok", "jail", r.name, "source", s.Source)
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// Line implements source.Consumer: filter, then count and ban. It returns
// once every failure of the line is counted (or queued for the slow work,
// its journal record written) and its ban decision handed to the ban
// queue, so the source saves its position only past lines fully handled.
func (r *Jail) Line(l source.Line) { r.Lines([]source.Line{l}) }

// Lines is Line for the lines of one read (source.BatchConsumer): the
// filter's lock is taken once for the lines that find nothing, the line
// counter moves once, and the clock is read once: the lines were read at
// one moment.
func (r *Jail) Lines(ls []source.Line) {
	var now time.Time // for the failures (Deps.Now)
	var keys lineKeys // the batch's lines share their source
	var decs []*jail.Decision
	r.mu.Lock()
	if r.clock != nil {
		r.clock.Stamp()
	}
	for _, l := range ls {
		res := r.filterLine(l)
		if len(res.Failures) > 0 {
			if now.IsZero() {
				now = r.deps.Now()
			}
			// The failures' work may wait (a full ban queue): not with the
			// filter locked.
			r.mu.Unlock()
			r.failed(l, res, now, keys.of(r.name, l.Source), &decs)
			r.mu.Lock()
		}
	}
	r.mu.Unlock()
	// The read's ban decisions go to the ban queue together: its
	// goroutine wakes once for them, not once a decision (on a second
	// core each wake-up of a parked goroutine is a thread woken on the
	// other CPU, and each a batch of its own: store transaction, fsync,
	// firewall call). A decision waits at most for the rest of its read
	// (up to 64 KiB of lines); a lone line's goes at once.
	for _, d := range decs {
		r.enqueueBan(d)
	}
	r.lines.Add(uint64(len(ls)))
}

// filterLine runs the filter on l (r.mu held).
func (r *Jail) filterLine(l source.Line) filter.Result {
	text := l.Text
	if r.latin1 {
		text = latin1(text)
	}
	if r.ptime || !l.Time.IsZero() {
		t := l.Time
		if t.IsZero() {
			t = r.deps.Now()
		}
		return r.filt.ProcessAt(text, t)
	}
	return r.filt.Process(text)
}

// lineKeys caches the journal keys of one source's lines.
type lineKeys struct {
	src  string
	keys failjournal.Keys // keys.Src is never 0 once computed (SourceKey)
}

// of returns the keys of jail's lines of src.
func (c *lineKeys) of(jail, src string) failjournal.Keys {
	if c.keys.Src == 0 || c.src != src {
		c.src, c.keys = src, failjournal.LineKeys(jail, src)
	}
	return c.keys
}

// failed counts the failures the filter found in l (ks: the keys of its
// source).
func (r *Jail) failed(l source.Line, res filter.Result, now time.Time, ks failjournal.Keys, decs *[]*jail.Decision) {
	key := ks.Line(l.Text)
	if jn := r.journal(); jn != nil && jn.Replayed(key) {
		r.log.Debug("line already counted before the restart; not counted again", "jail", r.name, "source", l.Source)
		return
	}
	src := ks.Src
	for _, f := range res.Failures {
		r.handle(work{f: f, key: key, src: src, now: now, decs: decs})
	}
}

// Replay puts a failure recorded before a restart back into the jail (no
// ban: the bans it led to are stored already; no new record).
func (r *Jail) Replay(rec failjournal.Record) {
	f := filter.Failure{ID: rec.Identity(), Time: time.Unix(0, rec.T), Attempts: 1, Addr: rec.Addr}
	if !f.Addr.IsValid() {
		if a, err := netip.ParseAddr(f.ID); err == nil {
			f.Addr = a
		}
	}
	r.handle(work{f: f, key: rec.Key, src: rec.Src, now: time.Unix(0, rec.Now), replay: true})
}

// handle counts a failure now when nothing slow is needed, else queues it
// for the jail's workers.
func (r *Jail) handle(w work) {
	st := r.stage.Load()
	if w.f.Addr.IsValid() { // the common case: an address counts as it is
		r.counted(st, w, w.f.Addr)
		return
	}
	addrs, mode, why := st.addrs(w.f.ID)
	switch mode {
	case skipID:
		r.act(r.logic.Skip(why), w)
		return
	case needSlow:
		r.enqueue(w)
		return
	}
	for _, a := range addrs {
		r.counted(st, w, a)
	}
}

// counted counts the failure for address a now, or queues it when the
// ignorecommand must run first.
func (r *Jail) counted(st *stage, w work, a netip.Addr) {
	facts, ok := st.facts(a)
	if !ok {
		w.f.Addr = a
		r.enqueue(w)
		return
	}
	r.observe(w, a, facts, true)
}

// observe counts the failure for address a; record says whether to write
// its journal record (not for replays, nor for queued work whose record
// was written when it was queued).
func (r *Jail) observe(w work, a netip.Addr, facts jail.Facts, record bool) {
	f := w.f
	f.Addr = a
	v := r.logic.ObserveWith(f, w.now, facts)
	if v.Evicted.IsValid() {
		r.evictedOne(w.now)
	}
	if jn := r.journal(); record && !w.replay && jn != nil && (v.Action == jail.Counted || v.Action == jail.Banned) {
		t := f.Time
		if t.IsZero() {
			t = w.now
		}
		if err := jn.Append(failjournal.Record{Jail: r.name, Key: w.key, Addr: a, T: t.UnixNano(), Now: w.now.UnixNano(), Src: w.src}); err != nil {
			r.log.Error("failure journal", "jail", r.name, "err", err)
		}
	}
	r.act(v, w)
}

// enqueue hands a failure to the jail's workers. Its journal record is
// written now (with the id as found), so a crash before it is handled
// costs nothing: the restart replays it through the stage again.
func (r *Jail) enqueue(w work) {
	r.startOnce.Do(r.startWorkers)
	w.decs = nil // decided later, by a worker: straight to the ban queue
	if jn := r.journal(); !w.replay && jn != nil {
		t := w.f.Time
		if t.IsZero() {
			t = w.now
		}
		if err := jn.Append(failjournal.Record{Jail: r.name, Key: w.key, ID: w.f.ID, Addr: w.f.Addr, T: t.UnixNano(), Now: w.now.UnixNano(), Src: w.src}); err != nil {
			r.log.Error("failure journal", "jail", r.name, "err", err)
		}
	}
	select {
	case r.queue <- w:
	default:
		if n := r.dropped.Add(1); n == 1 || n%1000 == 0 {
			r.log.Warn("lookups and ignorecommand runs are falling behind: failure dropped", "jail", r.name, "dropped", n, "queue", cap(r.queue))
		}
	}
}

func (r *Jail) startWorkers() {
	for range r.deps.Workers {
		r.workers.Add(1)
		go func() {
			defer r.workers.Done()
			for {
				select {
				case <-r.ctx.Done():
					return
				case w := <-r.queue:
					r.slow(w)
				}
			}
		}()
	}
}

// slow resolves the failure's host name and runs the ignorecommand, then
// counts it.
func (r *Jail) slow(w work) {
	st := r.stage.Load()
	addrs := []netip.Addr{w.f.Addr}
	if !w.f.Addr.IsValid() {
		var mode lookupMode
		var why string
		addrs, mode, why = st.resolve(r.ctx, w.f.ID)
		if r.ctx.Err() != nil {
			return
		}
		if mode == skipID {
			r.act(r.logic.Skip(why), w)
			return
		}
	}
	for _, a := range addrs {
		facts := st.command(r.ctx, a)
		if r.ctx.Err() != nil {
			return
		}
		r.observe(w, a, facts, false)
	}
}

// act carries out a verdict: log it, and ban.
func (r *Jail) act(v jail.Verdict, w work) {
	switch v.Action {
	case jail.Banned:
		if w.replay {
			return // the ban is stored already
		}
		if w.decs != nil {
			*w.decs = append(*w.decs, v.Ban)
			return
		}
		r.enqueueBan(v.Ban)
	case jail.Ignored, jail.Counted, jail.Skipped:
		// Per failure: the arguments are built only when they are logged.
		if r.log.Enabled(context.Background(), slog.LevelDebug) {
			r.debugVerdict(v)
		}
	}
}

// debugVerdict logs a verdict that is not a ban.
func (r *Jail) debugVerdict(v jail.Verdict) {
	switch v.Action {
	case jail.Ignored:
		if v.Ignore != nil {
			r.log.Debug("ignored", "jail", r.name, "ip", v.Addr.String(), "rule", v.Ignore.Rule, "entry", v.Ignore.Entry)
		}
	case jail.Counted:
		r.log.Debug("found", "jail", r.name, "ip", v.Addr.String(), "failures", v.Failures)
	case jail.Skipped:
		r.log.Debug("not counted", "jail", r.name, "reason", v.Reason)
	}
}

// evictedOne counts an eviction from the full failure table and logs the
// evictions at most once a minute.
func (r *Jail) evictedOne(now time.Time) {
	n := r.evicted.Add(1)
	last := r.lastEvictLog.Load()
	if now.UnixNano()-last < evictionReport.Nanoseconds() || !r.lastEvictLog.CompareAndSwap(last, now.UnixNano()) {
		return
	}
	r.evicted.Add(-n)
	r.log.Warn("failure table full: least recently seen addresses evicted (raise failtable.size to track more)",
		"jail", r.name, "evicted", n, "failtable.size", r.logic.Config().MaxEntries, "total_evicted", r.Counters().Evicted)
}

// latin1 converts ISO-8859-1 text to UTF-8.
func latin1(s string) string {
	i := 0
	for i < len(s) && s[i] < utf8.RuneSelf {
		i++
	}
	if i == len(s) {
		return s
	}
	b := make([]byte, i, len(s)+8)
	copy(b, s[:i])
	for ; i < len(s); i++ {
		b = utf8.AppendRune(b, rune(s[i]))
	}
	return string(b)
}

// banAddr shows a full-length prefix as its address.
func banAddr(p netip.Prefix) string {
	if p.Bits() == p.Addr().BitLen() {
		return p.Addr().String()
	}
	return p.String()
}

// DurationText shows a ban length ("permanent" for negative ones).
func DurationText(d time.Duration) string {
	if d < 0 {
		return "permanent"
	}
	return d.String()
}

// defaultResolver is the host's resolver.
type defaultResolver struct{}

func (defaultResolver) LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error) {
	return net.DefaultResolver.LookupNetIP(ctx, network, host)
}
