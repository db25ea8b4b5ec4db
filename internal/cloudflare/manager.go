package cloudflare

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/palisade-project/palisade/internal/firewall"
)

// Defaults of Config and Deps.
const (
	DefaultInterval       = 24 * time.Hour
	DefaultEnsureInterval = 10 * time.Second
	// minRetry and maxRetry bound the wait after a failed scheduled sync.
	minRetry = time.Minute
	maxRetry = time.Hour
)

// DefaultPorts are the ports locked unless the configuration says
// otherwise.
var DefaultPorts = []firewall.PortRange{{From: 80, To: 80}, {From: 443, To: 443}}

// Config is the [cloudflare] section as the manager uses it.
type Config struct {
	// Enabled makes the daemon turn the lock on and keep it in sync.
	Enabled bool
	// Ports are the locked TCP ports (default 80, 443).
	Ports []firewall.PortRange
	// URL is the JSON API (default DefaultURL).
	URL string
	// Interval between scheduled syncs (default 1 day).
	Interval time.Duration
	// Allow are extra sources that may reach the ports.
	Allow []netip.Prefix
	// Block is drop (default) or reject.
	Block firewall.Block
}

func (c Config) withDefaults() Config {
	if len(c.Ports) == 0 {
		c.Ports = DefaultPorts
	}
	c.Ports = firewall.MergePorts(c.Ports)
	if c.URL == "" {
		c.URL = DefaultURL
	}
	if c.Interval <= 0 {
		c.Interval = DefaultInterval
	}
	if c.Block == "" {
		c.Block = firewall.Drop
	}
	c.Allow = firewall.MergePrefixes(c.Allow)
	return c
}

// Lock is the kernel side of the lock (nft.CloudflareLock; firewall.FakeLock
// in tests).
type Lock interface {
	Apply(ctx context.Context, spec firewall.LockSpec) error
	State(ctx context.Context) (firewall.LockState, error)
	Remove(ctx context.Context) error
}

// Store keeps the manager's state (store.Store).
type Store interface {
	Record(space, key string) ([]byte, bool, error)
	PutRecords(space string, put map[string][]byte, del []string) error
}

// Where the state is stored.
const (
	StoreSpace = "cloudflare"
	stateKey   = "lock"
)

// Deps are the manager's collaborators; Lock and Store are required.
type Deps struct {
	Lock    Lock
	Store   Store
	Fetcher *Fetcher
	// Now is the clock; Rand returns a number in [0,1) for jitter.
	Now    func() time.Time
	Rand   func() float64
	Logger *slog.Logger
	// OnChange is told the ranges that must never be banned: the list in
	// force while the lock is on, nil while it is off. It is called with
	// the manager's lock held and must not call back into the manager.
	OnChange func([]netip.Prefix)
	// EnsureInterval is how often Run checks that the kernel still holds
	// the lock (default 10s).
	EnsureInterval time.Duration
}

// Lock modes, as stored.
const (
	modeOn  = "on"
	modeOff = "off"
)

// Who turned the lock on.
const (
	OriginConfig  = "config"  // enabled = true in [cloudflare]
	OriginCommand = "command" // palisade cloudflare sync
)

// saved is the persisted state.
type saved struct {
	Mode   string `json:"mode,omitempty"`
	Origin string `json:"origin,omitempty"`
	// List is the list in force while on, and the last known good list.
	List *List `json:"list,omitempty"`
	// Ports are the ports in force.
	Ports       []firewall.PortRange `json:"ports,omitempty"`
	Since       time.Time            `json:"since"`
	LastAttempt time.Time            `json:"last_attempt"`
	LastSuccess time.Time            `json:"last_success"`
	LastError   string               `json:"last_error,omitempty"`
	Failures    int                  `json:"failures,omitempty"`
}

// Manager keeps the lock. It is safe for concurrent use.
type Manager struct {
	deps Deps
	log  *slog.Logger
	now  func() time.Time
	rnd  func() float64

	// op serializes the operations (sync, off, start, ensure); mu guards
	// the state, and is not held while a list is fetched, so status
	// answers during a slow sync.
	op        sync.Mutex
	mu        sync.Mutex
	cfg       Config
	st        saved
	due       time.Time // next scheduled sync (zero: none)
	storeErr  string
	kernelErr string
	repairs   int
	ranges    atomic.Pointer[[]netip.Prefix] // ranges in force while on
	wake      chan struct{}
}

// New loads the saved state. It does not touch the kernel: the daemon
// calls Start, a command calls Sync, Off or Status.
func New(cfg Config, deps Deps) (*Manager, error) {
	if deps.Lock == nil || deps.Store == nil {
		return nil, errors.New("cloudflare: a lock and a store are required")
	}
	if deps.Fetcher == nil {
		deps.Fetcher = &Fetcher{}
	}
	if deps.EnsureInterval <= 0 {
		deps.EnsureInterval = DefaultEnsureInterval
	}
	m := &Manager{deps: deps, log: deps.Logger, now: deps.Now, rnd: deps.Rand, cfg: cfg.withDefaults(), wake: make(chan struct{}, 1)}
	if m.log == nil {
		m.log = slog.New(slog.DiscardHandler)
	}
	if m.now == nil {
		m.now = time.Now
	}
	if m.rnd == nil {
		m.rnd = rand.Float64
	}
	if deps.Fetcher.Now == nil {
		deps.Fetcher.Now = m.now
	}
	raw, ok, err := deps.Store.Record(StoreSpace, stateKey)
	if err != nil {
		return nil, fmt.Errorf("cloudflare: read state: %w", err)
	}
	if ok {
		if err := json.Unmarshal(raw, &m.st); err != nil {
			// A damaged record must not stop the daemon: start clean.
			m.log.Error("cloudflare: stored state unreadable; starting without a last known good list", "err", err)
			m.st = saved{}
		}
		if m.st.List != nil {
			if v, err := Validate(*m.st.List); err == nil {
				v.ETag, v.Source, v.Fetched = m.st.List.ETag, m.st.List.Source, m.st.List.Fetched
				m.st.List = &v
			} else {
				m.log.Error("cloudflare: stored list no longer valid; ignored", "err", err)
				m.st.List = nil
			}
		}
	}
	if m.st.Mode == modeOn && m.st.List != nil {
		m.publish(m.st.List.All())
	}
	return m, nil
}

func (m *Manager) persist() {
	raw, err := json.Marshal(m.st)
	if err == nil {
		err = m.deps.Store.PutRecords(StoreSpace, map[string][]byte{stateKey: raw}, nil)
	}
	if err != nil {
		m.storeErr = err.Error()
		m.log.Error("cloudflare: cannot save the lock state", "err", err)
		return
	}
	m.storeErr = ""
}

func (m *Manager) publish(ranges []netip.Prefix) {
	if ranges == nil {
		m.ranges.Store(nil)
	} else {
		c := slices.Clone(ranges)
		m.ranges.Store(&c)
	}
	if m.deps.OnChange != nil {
		m.deps.OnChange(ranges)
	}
}

// Ranges returns the Cloudflare ranges in force while the lock is on (nil
// while off): the ranges that must never be banned.
func (m *Manager) Ranges() []netip.Prefix {
	if p := m.ranges.Load(); p != nil {
		return slices.Clone(*p)
	}
	return nil
}

// Covering returns the range in force that holds a, while the lock is on.
// It is cheap enough for every failure a jail sees.
func (m *Manager) Covering(a netip.Addr) (netip.Prefix, bool) {
	p := m.ranges.Load()
	if p == nil {
		return netip.Prefix{}, false
	}
	a = a.Unmap().WithZone("")
	for _, r := range *p {
		if r.Contains(a) {
			return r, true
		}
	}
	return netip.Prefix{}, false
}

// Config returns the configuration in use (defaults filled).
func (m *Manager) Config() Config {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.cfg
}

func (m *Manager) spec(l List, ports []firewall.PortRange) firewall.LockSpec {
	return firewall.LockSpec{Ranges: l.All(), Allow: m.cfg.Allow, Ports: ports, Block: m.cfg.Block}
}

// SyncOptions tune one Sync.
type SyncOptions struct {
	// Source is a URL or an absolute file path ("" = the configured URL).
	Source string
	// Ports replace the configured ports for this lock (nil: configured).
	Ports []firewall.PortRange
	// DryRun fetches, validates and diffs, and changes nothing.
	DryRun bool
	// Force applies a list that drops more than half of the ranges.
	Force bool
	// scheduled marks the daemon's own re-sync: the ports in force and
	// the lock's origin are kept.
	scheduled bool
}

// SyncResult says what a Sync did.
type SyncResult struct {
	DryRun  bool   `json:"dry_run"`
	Applied bool   `json:"applied"`
	Source  string `json:"source"`
	ETag    string `json:"etag,omitempty"`
	IPv4    int    `json:"ipv4"`
	IPv6    int    `json:"ipv6"`
	Ports   string `json:"ports"`
	// Diff is against the list in force (or the last known good list).
	Diff     Diff     `json:"diff"`
	Warnings []string `json:"warnings"`
}

// Sync fetches and validates a list and applies it as one atomic update
// (new ranges first, then stale ones removed). A failure at any step
// leaves the lock in force unchanged; it is recorded for status.
func (m *Manager) Sync(ctx context.Context, opts SyncOptions) (SyncResult, error) {
	m.op.Lock()
	defer m.op.Unlock()
	src := opts.Source
	if src == "" {
		m.mu.Lock()
		src = m.cfg.URL
		m.mu.Unlock()
	}
	l, warns, err := m.deps.Fetcher.Fetch(ctx, src)
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.finishSync(ctx, opts, src, l, warns, err)
}

// finishSync validates against the state and applies a fetched list
// (op and mu held).
func (m *Manager) finishSync(ctx context.Context, opts SyncOptions, src string, l List, warns []string, err error) (SyncResult, error) {
	res := SyncResult{DryRun: opts.DryRun, Source: src, Warnings: []string{}}
	fail := func(err error) (SyncResult, error) {
		// A sync cut short by the daemon stopping is no failed sync.
		if !opts.DryRun && ctx.Err() == nil {
			m.st.LastAttempt = m.now()
			m.st.LastError = err.Error()
			m.st.Failures++
			m.persist()
			m.schedule()
			m.log.Warn("cloudflare sync failed; the lock in force is kept", "source", src, "err", err)
		}
		return res, err
	}
	res.Warnings = append(res.Warnings, warns...)
	if err != nil {
		if !opts.DryRun && m.st.List == nil && opts.Source == "" && ctx.Err() == nil {
			return m.floor(ctx, res, err, opts)
		}
		return fail(err)
	}
	var cur []netip.Prefix
	if m.st.List != nil {
		cur = m.st.List.All()
	}
	res.ETag, res.IPv4, res.IPv6 = l.ETag, len(l.IPv4), len(l.IPv6)
	res.Diff = DiffLists(cur, l.All())
	// The shrink check guards against a truncated list replacing a
	// fetched one; the embedded snapshot is only a floor and may be old.
	if !opts.Force && m.st.List != nil && m.st.List.Source != SnapshotSource {
		if err := CheckShrink(cur, l.All()); err != nil {
			return fail(err)
		}
	}
	ports := opts.Ports
	switch {
	case ports != nil:
	case opts.scheduled && len(m.st.Ports) > 0:
		ports = m.st.Ports
	default:
		ports = m.cfg.Ports
	}
	ports = firewall.MergePorts(ports)
	res.Ports = firewall.FormatPorts(ports)
	if len(ports) == 0 {
		return fail(errors.New("no ports to lock"))
	}
	if opts.DryRun {
		return res, nil
	}
	if err := m.deps.Lock.Apply(ctx, m.spec(l, ports)); err != nil {
		return fail(fmt.Errorf("apply: %w", err))
	}
	res.Applied = true
	now := m.now()
	if m.st.Mode != modeOn {
		// A command turned the lock on (scheduled syncs run only while
		// it is on; a command refreshing a lock keeps its origin).
		m.st.Since, m.st.Origin = now, OriginCommand
	}
	m.st.Mode, m.st.List, m.st.Ports = modeOn, &l, ports
	m.st.LastAttempt, m.st.LastSuccess, m.st.LastError, m.st.Failures = now, now, "", 0
	m.kernelErr = ""
	m.persist()
	m.schedule()
	m.publish(l.All())
	m.log.Info("cloudflare lock synced", "source", src, "ipv4", len(l.IPv4), "ipv6", len(l.IPv6),
		"added", len(res.Diff.Added), "removed", len(res.Diff.Removed), "ports", res.Ports)
	return res, nil
}

// floor applies the embedded snapshot when the first sync from the
// configured URL fails: the lock goes on with the floor and the failure is
// returned and recorded (the daemon retries with backoff).
func (m *Manager) floor(ctx context.Context, res SyncResult, ferr error, opts SyncOptions) (SyncResult, error) {
	snap, err := Snapshot()
	if err != nil {
		return res, errors.Join(ferr, err)
	}
	ports := opts.Ports
	if ports == nil {
		ports = m.cfg.Ports
	}
	ports = firewall.MergePorts(ports)
	now := m.now()
	m.st.LastAttempt, m.st.LastError = now, ferr.Error()
	m.st.Failures++
	if err := m.deps.Lock.Apply(ctx, m.spec(snap, ports)); err != nil {
		m.persist()
		return res, errors.Join(ferr, fmt.Errorf("apply the embedded snapshot: %w", err))
	}
	if m.st.Mode != modeOn {
		m.st.Since, m.st.Origin = now, OriginCommand
	}
	m.st.Mode, m.st.List, m.st.Ports = modeOn, &snap, ports
	m.persist()
	m.schedule()
	m.publish(snap.All())
	res.Applied, res.Source, res.ETag = true, SnapshotSource, snap.ETag
	res.IPv4, res.IPv6, res.Ports = len(snap.IPv4), len(snap.IPv6), firewall.FormatPorts(ports)
	res.Diff = DiffLists(nil, snap.All())
	m.log.Warn("cloudflare: first sync failed; locked with the embedded snapshot", "date", snap.Fetched.Format(time.DateOnly), "err", ferr)
	return res, fmt.Errorf("%w; the lock is on with the embedded snapshot of %s instead", ferr, snap.Fetched.Format(time.DateOnly))
}

// Off removes the lock from the kernel and records that it is off: the
// daemon does not turn it on again until the next Sync.
func (m *Manager) Off(ctx context.Context) error {
	m.op.Lock()
	defer m.op.Unlock()
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.deps.Lock.Remove(ctx); err != nil {
		return fmt.Errorf("remove the lock: %w", err)
	}
	m.st.Mode, m.st.Origin, m.st.Since = modeOff, OriginCommand, m.now()
	m.due = time.Time{}
	m.persist()
	m.publish(nil)
	m.log.Info("cloudflare lock turned off")
	m.poke()
	return nil
}

// Start brings the kernel in line with the configuration and the saved
// state, as the daemon does when it starts or reloads (cfg replaces the
// configuration):
//   - enabled, and not turned off by a command: the lock goes on with the
//     last known good list, or the embedded snapshot when there is none,
//     on the configured ports; scheduled syncs keep it current;
//   - turned on by a command while not enabled: kept as it is (not
//     refreshed);
//   - turned on by the configuration, and no longer enabled: removed.
//
// No network is needed: the first scheduled sync is due at once when the
// lock runs on the snapshot or the last sync is older than the interval.
func (m *Manager) Start(ctx context.Context, cfg Config) error {
	m.op.Lock()
	defer m.op.Unlock()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.cfg = cfg.withDefaults()
	defer m.poke()
	on := m.cfg.Enabled && m.st.Mode != modeOff || m.st.Mode == modeOn && m.st.Origin == OriginCommand
	if !on {
		if m.st.Mode == modeOn {
			if err := m.deps.Lock.Remove(ctx); err != nil {
				m.kernelErr = err.Error()
				return fmt.Errorf("remove the lock (enabled = false): %w", err)
			}
			m.st.Mode, m.st.Origin, m.st.Since = "", "", m.now()
			m.persist()
			m.log.Info("cloudflare lock removed: [cloudflare] enabled = false")
		}
		m.due = time.Time{}
		m.publish(nil)
		return nil
	}
	l := m.st.List
	if l == nil {
		snap, err := Snapshot()
		if err != nil {
			return err
		}
		l = &snap
		m.log.Warn("cloudflare: no list fetched yet; locking with the embedded snapshot until the first sync", "date", snap.Fetched.Format(time.DateOnly))
	}
	ports := m.cfg.Ports
	if !m.cfg.Enabled && len(m.st.Ports) > 0 {
		ports = m.st.Ports // a command's lock keeps its ports
	}
	if err := m.deps.Lock.Apply(ctx, m.spec(*l, ports)); err != nil {
		m.kernelErr = err.Error()
		m.schedule()
		return fmt.Errorf("cloudflare lock: %w", err)
	}
	if m.st.Mode != modeOn {
		m.st.Since = m.now()
	}
	if m.st.Origin == "" || m.st.Mode != modeOn {
		m.st.Origin = OriginConfig
	}
	m.st.Mode, m.st.List, m.st.Ports = modeOn, l, ports
	m.kernelErr = ""
	m.persist()
	m.schedule()
	m.publish(l.All())
	return nil
}

// schedule sets the next scheduled sync (m.mu held).
func (m *Manager) schedule() {
	if !m.cfg.Enabled || m.st.Mode != modeOn {
		m.due = time.Time{}
		return
	}
	now := m.now()
	jitter := func(d time.Duration, frac float64) time.Duration {
		return d + time.Duration((m.rnd()*2-1)*frac*float64(d))
	}
	switch {
	case m.st.Failures > 0:
		wait := minRetry << min(m.st.Failures-1, 10)
		wait = min(wait, maxRetry, m.cfg.Interval)
		m.due = m.st.LastAttempt.Add(jitter(wait, 0.2))
	case m.st.List == nil || m.st.List.Source == SnapshotSource || m.st.LastSuccess.IsZero():
		m.due = now
	default:
		m.due = m.st.LastSuccess.Add(jitter(m.cfg.Interval, 0.1))
	}
}

func (m *Manager) poke() {
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

// Run keeps the lock until ctx is done: scheduled syncs (every interval,
// with jitter; after a failure, backoff from 1 minute up to an hour),
// and every EnsureInterval a check that the kernel still holds the lock
// (an "nft flush ruleset" removes it), re-installing it when not.
func (m *Manager) Run(ctx context.Context) {
	ensure := time.NewTicker(m.deps.EnsureInterval)
	defer ensure.Stop()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		m.mu.Lock()
		due := m.due
		m.mu.Unlock()
		wait := time.Hour
		if !due.IsZero() {
			wait = max(due.Sub(m.now()), 0)
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-m.wake:
		case <-ensure.C:
			m.Ensure(ctx)
		case <-timer.C:
			m.mu.Lock()
			due := !m.due.IsZero() && !m.now().Before(m.due)
			m.mu.Unlock()
			if due {
				_, _ = m.Sync(ctx, SyncOptions{scheduled: true})
			}
		}
	}
}

// Ensure re-installs the lock when it is on and the kernel does not hold
// it as applied. It reports whether it had to.
func (m *Manager) Ensure(ctx context.Context) bool {
	m.op.Lock()
	defer m.op.Unlock()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.st.Mode != modeOn || m.st.List == nil {
		return false
	}
	spec := m.spec(*m.st.List, m.st.Ports)
	st, err := m.deps.Lock.State(ctx)
	if err == nil && st.Same(spec) {
		m.kernelErr = ""
		return false
	}
	if err == nil {
		err = m.deps.Lock.Apply(ctx, spec)
	}
	if err != nil {
		if m.kernelErr == "" {
			m.log.Error("cloudflare lock: cannot check or re-install it", "err", err)
		}
		m.kernelErr = err.Error()
		return false
	}
	m.repairs++
	m.kernelErr = ""
	m.log.Warn("cloudflare lock was missing or altered in the kernel (nft flush?); re-installed")
	return true
}
