// Package jail decides, failure by failure, whether an address is counted,
// ignored or banned, the way a fail2ban jail does: maxretry failures within
// findtime ban for bantime; ignoreip, ignoreself and ignorecommand exempt
// addresses; bantime.increment escalates the ban time of repeat offenders
// from their offence history.
//
// A Jail is pure logic over timestamps: it owns no goroutines and does no
// I/O of its own. Name resolution, the ignorecommand program and the offence
// history come in through small interfaces (Deps). Its failure table is
// bounded (Config.MaxEntries): under a flood of unique addresses the least
// recently seen entries are evicted and counted, so memory stays bounded.
package jail

import (
	"context"
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
	"github.com/palisade-project/palisade/internal/sysexec"
)

// Defaults used for zero Config fields.
const (
	DefaultMaxRetry    = 5
	DefaultFindTime    = 10 * time.Minute
	DefaultBanTime     = 10 * time.Minute
	DefaultMaxEntries  = 100000
	DefaultIPv6Prefix  = 64
	defaultCmdTimeout  = 10 * time.Second
	defaultCmdCacheTTL = 5 * time.Minute
	cmdCacheMax        = 10000
	maxResolved        = 16
	maxBanSeconds      = 100 * 366 * 24 * 3600.0
	purgePerObserve    = 8
	maxMatchLen        = 1024 // bytes of a matched line kept for Explain and actions
)

// UseDNS is fail2ban's usedns: what to do with a failure whose id is a host
// name rather than an address.
type UseDNS string

// UseDNS values.
const (
	DNSYes  UseDNS = "yes"  // resolve and count every address
	DNSWarn UseDNS = "warn" // like yes, and log a warning (default)
	DNSNo   UseDNS = "no"   // host names are not counted
	DNSRaw  UseDNS = "raw"  // ids are not resolved; non-address ids cannot be banned
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

// Config is one jail's settings, as read from jail.conf/jail.local.
type Config struct {
	Name string
	// MaxRetry failures within FindTime ban (default 5).
	MaxRetry int
	// FindTime is the sliding window (default 10m).
	FindTime time.Duration
	// BanTime is the base ban length (default 10m); negative is permanent.
	BanTime time.Duration
	// IgnoreIP entries are addresses, CIDR prefixes or host names.
	IgnoreIP []string
	// IgnoreSelf exempts loopback and the host's own addresses.
	IgnoreSelf bool
	// IgnoreCommand is an argument vector (see SplitCommand); "<ip>" in
	// any argument is replaced by the address. Exit status 0 means ignore.
	IgnoreCommand []string
	// IgnoreCommandTimeout bounds one run (default 10s).
	IgnoreCommandTimeout time.Duration
	// IgnoreCacheTTL is how long an ignorecommand answer is reused for
	// the same address (default 5m; negative disables the cache).
	IgnoreCacheTTL time.Duration
	// Increment is the bantime.* escalation.
	Increment Increment
	// MaxMatches is how many matched log lines are kept per address
	// (default MaxRetry; negative keeps none).
	MaxMatches int
	// UseDNS says what to do with host-name ids (default warn).
	UseDNS UseDNS
	// MaxEntries bounds the failure table (default 100000).
	MaxEntries int
	// IPv6Prefix, when non-zero, counts and bans IPv6 addresses by their
	// prefix of this length (64 is the usual choice). 0 = per address.
	IPv6Prefix int
}

// Resolver turns host names into addresses. Implementations bound their own
// time.
type Resolver interface {
	LookupHost(host string) ([]netip.Addr, error)
}

// History reports an address's earlier bans (the ban manager implements it
// over the store). With overall set, bans in every jail count.
type History interface {
	Offences(jail string, p netip.Prefix, overall bool) (count int, lastBan time.Time, err error)
}

// Deps are a jail's collaborators; every field is optional except Runner
// when Config.IgnoreCommand is set.
type Deps struct {
	Resolver Resolver
	// SelfAddrs lists the host's own addresses for ignoreself.
	SelfAddrs func() []netip.Addr
	Runner    sysexec.Runner
	History   History
	// Rand returns a number in [0,1) for bantime.rndtime.
	Rand   func() float64
	Logger *slog.Logger
	// Implicit, when set, exempts addresses that the daemon protects in
	// every jail (the Cloudflare lock's ranges while the lock is on). It
	// returns the rule that applies, or nil. It is consulted after
	// ignoreself and ignoreip, before ignorecommand, and Explain names it.
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

// Ignore rules.
const (
	RuleSelf    = "ignoreself"
	RuleIP      = "ignoreip"
	RuleCommand = "ignorecommand"
)

// IgnoreMatch says which ignore rule exempts an address.
type IgnoreMatch struct {
	// Rule is RuleSelf, RuleIP or RuleCommand.
	Rule string
	// Entry is the matching entry: "127.0.0.1/8", "admin.example.org
	// (192.0.2.7)", "loopback", "own address", or the command.
	Entry string
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
	// Key is the table entry counted: Addr, or its IPv6 aggregate.
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
	// More holds verdicts for further addresses a host-name id resolved to.
	More []Verdict
}

// Stats are a jail's counters.
type Stats struct {
	Tracked  int    // entries in the failure table
	Failures uint64 // failures counted
	Ignored  uint64
	Skipped  uint64
	Bans     uint64
	Evicted  uint64 // entries evicted because the table was full
}

type ignoreEntry struct {
	prefix netip.Prefix
	text   string
}

type cmdResult struct {
	ignored bool
	at      time.Time
}

type failRec struct {
	t     int64 // unix nanoseconds of the failure
	regex int32
}

type entry struct {
	key        netip.Prefix
	addr       netip.Addr // the latest address seen for key
	recs       []failRec  // ring, capacity MaxRetry
	head, n    int
	matches    []string // ring, capacity MaxMatches
	mhead, mn  int
	lastSeen   int64 // observation time (now), orders the LRU list
	histLoaded bool
	prevBans   int
	lastBan    int64
	decision   *Decision
	prev, next *entry
}

// Jail is one jail's state. It is safe for concurrent use.
type Jail struct {
	cfg  Config
	deps Deps
	log  *slog.Logger
	rnd  func() float64

	mu         sync.Mutex
	ignore     []ignoreEntry
	self       []ignoreEntry
	hostErrors []string
	cmdCache   map[netip.Addr]cmdResult
	table      map[netip.Prefix]*entry
	head, tail *entry // most / least recently seen
	stats      Stats
}

// New validates cfg, fills defaults, resolves ignoreip host names and
// returns an empty jail.
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
	if cfg.MaxMatches < 0 {
		cfg.MaxMatches = 0
	}
	if cfg.MaxMatches > 1000 {
		cfg.MaxMatches = 1000
	}
	if cfg.MaxEntries == 0 {
		cfg.MaxEntries = DefaultMaxEntries
	}
	if cfg.MaxEntries < 0 {
		return nil, bad("maximum failure table size %d must be positive", cfg.MaxEntries)
	}
	if cfg.IPv6Prefix < 0 || cfg.IPv6Prefix > 128 {
		return nil, bad("IPv6 prefix length %d out of range 0..128", cfg.IPv6Prefix)
	}
	switch cfg.UseDNS {
	case "":
		cfg.UseDNS = DNSWarn
	case DNSYes, DNSWarn, DNSNo, DNSRaw:
	default:
		return nil, bad("usedns %q: want yes, warn, no or raw", cfg.UseDNS)
	}
	if cfg.IgnoreCommandTimeout <= 0 {
		cfg.IgnoreCommandTimeout = defaultCmdTimeout
	}
	if cfg.IgnoreCacheTTL == 0 {
		cfg.IgnoreCacheTTL = defaultCmdCacheTTL
	}
	if len(cfg.IgnoreCommand) > 0 && deps.Runner == nil {
		return nil, bad("ignorecommand set but no program runner")
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
	cfg.IgnoreIP = append([]string(nil), cfg.IgnoreIP...)
	cfg.IgnoreCommand = append([]string(nil), cfg.IgnoreCommand...)
	inc.Multipliers = append([]float64(nil), inc.Multipliers...)

	j := &Jail{
		cfg:      cfg,
		deps:     deps,
		log:      deps.Logger,
		rnd:      deps.Rand,
		cmdCache: map[netip.Addr]cmdResult{},
		table:    map[netip.Prefix]*entry{},
	}
	if j.log == nil {
		j.log = slog.New(slog.DiscardHandler)
	}
	if j.rnd == nil {
		j.rnd = rand.Float64
	}
	for _, e := range cfg.IgnoreIP {
		if _, _, err := parseIgnoreEntry(e); err != nil {
			return nil, bad("ignoreip %q: %v", e, err)
		}
	}
	j.RefreshIgnore()
	return j, nil
}

// Config returns the jail's effective configuration (defaults filled).
func (j *Jail) Config() Config { return j.cfg }

// Name is the jail's name.
func (j *Jail) Name() string { return j.cfg.Name }

// parseIgnoreEntry returns the prefix for an address or CIDR entry, or the
// host name to resolve.
func parseIgnoreEntry(s string) (netip.Prefix, string, error) {
	if s == "" {
		return netip.Prefix{}, "", errors.New("empty entry")
	}
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, "", err
		}
		if p.Addr().Is4In6() {
			p = netip.PrefixFrom(p.Addr().Unmap(), max(p.Bits()-96, 0))
		}
		return p.Masked(), "", nil
	}
	if a, err := netip.ParseAddr(s); err == nil {
		a = a.Unmap().WithZone("")
		return netip.PrefixFrom(a, a.BitLen()), "", nil
	}
	if !validHostName(s) {
		return netip.Prefix{}, "", errors.New("not an address, prefix or host name")
	}
	return netip.Prefix{}, s, nil
}

func validHostName(s string) bool {
	if len(s) > 253 {
		return false
	}
	labels := strings.Split(strings.TrimSuffix(s, "."), ".")
	if strings.Trim(labels[len(labels)-1], "0123456789") == "" {
		return false // a numeric last label: a mistyped address
	}
	for _, label := range labels {
		if label == "" || len(label) > 63 {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

// RefreshIgnore re-resolves ignoreip host names and re-reads the host's own
// addresses. New calls it; the daemon may call it again (on reload or
// periodically). Resolution failures are logged and kept for Explain.
func (j *Jail) RefreshIgnore() {
	var list []ignoreEntry
	var hostErrs []string
	for _, e := range j.cfg.IgnoreIP {
		p, host, err := parseIgnoreEntry(e)
		if err != nil {
			continue // validated in New
		}
		if host == "" {
			list = append(list, ignoreEntry{prefix: p, text: e})
			continue
		}
		if j.deps.Resolver == nil {
			hostErrs = append(hostErrs, host+": no resolver")
			continue
		}
		addrs, err := j.deps.Resolver.LookupHost(host)
		if err != nil {
			j.log.Warn("ignoreip host name does not resolve", "jail", j.cfg.Name, "host", host, "err", err)
			hostErrs = append(hostErrs, host+": "+err.Error())
			continue
		}
		for i, a := range addrs {
			if i == maxResolved {
				break
			}
			a = a.Unmap().WithZone("")
			if a.IsValid() {
				list = append(list, ignoreEntry{prefix: netip.PrefixFrom(a, a.BitLen()), text: host + " (" + a.String() + ")"})
			}
		}
	}
	var self []ignoreEntry
	if j.cfg.IgnoreSelf {
		self = append(self,
			ignoreEntry{netip.MustParsePrefix("127.0.0.0/8"), "loopback"},
			ignoreEntry{netip.MustParsePrefix("::1/128"), "loopback"})
		if j.deps.SelfAddrs != nil {
			for _, a := range j.deps.SelfAddrs() {
				a = a.Unmap().WithZone("")
				if a.IsValid() {
					self = append(self, ignoreEntry{netip.PrefixFrom(a, a.BitLen()), "own address " + a.String()})
				}
			}
		}
	}
	j.mu.Lock()
	j.ignore, j.self, j.hostErrors = list, self, hostErrs
	j.cmdCache = map[netip.Addr]cmdResult{}
	j.mu.Unlock()
}

// normalize makes a failure address comparable: IPv4-mapped IPv6 becomes
// IPv4, zones are dropped. Invalid, unspecified and multicast addresses are
// rejected.
func normalize(a netip.Addr) (netip.Addr, bool) {
	a = a.Unmap().WithZone("")
	if !a.IsValid() || a.IsUnspecified() || a.IsMulticast() {
		return netip.Addr{}, false
	}
	return a, true
}

func (j *Jail) keyOf(a netip.Addr) netip.Prefix {
	if a.Is6() && j.cfg.IPv6Prefix > 0 {
		p, _ := a.Prefix(j.cfg.IPv6Prefix)
		return p
	}
	return netip.PrefixFrom(a, a.BitLen())
}

// Observe counts one failure found by the jail's filter at time now and
// says what it led to. The failure's own time (its log line's date) places
// it in the window; a zero Time means now.
func (j *Jail) Observe(f filter.Failure, now time.Time) Verdict {
	if f.Addr.IsValid() {
		return j.observeAddr(f, f.Addr, now)
	}
	v := Verdict{Action: Skipped, Jail: j.cfg.Name}
	id := strings.TrimSpace(f.ID)
	switch {
	case id == "":
		v.Reason = "failure has no address"
	case j.cfg.UseDNS == DNSNo:
		v.Reason = "id " + strconv.Quote(id) + " is not an address (usedns = no)"
	case j.cfg.UseDNS == DNSRaw:
		v.Reason = "id " + strconv.Quote(id) + " is not an address (usedns = raw): cannot be banned in the firewall"
	case !validHostName(id):
		v.Reason = "id " + strconv.Quote(id) + " is neither an address nor a host name"
	case j.deps.Resolver == nil:
		v.Reason = "host name " + strconv.Quote(id) + " not resolved: no resolver"
	default:
		addrs, err := j.deps.Resolver.LookupHost(id)
		if err != nil || len(addrs) == 0 {
			v.Reason = "host name " + strconv.Quote(id) + " does not resolve"
			break
		}
		if j.cfg.UseDNS == DNSWarn {
			j.log.Warn("failure identified by host name, not address; the address may be forged (set usedns = no to stop this)",
				"jail", j.cfg.Name, "host", id, "addresses", len(addrs))
		}
		var first Verdict
		for i, a := range addrs {
			if i == maxResolved {
				break
			}
			r := j.observeAddr(f, a, now)
			if i == 0 {
				first = r
			} else {
				first.More = append(first.More, r)
			}
		}
		return first
	}
	j.mu.Lock()
	j.stats.Skipped++
	j.mu.Unlock()
	return v
}

func (j *Jail) observeAddr(f filter.Failure, raw netip.Addr, now time.Time) Verdict {
	v := Verdict{Jail: j.cfg.Name}
	addr, ok := normalize(raw)
	if !ok {
		v.Action, v.Reason = Skipped, "address "+raw.String()+" cannot be banned"
		j.mu.Lock()
		j.stats.Skipped++
		j.mu.Unlock()
		return v
	}
	v.Addr = addr
	v.Key = j.keyOf(addr)
	ft := f.Time
	if ft.IsZero() {
		ft = now
	}

	j.mu.Lock()
	defer j.mu.Unlock()
	j.purge(now)

	if ft.Before(now.Add(-j.cfg.FindTime)) {
		v.Action, v.Reason = Skipped, "failure at "+ft.Format(time.RFC3339)+" is older than findtime "+j.cfg.FindTime.String()
		j.stats.Skipped++
		return v
	}
	if m := j.ignoredLocked(addr, now); m != nil {
		v.Action, v.Ignore = Ignored, m
		j.stats.Ignored++
		return v
	}

	e := j.table[v.Key]
	if e == nil {
		e = j.newEntry(v.Key, now)
	} else {
		j.touch(e, now)
	}
	e.addr = addr
	if !e.histLoaded {
		e.histLoaded = true
		if j.cfg.Increment.Enabled && j.deps.History != nil {
			n, last, err := j.deps.History.Offences(j.cfg.Name, v.Key, j.cfg.Increment.OverallJails)
			if err != nil {
				j.log.Warn("offence history unavailable", "jail", j.cfg.Name, "prefix", v.Key, "err", err)
			} else {
				e.prevBans = n
				if !last.IsZero() {
					e.lastBan = last.UnixNano()
				}
			}
		}
	}
	if e.lastBan != 0 && ft.UnixNano() <= e.lastBan {
		v.Action, v.Reason = Skipped, "failure at "+ft.Format(time.RFC3339)+" precedes the address's last ban"
		j.stats.Skipped++
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

	d := j.decide(e, v.Failures, now)
	v.Action, v.Ban = Banned, d
	j.stats.Bans++
	// Start over. The offence count moves on here rather than by
	// re-reading the history, which the ban manager updates later.
	e.head, e.n, e.mhead, e.mn = 0, 0, 0, 0
	clear(e.matches)
	e.histLoaded, e.prevBans = true, d.Offence
	e.lastBan = ft.UnixNano()
	e.decision = d
	return v
}

func (j *Jail) decide(e *entry, failures int, _ time.Time) *Decision {
	prefix := e.key
	// Never let an aggregate cover an exempt address: ban the one address.
	if prefix.Bits() < prefix.Addr().BitLen() {
		for _, l := range [][]ignoreEntry{j.self, j.ignore} {
			for _, ie := range l {
				if ie.prefix.Overlaps(prefix) {
					prefix = netip.PrefixFrom(e.addr, e.addr.BitLen())
				}
			}
		}
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

// BanTime computes the ban length for an address with prevBans earlier
// bans, as fail2ban's bantime.increment does, and returns the escalation
// step used (0 = base time). A negative result is permanent.
//
// Default formula: bantime × 2^min(n,20) × factor, never below bantime;
// with multipliers: bantime × factor × multipliers[min(n, len-1)]. Then the
// bantime.maxtime cap and up to bantime.rndtime of random time. As in
// fail2ban, escalation applies only to repeat offenders (n > 0).
func (j *Jail) BanTime(prevBans int) (time.Duration, int) {
	base := j.cfg.BanTime
	inc := j.cfg.Increment
	if IsPermanent(base) {
		return -1, 0
	}
	if !inc.Enabled || prevBans <= 0 {
		return base, 0
	}
	sec := base.Seconds()
	if len(inc.Multipliers) > 0 {
		sec = sec * inc.Factor * inc.Multipliers[min(prevBans, len(inc.Multipliers)-1)]
	} else {
		sec = math.Max(sec, sec*float64(int64(1)<<min(prevBans, 20))*inc.Factor)
	}
	if inc.MaxTime > 0 && sec > inc.MaxTime.Seconds() {
		sec = inc.MaxTime.Seconds()
	}
	if inc.RndTime > 0 {
		sec += j.rnd() * inc.RndTime.Seconds()
	}
	sec = math.Min(sec, maxBanSeconds)
	return time.Duration(sec * float64(time.Second)), prevBans
}

// ignoredLocked applies ignoreself, ignoreip and ignorecommand in that
// order (fail2ban's order).
func (j *Jail) ignoredLocked(a netip.Addr, now time.Time) *IgnoreMatch {
	if m := firstMatch(j.self, RuleSelf, a); m != nil {
		return m
	}
	if m := firstMatch(j.ignore, RuleIP, a); m != nil {
		return m
	}
	if j.deps.Implicit != nil {
		if m := j.deps.Implicit(a); m != nil {
			return m
		}
	}
	if len(j.cfg.IgnoreCommand) == 0 {
		return nil
	}
	if r, ok := j.cmdCache[a]; ok && j.cfg.IgnoreCacheTTL > 0 && now.Sub(r.at) < j.cfg.IgnoreCacheTTL {
		if r.ignored {
			return &IgnoreMatch{Rule: RuleCommand, Entry: strings.Join(j.cfg.IgnoreCommand, " ") + " (cached)"}
		}
		return nil
	}
	ignored := j.runIgnoreCommand(a)
	if j.cfg.IgnoreCacheTTL > 0 {
		if len(j.cmdCache) >= cmdCacheMax {
			clear(j.cmdCache)
		}
		j.cmdCache[a] = cmdResult{ignored: ignored, at: now}
	}
	if ignored {
		return &IgnoreMatch{Rule: RuleCommand, Entry: strings.Join(j.cfg.IgnoreCommand, " ")}
	}
	return nil
}

func firstMatch(list []ignoreEntry, rule string, a netip.Addr) *IgnoreMatch {
	for _, ie := range list {
		if ie.prefix.Contains(a) {
			return &IgnoreMatch{Rule: rule, Entry: ie.text}
		}
	}
	return nil
}

func (j *Jail) runIgnoreCommand(a netip.Addr) bool {
	args := make([]string, len(j.cfg.IgnoreCommand)-1)
	for i, s := range j.cfg.IgnoreCommand[1:] {
		args[i] = strings.ReplaceAll(s, "<ip>", a.String())
	}
	ctx, cancel := context.WithTimeout(context.Background(), j.cfg.IgnoreCommandTimeout)
	defer cancel()
	cmd := sysexec.Cmd{Name: strings.ReplaceAll(j.cfg.IgnoreCommand[0], "<ip>", a.String()), Args: args}
	_, err := j.deps.Runner.Run(ctx, cmd)
	if err == nil {
		return true
	}
	var ee *sysexec.ExitError
	if errors.As(err, &ee) && ee.ExitCode == 1 {
		return false
	}
	j.log.Error("ignorecommand failed; address not ignored", "jail", j.cfg.Name, "addr", a, "err", err)
	return false
}

// ---- failure table ----

// push appends to the ring of failure records; the ring grows as needed up
// to capacity, then overwrites the oldest.
func (e *entry) push(r failRec, capacity int) {
	if e.n < capacity {
		if e.head+e.n < len(e.recs) {
			e.recs[e.head+e.n] = r
		} else if e.head == 0 {
			e.recs = append(e.recs, r)
		} else {
			e.recs[(e.head+e.n)%len(e.recs)] = r
		}
		e.n++
		return
	}
	e.recs[e.head] = r
	e.head = (e.head + 1) % len(e.recs)
}

func (e *entry) pushMatch(m string, capacity int) {
	if e.mn < capacity {
		if e.mhead+e.mn < len(e.matches) {
			e.matches[e.mhead+e.mn] = m
		} else if e.mhead == 0 {
			e.matches = append(e.matches, m)
		} else {
			e.matches[(e.mhead+e.mn)%len(e.matches)] = m
		}
		e.mn++
		return
	}
	e.matches[e.mhead] = m
	e.mhead = (e.mhead + 1) % len(e.matches)
}

func (e *entry) countSince(t int64) int {
	c := 0
	for i := 0; i < e.n; i++ {
		if e.recs[(e.head+i)%len(e.recs)].t > t {
			c++
		}
	}
	return c
}

func (e *entry) records() []failRec {
	out := make([]failRec, e.n)
	for i := range out {
		out[i] = e.recs[(e.head+i)%len(e.recs)]
	}
	return out
}

func (e *entry) matchList() []string {
	if e.mn == 0 {
		return nil
	}
	out := make([]string, e.mn)
	for i := range out {
		out[i] = e.matches[(e.mhead+i)%len(e.matches)]
	}
	return out
}

func (j *Jail) newEntry(key netip.Prefix, now time.Time) *entry {
	if len(j.table) >= j.cfg.MaxEntries {
		j.unlink(j.tail)
		j.stats.Evicted++
	}
	e := &entry{key: key}
	j.table[key] = e
	j.pushFront(e, now)
	return e
}

func (j *Jail) pushFront(e *entry, now time.Time) {
	e.lastSeen = now.UnixNano()
	e.prev, e.next = nil, j.head
	if j.head != nil {
		j.head.prev = e
	}
	j.head = e
	if j.tail == nil {
		j.tail = e
	}
}

func (j *Jail) touch(e *entry, now time.Time) {
	if j.head == e {
		e.lastSeen = now.UnixNano()
		return
	}
	j.detach(e)
	j.pushFront(e, now)
}

func (j *Jail) detach(e *entry) {
	if e.prev != nil {
		e.prev.next = e.next
	} else {
		j.head = e.next
	}
	if e.next != nil {
		e.next.prev = e.prev
	} else {
		j.tail = e.prev
	}
	e.prev, e.next = nil, nil
}

func (j *Jail) unlink(e *entry) {
	if e == nil {
		return
	}
	j.detach(e)
	delete(j.table, e.key)
}

// purge drops a few entries not seen for longer than findtime (their
// failures no longer count), least recently seen first.
func (j *Jail) purge(now time.Time) {
	limit := now.Add(-j.cfg.FindTime).UnixNano()
	for i := 0; i < purgePerObserve && j.tail != nil && j.tail.lastSeen < limit; i++ {
		j.unlink(j.tail)
	}
}

// Forget drops the failures counted for prefix (after a manual unban, say).
func (j *Jail) Forget(p netip.Prefix) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if e := j.table[p.Masked()]; e != nil {
		j.unlink(e)
	}
}

// Stats returns the jail's counters.
func (j *Jail) Stats() Stats {
	j.mu.Lock()
	defer j.mu.Unlock()
	s := j.stats
	s.Tracked = len(j.table)
	return s
}

// FailureRecord is one counted failure, for Explain.
type FailureRecord struct {
	Time time.Time
	// Regex is the index of the failregex that matched.
	Regex int
	// InWindow reports whether it still counts (within findtime of now).
	InWindow bool
}

// Explanation says how the jail sees one address now.
type Explanation struct {
	Jail     string
	Addr     netip.Addr
	Key      netip.Prefix
	MaxRetry int
	FindTime time.Duration
	// Ignore is the ignore rule that exempts the address (ignorecommand
	// only when a cached answer exists), or nil.
	Ignore *IgnoreMatch
	// IgnoreErrors lists ignoreip host names that did not resolve.
	IgnoreErrors []string
	// Tracked reports whether the failure table holds the address.
	Tracked bool
	// Failures are the kept failure records, oldest first (a known
	// offender's failure appears as many times as it counted).
	Failures []FailureRecord
	// Counting is how many failures count now.
	Counting int
	Matches  []string
	// LastBan is the last ban this jail decided for the entry.
	LastBan *Decision
	// NextBan is the ban length the next ban would get and its step.
	NextBanTime time.Duration
	NextStep    int
}

// Explain reports why addr is ignored, counted or was banned, without
// running ignorecommand.
func (j *Jail) Explain(addr netip.Addr, now time.Time) Explanation {
	ex := Explanation{Jail: j.cfg.Name, MaxRetry: j.cfg.MaxRetry, FindTime: j.cfg.FindTime}
	a, ok := normalize(addr)
	if !ok {
		return ex
	}
	ex.Addr, ex.Key = a, j.keyOf(a)
	j.mu.Lock()
	defer j.mu.Unlock()
	ex.IgnoreErrors = append([]string(nil), j.hostErrors...)
	ex.Ignore = firstMatch(j.self, RuleSelf, a)
	if ex.Ignore == nil {
		ex.Ignore = firstMatch(j.ignore, RuleIP, a)
	}
	if ex.Ignore == nil && j.deps.Implicit != nil {
		ex.Ignore = j.deps.Implicit(a)
	}
	if r, ok := j.cmdCache[a]; ex.Ignore == nil && ok && r.ignored {
		ex.Ignore = &IgnoreMatch{Rule: RuleCommand, Entry: strings.Join(j.cfg.IgnoreCommand, " ") + " (cached)"}
	}
	prev := 0
	if e := j.table[ex.Key]; e != nil {
		ex.Tracked = true
		limit := now.Add(-j.cfg.FindTime).UnixNano()
		for _, r := range e.records() {
			in := r.t > limit
			if in {
				ex.Counting++
			}
			ex.Failures = append(ex.Failures, FailureRecord{Time: time.Unix(0, r.t), Regex: int(r.regex), InWindow: in})
		}
		ex.Matches = e.matchList()
		if e.decision != nil {
			d := *e.decision
			ex.LastBan = &d
		}
		if e.histLoaded {
			prev = e.prevBans
		}
	}
	if (!ex.Tracked || !j.table[ex.Key].histLoaded) && j.cfg.Increment.Enabled && j.deps.History != nil {
		if n, _, err := j.deps.History.Offences(j.cfg.Name, ex.Key, j.cfg.Increment.OverallJails); err == nil {
			prev = n
		}
	}
	ex.NextBanTime, ex.NextStep = j.BanTime(prev)
	return ex
}
