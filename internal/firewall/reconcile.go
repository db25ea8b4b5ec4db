package firewall

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// ReconcileSlack is how far a listed expiry may differ from the wanted one
// before Reconcile re-adds the ban (kernel timeouts tick in milliseconds and
// List computes expiry from the remaining time).
const ReconcileSlack = 5 * time.Second

// Reconcile makes a listable backend enforce exactly want: bans missing from
// the kernel (or whose permanence or expiry differ) are added in one Add, and
// bans the backend holds that want does not list are removed in one Remove.
// Bans in want that expired before now are ignored. Setup must have run for
// every jail in want. Backends that cannot list return ErrNotListable.
func Reconcile(ctx context.Context, b Backend, want []Ban, now time.Time) (added, removed int, err error) {
	have, err := b.List(ctx)
	if err != nil {
		if errors.Is(err, ErrNotListable) {
			return 0, 0, err
		}
		return 0, 0, fmt.Errorf("reconcile %s: %w", b.Name(), err)
	}
	type key struct {
		jail, prefix string
	}
	cur := make(map[key]Ban, len(have))
	for _, h := range have {
		cur[key{h.Jail, h.Prefix.Masked().String()}] = h
	}
	var add []Ban
	wanted := make(map[key]bool, len(want))
	for _, w := range want {
		if !w.Expires.IsZero() && !w.Expires.After(now) {
			continue
		}
		k := key{w.Jail, w.Prefix.Masked().String()}
		wanted[k] = true
		h, ok := cur[k]
		if ok && h.Expires.IsZero() == w.Expires.IsZero() && h.Expires.Sub(w.Expires).Abs() <= ReconcileSlack {
			continue
		}
		add = append(add, w)
	}
	var del []Ban
	for k, h := range cur {
		if !wanted[k] {
			del = append(del, h)
		}
	}
	if len(del) > 0 {
		if err := b.Remove(ctx, del); err != nil {
			return 0, 0, fmt.Errorf("reconcile %s: %w", b.Name(), err)
		}
	}
	if len(add) > 0 {
		if err := b.Add(ctx, add); err != nil {
			return 0, len(del), fmt.Errorf("reconcile %s: %w", b.Name(), err)
		}
	}
	return len(add), len(del), nil
}

// Restore is start-up reconciliation for large ban sets on bulk backends
// (nftables, ipset): it first enforces every unexpired ban in want with one
// Add (idempotent, refreshes expiries), so enforcement does not wait for a
// read-back, and then lists the backend and removes what want does not
// hold. Reading 100,000 nftables elements back takes the kernel about a
// second, while the Add takes about half of one. For ufw, whose every
// re-add runs a program, prefer Reconcile. Backends that cannot list are
// only added to (removed is 0 and no error is returned).
func Restore(ctx context.Context, b Backend, want []Ban, now time.Time) (enforced, removed int, err error) {
	live := make([]Ban, 0, len(want))
	wanted := make(map[string]bool, len(want))
	for _, w := range want {
		if !w.Expires.IsZero() && !w.Expires.After(now) {
			continue
		}
		live = append(live, w)
		wanted[w.Jail+" "+w.Prefix.Masked().String()] = true
	}
	if len(live) > 0 {
		if err := b.Add(ctx, live); err != nil {
			return 0, 0, fmt.Errorf("restore %s: %w", b.Name(), err)
		}
	}
	have, err := b.List(ctx)
	if errors.Is(err, ErrNotListable) {
		return len(live), 0, nil
	}
	if err != nil {
		return len(live), 0, fmt.Errorf("restore %s: %w", b.Name(), err)
	}
	var del []Ban
	for _, h := range have {
		if !wanted[h.Jail+" "+h.Prefix.Masked().String()] {
			del = append(del, h)
		}
	}
	if len(del) > 0 {
		if err := b.Remove(ctx, del); err != nil {
			return len(live), 0, fmt.Errorf("restore %s: %w", b.Name(), err)
		}
	}
	return len(live), len(del), nil
}
