package ban

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/palisade-project/palisade/internal/firewall"
	"github.com/palisade-project/palisade/internal/store"
)

// RestoreStats says what Restore did.
type RestoreStats struct {
	Restored int // applied to the firewall
	Expired  int // dropped from the store
	Kept     int // kept stored for jails not configured now
	Bad      int // undecodable records skipped
	// Adopted counts bans taken over from the firewall because the
	// database had lost them.
	Adopted int
}

// lossReporter is implemented by stores that know they may have lost bans
// (*store.Store: a corrupt file moved aside, or no file at all).
type lossReporter interface {
	Lost() string
}

// AdoptReason is the Reason of a ban adopted from the kernel.
const AdoptReason = "adopted from the firewall: the database had lost this ban"

// Restore loads every stored ban at start-up: expired ones are deleted
// (one transaction), the others are applied to the firewall in ONE bulk Add
// (AddMissing when the backend has it) and scheduled for expiry. A firewall failure keeps them stored and marked
// unenforced (reconcile retries) and is returned.
//
// When the database lost bans (it was corrupt and moved aside, it did not
// exist, or records could not be decoded), the bans palisade's own kernel
// sets still hold for configured jails are adopted first, with the time
// they have left, and written to the database again (Origin OriginAdopted),
// instead of being lifted later as unknown.
func (m *Manager) Restore(ctx context.Context) (RestoreStats, error) {
	m.op.Lock()
	defer m.op.Unlock()
	var st RestoreStats
	now := m.now()
	m.mu.Lock()
	m.probeStore(now)
	m.mu.Unlock()
	var expired []store.BanKey
	hint := 0
	if c, ok := m.store.(interface{ CountBans() (int, error) }); ok {
		hint, _ = c.CountBans()
	}
	m.mu.Lock()
	m.t.reserve(hint)
	bad, err := m.store.EachBan(func(b store.Ban) error {
		if !b.Expires.IsZero() && !b.Expires.After(now) {
			expired = append(expired, store.BanKey{Jail: b.Jail, Prefix: b.Prefix})
			return nil
		}
		if m.jails != nil && !m.jails[b.Jail] {
			st.Kept++
			return nil
		}
		if m.Check(b.Prefix) != nil {
			// Protected now (config changed): do not enforce, keep stored.
			st.Kept++
			m.log.Warn("stored ban now covers a protected address; not restored", "jail", b.Jail, "prefix", b.Prefix)
			return nil
		}
		jid, ok := m.t.jailID(b.Jail, true)
		if !ok {
			st.Kept++
			return nil
		}
		p := normPrefix(b.Prefix)
		m.t.put(rec{key: makeKey(jid, p), start: toNano(b.Start), expires: toNano(b.Expires), offence: uint32(b.Offence),
			reason: m.t.reasonID(b.Reason), origin: OriginRestored, heap: -1})
		return nil
	})
	// One exactly sized list for the firewall, its jail names shared.
	fw := make([]firewall.Ban, 0, len(m.t.index))
	for i := range m.t.recs {
		if r := &m.t.recs[i]; r.flags&fLive != 0 && r.origin == OriginRestored {
			fw = append(fw, m.recFirewall(r))
		}
	}
	m.mu.Unlock()
	st.Bad = bad
	if err != nil {
		return st, fmt.Errorf("restore: %w", err)
	}
	if bad > 0 {
		m.log.Error("skipped undecodable ban records in the database", "count", bad)
	}
	if len(expired) > 0 {
		if err := m.store.DeleteBans(expired); err != nil {
			m.log.Error("could not drop expired bans from the database", "count", len(expired), "err", err)
			m.mu.Lock()
			for _, k := range expired {
				m.pendingDel[k] = struct{}{}
			}
			m.storeFailed(err, now)
			m.mu.Unlock()
		} else {
			st.Expired = len(expired)
		}
	}

	lost := ""
	if lr, ok := m.store.(lossReporter); ok {
		lost = lr.Lost()
	}
	if lost == "" && bad > 0 {
		lost = fmt.Sprintf("%d ban records could not be decoded", bad)
	}
	if lost != "" {
		n, err := m.adopt(ctx, lost, now)
		st.Adopted = n
		if err != nil {
			m.log.Error("could not read the firewall's bans to adopt them", "err", err)
		}
	}

	var ferr error
	if len(fw) > 0 {
		// After a restart the kernel usually still holds these: a backend
		// that can skip what it holds restores much faster (expiries that
		// differ are refreshed by the first reconcile).
		if ma, ok := m.backend.(firewall.MissingAdder); ok {
			ferr = ma.AddMissing(ctx, fw)
		} else {
			ferr = m.backend.Add(ctx, fw)
		}
	}
	evs := m.hasSubscribers()
	m.mu.Lock()
	if ferr == nil {
		for _, b := range fw {
			jid, _ := m.t.jailID(b.Jail, false)
			if r := m.t.get(makeKey(jid, b.Prefix)); r != nil {
				r.flags |= fEnforced
			}
		}
	}
	var events []Event
	if evs {
		events = make([]Event, 0, len(m.t.index))
		for i := range m.t.recs {
			if r := &m.t.recs[i]; r.flags&fLive != 0 {
				events = append(events, Event{Kind: EventBan, Entry: m.t.entry(r), Time: now})
			}
		}
	}
	m.mu.Unlock()
	m.poke()
	m.emit(events...)
	st.Restored = len(fw)
	m.log.Info("bans restored", "restored", st.Restored, "expired", st.Expired, "kept", st.Kept, "adopted", st.Adopted, "backend", m.backend.Name())
	if ferr != nil {
		m.log.Error("firewall refused the restored bans; reconcile will retry", "count", len(fw), "err", ferr)
		return st, fmt.Errorf("restore %d bans: %w: %v", len(fw), ErrNotEnforced, ferr)
	}
	return st, nil
}

// adopt takes over the bans the firewall holds for configured jails that
// the table does not know (op held), and writes them to the store.
func (m *Manager) adopt(ctx context.Context, why string, now time.Time) (int, error) {
	listed, err := m.backend.List(ctx)
	if errors.Is(err, firewall.ErrNotListable) {
		m.log.Warn("the database lost bans and the firewall backend cannot list its own: bans only the kernel holds stay until they expire or a reconcile lifts them",
			"why", why, "backend", m.backend.Name())
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	nowN := now.UnixNano()
	var adopted []store.Ban
	var keys []bkey
	m.mu.Lock()
	rid := m.t.reasonID(AdoptReason)
	for _, b := range listed {
		if m.jails != nil && !m.jails[b.Jail] {
			continue
		}
		if !b.Expires.IsZero() && !b.Expires.After(now) || m.Check(b.Prefix) != nil {
			continue
		}
		jid, ok := m.t.jailID(b.Jail, true)
		if !ok {
			continue
		}
		p := normPrefix(b.Prefix)
		k := makeKey(jid, p)
		if m.t.get(k) != nil {
			continue
		}
		m.t.put(rec{key: k, start: nowN, expires: toNano(b.Expires), reason: rid, origin: OriginAdopted,
			flags: fEnforced | fUnsaved | fNewOffence, heap: -1})
		adopted = append(adopted, store.Ban{Jail: b.Jail, Prefix: p, Start: now, Expires: b.Expires, Reason: AdoptReason})
		keys = append(keys, k)
	}
	m.mu.Unlock()
	if len(adopted) == 0 {
		m.log.Warn("the database lost bans; the firewall held none that it does not know", "why", why)
		return 0, nil
	}
	m.log.Warn("the database lost bans: adopted the bans palisade's firewall sets still hold, with their remaining time",
		"why", why, "adopted", len(adopted))
	serr := m.store.AddBans(adopted)
	m.mu.Lock()
	defer m.mu.Unlock()
	if serr != nil {
		m.storeFailed(serr, now)
		return len(adopted), nil
	}
	for i, k := range keys {
		if r := m.t.get(k); r != nil {
			r.offence = uint32(adopted[i].Offence)
			r.flags &^= fUnsaved | fNewOffence
		}
	}
	return len(adopted), nil
}
