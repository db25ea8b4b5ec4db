package edge

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/palisade-project/palisade/internal/ban"
)

// StoreSpace is where rule ids are kept (one record per ban: key
// "JAIL PREFIX").
const StoreSpace = "cloudflare.edge"

// Bans is what the mirror needs from the ban manager (*ban.Manager).
type Bans interface {
	Subscribe(buf int) (<-chan ban.Event, func())
	List(jail string) []ban.Entry
}

// API is the zone's access-rules API (*Client).
type API interface {
	Create(ctx context.Context, r Rule) (string, error)
	Delete(ctx context.Context, id string) error
	List(ctx context.Context, f Filter) ([]Rule, error)
}

// Store keeps the rule ids (store.Store).
type Store interface {
	Records(space string) (map[string][]byte, error)
	PutRecords(space string, put map[string][]byte, del []string) error
}

// Config tunes a Mirror.
type Config struct {
	// Zone is shown in status.
	Zone string
	// Host names this server in the rules' notes, so that servers sharing
	// a zone never touch each other's rules (default: the host name).
	Host string
	// Mirrored says whether a jail's bans go to the edge (a jail whose
	// ports include a locked port).
	Mirrored func(jail string) bool
	// RetryMin and RetryMax bound the backoff after a failed call
	// (default 5s and 10m).
	RetryMin, RetryMax time.Duration
	// ResyncInterval is how often the mirror compares itself with the
	// active bans (catching events dropped under load; default 1m).
	ResyncInterval time.Duration
	// RemoteInterval is how often the zone's rules are listed and
	// reconciled (default 1h).
	RemoteInterval time.Duration
	// CallTimeout bounds one API call (default 30s).
	CallTimeout time.Duration
}

// Deps are the mirror's collaborators (all required but Now, Rand, Logger).
type Deps struct {
	Bans   Bans
	API    API
	Store  Store
	Now    func() time.Time
	Rand   func() float64
	Logger *slog.Logger
}

// item is one ban's rule.
type item struct {
	key    string // the store key, "JAIL PREFIX"
	jail   string
	prefix netip.Prefix
	// extra marks a second rule found for the same ban: it is deleted and
	// never stored.
	extra bool
	// want is set while the ban is active.
	want bool
	// id is the rule at Cloudflare ("" while none is known).
	id string
	// foreign: an equal rule exists that palisade did not create; it is
	// left alone (and not deleted on unban).
	foreign  bool
	attempts int
	lastErr  string
	next     time.Time
	busy     bool
}

func (it *item) needsWork() bool {
	return it.want && it.id == "" && !it.foreign || !it.want && it.id != ""
}

func key(jail string, p netip.Prefix) string { return jail + " " + p.String() }

// Mirror keeps the zone's rules equal to the web jails' bans.
type Mirror struct {
	cfg  Config
	deps Deps
	log  *slog.Logger
	now  func() time.Time
	rnd  func() float64

	mu        sync.Mutex
	items     map[string]*item
	created   uint64
	deleted   uint64
	skipped   uint64
	errors    uint64
	lastErr   string
	reconAt   time.Time
	reconErr  string
	started   bool
	wake      chan struct{}
	remoteDue time.Time
}

// New returns a mirror; Run starts it.
func New(cfg Config, deps Deps) (*Mirror, error) {
	if deps.Bans == nil || deps.API == nil || deps.Store == nil {
		return nil, errors.New("edge: bans, API and store are required")
	}
	if cfg.Mirrored == nil {
		cfg.Mirrored = func(string) bool { return true }
	}
	if cfg.RetryMin <= 0 {
		cfg.RetryMin = 5 * time.Second
	}
	if cfg.RetryMax <= 0 {
		cfg.RetryMax = 10 * time.Minute
	}
	if cfg.ResyncInterval <= 0 {
		cfg.ResyncInterval = time.Minute
	}
	if cfg.RemoteInterval <= 0 {
		cfg.RemoteInterval = time.Hour
	}
	if cfg.CallTimeout <= 0 {
		cfg.CallTimeout = 30 * time.Second
	}
	cfg.Host = sanitizeHost(cfg.Host)
	m := &Mirror{cfg: cfg, deps: deps, log: deps.Logger, now: deps.Now, rnd: deps.Rand,
		items: map[string]*item{}, wake: make(chan struct{}, 1)}
	if m.log == nil {
		m.log = slog.New(slog.DiscardHandler)
	}
	if m.now == nil {
		m.now = time.Now
	}
	if m.rnd == nil {
		m.rnd = rand.Float64
	}
	return m, nil
}

func sanitizeHost(h string) string {
	var b strings.Builder
	for _, c := range h {
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_' {
			b.WriteRune(c)
		}
	}
	if b.Len() == 0 {
		return "localhost"
	}
	return b.String()
}

// Notes is the notes text of palisade's rule for a jail on this host.
func (m *Mirror) Notes(jail string) string {
	return "palisade jail=" + jail + " host=" + m.cfg.Host
}

// parseNotes returns the jail of a rule palisade created on this host.
func (m *Mirror) parseNotes(notes string) (string, bool) {
	f := strings.Fields(notes)
	if len(f) != 3 || f[0] != "palisade" || !strings.HasPrefix(f[1], "jail=") || f[2] != "host="+m.cfg.Host {
		return "", false
	}
	j := strings.TrimPrefix(f[1], "jail=")
	return j, j != ""
}

// Target returns the access-rule target and value for a ban, or ok false
// when Cloudflare cannot express the prefix (IP Access Rules take single
// addresses, IPv4 /16 and /24, IPv6 /32, /48 and /64).
func Target(p netip.Prefix) (target, value string, ok bool) {
	a := p.Addr()
	switch {
	case a.Is4() && p.Bits() == 32:
		return "ip", a.String(), true
	case a.Is6() && p.Bits() == 128:
		return "ip6", a.String(), true
	case a.Is4() && (p.Bits() == 16 || p.Bits() == 24):
		return "ip_range", p.Masked().String(), true
	case a.Is6() && (p.Bits() == 32 || p.Bits() == 48 || p.Bits() == 64):
		return "ip_range", p.Masked().String(), true
	}
	return "", "", false
}

func parseValue(target, value string) (netip.Prefix, bool) {
	switch target {
	case "ip", "ip6":
		a, err := netip.ParseAddr(value)
		if err != nil {
			return netip.Prefix{}, false
		}
		return netip.PrefixFrom(a, a.BitLen()), true
	case "ip_range":
		p, err := netip.ParsePrefix(value)
		return p.Masked(), err == nil
	}
	return netip.Prefix{}, false
}

type record struct {
	ID      string    `json:"id"`
	Created time.Time `json:"created"`
}

func (m *Mirror) poke() {
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

// Run mirrors bans until ctx is done: it loads the stored rule ids,
// reconciles them with the active bans and the zone's rules, then follows
// the ban manager's events (without ever blocking a ban) and retries
// failed calls with backoff.
func (m *Mirror) Run(ctx context.Context) error {
	events, cancel := m.deps.Bans.Subscribe(4096)
	defer cancel()
	if err := m.load(); err != nil {
		m.log.Error("edge bans: cannot read the stored rule ids", "err", err)
	}
	m.mu.Lock()
	m.started = true
	m.mu.Unlock()
	m.Reconcile(ctx, true)
	go func() {
		for ev := range events {
			m.onEvent(ev)
		}
	}()
	resync := time.NewTicker(m.cfg.ResyncInterval)
	defer resync.Stop()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		for m.step(ctx) {
			if ctx.Err() != nil {
				return nil
			}
		}
		timer.Reset(m.untilNext())
		select {
		case <-ctx.Done():
			return nil
		case <-m.wake:
		case <-timer.C:
		case <-resync.C:
			m.mu.Lock()
			remote := !m.now().Before(m.remoteDue)
			m.mu.Unlock()
			m.Reconcile(ctx, remote)
		}
	}
}

func (m *Mirror) load() error {
	recs, err := m.deps.Store.Records(StoreSpace)
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for k, v := range recs {
		jail, ps, ok := strings.Cut(k, " ")
		p, err := netip.ParsePrefix(ps)
		var r record
		if !ok || err != nil || json.Unmarshal(v, &r) != nil || !validID(r.ID) {
			m.log.Warn("edge bans: skipping an unreadable stored rule", "key", k)
			continue
		}
		m.items[k] = &item{key: k, jail: jail, prefix: p, id: r.ID}
	}
	return nil
}

// onEvent follows one ban or unban. Config.Mirrored is asked before the
// mirror's lock is taken: it may take locks of its own.
func (m *Mirror) onEvent(ev ban.Event) {
	e := ev.Entry
	mirrored := ev.Kind == ban.EventBan && m.cfg.Mirrored(e.Jail)
	_, _, expressible := Target(e.Prefix)
	m.mu.Lock()
	defer m.mu.Unlock()
	k := key(e.Jail, e.Prefix)
	it := m.items[k]
	switch ev.Kind {
	case ban.EventBan:
		if !mirrored {
			return
		}
		if !expressible {
			m.skipped++
			return
		}
		if it == nil {
			it = &item{key: k, jail: e.Jail, prefix: e.Prefix}
			m.items[k] = it
		}
		it.want = true
	case ban.EventUnban:
		if it == nil {
			return
		}
		it.want, it.foreign = false, false
		m.drop(k, it)
	default: // an extension changes nothing at the edge
		return
	}
	it.attempts, it.next = 0, time.Time{}
	m.poke()
}

// drop forgets an item with nothing left to do (m.mu held).
func (m *Mirror) drop(k string, it *item) {
	if !it.want && it.id == "" && !it.busy {
		delete(m.items, k)
	}
}

// step performs the most overdue pending call; it reports whether it did.
func (m *Mirror) step(ctx context.Context) bool {
	m.mu.Lock()
	now := m.now()
	var pick *item
	for _, it := range m.items {
		if it.busy || !it.needsWork() || it.next.After(now) {
			continue
		}
		if pick == nil || it.next.Before(pick.next) {
			pick = it
		}
	}
	if pick == nil {
		m.mu.Unlock()
		return false
	}
	pick.busy = true
	it := *pick
	m.mu.Unlock()

	cctx, cancel := context.WithTimeout(ctx, m.cfg.CallTimeout)
	defer cancel()
	k := it.key
	if it.want {
		target, value, _ := Target(it.prefix)
		id, err := m.deps.API.Create(cctx, Rule{Mode: "block", Target: target, Value: value, Notes: m.Notes(it.jail)})
		var ae *APIError
		foreign := false
		if errors.As(err, &ae) && ae.Duplicate() {
			id, foreign, err = m.existing(cctx, it.jail, value)
		}
		m.mu.Lock()
		defer m.mu.Unlock()
		pick.busy = false
		if err != nil {
			m.failed(pick, "create", err)
			return true
		}
		pick.attempts, pick.lastErr, pick.next = 0, "", time.Time{}
		if foreign {
			pick.foreign = true
			m.log.Info("edge ban: an equal rule not made by palisade exists; left alone", "jail", it.jail, "ip", value)
		} else {
			pick.id = id
			m.created++
			m.save(k, id)
			m.log.Info("edge ban created", "jail", it.jail, "ip", value, "rule", id)
		}
		m.drop(k, pick)
		return true
	}
	err := m.deps.API.Delete(cctx, it.id)
	m.mu.Lock()
	defer m.mu.Unlock()
	pick.busy = false
	if err != nil {
		m.failed(pick, "delete", err)
		return true
	}
	if pick.id == it.id {
		pick.id = ""
	}
	pick.attempts, pick.lastErr, pick.next = 0, "", time.Time{}
	m.deleted++
	if !it.extra {
		m.unsave(k)
	}
	m.log.Info("edge ban deleted", "jail", it.jail, "ip", it.prefix.String(), "rule", it.id)
	m.drop(mapKey(pick), pick)
	return true
}

// mapKey is where an item lives in m.items.
func mapKey(it *item) string {
	if it.extra {
		return it.key + " " + it.id
	}
	return it.key
}

// existing finds the rule Cloudflare says already exists for value: ours
// (adopted) or someone else's (foreign).
func (m *Mirror) existing(ctx context.Context, jail, value string) (string, bool, error) {
	rules, err := m.deps.API.List(ctx, Filter{Value: value})
	if err != nil {
		return "", false, err
	}
	for _, r := range rules {
		if j, ok := m.parseNotes(r.Notes); ok && j == jail && validID(r.ID) {
			return r.ID, false, nil
		}
	}
	return "", true, nil
}

// failed records a failed call and schedules its retry (m.mu held).
func (m *Mirror) failed(it *item, op string, err error) {
	it.attempts++
	it.lastErr = err.Error()
	wait := m.cfg.RetryMin << min(it.attempts-1, 16)
	wait = min(wait, m.cfg.RetryMax)
	wait = time.Duration(float64(wait) * (0.8 + 0.4*m.rnd()))
	var ae *APIError
	if errors.As(err, &ae) && ae.RetryAfter > wait {
		wait = ae.RetryAfter
	}
	it.next = m.now().Add(wait)
	m.errors++
	m.lastErr = fmt.Sprintf("%s %s (%s): %v", op, it.prefix, it.jail, err)
	m.log.Warn("edge ban call failed; will retry", "op", op, "jail", it.jail, "ip", it.prefix.String(),
		"attempt", it.attempts, "retry_in", wait.Round(time.Second).String(), "err", err)
}

func (m *Mirror) save(k, id string) {
	raw, _ := json.Marshal(record{ID: id, Created: m.now()})
	if err := m.deps.Store.PutRecords(StoreSpace, map[string][]byte{k: raw}, nil); err != nil {
		// The next remote reconcile adopts the rule by its notes.
		m.log.Error("edge ban: cannot store the rule id", "key", k, "err", err)
	}
}

func (m *Mirror) unsave(k string) {
	if err := m.deps.Store.PutRecords(StoreSpace, nil, []string{k}); err != nil {
		m.log.Error("edge ban: cannot forget the rule id", "key", k, "err", err)
	}
}

func (m *Mirror) untilNext() time.Duration {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	wait := time.Hour
	for _, it := range m.items {
		if it.busy || !it.needsWork() {
			continue
		}
		wait = min(wait, max(it.next.Sub(now), 0))
	}
	return wait
}

// Reconcile makes the items match the active bans and, with remote, the
// zone's rules: a palisade rule of this host whose ban ended (or that is
// unknown) is deleted, one matching an active ban without a stored id is
// adopted, and a stored rule that vanished from the zone is created
// again while its ban lasts.
func (m *Mirror) Reconcile(ctx context.Context, remote bool) {
	var rules []Rule
	var rerr error
	if remote {
		cctx, cancel := context.WithTimeout(ctx, 4*m.cfg.CallTimeout)
		rules, rerr = m.deps.API.List(cctx, Filter{Notes: "palisade jail="})
		cancel()
	}
	want := map[string]ban.Entry{}
	for _, e := range m.deps.Bans.List("") {
		if _, _, ok := Target(e.Prefix); ok && m.cfg.Mirrored(e.Jail) {
			want[key(e.Jail, e.Prefix)] = e
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	defer m.poke()
	now := m.now()
	for k, e := range want {
		if m.items[k] == nil {
			m.items[k] = &item{key: k, jail: e.Jail, prefix: e.Prefix}
		}
	}
	for _, it := range m.items {
		_, wanted := want[it.key]
		if w := wanted && !it.extra; it.want != w {
			it.want = w
			it.attempts, it.next = 0, time.Time{}
		}
	}
	if remote {
		m.remoteDue = now.Add(m.cfg.RemoteInterval)
		if rerr != nil {
			m.reconErr = rerr.Error()
			m.errors++
			m.log.Warn("edge bans: cannot list the zone's rules; will retry", "err", rerr)
			m.remoteDue = now.Add(min(m.cfg.RemoteInterval, 5*time.Minute))
		} else {
			m.reconErr = ""
			m.reconcileRemote(rules)
		}
		m.reconAt = now
	}
	for k, it := range m.items {
		m.drop(k, it)
	}
}

// reconcileRemote applies the zone's rule list (m.mu held).
func (m *Mirror) reconcileRemote(rules []Rule) {
	inZone := map[string]bool{} // ids of this host's palisade rules
	for _, r := range rules {
		jail, ok := m.parseNotes(r.Notes)
		if !ok || !validID(r.ID) {
			continue // another host's or a human's rule
		}
		p, ok := parseValue(r.Target, r.Value)
		if !ok {
			continue
		}
		inZone[r.ID] = true
		k := key(jail, p)
		it := m.items[k]
		switch {
		case it == nil:
			// Ours but unknown: its ban ended while the id was lost.
			m.items[k] = &item{key: k, jail: jail, prefix: p, id: r.ID}
		case it.busy || it.id == r.ID:
		case it.id == "":
			it.id, it.foreign = r.ID, false
			m.save(k, r.ID)
		default:
			// A second rule for the same ban: delete the extra one.
			ex := &item{key: k, jail: jail, prefix: p, id: r.ID, extra: true}
			m.items[mapKey(ex)] = ex
		}
	}
	for _, it := range m.items {
		if it.id != "" && !it.busy && !it.extra && !inZone[it.id] {
			// Stored but gone from the zone (deleted by hand): forget it;
			// it is created again while its ban lasts.
			it.id = ""
			m.unsave(it.key)
		}
	}
}

// Failure is a rule that is failing to be created or deleted.
type Failure struct {
	Jail     string    `json:"jail"`
	IP       string    `json:"ip"`
	Op       string    `json:"op"`
	Attempts int       `json:"attempts"`
	Error    string    `json:"error"`
	NextTry  time.Time `json:"next_try"`
}

// Status is the mirror's state; its JSON form is stable.
type Status struct {
	Zone string `json:"zone"`
	Host string `json:"host"`
	// Running is false until Run started (or when edge bans could not
	// start: see Error).
	Running bool `json:"running"`
	// Rules are the rules palisade created and still holds an id for.
	Rules int `json:"rules"`
	// Pending are creates or deletes not done yet; Failing those among
	// them whose last attempt failed.
	Pending int `json:"pending"`
	Failing int `json:"failing"`
	// Counters since the daemon started.
	Created uint64 `json:"created"`
	Deleted uint64 `json:"deleted"`
	Skipped uint64 `json:"skipped"`
	Errors  uint64 `json:"errors"`
	// LastError is the last failed call.
	LastError      string     `json:"last_error,omitempty"`
	LastReconcile  *time.Time `json:"last_reconcile,omitempty"`
	ReconcileError string     `json:"reconcile_error,omitempty"`
	Failures       []Failure  `json:"failures"`
	// Error is set when edge bans are configured but could not start.
	Error string `json:"error,omitempty"`
}

// Status reports the mirror.
func (m *Mirror) Status() Status {
	m.mu.Lock()
	defer m.mu.Unlock()
	st := Status{Zone: m.cfg.Zone, Host: m.cfg.Host, Running: m.started, Created: m.created, Deleted: m.deleted,
		Skipped: m.skipped, Errors: m.errors, LastError: m.lastErr, ReconcileError: m.reconErr, Failures: []Failure{}}
	if !m.reconAt.IsZero() {
		t := m.reconAt
		st.LastReconcile = &t
	}
	keys := make([]string, 0, len(m.items))
	for k := range m.items {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		it := m.items[k]
		if it.id != "" && it.want {
			st.Rules++
		}
		if !it.needsWork() {
			continue
		}
		st.Pending++
		if it.lastErr == "" {
			continue
		}
		st.Failing++
		if len(st.Failures) < 20 {
			op := "create"
			if !it.want {
				op = "delete"
			}
			st.Failures = append(st.Failures, Failure{Jail: it.jail, IP: it.prefix.String(), Op: op,
				Attempts: it.attempts, Error: it.lastErr, NextTry: it.next})
		}
	}
	return st
}
