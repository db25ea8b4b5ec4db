package ban

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/palisade-project/palisade/internal/firewall"
)

// ReconcileStats says what Reconcile did.
type ReconcileStats struct {
	Listed bool // the backend listed its bans
	// Intact: the backend's structures were all there and the last full
	// reconcile is recent, so the bans were not listed.
	Intact  bool
	ReAdded int // active bans missing from the firewall, added again
	Removed int // firewall bans unknown to the manager, removed
}

// Reconcile makes the firewall match the active bans. When the backend can
// list, missing bans (and those the kernel would lift at another time) are
// re-added and unknown ones removed (one call each); otherwise only bans
// the firewall refused earlier are retried.
//
// Listing hundreds of thousands of kernel set elements costs seconds and
// hundreds of megabytes, so a backend that can check cheaply that its
// structures are intact (firewall.IntactChecker) is listed only when they
// are not, or when Config.FullReconcileInterval has passed since the last
// full reconcile.
func (m *Manager) Reconcile(ctx context.Context) (ReconcileStats, error) {
	m.op.Lock()
	defer m.op.Unlock()
	var st ReconcileStats
	now := m.now()
	soon := now.Add(time.Second).UnixNano()
	var listed []firewall.Ban
	var err error
	if m.intactRecently(ctx, now) {
		st.Intact = true
	} else {
		listed, err = m.backend.List(ctx)
		switch {
		case errors.Is(err, firewall.ErrNotListable):
			m.lastFull = now
		case err != nil:
			m.mu.Lock()
			m.stats.ReconcileFailures++
			m.mu.Unlock()
			return st, fmt.Errorf("reconcile: list %s: %w", m.backend.Name(), err)
		default:
			st.Listed = true
			m.lastFull = now
		}
	}
	var add, extra []firewall.Ban
	var addKeys []bkey
	m.mu.Lock()
	have := make(map[bkey]int64, len(listed)) // listed expiry, 0 when none
	for _, b := range listed {
		id, ok := m.t.jailID(b.Jail, false)
		if !ok {
			extra = append(extra, b)
			continue
		}
		k := makeKey(id, normPrefix(b.Prefix))
		if m.t.get(k) == nil {
			extra = append(extra, b)
			continue
		}
		have[k] = toNano(b.Expires)
	}
	for i := range m.t.recs {
		r := &m.t.recs[i]
		if r.flags&fLive == 0 || !r.permanent() && r.expires < soon {
			continue // free, or about to expire anyway
		}
		exp, ok := have[r.key]
		if r.flags&fEnforced == 0 || st.Listed && (!ok || expiryDiffers(exp, r.expires)) {
			add = append(add, m.recFirewall(r))
			addKeys = append(addKeys, r.key)
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
				if r := m.t.get(k); r != nil {
					r.flags |= fEnforced
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

// expiryDiffers reports whether a listed expiry (0: none) disagrees with
// the manager's: the kernel would lift the ban at another time. A backend
// without timeouts (ufw) lists none, which is no disagreement.
func expiryDiffers(listed, want int64) bool {
	if listed == 0 {
		return false
	}
	if want == 0 {
		return true
	}
	d := time.Duration(listed - want)
	return d.Abs() > firewall.ReconcileSlack
}

// intactRecently reports whether the last full reconcile is recent and the
// backend says its structures are intact (op held).
func (m *Manager) intactRecently(ctx context.Context, now time.Time) bool {
	ic, ok := m.backend.(firewall.IntactChecker)
	if !ok || m.lastFull.IsZero() || now.Sub(m.lastFull) >= m.cfg.FullReconcileInterval {
		return false
	}
	if err := ic.Intact(ctx); err != nil {
		m.log.Warn("firewall not intact (or it could not tell); listing its bans", "backend", m.backend.Name(), "err", err)
		return false
	}
	return true
}
