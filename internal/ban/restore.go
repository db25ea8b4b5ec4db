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
// (one transaction), the others are applied to the firewall in bulk (one
// Add, or AddMissing when the backend has it, per restoreChunk bans, sent
// while the store is still being read) and scheduled for expiry. A
// firewall failure keeps the bans it refused stored and marked unenforced
// (reconcile retries) and is returned.
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
	// The firewall takes the bans in slices while the store is still
	// being read: on two cores the kernel's work on one slice overlaps
	// the decoding of the next.
	snd := m.newRestoreSender(ctx)
	m.mu.Lock()
	m.t.reserve(hint)
	chunk := make([]firewall.Ban, 0, min(max(hint, 1), restoreChunk))
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
		k := makeKey(jid, p)
		if m.t.get(k) == nil {
			chunk = append(chunk, firewall.Ban{Jail: m.t.jails[jid].name, Prefix: p, Expires: b.Expires})
		}
		m.t.put(rec{key: k, start: toNano(b.Start), expires: toNano(b.Expires), offence: uint32(b.Offence),
			reason: m.t.reasonID(b.Reason), origin: OriginRestored, heap: -1})
		if len(chunk) == restoreChunk {
			snd.send(chunk)
			chunk = make([]firewall.Ban, 0, restoreChunk)
		}
		return nil
	})
	m.mu.Unlock()
	if len(chunk) > 0 {
		snd.send(chunk)
	}
	enforced, ferr := snd.wait()
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

	evs := m.hasSubscribers()
	m.mu.Lock()
	for _, fw := range enforced {
		for _, b := range fw {
			jid, _ := m.t.jailID(b.Jail, false)
			if r := m.t.get(makeKey(jid, b.Prefix)); r != nil && r.origin == OriginRestored {
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
	st.Restored = snd.bans
	m.log.Info("bans restored", "restored", st.Restored, "expired", st.Expired, "kept", st.Kept, "adopted", st.Adopted, "backend", m.backend.Name())
	if ferr != nil {
		m.log.Error("firewall refused restored bans; reconcile will retry", "count", snd.refused, "err", ferr)
		return st, fmt.Errorf("restore %d of %d bans: %w: %v", snd.refused, snd.bans, ErrNotEnforced, ferr)
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
	elsewhere := 0 // adopted bans of jails stored elsewhere
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
		if m.notStored(b.Jail) { // kept elsewhere: enforced, not written
			m.t.put(rec{key: k, start: nowN, expires: toNano(b.Expires), reason: rid, origin: OriginAdopted,
				offence: 1, flags: fEnforced, heap: -1})
			elsewhere++
			continue
		}
		m.t.put(rec{key: k, start: nowN, expires: toNano(b.Expires), reason: rid, origin: OriginAdopted,
			flags: fEnforced | fUnsaved | fNewOffence, heap: -1})
		adopted = append(adopted, store.Ban{Jail: b.Jail, Prefix: p, Start: now, Expires: b.Expires, Reason: AdoptReason})
		keys = append(keys, k)
	}
	m.mu.Unlock()
	if len(adopted)+elsewhere == 0 {
		m.log.Warn("the database lost bans; the firewall held none that it does not know", "why", why)
		return 0, nil
	}
	m.log.Warn("the database lost bans: adopted the bans palisade's firewall sets still hold, with their remaining time",
		"why", why, "adopted", len(adopted)+elsewhere)
	if len(adopted) == 0 {
		return elsewhere, nil
	}
	serr := m.store.AddBans(adopted)
	m.mu.Lock()
	defer m.mu.Unlock()
	if serr != nil {
		m.storeFailed(serr, now)
		return len(adopted) + elsewhere, nil
	}
	for i, k := range keys {
		if r := m.t.get(k); r != nil {
			r.offence = uint32(adopted[i].Offence)
			r.flags &^= fUnsaved | fNewOffence
		}
	}
	return len(adopted) + elsewhere, nil
}

// restoreChunk is how many restored bans go to the firewall in one call.
const restoreChunk = 16384

// restoreSender hands the restored bans to the firewall in slices, from a
// goroutine of its own, in the order they were read.
type restoreSender struct {
	ch   chan []firewall.Ban
	done chan struct{}
	// Set by the goroutine, read after done:
	ok      [][]firewall.Ban // the slices the firewall took
	err     error            // its first refusal
	refused int
	bans    int // every ban sent (set by send)
}

func (m *Manager) newRestoreSender(ctx context.Context) *restoreSender {
	s := &restoreSender{ch: make(chan []firewall.Ban, 2), done: make(chan struct{})}
	ma, _ := m.backend.(firewall.MissingAdder)
	go func() {
		defer close(s.done)
		for fw := range s.ch {
			var err error
			// After a restart the kernel usually still holds these: a
			// backend that can skip what it holds restores much faster
			// (expiries that differ are refreshed by the first reconcile).
			if ma != nil {
				err = ma.AddMissing(ctx, fw)
			} else {
				err = m.backend.Add(ctx, fw)
			}
			if err != nil {
				s.refused += len(fw)
				if s.err == nil {
					s.err = err
				}
				continue
			}
			s.ok = append(s.ok, fw)
		}
	}()
	return s
}

func (s *restoreSender) send(fw []firewall.Ban) {
	s.bans += len(fw)
	s.ch <- fw
}

// wait returns the slices the firewall took and its first refusal, once
// every slice was handed over.
func (s *restoreSender) wait() ([][]firewall.Ban, error) {
	close(s.ch)
	<-s.done
	return s.ok, s.err
}
