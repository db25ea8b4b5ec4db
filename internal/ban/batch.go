package ban

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/palisade-project/palisade/internal/firewall"
	"github.com/palisade-project/palisade/internal/store"
)

// Request is one ban for BanMany.
type Request struct {
	Jail   string
	Prefix netip.Prefix
	// Duration is the ban length; negative means permanent.
	Duration time.Duration
	Reason   string
	// Origin is OriginJail (the zero value) for a jail's decision or
	// OriginManual for an explicit request.
	Origin Origin
	// Lines are the matched log lines behind the decision; they go with
	// the ban's event (Event.Lines) and are not stored.
	Lines []string
}

// Result is the outcome of one Request.
type Result struct {
	Entry Entry
	Err   error
}

// Ban bans prefix in jail for d (negative: permanent), as a jail's
// decision. The ban is committed to the store first, then enforced.
// Banning what is already banned (or covered by a ban of a network
// containing it) for at least as long returns the existing entry and
// ErrAlreadyBanned; a longer ban extends it (without counting a new
// offence). Errors wrap ErrProtected (and ErrNotAttacker), ErrAlreadyBanned
// or ErrNotEnforced where they apply. A database that cannot be written
// is no error: the ban is enforced, kept in memory, marked Unsaved and
// written later (see Health).
func (m *Manager) Ban(ctx context.Context, jail string, p netip.Prefix, d time.Duration, reason string) (Entry, error) {
	r := m.BanMany(ctx, []Request{{Jail: jail, Prefix: p, Duration: d, Reason: reason}})
	return r[0].Entry, r[0].Err
}

// pending is one planned change of BanMany.
type pending struct {
	i      int // request index
	r      rec
	reason string
}

// BanMany applies several bans with one store transaction (two when some
// extend existing bans) and one firewall call, as a burst of bans from
// many addresses needs. Results are in request order; each behaves as Ban.
func (m *Manager) BanMany(ctx context.Context, reqs []Request) []Result {
	res := make([]Result, len(reqs))
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
	adds, exts := m.plan(reqs, valid, res, now)
	if len(adds)+len(exts) == 0 {
		return res
	}
	m.save(adds, exts, now)

	fw := make([]firewall.Ban, 0, len(adds)+len(exts))
	m.mu.Lock()
	for _, p := range adds {
		fw = append(fw, m.recFirewall(&p.r))
	}
	for _, p := range exts {
		fw = append(fw, m.recFirewall(&p.r))
	}
	m.mu.Unlock()
	ferr := m.backend.Add(ctx, fw)

	touched := map[uint16]bool{}
	evs := make([]Event, 0, len(adds)+len(exts))
	m.mu.Lock()
	for n := range adds {
		a := &adds[n]
		if ferr == nil {
			a.r.flags |= fEnforced
		}
		m.t.put(a.r)
		m.stats.Bans++
		m.t.jails[a.r.key.jail].made++
		touched[a.r.key.jail] = true
		e := m.t.entry(&a.r)
		e.Reason = a.reason
		res[a.i].Entry = e
		evs = append(evs, Event{Kind: EventBan, Entry: e, Lines: reqs[a.i].Lines, Time: now})
	}
	for n := range exts {
		x := &exts[n]
		if ferr == nil {
			x.r.flags |= fEnforced
		}
		m.t.put(x.r)
		e := m.t.entry(&x.r)
		e.Reason = x.reason
		res[x.i].Entry = e
		evs = append(evs, Event{Kind: EventExtend, Entry: e, Time: now})
	}
	m.mu.Unlock()
	m.poke()

	if ferr != nil {
		m.log.Error("firewall refused bans; they are kept and will be retried", "count", len(fw), "backend", m.backend.Name(), "err", ferr)
		for _, p := range append(adds, exts...) {
			res[p.i].Err = fmt.Errorf("ban %s in %s: %w: %v", res[p.i].Entry.Prefix, res[p.i].Entry.Jail, ErrNotEnforced, ferr)
		}
	}
	for _, a := range adds {
		e := res[a.i].Entry
		m.log.Info("ban", "jail", e.Jail, "prefix", e.Prefix, "expires", e.Expires, "offence", e.Offence, "reason", e.Reason)
		m.writeLog(now, e.Jail, "Ban", e.Prefix)
	}
	for _, x := range exts {
		e := res[x.i].Entry
		m.log.Info("ban extended", "jail", e.Jail, "prefix", e.Prefix, "expires", e.Expires)
	}
	m.emit(evs...)

	for jid := range touched {
		m.enforceBound(ctx, jid, now)
	}
	return res
}

// plan decides, for the valid requests, which are new bans and which
// extend an existing one (op held). The others get their result here.
func (m *Manager) plan(reqs []Request, valid []int, res []Result, now time.Time) (adds, exts []pending) {
	type slot struct {
		ext bool
		n   int
	}
	inBatch := make(map[bkey]slot, len(valid))
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, i := range valid {
		r := reqs[i]
		p := normPrefix(r.Prefix)
		jid, ok := m.t.jailID(r.Jail, true)
		if !ok {
			res[i].Err = fmt.Errorf("ban %s in %s: too many jails", p, r.Jail)
			continue
		}
		var exp int64
		if r.Duration > 0 {
			exp = now.Add(r.Duration).UnixNano()
		}
		k := makeKey(jid, p)
		nr := rec{key: k, start: now.UnixNano(), expires: exp, reason: m.t.reasonID(r.Reason), origin: r.Origin, heap: -1}
		if at, dup := inBatch[k]; dup {
			// The same key twice in one batch: keep the longer one.
			var prev *pending
			if at.ext {
				prev = &exts[at.n]
			} else {
				prev = &adds[at.n]
			}
			if outlasts(exp, &prev.r) {
				res[prev.i].Err = fmt.Errorf("ban %s in %s: %w", p, r.Jail, ErrAlreadyBanned)
				prev.r.expires, prev.r.reason, prev.r.origin, prev.i, prev.reason = exp, nr.reason, r.Origin, i, r.Reason
			} else {
				res[i].Err = fmt.Errorf("ban %s in %s: %w", p, r.Jail, ErrAlreadyBanned)
			}
			continue
		}
		if cov := m.t.covering(jid, p); cov != nil && !outlasts(exp, cov) {
			res[i] = Result{m.t.entry(cov), fmt.Errorf("ban %s in %s: %w", p, r.Jail, ErrAlreadyBanned)}
			continue
		}
		if old := m.t.get(k); old != nil {
			nr.start, nr.offence, nr.flags = old.start, old.offence, old.flags&(fUnsaved|fNewOffence)
			inBatch[k] = slot{true, len(exts)}
			exts = append(exts, pending{i: i, r: nr, reason: r.Reason})
			continue
		}
		inBatch[k] = slot{false, len(adds)}
		adds = append(adds, pending{i: i, r: nr, reason: r.Reason})
	}
	return adds, exts
}

// extendShare sets how far a jail's decision must reach past the ban
// already holding its address to be worth carrying out: by at least
// 1/extendShare of its length (see Holds).
const extendShare = 16

// Holds reports whether a jail's decision to ban p for d (negative:
// permanently) would change nothing worth a ban batch: a ban of jail
// covers p and lasts as long, or falls short by less than d/extendShare.
//
// A banned address that keeps failing (a backlog read at start,
// connections opened before the ban, ports the jail does not close)
// makes a decision every maxretry failures, each reaching a little later
// than the last; carried out, each is a store write with its fsync, a
// firewall update, an event and a log line for a ban that already holds
// for all but a few seconds of the asked time. A jail's line reader asks
// Holds before it queues a decision and drops those it holds: an address
// then costs at most extendShare extensions per ban length, and its ban
// ends at most d/extendShare before its last failure's full ban time
// would. Escalated ban times (bantime.increment doubles them) and
// permanent bans pass. BanMany itself keeps the exact rule: any later end
// extends.
func (m *Manager) Holds(jail string, p netip.Prefix, d time.Duration) bool {
	if d == 0 || !p.IsValid() {
		return false
	}
	p = normPrefix(p)
	now := m.now().UnixNano()
	m.mu.Lock()
	defer m.mu.Unlock()
	jid, ok := m.t.jailID(jail, false)
	if !ok {
		return false
	}
	cov := m.t.covering(jid, p)
	switch {
	case cov == nil:
		return false
	case cov.expires == 0:
		return true // permanent
	case cov.expires <= now || d < 0:
		return false // due to be lifted, or asked to become permanent
	}
	return cov.expires-now > int64(d-d/extendShare) // what is left of it
}

// save writes new bans (counting their offences) and extensions to the
// store (op held). When the store fails, or is known to be failing, the
// records are marked unsaved (their offence estimated from the history)
// and written later.
func (m *Manager) save(adds, exts []pending, now time.Time) {
	m.mu.Lock()
	down := m.storeDown(now)
	names := m.t.jails
	m.mu.Unlock()
	// Bans of jails stored elsewhere are done here: a first offence.
	stored := func(ps []pending) []int {
		idx := make([]int, 0, len(ps))
		for n := range ps {
			if m.notStored(names[ps[n].r.key.jail].name) {
				ps[n].r.offence = max(ps[n].r.offence, 1)
				ps[n].r.flags &^= fUnsaved | fNewOffence
				continue
			}
			idx = append(idx, n)
		}
		return idx
	}
	ai, xi := stored(adds), stored(exts)
	var addErr, extErr error
	if down {
		if len(ai) > 0 {
			addErr = errStoreDown
		}
		if len(xi) > 0 {
			extErr = errStoreDown
		}
	} else {
		if len(ai) > 0 {
			sb := make([]store.Ban, len(ai))
			for j, n := range ai {
				a := &adds[n]
				sb[j] = store.Ban{Jail: names[a.r.key.jail].name, Prefix: a.r.key.prefix(), Start: fromNano(a.r.start),
					Expires: fromNano(a.r.expires), Reason: a.reason}
			}
			if addErr = m.store.AddBans(sb); addErr == nil {
				for j, n := range ai {
					adds[n].r.offence = uint32(sb[j].Offence)
					adds[n].r.flags &^= fUnsaved | fNewOffence
				}
			}
		}
		if len(xi) > 0 {
			sb := make([]store.Ban, len(xi))
			for j, n := range xi {
				x := &exts[n]
				sb[j] = store.Ban{Jail: names[x.r.key.jail].name, Prefix: x.r.key.prefix(), Start: fromNano(x.r.start),
					Expires: fromNano(x.r.expires), Offence: int(x.r.offence), Reason: x.reason}
			}
			// An extension of a ban whose offence is not counted yet stays
			// with the pending add.
			if extErr = m.store.UpdateBans(sb); extErr == nil {
				for _, n := range xi {
					exts[n].r.flags &^= fUnsaved
				}
			}
		}
	}
	if addErr != nil {
		for _, n := range ai {
			a := &adds[n]
			a.r.flags |= fUnsaved | fNewOffence
			if o, err := m.store.Offences(names[a.r.key.jail].name, a.r.key.prefix(), false); err == nil {
				a.r.offence = uint32(o.Count + 1)
			}
		}
	}
	if extErr != nil {
		for _, n := range xi {
			exts[n].r.flags |= fUnsaved
		}
	}
	m.mu.Lock()
	for _, p := range append(adds, exts...) {
		delete(m.pendingDel, store.BanKey{Jail: names[p.r.key.jail].name, Prefix: p.r.key.prefix()})
	}
	var failed error
	switch {
	case addErr != nil && addErr != errStoreDown:
		failed = addErr
	case extErr != nil && extErr != errStoreDown:
		failed = extErr
	}
	if failed != nil {
		m.storeFailed(failed, now)
	} else if addErr != nil || extErr != nil {
		m.markDirty()
	}
	retry := failed == nil && !down && m.health.dirty
	m.mu.Unlock()
	if retry {
		// The store works again: write what earlier failures left.
		_ = m.flushLocked(context.Background())
	}
}

// errStoreDown marks a write skipped because the store is failing and
// its retry is not due.
var errStoreDown = errors.New("database writes failing; retry pending")
