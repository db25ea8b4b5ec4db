// Package ban is the single owner of "what is banned". Its Manager writes
// every ban to the store before the firewall (so a crash never loses one),
// expires bans from one timer heap, restores them at start-up in bulk
// firewall calls (adopting what the kernel still holds when the database was
// lost), reconciles the firewall with the store, bounds each jail's active
// bans by aggregating neighbours, keeps banning from memory while the
// database cannot be written (and persists everything once it can), refuses
// to ban loopback, protected prefixes and addresses no attacker can have,
// writes a fail2ban-style ban log for the recidive filter, and tells
// subscribers (notify, metrics, fleet) about each ban and unban.
//
// The files of the package follow its seams: table.go (the compact
// in-memory ban table), batch.go (Ban, BanMany), unban.go (Unban, UnbanAll,
// expiry), aggregate.go (the per-jail bound), restore.go (start-up restore
// and adoption), reconcile.go, persist.go (store failures and retries),
// events.go and banlog.go.
package ban

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"log/slog"
	"net/netip"
	"os"
	"slices"
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
	// ErrNotAttacker: the prefix lies entirely in addresses no attacker's
	// packet can come from (unspecified, loopback, multicast, broadcast).
	// It is bad input (the CLI exits 2); such errors also wrap ErrProtected.
	ErrNotAttacker = errors.New("not an address an attacker can use")
	// ErrAlreadyBanned: an equal or longer ban of the prefix, or of a
	// prefix containing it, exists in the jail.
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
	// EachBan calls fn for every stored ban and returns how many records
	// could not be decoded.
	EachBan(fn func(store.Ban) error) (bad int, err error)
	Offences(jail string, p netip.Prefix, overall bool) (store.Offences, error)
	PruneHistory(now time.Time, maxAge time.Duration) (int, error)
}

// DefaultMaxBans is the default bound on one jail's active bans (the
// jail option maxbans).
const DefaultMaxBans = 250_000

// Config tunes the manager. The zero value is usable.
type Config struct {
	// Protected prefixes are never banned (the host's own addresses, the
	// admin's). Loopback is always protected.
	Protected []netip.Prefix
	// MinBits4 and MinBits6 refuse prefixes broader than this (default 8
	// and 16), so a mistake cannot block a whole address family.
	MinBits4, MinBits6 int
	// ReconcileInterval is how often Run compares the firewall with the
	// store (default 5m; negative disables). FullReconcileInterval
	// (default 1h) is how often a backend that checks itself cheaply
	// (firewall.IntactChecker) is listed in full anyway.
	ReconcileInterval     time.Duration
	FullReconcileInterval time.Duration
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
	// RetryDelay is the first wait before a failed database write is
	// retried (default 1s); it doubles up to MaxRetryDelay (default 1m).
	RetryDelay, MaxRetryDelay time.Duration
	// MaxBans bounds each jail's active bans (default DefaultMaxBans;
	// negative: no bound). PerJail overrides it per jail.
	MaxBans int
	// PerJail holds per-jail settings (SetJailConfig replaces them).
	PerJail map[string]JailConfig
}

// JailConfig is the per-jail part of Config.
type JailConfig struct {
	// MaxBans bounds the jail's active bans: past it, bans of neighbouring
	// addresses are merged into one ban of their network (IPv6 /64, /56,
	// /48, /40, /32; IPv4 /24, /20, /16), the largest groups first, until
	// the jail is back to 90% of the bound; only when no neighbours are
	// left are the bans closest to their end lifted early. 0 means the
	// manager's MaxBans; negative means no bound.
	MaxBans int
	// Exempt prefixes are never covered by an aggregate (the jail's
	// ignoreip); the host's own addresses and loopback never are anyway.
	Exempt []netip.Prefix
	// NotStored: another component keeps and restores the jail's bans
	// (the fleet's remote bans, in its book of signed records). The
	// manager enforces and lists them but does not write them to the
	// store, so each is stored once. Deletes still go to the store (a ban
	// stored by an earlier version is removed when it ends).
	NotStored bool
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
	// Start is when the ban began; zero when unknown (adopted from the
	// kernel).
	Start time.Time
	// Expires is zero for a permanent ban.
	Expires time.Time
	// Offence is the ban's number for this address in this jail (the
	// bantime.increment step plus one); 0 while unknown (the database
	// could not be read).
	Offence int
	// Reason is the jail's explanation ("5 failures within 10m ...",
	// "manual"); it may be empty for a ban restored from the database
	// when very many distinct reasons are in use.
	Reason string
	// Enforced is false when the firewall refused the ban; reconcile retries.
	Enforced bool
	// Unsaved is true while the database does not hold the ban (it could
	// not be written); the manager retries until it does.
	Unsaved bool
	// Origin says how the ban came about.
	Origin Origin
}

// Permanent reports whether the ban never expires.
func (e Entry) Permanent() bool { return e.Expires.IsZero() }

// Stats are the manager's counters.
type Stats struct {
	Active        int
	Bans          uint64
	Unbans        uint64
	Refused       uint64
	EventsDropped uint64
	// Aggregated counts bans merged into a network ban by the maxbans
	// bound; Evicted counts bans lifted early by it.
	Aggregated uint64
	Evicted    uint64
	// Reconcile repairs (bans re-added, unknown bans removed) and failed
	// reconcile runs, for metrics.
	ReconcileReAdded, ReconcileRemoved, ReconcileFailures uint64
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
	perJail   atomic.Pointer[map[string]JailConfig]

	// op serializes every mutation (store, firewall, state) so they stay in
	// one order; mu guards the in-memory state for quick reads.
	op    sync.Mutex
	mu    sync.Mutex
	t     table
	stats Stats
	// pendingDel holds bans lifted while the store could not delete them.
	pendingDel map[store.BanKey]struct{}
	// pendingOff holds lifted bans whose offence the history has not
	// counted yet (see keepOffence).
	pendingOff   []store.Ban
	lostOffences int
	// lastFull is when Reconcile last listed the firewall (op guards it).
	lastFull time.Time
	health   storeHealth
	subs     map[int]chan Event
	nextSub  int
	logMu    sync.Mutex
	logErr   bool
	wake     chan struct{}
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
	if cfg.FullReconcileInterval <= 0 {
		cfg.FullReconcileInterval = time.Hour
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
		cfg.RetryDelay = time.Second
	}
	if cfg.MaxRetryDelay < cfg.RetryDelay {
		cfg.MaxRetryDelay = max(time.Minute, cfg.RetryDelay)
	}
	if cfg.MaxBans == 0 {
		cfg.MaxBans = DefaultMaxBans
	}
	prot, err := normProtected(cfg.Protected)
	if err != nil {
		return nil, err
	}
	cfg.Protected = nil
	m := &Manager{
		cfg:        cfg,
		store:      deps.Store,
		backend:    deps.Backend,
		now:        deps.Now,
		log:        deps.Logger,
		banlog:     deps.BanLog,
		t:          newTable(),
		pendingDel: map[store.BanKey]struct{}{},
		subs:       map[int]chan Event{},
		wake:       make(chan struct{}, 1),
	}
	m.protected.Store(&prot)
	if err := m.SetJailConfig(cfg.PerJail); err != nil {
		return nil, err
	}
	m.cfg.PerJail = nil
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

// SetJailConfig replaces the per-jail settings (on reload). A lower bound
// applies from the jail's next ban on.
func (m *Manager) SetJailConfig(per map[string]JailConfig) error {
	cp := make(map[string]JailConfig, len(per))
	for name, jc := range per {
		ex, err := normProtected(jc.Exempt)
		if err != nil {
			return fmt.Errorf("jail %s: %w", name, err)
		}
		jc.Exempt = ex
		cp[name] = jc
	}
	m.perJail.Store(&cp)
	return nil
}

// maxBans returns jail's bound on active bans (<= 0: none).
func (m *Manager) maxBans(jail string) int {
	n := m.cfg.MaxBans
	if jc, ok := (*m.perJail.Load())[jail]; ok && jc.MaxBans != 0 {
		n = jc.MaxBans
	}
	return n
}

// Protected returns the protected prefixes in use (loopback excluded).
func (m *Manager) Protected() []netip.Prefix {
	return slices.Clone(*m.protected.Load())
}

var loopback = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}

// nonSource lists the addresses no packet from an attacker can carry as
// its source: "this network", loopback, multicast, limited broadcast, the
// IPv6 unspecified address and multicast.
var nonSource = []struct {
	p    netip.Prefix
	what string
}{
	{netip.MustParsePrefix("0.0.0.0/8"), "an unspecified (this-network) address"},
	{netip.MustParsePrefix("127.0.0.0/8"), "loopback"},
	{netip.MustParsePrefix("224.0.0.0/4"), "multicast"},
	{netip.MustParsePrefix("255.255.255.255/32"), "the broadcast address"},
	{netip.MustParsePrefix("::/128"), "the unspecified address"},
	{netip.MustParsePrefix("::1/128"), "loopback"},
	{netip.MustParsePrefix("ff00::/8"), "multicast"},
}

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

// Check reports why p must not be banned, or nil. Prefixes inside
// addresses no attacker can have wrap ErrNotAttacker and ErrProtected;
// the others (too broad, overlapping loopback or a protected prefix) wrap
// ErrProtected. It is the manager's last line of defence; jails apply
// ignoreip earlier.
func (m *Manager) Check(p netip.Prefix) error {
	if !p.IsValid() {
		return fmt.Errorf("%w: invalid prefix", ErrProtected)
	}
	p = normPrefix(p)
	for _, ns := range nonSource {
		if ns.p.Bits() <= p.Bits() && ns.p.Contains(p.Addr()) {
			return fmt.Errorf("%w: %w: %s is %s", ErrProtected, ErrNotAttacker, p, ns.what)
		}
	}
	a := p.Addr()
	switch {
	case a.Is4() && p.Bits() < m.cfg.MinBits4:
		return fmt.Errorf("%w: %s is broader than /%d", ErrProtected, p, m.cfg.MinBits4)
	case a.Is6() && p.Bits() < m.cfg.MinBits6:
		return fmt.Errorf("%w: %s is broader than /%d", ErrProtected, p, m.cfg.MinBits6)
	}
	for _, l := range loopback {
		if l.Overlaps(p) {
			return fmt.Errorf("%w: %s contains loopback", ErrProtected, p)
		}
	}
	for _, pr := range *m.protected.Load() {
		if pr.Overlaps(p) {
			return fmt.Errorf("%w: %s overlaps protected %s", ErrProtected, p, pr)
		}
	}
	return nil
}

// exempt reports whether p overlaps one of jail's exempt prefixes.
func (m *Manager) exempt(jail string, p netip.Prefix) bool {
	jc := (*m.perJail.Load())[jail]
	for _, e := range jc.Exempt {
		if e.Overlaps(p) {
			return true
		}
	}
	return false
}

func toStore(e Entry) store.Ban {
	return store.Ban{Jail: e.Jail, Prefix: e.Prefix, Start: e.Start, Expires: e.Expires, Offence: e.Offence, Reason: e.Reason}
}

func toFirewall(e Entry) firewall.Ban {
	return firewall.Ban{Jail: e.Jail, Prefix: e.Prefix, Expires: e.Expires}
}

// recFirewall is toFirewall for a record (mu held).
// notStored reports whether another component keeps jail's bans
// (JailConfig.NotStored): every write of them to the store is skipped.
func (m *Manager) notStored(jail string) bool {
	return (*m.perJail.Load())[jail].NotStored
}

func (m *Manager) recFirewall(r *rec) firewall.Ban {
	return firewall.Ban{Jail: m.t.jails[r.key.jail].name, Prefix: r.key.prefix(), Expires: fromNano(r.expires)}
}

// List returns the active bans of jail ("" = every jail), ordered by jail
// then prefix. For large tables prefer All, which does not build the list.
func (m *Manager) List(jail string) []Entry {
	return slices.Collect(m.All(jail))
}

// ListJails returns the active bans of the jails keep accepts, ordered
// by jail then prefix; the others' bans are not copied at all. keep runs
// under the manager's lock: it must not call the manager.
func (m *Manager) ListJails(keep func(jail string) bool) []Entry {
	m.mu.Lock()
	ids := make([]bool, len(m.t.jails))
	n := 0
	for id, js := range m.t.jails {
		if ids[id] = keep(js.name); ids[id] {
			n += js.active
		}
	}
	snap := m.t.snapshotOf(n, func(id uint16) bool { return ids[id] })
	view := table{jails: m.t.jails, reasons: m.t.reasons}
	m.mu.Unlock()
	out := make([]Entry, len(snap))
	for i := range snap {
		out[i] = view.entry(&snap[i])
	}
	return out
}

// All yields the active bans of jail ("" = every jail), ordered by jail
// then prefix, from a snapshot taken when the iteration starts. The
// snapshot holds the compact records only; each Entry is built as it is
// yielded, so a caller streaming the list never holds it whole.
func (m *Manager) All(jail string) iter.Seq[Entry] {
	return func(yield func(Entry) bool) {
		m.mu.Lock()
		id, ok := m.t.jailID(jail, false)
		if jail != "" && !ok {
			m.mu.Unlock()
			return
		}
		snap := m.t.snapshot(id, jail == "")
		view := table{jails: m.t.jails, reasons: m.t.reasons}
		m.mu.Unlock()
		for i := range snap {
			if !yield(view.entry(&snap[i])) {
				return
			}
		}
	}
}

// Count returns the number of active bans of jail and how many bans the
// jail made since the manager started (restored bans not included).
func (m *Manager) Count(jail string) (active int, total uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	id, ok := m.t.jailID(jail, false)
	if !ok {
		return 0, 0
	}
	js := m.t.jails[id]
	return js.active, js.made
}

// Unbans returns how many bans of jail were lifted since the manager
// started.
func (m *Manager) Unbans(jail string) uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	id, ok := m.t.jailID(jail, false)
	if !ok {
		return 0
	}
	return m.t.jails[id].unbans
}

// Find returns the active bans (of every jail) whose prefix contains a,
// ordered by jail then prefix.
func (m *Manager) Find(a netip.Addr) []Entry {
	if !a.IsValid() {
		return nil
	}
	a = a.Unmap().WithZone("")
	m.mu.Lock()
	idx := m.t.find(a)
	out := make([]Entry, len(idx))
	for i, n := range idx {
		out[i] = m.t.entry(&m.t.recs[n])
	}
	m.mu.Unlock()
	sortEntries(out)
	return out
}

func sortEntries(l []Entry) {
	slices.SortFunc(l, func(a, b Entry) int {
		if a.Jail != b.Jail {
			if a.Jail < b.Jail {
				return -1
			}
			return 1
		}
		if c := a.Prefix.Addr().Compare(b.Prefix.Addr()); c != 0 {
			return c
		}
		return a.Prefix.Bits() - b.Prefix.Bits()
	})
}

// ActiveBan implements jail.ActiveBans from memory: the ban in force in
// jail that covers p (p's own, or one of a network containing it), when it
// began (zero when unknown: adopted from the kernel) and, for p's own ban,
// its offence number (0 otherwise).
func (m *Manager) ActiveBan(jail string, p netip.Prefix) (start time.Time, offence int, ok bool) {
	if !p.IsValid() {
		return time.Time{}, 0, false
	}
	p = normPrefix(p)
	m.mu.Lock()
	defer m.mu.Unlock()
	id, known := m.t.jailID(jail, false)
	if !known || m.t.jails[id].active == 0 {
		return time.Time{}, 0, false
	}
	r := m.t.covering(id, p)
	if r == nil {
		return time.Time{}, 0, false
	}
	if int(r.key.bits) == p.Bits() {
		offence = int(r.offence)
	}
	return fromNano(r.start), offence, true
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
	s.Active = len(m.t.index)
	return s
}

func (m *Manager) poke() {
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

// Run expires bans on time, retries failed database writes, reconciles
// and prunes the offence history periodically, until ctx is done. One
// timer serves every ban.
func (m *Manager) Run(ctx context.Context) error {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	retry := time.NewTimer(time.Hour)
	defer retry.Stop()
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
		if next, ok := m.t.next(); ok {
			wait = max(time.Duration(next-m.now().UnixNano()), 0)
		}
		retryWait := time.Duration(-1)
		if m.health.err != nil || m.health.dirty {
			retryWait = max(m.health.next.Sub(m.now()), 0)
		}
		m.mu.Unlock()
		timer.Stop()
		var fire <-chan time.Time
		if wait >= 0 {
			timer.Reset(wait)
			fire = timer.C
		}
		retry.Stop()
		var retryC <-chan time.Time
		if retryWait >= 0 {
			retry.Reset(retryWait)
			retryC = retry.C
		}
		select {
		case <-ctx.Done():
			return nil
		case <-m.wake:
		case <-fire:
			if _, err := m.ExpireDue(ctx); err != nil {
				m.log.Error("expiring bans", "err", err)
			}
		case <-retryC:
			m.Flush(ctx)
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
