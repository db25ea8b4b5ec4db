package ban

import (
	"context"
	"errors"
	"fmt"
	"net/netip"

	"github.com/palisade-project/palisade/internal/firewall"
	"github.com/palisade-project/palisade/internal/store"
)

// Unban lifts the ban of exactly prefix in jail: store first, then the
// firewall. A ban of a network containing the prefix is not touched (see
// UnbanOverlapping).
func (m *Manager) Unban(ctx context.Context, jail string, p netip.Prefix) (Entry, error) {
	if !p.IsValid() {
		return Entry{}, errors.New("unban: invalid prefix")
	}
	p = normPrefix(p)
	m.op.Lock()
	defer m.op.Unlock()
	m.mu.Lock()
	var r *rec
	if id, ok := m.t.jailID(jail, false); ok {
		r = m.t.get(makeKey(id, p))
	}
	var e Entry
	var list []rec
	if r != nil {
		e, list = m.t.entry(r), []rec{*r}
	}
	m.mu.Unlock()
	if r == nil {
		// Lift a firewall leftover anyway; removing is idempotent.
		_ = m.backend.Remove(ctx, []firewall.Ban{{Jail: jail, Prefix: p}})
		return Entry{}, fmt.Errorf("unban %s in %s: %w", p, jail, ErrNotBanned)
	}
	_, err := m.remove(ctx, list, CauseManual)
	return e, err
}

// UnbanOverlapping lifts every ban of jail (of every jail when jail is "")
// whose prefix contains p or lies inside it, in one store transaction and
// one firewall call: `unban ADDRESS` lifts the aggregate that covers the
// address, `unban NETWORK` every ban inside the network. It returns the
// bans lifted (none: ErrNotBanned).
func (m *Manager) UnbanOverlapping(ctx context.Context, jail string, p netip.Prefix) ([]Entry, error) {
	if !p.IsValid() {
		return nil, errors.New("unban: invalid prefix")
	}
	p = normPrefix(p)
	m.op.Lock()
	defer m.op.Unlock()
	m.mu.Lock()
	id, known := m.t.jailID(jail, false)
	var list []rec
	if jail == "" || known {
		// Bans containing p: probe the lengths in use.
		for _, n := range m.t.find(p.Addr()) {
			r := m.t.recs[n]
			if (jail == "" || r.key.jail == id) && int(r.key.bits) <= p.Bits() {
				list = append(list, r)
			}
		}
		// Bans inside p (longer prefixes): a scan, as unban is rare.
		if p.Bits() < p.Addr().BitLen() {
			for i := range m.t.recs {
				r := &m.t.recs[i]
				if r.flags&fLive == 0 || jail != "" && r.key.jail != id || int(r.key.bits) <= p.Bits() {
					continue
				}
				if r.key.v4 == p.Addr().Is4() && p.Contains(r.key.prefix().Addr()) {
					list = append(list, *r)
				}
			}
		}
	}
	out := make([]Entry, len(list))
	for i := range list {
		out[i] = m.t.entry(&list[i])
	}
	m.mu.Unlock()
	if len(list) == 0 {
		return nil, fmt.Errorf("unban %s: %w", p, ErrNotBanned)
	}
	sortEntries(out)
	_, err := m.remove(ctx, list, CauseManual)
	return out, err
}

// UnbanAll lifts every ban of jail, or of every jail when jail is "", in
// one store transaction and one firewall call. It returns how many.
func (m *Manager) UnbanAll(ctx context.Context, jail string) (int, error) {
	m.op.Lock()
	defer m.op.Unlock()
	m.mu.Lock()
	id, ok := m.t.jailID(jail, false)
	if jail != "" && !ok {
		m.mu.Unlock()
		return 0, nil
	}
	list := m.t.snapshot(id, jail == "")
	m.mu.Unlock()
	if len(list) == 0 {
		return 0, nil
	}
	return m.remove(ctx, list, CauseUnbanAll)
}

// ExpireDue lifts every ban whose time is up (one store transaction, one
// firewall call) and returns how many.
func (m *Manager) ExpireDue(ctx context.Context) (int, error) {
	m.op.Lock()
	defer m.op.Unlock()
	now := m.now().UnixNano()
	var due []rec
	m.mu.Lock()
	for {
		next, ok := m.t.next()
		if !ok || next > now {
			break
		}
		i := m.t.expiry[0]
		due = append(due, m.t.recs[i])
		m.t.heapRemove(0)
	}
	m.mu.Unlock()
	if len(due) == 0 {
		return 0, nil
	}
	return m.remove(ctx, due, CauseExpired)
}

// remove lifts the bans of list (op held): store, then firewall, then
// state, log and events. When the store cannot delete them, they are
// lifted anyway and their deletion is retried (see Health): a ban never
// outlives its time because the disk is full.
func (m *Manager) remove(ctx context.Context, list []rec, cause string) (int, error) {
	keys := make([]store.BanKey, len(list))
	fw := make([]firewall.Ban, len(list))
	entries := make([]Entry, len(list))
	now := m.now()
	m.mu.Lock()
	for i := range list {
		entries[i] = m.t.entry(&list[i])
		keys[i] = store.BanKey{Jail: entries[i].Jail, Prefix: entries[i].Prefix}
		fw[i] = toFirewall(entries[i])
	}
	down := m.storeDown(now)
	m.mu.Unlock()
	serr := errStoreDown
	if !down {
		serr = m.store.DeleteBans(keys)
	}
	ferr := m.backend.Remove(ctx, fw)
	m.mu.Lock()
	for i := range list {
		if r, ok := m.t.drop(list[i].key); ok {
			m.keepOffence(&r)
			m.t.jails[r.key.jail].unbans++
		}
		if serr != nil {
			m.pendingDel[keys[i]] = struct{}{}
		}
	}
	switch {
	case serr == errStoreDown:
		m.markDirty()
	case serr != nil:
		m.storeFailed(serr, now)
	}
	m.stats.Unbans += uint64(len(list))
	retry := serr == nil && m.health.dirty
	m.mu.Unlock()
	if retry {
		_ = m.flushLocked(ctx)
	}
	evs := make([]Event, len(entries))
	for i, e := range entries {
		m.writeLog(now, e.Jail, "Unban", e.Prefix)
		evs[i] = Event{Kind: EventUnban, Entry: e, Cause: cause, Time: now}
	}
	m.emit(evs...)
	m.log.Info("unban", "count", len(list), "cause", cause)
	if ferr != nil {
		m.log.Error("firewall refused an unban; reconcile will retry", "count", len(list), "backend", m.backend.Name(), "err", ferr)
		return len(list), fmt.Errorf("unban %d: firewall: %w", len(list), ferr)
	}
	return len(list), nil
}
