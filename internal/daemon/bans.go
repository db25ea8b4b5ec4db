package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/palisade-project/palisade/internal/firewall"
	"github.com/palisade-project/palisade/internal/store"
)

// banBook is the daemon's owner of "what is banned": it writes the store
// first (so a kill -9 never loses a ban), then the firewall, keeps the
// active set in memory, expires bans and writes the ban log lines.
type banBook struct {
	st  *store.Store
	fw  firewall.Backend
	log *slog.Logger // ban lines (logger palisade.ban)
	now func() time.Time

	mu     sync.Mutex
	active map[store.BanKey]store.Ban
	total  map[string]uint64
	wake   chan struct{}
}

func newBanBook(st *store.Store, fw firewall.Backend, log *slog.Logger, now func() time.Time) *banBook {
	return &banBook{
		st: st, fw: fw, log: log.With("logger", "palisade.ban"), now: now,
		active: map[store.BanKey]store.Ban{}, total: map[string]uint64{},
		wake: make(chan struct{}, 1),
	}
}

func fwBan(b store.Ban) firewall.Ban {
	return firewall.Ban{Jail: b.Jail, Prefix: b.Prefix, Expires: b.Expires}
}

func banAddr(p netip.Prefix) string {
	if p.Bits() == p.Addr().BitLen() {
		return p.Addr().String()
	}
	return p.String()
}

// Restore loads every stored ban, forgets the expired ones and enforces
// the rest with one bulk firewall call. It returns the number restored.
func (b *banBook) Restore(ctx context.Context) (int, error) {
	all, bad, err := b.st.Bans()
	if err != nil {
		return 0, err
	}
	if bad > 0 {
		b.log.Warn("skipped unreadable ban records in the database", "count", bad)
	}
	now := b.now()
	var live []store.Ban
	var dead []store.BanKey
	for _, x := range all {
		if !x.Permanent() && !x.Expires.After(now) {
			dead = append(dead, store.BanKey{Jail: x.Jail, Prefix: x.Prefix})
			continue
		}
		live = append(live, x)
	}
	if len(dead) > 0 {
		if err := b.st.DeleteBans(dead); err != nil {
			return 0, err
		}
	}
	fwb := make([]firewall.Ban, len(live))
	for i, x := range live {
		fwb[i] = fwBan(x)
	}
	if len(fwb) > 0 {
		if err := b.fw.Add(ctx, fwb); err != nil {
			return 0, fmt.Errorf("restoring %d bans in the firewall: %w", len(fwb), err)
		}
	}
	b.mu.Lock()
	for _, x := range live {
		b.active[store.BanKey{Jail: x.Jail, Prefix: x.Prefix}] = x
	}
	b.mu.Unlock()
	b.kick()
	return len(live), nil
}

func (b *banBook) kick() {
	select {
	case b.wake <- struct{}{}:
	default:
	}
}

// Ban bans p in jail for d (negative: permanent). A ban that is already
// active is returned unchanged with isNew false (no new offence).
func (b *banBook) Ban(ctx context.Context, jail string, p netip.Prefix, d time.Duration, reason string) (store.Ban, bool, error) {
	p = p.Masked()
	key := store.BanKey{Jail: jail, Prefix: p}
	now := b.now()
	b.mu.Lock()
	defer b.mu.Unlock()
	if x, ok := b.active[key]; ok && (x.Permanent() || x.Expires.After(now)) {
		return x, false, nil
	}
	nb := store.Ban{Jail: jail, Prefix: p, Start: now, Reason: reason}
	if d >= 0 {
		nb.Expires = now.Add(d)
	}
	bs := []store.Ban{nb}
	if err := b.st.AddBans(bs); err != nil {
		return store.Ban{}, false, err
	}
	nb = bs[0]
	if nb.Offence == 0 {
		if o, err := b.st.Offences(jail, p, false); err == nil {
			nb.Offence = o.Count
		}
	}
	if err := b.fw.Add(ctx, []firewall.Ban{fwBan(nb)}); err != nil {
		// The store holds the ban: the next start (or reconcile) enforces it.
		b.log.Error(fmt.Sprintf("[%s] firewall refused ban of %s", jail, banAddr(p)), "err", err)
	}
	b.active[key] = nb
	b.total[jail]++
	b.log.Log(ctx, LevelNotice, fmt.Sprintf("[%s] Ban %s", jail, banAddr(p)))
	b.kick()
	return nb, true, nil
}

// Unban lifts one ban; it reports whether the ban existed.
func (b *banBook) Unban(ctx context.Context, jail string, p netip.Prefix) (bool, error) {
	key := store.BanKey{Jail: jail, Prefix: p.Masked()}
	b.mu.Lock()
	defer b.mu.Unlock()
	x, ok := b.active[key]
	if !ok {
		return false, nil
	}
	return true, b.remove(ctx, []store.Ban{x})
}

// UnbanAll lifts every ban of jail ("" = every jail).
func (b *banBook) UnbanAll(ctx context.Context, jail string) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	var list []store.Ban
	for k, x := range b.active {
		if jail == "" || k.Jail == jail {
			list = append(list, x)
		}
	}
	return len(list), b.remove(ctx, list)
}

// remove deletes bans from the store, the firewall and the active set;
// b.mu is held.
func (b *banBook) remove(ctx context.Context, list []store.Ban) error {
	if len(list) == 0 {
		return nil
	}
	keys := make([]store.BanKey, len(list))
	fwb := make([]firewall.Ban, len(list))
	for i, x := range list {
		keys[i] = store.BanKey{Jail: x.Jail, Prefix: x.Prefix}
		fwb[i] = fwBan(x)
	}
	if err := b.fw.Remove(ctx, fwb); err != nil {
		return fmt.Errorf("lifting %d bans in the firewall: %w", len(list), err)
	}
	if err := b.st.DeleteBans(keys); err != nil {
		return err
	}
	for i, k := range keys {
		delete(b.active, k)
		b.log.Log(ctx, LevelNotice, fmt.Sprintf("[%s] Unban %s", k.Jail, banAddr(list[i].Prefix)))
	}
	return nil
}

// List returns the active bans of jail ("" = all), sorted by jail then
// address.
func (b *banBook) List(jail string) []store.Ban {
	b.mu.Lock()
	out := make([]store.Ban, 0, len(b.active))
	for k, x := range b.active {
		if jail == "" || k.Jail == jail {
			out = append(out, x)
		}
	}
	b.mu.Unlock()
	sort.Slice(out, func(i, j int) bool {
		if c := strings.Compare(out[i].Jail, out[j].Jail); c != 0 {
			return c < 0
		}
		return out[i].Prefix.Addr().Less(out[j].Prefix.Addr())
	})
	return out
}

// Count returns the number of active bans of jail and the bans it made
// since start.
func (b *banBook) Count(jail string) (int, uint64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for k := range b.active {
		if k.Jail == jail {
			n++
		}
	}
	return n, b.total[jail]
}

// Lookup returns the active bans of an address in every jail.
func (b *banBook) Lookup(a netip.Addr) []store.Ban {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []store.Ban
	for _, x := range b.active {
		if x.Prefix.Contains(a) {
			out = append(out, x)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Jail < out[j].Jail })
	return out
}

// expire lifts the bans whose time is up and returns when to look again.
func (b *banBook) expire(ctx context.Context) time.Duration {
	now := b.now()
	b.mu.Lock()
	defer b.mu.Unlock()
	var due []store.Ban
	next := time.Minute
	for _, x := range b.active {
		if x.Permanent() {
			continue
		}
		if !x.Expires.After(now) {
			due = append(due, x)
		} else if d := x.Expires.Sub(now); d < next {
			next = d
		}
	}
	if err := b.remove(ctx, due); err != nil {
		b.log.Error("expiring bans", "err", err)
		return time.Second
	}
	return next
}

// Run expires bans until ctx is done.
func (b *banBook) Run(ctx context.Context) {
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-b.wake:
		}
		next := b.expire(ctx)
		if !t.Stop() {
			select {
			case <-t.C:
			default:
			}
		}
		t.Reset(next)
	}
}

// history adapts the store to jail.History.
type history struct{ st *store.Store }

func (h history) Offences(jail string, p netip.Prefix, overall bool) (int, time.Time, error) {
	o, err := h.st.Offences(jail, p, overall)
	return o.Count, o.LastBan, err
}
