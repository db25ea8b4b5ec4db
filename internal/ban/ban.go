// Package ban is the single owner of "what is banned". Its Manager writes
// every ban to the store before the firewall (so a crash never loses one),
// expires bans from one timer heap, restores them at start-up in one bulk
// firewall call, reconciles the firewall with the store, refuses to ban
// loopback and protected prefixes, writes a fail2ban-style ban log for the
// recidive filter, and tells subscribers (notify, metrics) about each ban
// and unban.
package ban

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/palisade-project/palisade/internal/firewall"
	"github.com/palisade-project/palisade/internal/store"
)

// Errors callers can test with errors.Is.
var (
	// ErrProtected: the prefix is loopback, protected or too broad.
	ErrProtected = errors.New("refusing to ban a protected address")
	// ErrAlreadyBanned: an equal or longer ban exists.
	ErrAlreadyBanned = errors.New("already banned")
	// ErrNotBanned: Unban of something not banned.
	ErrNotBanned = errors.New("not banned")
	// ErrNotEnforced: the ban is stored but the firewall refused it; the
	// next reconcile retries.
	ErrNotEnforced = errors.New("ban recorded but not enforced by the firewall")
)

// Store is what the manager needs from the database (*store.Store).
type Store interface {
	AddBans(bans []store.Ban) error
	UpdateBans(bans []store.Ban) error
	DeleteBans(keys []store.BanKey) error
	Bans() ([]store.Ban, int, error)
	Offences(jail string, p netip.Prefix, overall bool) (store.Offences, error)
	PruneHistory(now time.Time, maxAge time.Duration) (int, error)
}

// Config tunes the manager. The zero value is usable.
type Config struct {
	// Protected prefixes are never banned (the host's own addresses, the
	// admin's). Loopback is always protected.
	Protected []netip.Prefix
	// MinBits4 and MinBits6 refuse prefixes broader than this (default 8
	// and 16), so a mistake cannot block a whole address family.
	MinBits4, MinBits6 int
	// ReconcileInterval is how often Run compares the firewall with the
	// store (default 5m; negative disables).
	ReconcileInterval time.Duration
	// HistoryMaxAge is how long offence history is kept after a ban ends
	// (default 7 days); PruneInterval is how often Run prunes (default 1h).
	HistoryMaxAge time.Duration
	PruneInterval time.Duration
	// Jails, when non-empty, are the configured jails: Restore applies
	// only their bans and keeps the others stored for later.
	Jails []string
	// PID and Location stamp ban-log lines (default os.Getpid(), time.Local).
	PID      int
	Location *time.Location
	// RetryDelay is how long Run waits before retrying an expiry whose
	// store update failed (default 30s).
	RetryDelay time.Duration
}

// Deps are the manager's collaborators. Store and Backend are required.
type Deps struct {
	Store   Store
	Backend firewall.Backend
	// Now is the clock (default time.Now).
	Now    func() time.Time
	Logger *slog.Logger
	// BanLog receives one line per ban and unban (nil: none).
	BanLog io.Writer
}

// Entry is one active ban.
type Entry struct {
	Jail   string
	Prefix netip.Prefix
	Start  time.Time
	// Expires is zero for a permanent ban.
	Expires time.Time
	// Offence is the ban's number for this address in this jail.
	Offence int
	Reason  string
	// Enforced is false when the firewall refused the ban; reconcile retries.
	Enforced bool
}

// Permanent reports whether the ban never expires.
func (e Entry) Permanent() bool { return e.Expires.IsZero() }

// EventKind says what happened.
type EventKind int

// Event kinds.
const (
	EventBan EventKind = iota + 1
	EventUnban
)

func (k EventKind) String() string {
	if k == EventBan {
		return "ban"
	}
	return "unban"
}

// Event is sent to subscribers after each ban and unban.
type Event struct {
	Kind  EventKind
	Entry Entry
	// Cause of an unban: "expired", "manual", "unban-all".
	Cause string
	Time  time.Time
}

// Stats are the manager's counters.
type Stats struct {
	Active        int
	Bans          uint64
	Unbans        uint64
	Refused       uint64
	EventsDropped uint64
	// Reconcile repairs (bans re-added, unknown bans removed) and failed
	// reconcile runs, for metrics.
	ReconcileReAdded, ReconcileRemoved, ReconcileFailures uint64
}

type key struct {
	jail   string
	prefix netip.Prefix
}

type item struct {
	Entry
	index int // in the expiry heap; -1 when permanent
}

// Manager owns the active bans. It is safe for concurrent use.
type Manager struct {
	cfg     Config
	store   Store
	backend firewall.Backend
	now     func() time.Time
	log     *slog.Logger
	banlog  io.Writer
	jails   map[string]bool
	// protected is replaced whole by SetProtected (reload).
	protected atomic.Pointer[[]netip.Prefix]

	// op serializes every mutation (store, firewall, state) so they stay in
	// one order; mu guards the in-memory state for quick reads.
	op      sync.Mutex
	mu      sync.Mutex
	active  map[key]*item
	expiry  expiryHeap
	stats   Stats
	perJail map[string]uint64
	unbans  map[string]uint64 // per jail, for metrics
	subs    map[int]chan Event
	nextSub int
	logMu   sync.Mutex
	logErr  bool
	wake    chan struct{}
}

// New returns a manager with no bans; call Restore at start-up.
func New(cfg Config, deps Deps) (*Manager, error) {
	if deps.Store == nil || deps.Backend == nil {
		return nil, errors.New("ban: a store and a firewall backend are required")
	}
	if cfg.MinBits4 == 0 {
		cfg.MinBits4 = 8
	}
	if cfg.MinBits6 == 0 {
		cfg.MinBits6 = 16
	}
	if cfg.ReconcileInterval == 0 {
		cfg.ReconcileInterval = 5 * time.Minute
	}
	if cfg.HistoryMaxAge <= 0 {
		cfg.HistoryMaxAge = 7 * 24 * time.Hour
	}
	if cfg.PruneInterval <= 0 {
		cfg.PruneInterval = time.Hour
	}
	if cfg.PID == 0 {
		cfg.PID = os.Getpid()
	}
	if cfg.Location == nil {
		cfg.Location = time.Local
	}
	if cfg.RetryDelay <= 0 {
		cfg.RetryDelay = 30 * time.Second
	}
	prot, err := normProtected(cfg.Protected)
	if err != nil {
		return nil, err
	}
	cfg.Protected = nil
	m := &Manager{
		cfg:     cfg,
		store:   deps.Store,
		backend: deps.Backend,
		now:     deps.Now,
		log:     deps.Logger,
		banlog:  deps.BanLog,
		active:  map[key]*item{},
		subs:    map[int]chan Event{},
		perJail: map[string]uint64{},
		unbans:  map[string]uint64{},
		wake:    make(chan struct{}, 1),
	}
	m.protected.Store(&prot)
	if m.now == nil {
		m.now = time.Now
	}
	if m.log == nil {
		m.log = slog.New(slog.DiscardHandler)
	}
	if len(cfg.Jails) > 0 {
		m.jails = map[string]bool{}
		for _, j := range cfg.Jails {
			m.jails[j] = true
		}
	}
	return m, nil
}

func normProtected(in []netip.Prefix) ([]netip.Prefix, error) {
	out := make([]netip.Prefix, len(in))
	for i, p := range in {
		if !p.IsValid() {
			return nil, fmt.Errorf("ban: invalid protected prefix at position %d", i+1)
		}
		out[i] = normPrefix(p)
	}
	return out, nil
}

// SetProtected replaces the protected prefixes (on reload). Bans already in
// force are not lifted.
func (m *Manager) SetProtected(list []netip.Prefix) error {
	prot, err := normProtected(list)
	if err != nil {
		return err
	}
	m.protected.Store(&prot)
	return nil
}

// Protected returns the protected prefixes in use (loopback excluded).
func (m *Manager) Protected() []netip.Prefix {
	return slices.Clone(*m.protected.Load())
}

var loopback = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}

func normPrefix(p netip.Prefix) netip.Prefix {
	a := p.Addr().WithZone("")
	if a.Is4In6() {
		bits := p.Bits() - 96
		if bits < 0 {
			bits = 0
		}
		return netip.PrefixFrom(a.Unmap(), bits).Masked()
	}
	return netip.PrefixFrom(a, p.Bits()).Masked()
}

// Check reports why p must not be banned (wrapping ErrProtected), or nil.
// It is the manager's last line of defence; jails apply ignoreip earlier.
func (m *Manager) Check(p netip.Prefix) error {
	if !p.IsValid() {
		return fmt.Errorf("%w: invalid prefix", ErrProtected)
	}
	p = normPrefix(p)
	a := p.Addr()
	switch {
	case a.IsUnspecified() && p.Bits() == a.BitLen():
		return fmt.Errorf("%w: %s is the unspecified address", ErrProtected, p)
	case a.IsMulticast():
		return fmt.Errorf("%w: %s is multicast", ErrProtected, p)
	case a.Is4() && p.Bits() < m.cfg.MinBits4:
		return fmt.Errorf("%w: %s is broader than /%d", ErrProtected, p, m.cfg.MinBits4)
	case a.Is6() && p.Bits() < m.cfg.MinBits6:
		return fmt.Errorf("%w: %s is broader than /%d", ErrProtected, p, m.cfg.MinBits6)
	}
	for _, l := range loopback {
		if l.Overlaps(p) {
			return fmt.Errorf("%w: %s is loopback", ErrProtected, p)
		}
	}
	for _, pr := range *m.protected.Load() {
		if pr.Overlaps(p) {
			return fmt.Errorf("%w: %s overlaps protected %s", ErrProtected, p, pr)
		}
	}
	return nil
}

func toStore(e Entry) store.Ban {
	return store.Ban{Jail: e.Jail, Prefix: e.Prefix, Start: e.Start, Expires: e.Expires, Offence: e.Offence, Reason: e.Reason}
}

func toFirewall(e Entry) firewall.Ban {
	return firewall.Ban{Jail: e.Jail, Prefix: e.Prefix, Expires: e.Expires}
}

// Ban bans prefix in jail for d (negative: permanent). The ban is committed
// to the store first, then enforced. Banning what is already banned for at
// least as long returns the existing entry and ErrAlreadyBanned; a longer
// ban extends it (without counting a new offence). Errors wrap
// ErrProtected, ErrAlreadyBanned or ErrNotEnforced where they apply; a
// store failure still enforces the ban (it is then not persisted).
func (m *Manager) Ban(ctx context.Context, jail string, p netip.Prefix, d time.Duration, reason string) (Entry, error) {
	r := m.BanMany(ctx, []Request{{Jail: jail, Prefix: p, Duration: d, Reason: reason}})
	return r[0].Entry, r[0].Err
}

// Request is one ban for BanMany.
type Request struct {
	Jail   string
	Prefix netip.Prefix
	// Duration is the ban length; negative means permanent.
	Duration time.Duration
	Reason   string
}

// Result is the outcome of one Request.
type Result struct {
	Entry Entry
	Err   error
}

// BanMany applies several bans with one store transaction (two when some
// extend existing bans) and one firewall call, as a burst of bans from
// many addresses needs. Results are in request order; each behaves as Ban.
func (m *Manager) BanMany(ctx context.Context, reqs []Request) []Result {
	res := make([]Result, len(reqs))
	type pending struct {
		i   int
		e   Entry
		old *item
	}
	var valid []int
	for i, r := range reqs {
		switch {
		case r.Jail == "":
			res[i].Err = errors.New("ban: empty jail name")
			continue
		case r.Duration == 0:
			res[i].Err = fmt.Errorf("ban %s in %s: zero duration", r.Prefix, r.Jail)
			continue
		}
		if err := m.Check(r.Prefix); err != nil {
			m.mu.Lock()
			m.stats.Refused++
			m.mu.Unlock()
			m.log.Warn("ban refused", "jail", r.Jail, "prefix", r.Prefix, "err", err)
			res[i].Err = fmt.Errorf("ban %s in %s: %w", r.Prefix, r.Jail, err)
			continue
		}
		valid = append(valid, i)
	}
	if len(valid) == 0 {
		return res
	}

	m.op.Lock()
	defer m.op.Unlock()
	now := m.now()
	var adds, exts []pending
	inBatch := map[key]int{}          // key -> index into adds/exts (encoded: >=0 adds, <0 exts)
	longer := func(a, b Entry) bool { // a outlasts b
		return a.Permanent() || !b.Permanent() && a.Expires.After(b.Expires)
	}
	m.mu.Lock()
	for _, i := range valid {
		r := reqs[i]
		p := normPrefix(r.Prefix)
		e := Entry{Jail: r.Jail, Prefix: p, Start: now, Reason: r.Reason}
		if r.Duration > 0 {
			e.Expires = now.Add(r.Duration)
		}
		k := key{r.Jail, p}
		if at, dup := inBatch[k]; dup {
			// The same key twice in one batch: keep the longer one.
			prev := &adds
			idx := at
			if at < 0 {
				prev, idx = &exts, -at-1
			}
			cur := &(*prev)[idx]
			if longer(e, cur.e) {
				e.Start, e.Offence = cur.e.Start, cur.e.Offence
				res[cur.i].Err = fmt.Errorf("ban %s in %s: %w", p, r.Jail, ErrAlreadyBanned)
				cur.e.Expires, cur.e.Reason, cur.i = e.Expires, e.Reason, i
			} else {
				res[i].Err = fmt.Errorf("ban %s in %s: %w", p, r.Jail, ErrAlreadyBanned)
			}
			continue
		}
		old := m.active[k]
		if old != nil {
			if !longer(e, old.Entry) {
				res[i] = Result{old.Entry, fmt.Errorf("ban %s in %s: %w", p, r.Jail, ErrAlreadyBanned)}
				continue
			}
			e.Start, e.Offence = old.Start, old.Offence
			inBatch[k] = -len(exts) - 1
			exts = append(exts, pending{i, e, old})
			continue
		}
		inBatch[k] = len(adds)
		adds = append(adds, pending{i: i, e: e})
	}
	m.mu.Unlock()
	if len(adds)+len(exts) == 0 {
		return res
	}

	// The store first: a crash after this never loses the bans. If the
	// store fails the attacker is still blocked (not persisted).
	var addErr, extErr error
	if len(adds) > 0 {
		sb := make([]store.Ban, len(adds))
		for n, a := range adds {
			sb[n] = toStore(a.e)
		}
		if addErr = m.store.AddBans(sb); addErr == nil {
			for n := range adds {
				adds[n].e.Offence = sb[n].Offence
			}
		}
	}
	if len(exts) > 0 {
		sb := make([]store.Ban, len(exts))
		for n, x := range exts {
			sb[n] = toStore(x.e)
		}
		extErr = m.store.UpdateBans(sb)
	}
	fw := make([]firewall.Ban, 0, len(adds)+len(exts))
	for _, a := range adds {
		fw = append(fw, toFirewall(a.e))
	}
	for _, x := range exts {
		fw = append(fw, toFirewall(x.e))
	}
	ferr := m.backend.Add(ctx, fw)

	m.mu.Lock()
	for n := range adds {
		adds[n].e.Enforced = ferr == nil
		m.put(adds[n].e)
		m.stats.Bans++
		m.perJail[adds[n].e.Jail]++
	}
	for n := range exts {
		exts[n].e.Enforced = ferr == nil
		m.put(exts[n].e)
	}
	m.mu.Unlock()
	m.poke()

	if addErr != nil {
		m.log.Error("bans enforced but NOT stored: they will not survive a restart", "count", len(adds), "err", addErr)
	}
	if extErr != nil {
		m.log.Error("ban extensions NOT stored", "count", len(exts), "err", extErr)
	}
	if ferr != nil {
		m.log.Error("firewall refused bans; they are kept and will be retried", "count", len(fw), "backend", m.backend.Name(), "err", ferr)
	}
	finish := func(pd pending, serr error) {
		var errs []error
		if serr != nil {
			errs = append(errs, serr)
		}
		if ferr != nil {
			errs = append(errs, fmt.Errorf("%w: %v", ErrNotEnforced, ferr))
		}
		res[pd.i].Entry = pd.e
		if len(errs) > 0 {
			res[pd.i].Err = fmt.Errorf("ban %s in %s: %w", pd.e.Prefix, pd.e.Jail, errors.Join(errs...))
		}
	}
	for _, a := range adds {
		m.log.Info("ban", "jail", a.e.Jail, "prefix", a.e.Prefix, "expires", a.e.Expires, "offence", a.e.Offence, "reason", a.e.Reason)
		m.writeLog(now, a.e.Jail, "Ban", a.e.Prefix)
		m.emit(Event{Kind: EventBan, Entry: a.e, Time: now})
		finish(a, addErr)
	}
	for _, x := range exts {
		m.log.Info("ban extended", "jail", x.e.Jail, "prefix", x.e.Prefix, "expires", x.e.Expires)
		finish(x, extErr)
	}
	return res
}

// put stores e in the map and heap (mu held).
func (m *Manager) put(e Entry) {
	k := key{e.Jail, e.Prefix}
	if it := m.active[k]; it != nil {
		if it.index >= 0 {
			heap.Remove(&m.expiry, it.index)
		}
	}
	it := &item{Entry: e, index: -1}
	m.active[k] = it
	if !e.Permanent() {
		heap.Push(&m.expiry, it)
	}
}

// drop removes k from the map and heap (mu held).
func (m *Manager) drop(k key) {
	it := m.active[k]
	if it == nil {
		return
	}
	if it.index >= 0 {
		heap.Remove(&m.expiry, it.index)
	}
	delete(m.active, k)
}

// Unban lifts the ban of prefix in jail: store first, then the firewall.
func (m *Manager) Unban(ctx context.Context, jail string, p netip.Prefix) (Entry, error) {
	if !p.IsValid() {
		return Entry{}, errors.New("unban: invalid prefix")
	}
	p = normPrefix(p)
	m.op.Lock()
	defer m.op.Unlock()
	m.mu.Lock()
	it := m.active[key{jail, p}]
	m.mu.Unlock()
	if it == nil {
		// Lift a firewall leftover anyway; removing is idempotent.
		_ = m.backend.Remove(ctx, []firewall.Ban{{Jail: jail, Prefix: p}})
		return Entry{}, fmt.Errorf("unban %s in %s: %w", p, jail, ErrNotBanned)
	}
	_, err := m.remove(ctx, []Entry{it.Entry}, "manual")
	return it.Entry, err
}

// UnbanAll lifts every ban of jail, or of every jail when jail is "", in
// one store transaction and one firewall call. It returns how many.
func (m *Manager) UnbanAll(ctx context.Context, jail string) (int, error) {
	m.op.Lock()
	defer m.op.Unlock()
	m.mu.Lock()
	var list []Entry
	for k, it := range m.active {
		if jail == "" || k.jail == jail {
			list = append(list, it.Entry)
		}
	}
	m.mu.Unlock()
	if len(list) == 0 {
		return 0, nil
	}
	sortEntries(list)
	return m.remove(ctx, list, "unban-all")
}

// remove lifts entries (op held): store, then firewall, then state, log
// and events. A store failure leaves everything in place.
func (m *Manager) remove(ctx context.Context, list []Entry, cause string) (int, error) {
	keys := make([]store.BanKey, len(list))
	fw := make([]firewall.Ban, len(list))
	for i, e := range list {
		keys[i] = store.BanKey{Jail: e.Jail, Prefix: e.Prefix}
		fw[i] = toFirewall(e)
	}
	if err := m.store.DeleteBans(keys); err != nil {
		return 0, fmt.Errorf("unban %d: %w", len(list), err)
	}
	ferr := m.backend.Remove(ctx, fw)
	now := m.now()
	m.mu.Lock()
	for _, e := range list {
		m.drop(key{e.Jail, e.Prefix})
		m.unbans[e.Jail]++
	}
	m.stats.Unbans += uint64(len(list))
	m.mu.Unlock()
	for _, e := range list {
		m.writeLog(now, e.Jail, "Unban", e.Prefix)
		m.emit(Event{Kind: EventUnban, Entry: e, Cause: cause, Time: now})
	}
	m.log.Info("unban", "count", len(list), "cause", cause)
	if ferr != nil {
		m.log.Error("firewall refused an unban; reconcile will retry", "count", len(list), "backend", m.backend.Name(), "err", ferr)
		return len(list), fmt.Errorf("unban %d: firewall: %w", len(list), ferr)
	}
	return len(list), nil
}

// List returns the active bans of jail ("" = every jail), ordered by jail
// then prefix.
func (m *Manager) List(jail string) []Entry {
	m.mu.Lock()
	out := make([]Entry, 0, len(m.active))
	for k, it := range m.active {
		if jail == "" || k.jail == jail {
			out = append(out, it.Entry)
		}
	}
	m.mu.Unlock()
	sortEntries(out)
	return out
}

// Count returns the number of active bans of jail and how many bans the
// jail made since the manager started (restored bans not included).
func (m *Manager) Count(jail string) (active int, total uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for k := range m.active {
		if k.jail == jail {
			active++
		}
	}
	return active, m.perJail[jail]
}

// Unbans returns how many bans of jail were lifted since the manager
// started.
func (m *Manager) Unbans(jail string) uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.unbans[jail]
}

// Find returns the active bans whose prefix contains a.
func (m *Manager) Find(a netip.Addr) []Entry {
	a = a.Unmap().WithZone("")
	var out []Entry
	m.mu.Lock()
	for _, it := range m.active {
		if it.Prefix.Contains(a) {
			out = append(out, it.Entry)
		}
	}
	m.mu.Unlock()
	sortEntries(out)
	return out
}

func sortEntries(l []Entry) {
	slices.SortFunc(l, func(a, b Entry) int {
		if c := strings.Compare(a.Jail, b.Jail); c != 0 {
			return c
		}
		if c := a.Prefix.Addr().Compare(b.Prefix.Addr()); c != 0 {
			return c
		}
		return a.Prefix.Bits() - b.Prefix.Bits()
	})
}

// Offences implements jail.History over the store.
func (m *Manager) Offences(jail string, p netip.Prefix, overall bool) (int, time.Time, error) {
	o, err := m.store.Offences(jail, p, overall)
	return o.Count, o.LastBan, err
}

// Stats returns the manager's counters.
func (m *Manager) Stats() Stats {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.stats
	s.Active = len(m.active)
	return s
}

// RestoreStats says what Restore did.
type RestoreStats struct {
	Restored int // applied to the firewall
	Expired  int // dropped from the store
	Kept     int // kept stored for jails not configured now
	Bad      int // undecodable records skipped
}

// Restore loads every stored ban at start-up: expired ones are deleted
// (one transaction), the others are applied to the firewall in ONE bulk Add
// and scheduled for expiry. A firewall failure keeps them stored and marked
// unenforced (reconcile retries) and is returned.
func (m *Manager) Restore(ctx context.Context) (RestoreStats, error) {
	m.op.Lock()
	defer m.op.Unlock()
	var st RestoreStats
	bans, bad, err := m.store.Bans()
	st.Bad = bad
	if err != nil {
		return st, fmt.Errorf("restore: %w", err)
	}
	if bad > 0 {
		m.log.Error("skipped undecodable ban records in the database", "count", bad)
	}
	now := m.now()
	var expired []store.BanKey
	entries := make([]Entry, 0, len(bans))
	fw := make([]firewall.Ban, 0, len(bans))
	for _, b := range bans {
		if !b.Expires.IsZero() && !b.Expires.After(now) {
			expired = append(expired, store.BanKey{Jail: b.Jail, Prefix: b.Prefix})
			continue
		}
		if m.jails != nil && !m.jails[b.Jail] {
			st.Kept++
			continue
		}
		if m.Check(b.Prefix) != nil {
			// Protected now (config changed): do not enforce, keep stored.
			st.Kept++
			m.log.Warn("stored ban now covers a protected address; not restored", "jail", b.Jail, "prefix", b.Prefix)
			continue
		}
		e := Entry{Jail: b.Jail, Prefix: b.Prefix, Start: b.Start, Expires: b.Expires, Offence: b.Offence, Reason: b.Reason}
		entries = append(entries, e)
		fw = append(fw, toFirewall(e))
	}
	if len(expired) > 0 {
		if err := m.store.DeleteBans(expired); err != nil {
			m.log.Error("could not drop expired bans from the database", "count", len(expired), "err", err)
		} else {
			st.Expired = len(expired)
		}
	}
	var ferr error
	if len(fw) > 0 {
		ferr = m.backend.Add(ctx, fw)
	}
	m.mu.Lock()
	fresh := len(m.active) == 0
	if fresh {
		m.active = make(map[key]*item, len(entries))
	}
	items := make([]item, len(entries))
	for i, e := range entries {
		e.Enforced = ferr == nil
		items[i] = item{Entry: e, index: -1}
		k := key{e.Jail, e.Prefix}
		if !fresh {
			if old := m.active[k]; old != nil && old.index >= 0 {
				heap.Remove(&m.expiry, old.index)
			}
		}
		m.active[k] = &items[i]
		if !e.Permanent() {
			items[i].index = len(m.expiry)
			m.expiry = append(m.expiry, &items[i])
		}
	}
	heap.Init(&m.expiry)
	m.mu.Unlock()
	m.poke()
	st.Restored = len(entries)
	m.log.Info("bans restored", "restored", st.Restored, "expired", st.Expired, "kept", st.Kept, "backend", m.backend.Name())
	if ferr != nil {
		m.log.Error("firewall refused the restored bans; reconcile will retry", "count", len(fw), "err", ferr)
		return st, fmt.Errorf("restore %d bans: %w: %v", len(fw), ErrNotEnforced, ferr)
	}
	return st, nil
}

// ExpireDue lifts every ban whose time is up (one store transaction, one
// firewall call) and returns how many.
func (m *Manager) ExpireDue(ctx context.Context) (int, error) {
	m.op.Lock()
	defer m.op.Unlock()
	now := m.now()
	var due []Entry
	m.mu.Lock()
	for len(m.expiry) > 0 && !m.expiry[0].Expires.After(now) {
		due = append(due, m.expiry[0].Entry)
		heap.Pop(&m.expiry)
	}
	m.mu.Unlock()
	if len(due) == 0 {
		return 0, nil
	}
	n, err := m.remove(ctx, due, "expired")
	if n == 0 && err != nil {
		// The store failed: put them back, retry later.
		m.mu.Lock()
		for _, e := range due {
			if it := m.active[key{e.Jail, e.Prefix}]; it != nil && it.index < 0 {
				it.Expires = now.Add(m.cfg.RetryDelay)
				heap.Push(&m.expiry, it)
			}
		}
		m.mu.Unlock()
	}
	return n, err
}

// ReconcileStats says what Reconcile did.
type ReconcileStats struct {
	Listed  bool // the backend could list its bans
	ReAdded int  // active bans missing from the firewall, added again
	Removed int  // firewall bans unknown to the manager, removed
}

// Reconcile makes the firewall match the active bans. When the backend can
// list, missing bans are re-added and unknown ones removed (one call
// each); otherwise only bans the firewall refused earlier are retried.
func (m *Manager) Reconcile(ctx context.Context) (ReconcileStats, error) {
	m.op.Lock()
	defer m.op.Unlock()
	var st ReconcileStats
	now := m.now()
	soon := now.Add(time.Second)
	listed, err := m.backend.List(ctx)
	switch {
	case errors.Is(err, firewall.ErrNotListable):
	case err != nil:
		m.mu.Lock()
		m.stats.ReconcileFailures++
		m.mu.Unlock()
		return st, fmt.Errorf("reconcile: list %s: %w", m.backend.Name(), err)
	default:
		st.Listed = true
	}
	have := make(map[key]bool, len(listed))
	for _, b := range listed {
		have[key{b.Jail, normPrefix(b.Prefix)}] = true
	}
	var add, extra []firewall.Ban
	var addKeys []key
	m.mu.Lock()
	for k, it := range m.active {
		if !it.Permanent() && it.Expires.Before(soon) {
			continue // about to expire anyway
		}
		if !it.Enforced || st.Listed && !have[k] {
			add = append(add, toFirewall(it.Entry))
			addKeys = append(addKeys, k)
		}
	}
	if st.Listed {
		for _, b := range listed {
			if m.active[key{b.Jail, normPrefix(b.Prefix)}] == nil {
				extra = append(extra, b)
			}
		}
	}
	m.mu.Unlock()
	var errs []error
	if len(add) > 0 {
		if err := m.backend.Add(ctx, add); err != nil {
			errs = append(errs, fmt.Errorf("re-add %d: %w", len(add), err))
		} else {
			st.ReAdded = len(add)
			m.mu.Lock()
			for _, k := range addKeys {
				if it := m.active[k]; it != nil {
					it.Enforced = true
				}
			}
			m.mu.Unlock()
		}
	}
	if len(extra) > 0 {
		if err := m.backend.Remove(ctx, extra); err != nil {
			errs = append(errs, fmt.Errorf("remove %d unknown: %w", len(extra), err))
		} else {
			st.Removed = len(extra)
		}
	}
	if st.ReAdded > 0 || st.Removed > 0 {
		m.log.Warn("firewall reconciled with the store", "re_added", st.ReAdded, "removed", st.Removed)
	}
	m.mu.Lock()
	m.stats.ReconcileReAdded += uint64(st.ReAdded)
	m.stats.ReconcileRemoved += uint64(st.Removed)
	if len(errs) > 0 {
		m.stats.ReconcileFailures++
	}
	m.mu.Unlock()
	if len(errs) > 0 {
		return st, fmt.Errorf("reconcile: %w", errors.Join(errs...))
	}
	return st, nil
}

// Subscribe returns a channel of ban and unban events with room for buf
// (default 256) and a cancel function. Sends never block: when the channel
// is full the event is dropped and counted in Stats.EventsDropped.
func (m *Manager) Subscribe(buf int) (<-chan Event, func()) {
	if buf <= 0 {
		buf = 256
	}
	ch := make(chan Event, buf)
	m.mu.Lock()
	id := m.nextSub
	m.nextSub++
	m.subs[id] = ch
	m.mu.Unlock()
	var once sync.Once
	return ch, func() {
		once.Do(func() {
			m.mu.Lock()
			delete(m.subs, id)
			m.mu.Unlock()
			close(ch)
		})
	}
}

func (m *Manager) emit(ev Event) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, ch := range m.subs {
		select {
		case ch <- ev:
		default:
			m.stats.EventsDropped++
		}
	}
}

func (m *Manager) writeLog(t time.Time, jail, verb string, p netip.Prefix) {
	if m.banlog == nil {
		return
	}
	line := BanLogLine(t.In(m.cfg.Location), m.cfg.PID, jail, verb, p)
	m.logMu.Lock()
	defer m.logMu.Unlock()
	if _, err := io.WriteString(m.banlog, line); err != nil {
		if !m.logErr {
			m.log.Error("cannot write the ban log", "err", err)
		}
		m.logErr = true
		return
	}
	m.logErr = false
}

func (m *Manager) poke() {
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

// Run expires bans on time, reconciles and prunes the offence history
// periodically, until ctx is done. One timer serves every ban.
func (m *Manager) Run(ctx context.Context) error {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	var reconcile <-chan time.Time
	if m.cfg.ReconcileInterval > 0 {
		t := time.NewTicker(m.cfg.ReconcileInterval)
		defer t.Stop()
		reconcile = t.C
	}
	prune := time.NewTicker(m.cfg.PruneInterval)
	defer prune.Stop()
	for {
		m.mu.Lock()
		wait := time.Duration(-1)
		if len(m.expiry) > 0 {
			wait = max(m.expiry[0].Expires.Sub(m.now()), 0)
		}
		m.mu.Unlock()
		timer.Stop()
		var fire <-chan time.Time
		if wait >= 0 {
			timer.Reset(wait)
			fire = timer.C
		}
		select {
		case <-ctx.Done():
			return nil
		case <-m.wake:
		case <-fire:
			if _, err := m.ExpireDue(ctx); err != nil {
				m.log.Error("expiring bans", "err", err)
			}
		case <-reconcile:
			if _, err := m.Reconcile(ctx); err != nil {
				m.log.Error("reconcile", "err", err)
			}
		case <-prune.C:
			n, err := m.store.PruneHistory(m.now(), m.cfg.HistoryMaxAge)
			if err != nil {
				m.log.Error("pruning offence history", "err", err)
			} else if n > 0 {
				m.log.Info("offence history pruned", "records", n)
			}
		}
	}
}

// expiryHeap orders timed bans by expiry.
type expiryHeap []*item

func (h expiryHeap) Len() int           { return len(h) }
func (h expiryHeap) Less(i, j int) bool { return h[i].Expires.Before(h[j].Expires) }
func (h expiryHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index = i
	h[j].index = j
}
func (h *expiryHeap) Push(x any) {
	it := x.(*item)
	it.index = len(*h)
	*h = append(*h, it)
}
func (h *expiryHeap) Pop() any {
	old := *h
	it := old[len(old)-1]
	old[len(old)-1] = nil
	it.index = -1
	*h = old[:len(old)-1]
	return it
}
