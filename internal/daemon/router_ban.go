package daemon

import (
	"context"
	"errors"
	"fmt"

	"github.com/palisade-project/palisade/internal/firewall"
)

// The router's part in what the ban manager asks of a backend beyond
// firewall.Backend: the cheap intact check and the start-up bulk add.

// AddMissing implements firewall.MissingAdder: each backend's group goes
// through its AddMissing where it has one, through Add otherwise.
func (r *router) AddMissing(ctx context.Context, bans []firewall.Ban) error {
	return r.apply(ctx, bans, true, true)
}

// Intact implements firewall.IntactChecker for the ban manager's
// reconcile: every backend enforcing jails is intact. Backends that cannot
// list are skipped (what the router lists for them is its own record);
// any other backend that cannot tell makes the answer an error, so that
// the manager lists the bans as before.
func (r *router) Intact(ctx context.Context) error {
	r.mu.Lock()
	var check []firewall.Backend
	for _, b := range r.backends {
		if r.used[b] && !r.notListable[b] {
			check = append(check, b)
		}
	}
	r.mu.Unlock()
	for _, b := range check {
		ic, ok := b.(firewall.IntactChecker)
		if !ok {
			return fmt.Errorf("%s: %w", b.Name(), errCannotCheck)
		}
		if err := ic.Intact(ctx); err != nil {
			return fmt.Errorf("%s: %w", b.Name(), err)
		}
	}
	return nil
}

// errCannotCheck is Intact's answer for a backend that cannot check itself.
var errCannotCheck = errors.New("cannot check its kernel objects")

var (
	_ firewall.IntactChecker = (*router)(nil)
	_ firewall.MissingAdder  = (*router)(nil)
	_ firewall.IntactChecker = (*meteredBackend)(nil)
	_ firewall.MissingAdder  = (*meteredBackend)(nil)
)

// AddMissing implements firewall.MissingAdder for a metered backend: the
// inner backend's AddMissing, or its Add when it has none (counted as
// "add" either way), so that metering hides no capability.
func (m *meteredBackend) AddMissing(ctx context.Context, bans []firewall.Ban) error {
	var err error
	if ma, ok := m.inner.(firewall.MissingAdder); ok {
		err = ma.AddMissing(ctx, bans)
	} else {
		err = m.inner.Add(ctx, bans)
	}
	m.count("add", err)
	return err
}

// Intact implements firewall.IntactChecker for a metered backend: the
// inner backend's answer, or an error (list it) when it cannot tell.
func (m *meteredBackend) Intact(ctx context.Context) error {
	if ic, ok := m.inner.(firewall.IntactChecker); ok {
		return ic.Intact(ctx)
	}
	return errCannotCheck
}
