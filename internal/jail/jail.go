// Package jail decides, failure by failure, whether an address is counted,
// ignored or banned, the way a fail2ban jail does: maxretry failures within
// findtime ban for bantime; ignoreip and ignoreself exempt addresses;
// bantime.increment escalates the ban time of repeat offenders from their
// offence history.
//
// A Jail is pure logic over timestamps: it owns no goroutines, does no I/O
// of its own and never waits on anything slow under its lock. What needs
// the outside world is done beside it (internal/pipeline): host names in
// ignoreip and host-name failure ids are resolved there, ignorecommand runs
// there and its answer comes in as a Fact, and the host's own addresses
// are handed in with SetIgnoreExtra. The offence history (Deps.History) is
// read with the lock released.
//
// The failure table is bounded (Config.MaxEntries): under a flood of unique
// addresses the least recently seen entries are evicted and counted, so
// memory stays bounded.
//
// Files: jail.go (configuration, Observe), ignore.go (exemptions),
// table.go (the failure table), bantime.go (ban length and escalation),
// explain.go (Explain).
package jail

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/palisade-project/palisade/internal/filter"
)

// Defaults used for zero Config fields.
const (
	DefaultMaxRetry   = 5
	DefaultFindTime   = 10 * time.Minute
	DefaultBanTime    = 10 * time.Minute
	DefaultMaxEntries = 100000
	maxBanSeconds     = 100 * 366 * 24 * 3600.0
	purgePerObserve   = 8
	maxMatchLen       = 1024 // bytes of a matched line kept for Explain and actions
)

// Increment is fail2ban's bantime.* escalation for repeat offenders.
type Increment struct {
	// Enabled is bantime.increment.
	Enabled bool
	// Factor is bantime.factor (default 1).
	Factor float64
	// Multipliers is bantime.multipliers; when set it replaces the default
	// doubling: ban time = bantime × factor × Multipliers[min(n, len-1)],
	// n being the number of earlier bans.
	Multipliers []float64
	// MaxTime is bantime.maxtime, the cap (0 = none).
	MaxTime time.Duration
	// RndTime is bantime.rndtime: up to this much random time is added.
	RndTime time.Duration
	// OverallJails is bantime.overalljails: count earlier bans in every
	// jail, not only this one.
	OverallJails bool
}

// IgnoreEntry is one ignoreip address or network.
type IgnoreEntry struct {
	Prefix netip.Prefix
	// Text is the entry as written (for explain); Prefix.String() when empty.
	Text string
}

// Config is one jail's settings, as read from jail.conf/jail.local
// (internal/config gives them typed and validated).
type Config struct {
	Name string
	// MaxRetry failures within FindTime ban (default 5).
	MaxRetry int
	// FindTime is the sliding window (default 10m).
	FindTime time.Duration
	// BanTime is the base ban length (default 10m); negative is permanent.
	BanTime time.Duration
	// IgnoreIP are the ignoreip addresses and networks.
	IgnoreIP []IgnoreEntry
	// IgnoreHosts are the ignoreip host names; their addresses come in
	// through SetIgnoreExtra once resolved.
	IgnoreHosts []string
	// IgnoreSelf exempts loopback and the host's own addresses (given by
	// SetIgnoreExtra).
	IgnoreSelf bool
	// Increment is the bantime.* escalation.
	Increment Increment
	// MaxMatches is how many matched log lines are kept per address
	// (default MaxRetry; negative keeps none).
	MaxMatches int
	// MaxEntries bounds the failure table (default 100000).
	MaxEntries int
	// IPv4Prefix and IPv6Prefix, when set below the address length, count
	// and ban addresses by their network of this length (ipv6prefix = 64
	// is the usual choice). 0 = per address.
	IPv4Prefix int
	IPv6Prefix int
}

// History reports an address's earlier bans (the ban manager implements it
// over the store). With overall set, bans in every jail count. It is called
// without the jail's lock held.
type History interface {
	Offences(jail string, p netip.Prefix, overall bool) (count int, lastBan time.Time, err error)
}

// ActiveBans reports the bans in force (the ban manager implements it from
// memory). The jail forgets an address's failures when it bans it, and
// asks this when the address fails again: failures logged before the ban
// began do not count again. It is called without the jail's lock held.
type ActiveBans interface {
	// ActiveBan reports the ban in force in jail that covers p (p's own
	// or its network's): when it began, and for p's own ban its offence
	// number (0 otherwise).
	ActiveBan(jail string, p netip.Prefix) (start time.Time, offence int, ok bool)
}

// Deps are a jail's collaborators; every field is optional.
type Deps struct {
	History History
	// Bans answers for the bans in force (see ActiveBans).
	Bans ActiveBans
	// Rand returns a number in [0,1) for bantime.rndtime.
	Rand   func() float64
	Logger *slog.Logger
	// Implicit, when set, exempts addresses that the daemon protects in
	// every jail (the Cloudflare lock's ranges while the lock is on). It
	// returns the rule that applies, or nil. It must answer from memory
	// (it is asked without the jail's lock); it is applied after ignoreself
	// and ignoreip, before ignorecommand, and Explain names it.
	Implicit func(a netip.Addr) *IgnoreMatch
}

// Action is what a failure led to.
type Action int

// Actions.
const (
	Counted Action = iota + 1 // counted, below maxretry
	Ignored                   // an ignore rule matched
	Banned                    // this failure reached maxretry: ban
	Skipped                   // not counted (see Verdict.Reason)
)

func (a Action) String() string {
	switch a {
	case Counted:
		return "counted"
	case Ignored:
		return "ignored"
	case Banned:
		return "ban"
	case Skipped:
		return "skipped"
	}
	return "action(" + strconv.Itoa(int(a)) + ")"
}

// Decision is a ban the jail asks for.
type Decision struct {
	Prefix netip.Prefix
	// Duration is the ban length; negative means permanent.
	Duration time.Duration
	// BaseTime is the configured bantime before escalation.
	BaseTime time.Duration
	// Offence is this ban's number for the address (1 = first).
	Offence int
	// Step is the escalation step: the number of earlier bans used by
	// the formula (0 = the base ban time).
	Step int
	// Failures counted in the window when the ban was decided.
	Failures int
	// Matches are the kept log lines (oldest first).
	Matches []string
	// Reason is a one-line human summary.
	Reason string
}

// Verdict is the outcome of one Observe call.
type Verdict struct {
	Action Action
	Jail   string
	// Addr is the failing address (invalid only when Skipped for lack of one).
	Addr netip.Addr
	// Key is the table entry counted: Addr, or its aggregate network.
	Key netip.Prefix
	// Failures counted within findtime, this one included.
	Failures int
	// Weight is how many failures this one counted as (>1 for known
	// offenders when bantime.increment is on, as fail2ban does).
	Weight int
	// Ignore is set when Action is Ignored.
	Ignore *IgnoreMatch
	// Ban is set when Action is Banned.
	Ban *Decision
	// Reason explains Skipped verdicts.
	Reason string
	// Evicted is the entry this failure pushed out of a full failure
	// table (invalid when none).
	Evicted netip.Prefix
}

// Facts are answers found beside the jail for one failure.
type Facts struct {
	// Command is the ignorecommand's verdict on the address: nil when the
	// jail has no ignorecommand (or it said "do not ignore").
	Command *IgnoreMatch
}

// Stats are a jail's counters.
type Stats struct {
	Tracked int // entries in the failure table
	// Failing counts the entries with failures counted towards a ban:
	// fail2ban's "Currently failed", which leaves out addresses just
	// banned (their failures start over).
	Failing  int
	Failures uint64 // failures counted
	Ignored  uint64
	Skipped  uint64
	Bans     uint64
	Evicted  uint64 // entries evicted because the table was full
}

// Add returns the sum of two counters (Tracked and Failing are s's).
func (s Stats) Add(o Stats) Stats {
	s.Failures += o.Failures
	s.Ignored += o.Ignored
	s.Skipped += o.Skipped
	s.Bans += o.Bans
	s.Evicted += o.Evicted
	return s
}

// Jail is one jail's state. It is safe for concurrent use.
type Jail struct {
	cfg  Config
	deps Deps
	log  *slog.Logger
	rnd  func() float64

	mu sync.Mutex
	ignoreSet
	table
	recent recentBans
	stats  Stats
}

// New validates cfg, fills defaults and returns an empty jail.
func New(cfg Config, deps Deps) (*Jail, error) {
	if cfg.Name == "" {
		return nil, errors.New("jail: empty name")
	}
	bad := func(format string, a ...any) error {
		return fmt.Errorf("jail %s: "+format, append([]any{cfg.Name}, a...)...)
	}
	if cfg.MaxRetry == 0 {
		cfg.MaxRetry = DefaultMaxRetry
	}
	if cfg.MaxRetry < 0 || cfg.MaxRetry > 1000000 {
		return nil, bad("maxretry %d out of range 1..1000000", cfg.MaxRetry)
	}
	if cfg.FindTime == 0 {
		cfg.FindTime = DefaultFindTime
	}
	if cfg.FindTime < 0 {
		return nil, bad("findtime %s must be positive", cfg.FindTime)
	}
	if cfg.BanTime == 0 {
		cfg.BanTime = DefaultBanTime
	}
	if cfg.MaxMatches == 0 {
		cfg.MaxMatches = cfg.MaxRetry
	}
	cfg.MaxMatches = min(max(cfg.MaxMatches, 0), 1000)
	if cfg.MaxEntries == 0 {
		cfg.MaxEntries = DefaultMaxEntries
	}
	if cfg.MaxEntries < 0 {
		return nil, bad("maximum failure table size %d must be positive", cfg.MaxEntries)
	}
	if cfg.IPv4Prefix < 0 || cfg.IPv4Prefix > 32 {
		return nil, bad("IPv4 prefix length %d out of range 0..32", cfg.IPv4Prefix)
	}
	if cfg.IPv6Prefix < 0 || cfg.IPv6Prefix > 128 {
		return nil, bad("IPv6 prefix length %d out of range 0..128", cfg.IPv6Prefix)
	}
	inc := &cfg.Increment
	if inc.Factor == 0 {
		inc.Factor = 1
	}
	if inc.Factor < 0 || math.IsNaN(inc.Factor) || math.IsInf(inc.Factor, 0) {
		return nil, bad("bantime.factor %v must be positive", inc.Factor)
	}
	for _, m := range inc.Multipliers {
		if m < 0 || math.IsNaN(m) || math.IsInf(m, 0) {
			return nil, bad("bantime.multipliers: %v must be a positive number", m)
		}
	}
	if inc.MaxTime < 0 || inc.RndTime < 0 {
		return nil, bad("bantime.maxtime and bantime.rndtime must not be negative")
	}
	for _, e := range cfg.IgnoreIP {
		if !e.Prefix.IsValid() {
			return nil, bad("ignoreip %q: not an address or network", e.Text)
		}
	}
	cfg.IgnoreIP = append([]IgnoreEntry(nil), cfg.IgnoreIP...)
	cfg.IgnoreHosts = append([]string(nil), cfg.IgnoreHosts...)
	inc.Multipliers = append([]float64(nil), inc.Multipliers...)

	j := &Jail{cfg: cfg, deps: deps, log: deps.Logger, rnd: deps.Rand}
	if j.log == nil {
		j.log = slog.New(slog.DiscardHandler)
	}
	if j.rnd == nil {
		j.rnd = rand.Float64
	}
	j.table.init(cfg.MaxEntries)
	j.ignoreSet.init(cfg)
	return j, nil
}

// Config returns the jail's effective configuration (defaults filled).
func (j *Jail) Config() Config { return j.cfg }

// Name is the jail's name.
func (j *Jail) Name() string { return j.cfg.Name }

// keyOf is the table entry of an address: the address, or its network
// when the jail aggregates.
func (j *Jail) keyOf(a netip.Addr) netip.Prefix {
	bits := j.cfg.IPv6Prefix
	if a.Is4() {
		bits = j.cfg.IPv4Prefix
	}
	if bits > 0 && bits < a.BitLen() {
		p, _ := a.Prefix(bits)
		return p
	}
	return netip.PrefixFrom(a, a.BitLen())
}

// KeyOf is the prefix the jail counts and bans a for.
func (j *Jail) KeyOf(a netip.Addr) netip.Prefix {
	if n, ok := normalize(a); ok {
		return j.keyOf(n)
	}
	return netip.Prefix{}
}

// Observe counts one failure found by the jail's filter at time now and
// says what it led to. The failure's own time (its log line's date) places
// it in the window; a zero Time means now. f.Addr must be the address: a
// failure identified by a host name is resolved beside the jail first
// (internal/pipeline), so here it is Skipped.
func (j *Jail) Observe(f filter.Failure, now time.Time) Verdict {
	return j.ObserveWith(f, now, Facts{})
}

// Skip counts a failure that cannot be counted (a host name that does not
// resolve, usedns = no) and returns its verdict.
func (j *Jail) Skip(reason string) Verdict {
	j.mu.Lock()
	j.stats.Skipped++
	j.mu.Unlock()
	return Verdict{Action: Skipped, Jail: j.cfg.Name, Reason: reason}
}

// ObserveWith is Observe with the facts found beside the jail.
func (j *Jail) ObserveWith(f filter.Failure, now time.Time, facts Facts) Verdict {
	if !f.Addr.IsValid() {
		id := strings.TrimSpace(f.ID)
		if id == "" {
			return j.Skip("failure has no address")
		}
		return j.Skip("id " + strconv.Quote(id) + " is not an address")
	}
	v := Verdict{Jail: j.cfg.Name}
	addr, ok := normalize(f.Addr)
	if !ok {
		return j.Skip("address " + f.Addr.String() + " cannot be banned")
	}
	v.Addr = addr
	v.Key = j.keyOf(addr)
	ft := f.Time
	if ft.IsZero() {
		ft = now
	}

	var implicit *IgnoreMatch
	if j.deps.Implicit != nil {
		implicit = j.deps.Implicit(addr)
	}
	j.mu.Lock()
	j.purge(now)
	if ft.Before(now.Add(-j.cfg.FindTime)) {
		j.stats.Skipped++
		j.mu.Unlock()
		v.Action, v.Reason = Skipped, "failure at "+ft.Format(time.RFC3339)+" is older than findtime "+j.cfg.FindTime.String()
		return v
	}
	m := j.exempt(addr)
	if m == nil {
		m = implicit
	}
	if m == nil {
		m = facts.Command
	}
	if m != nil {
		j.stats.Ignored++
		j.mu.Unlock()
		v.Action, v.Ignore = Ignored, m
		return v
	}
	usesHist := j.cfg.Increment.Enabled && j.deps.History != nil
	e := j.entries[v.Key]
	var known *recentBan
	if e == nil {
		if rb, ok := j.recent.get(v.Key); ok {
			known = &rb
		}
	}
	needHist := usesHist && (e == nil && known == nil || e != nil && !e.histLoaded)
	askBans := e == nil && known == nil && j.deps.Bans != nil
	j.mu.Unlock()

	// What the jail no longer holds itself: the ban in force (the ban
	// manager answers from memory) and the offence history.
	var active *activeBan
	if askBans {
		if start, off, ok := j.deps.Bans.ActiveBan(j.cfg.Name, v.Key); ok {
			active = &activeBan{start: toNano(start), offence: off}
		}
	}
	var hist *offences
	if needHist {
		n, last, err := j.deps.History.Offences(j.cfg.Name, v.Key, j.cfg.Increment.OverallJails)
		if err != nil {
			j.log.Warn("offence history unavailable", "jail", j.cfg.Name, "prefix", v.Key, "err", err)
		} else {
			hist = &offences{n: n, last: last}
		}
	}

	j.mu.Lock()
	defer j.mu.Unlock()
	e = j.entries[v.Key]
	if e == nil {
		// A new entry starts from the key's last ban, if any: failures
		// logged before it do not count again.
		var lastBan int64
		prevBans, loaded := 0, !usesHist
		if rb, ok := j.recent.get(v.Key); ok {
			lastBan, prevBans, loaded = rb.at, int(rb.offence), true
		} else if known != nil {
			lastBan, prevBans, loaded = known.at, int(known.offence), true
		} else if active != nil {
			lastBan, prevBans = active.start, active.offence
		}
		if hist != nil {
			loaded = true
			prevBans = max(prevBans, hist.n)
			lastBan = max(lastBan, toNano(hist.last))
		}
		if lastBan != 0 && ft.UnixNano() <= lastBan {
			j.stats.Skipped++
			v.Action, v.Reason = Skipped, "failure at "+ft.Format(time.RFC3339)+" precedes the address's last ban"
			return v
		}
		var evicted *entry
		e, evicted = j.newEntry(v.Key, now)
		if evicted != nil {
			j.stats.Evicted++
			v.Evicted = evicted.key
		}
		e.lastBan, e.prevBans, e.histLoaded = lastBan, prevBans, loaded
	} else {
		j.touch(e, now)
		if !e.histLoaded && hist != nil {
			e.histLoaded = true
			e.prevBans = max(e.prevBans, hist.n)
			e.lastBan = max(e.lastBan, toNano(hist.last))
		}
	}
	e.addr = addr
	if e.lastBan != 0 && ft.UnixNano() <= e.lastBan {
		j.stats.Skipped++
		v.Action, v.Reason = Skipped, "failure at "+ft.Format(time.RFC3339)+" precedes the address's last ban"
		return v
	}

	// A known offender's failure counts more, as in fail2ban: 2, 3, 5, 9 ...
	weight := 1
	if e.prevBans > 0 && j.cfg.Increment.Enabled {
		weight = (1<<min(e.prevBans, 20))/2 + 1
	}
	weight = min(weight, j.cfg.MaxRetry)
	v.Weight = weight
	for range weight {
		e.push(failRec{t: ft.UnixNano(), regex: int32(f.Regex)}, j.cfg.MaxRetry)
	}
	if j.cfg.MaxMatches > 0 {
		for _, m := range f.Matches {
			// Copy: a line may share memory with a big read buffer.
			if len(m) > maxMatchLen {
				m = m[:maxMatchLen]
			}
			e.pushMatch(strings.Clone(m), j.cfg.MaxMatches)
		}
	}
	j.stats.Failures++
	v.Failures = e.countSince(ft.Add(-j.cfg.FindTime).UnixNano())
	if v.Failures < j.cfg.MaxRetry {
		v.Action = Counted
		return v
	}

	d := j.decide(e, v.Failures)
	v.Action, v.Ban = Banned, d
	j.stats.Bans++
	// The failures are spent: the entry goes (the ban manager holds the
	// ban from now on). Until the manager has the ban, the jail's recent
	// list answers for it: when it began and its offence number (the
	// history, which the manager updates later, may not count it yet).
	j.unlink(e)
	j.recent.add(recentBan{key: v.Key, at: ft.UnixNano(), offence: int32(min(d.Offence, math.MaxInt32))})
	return v
}

type offences struct {
	n    int
	last time.Time
}

type activeBan struct {
	start   int64
	offence int
}

func toNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func (j *Jail) decide(e *entry, failures int) *Decision {
	prefix := e.key
	// Never let an aggregate cover an exempt address: ban the one address.
	if prefix.Bits() < prefix.Addr().BitLen() && j.overlapsExempt(prefix) {
		prefix = netip.PrefixFrom(e.addr, e.addr.BitLen())
	}
	dur, step := j.BanTime(e.prevBans)
	d := &Decision{
		Prefix:   prefix,
		Duration: dur,
		BaseTime: j.cfg.BanTime,
		Offence:  e.prevBans + 1,
		Step:     step,
		Failures: failures,
		Matches:  e.matchList(),
	}
	length := "permanently"
	if !IsPermanent(dur) {
		length = "for " + dur.String()
	}
	d.Reason = fmt.Sprintf("%d failures within %s (maxretry %d); offence %d, banned %s",
		failures, j.cfg.FindTime, j.cfg.MaxRetry, d.Offence, length)
	if step > 0 {
		d.Reason += fmt.Sprintf(" (escalated from %s, step %d)", j.cfg.BanTime, step)
	}
	return d
}

// Forget drops the failures counted for prefix and the jail's memory of
// its last ban (after a manual unban, say): its next failures count
// afresh.
func (j *Jail) Forget(p netip.Prefix) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if e := j.entries[p.Masked()]; e != nil {
		j.unlink(e)
	}
	j.recent.forget(p.Masked())
}

// Tracked reports whether the failure table holds a's entry.
func (j *Jail) Tracked(a netip.Addr) bool {
	n, ok := normalize(a)
	if !ok {
		return false
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.entries[j.keyOf(n)] != nil
}

// Stats returns the jail's counters.
func (j *Jail) Stats() Stats {
	j.mu.Lock()
	defer j.mu.Unlock()
	s := j.stats
	s.Tracked = len(j.entries)
	for _, e := range j.entries {
		if e.recs.n > 0 {
			s.Failing++
		}
	}
	return s
}
