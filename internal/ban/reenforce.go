package ban

import (
	"context"
	"fmt"

	"github.com/palisade-project/palisade/internal/firewall"
)

// Reenforce adds every active ban the manager holds to the firewall again,
// in one bulk call (AddMissing when the backend has it), for a firewall
// that lost its sets behind palisade's back ("nft flush ruleset", a
// deleted table): the sets came back empty from Setup and must be filled.
// Unlike Restore it reads nothing from the store (bans not yet saved are
// included), announces no ban events, and lists nothing from the kernel.
// Bans the firewall refuses are marked unenforced, so reconcile retries
// them; the error wraps ErrNotEnforced.
func (m *Manager) Reenforce(ctx context.Context) (int, error) {
	m.op.Lock()
	defer m.op.Unlock()
	now := m.now().UnixNano()
	m.mu.Lock()
	fw := make([]firewall.Ban, 0, len(m.t.index))
	keys := make([]bkey, 0, len(m.t.index))
	for i := range m.t.recs {
		r := &m.t.recs[i]
		if r.flags&fLive == 0 || !r.permanent() && r.expires <= now {
			continue
		}
		fw = append(fw, m.recFirewall(r))
		keys = append(keys, r.key)
	}
	m.mu.Unlock()
	if len(fw) == 0 {
		return 0, nil
	}
	var err error
	if ma, ok := m.backend.(firewall.MissingAdder); ok {
		err = ma.AddMissing(ctx, fw)
	} else {
		err = m.backend.Add(ctx, fw)
	}
	m.mu.Lock()
	for _, k := range keys {
		if r := m.t.get(k); r != nil {
			if err == nil {
				r.flags |= fEnforced
			} else {
				r.flags &^= fEnforced
			}
		}
	}
	m.mu.Unlock()
	if err != nil {
		return 0, fmt.Errorf("re-enforce %d bans: %w: %v", len(fw), ErrNotEnforced, err)
	}
	return len(fw), nil
}
