package ban

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/palisade-project/palisade/internal/firewall"
	"github.com/palisade-project/palisade/internal/store"
)

// The maxbans bound. A jail past its bound does not grow: the bans of
// neighbouring addresses are merged into one ban of their network, first
// at the narrowest level (IPv6 /64 — usually one subscriber — and IPv4
// /24), then wider, the largest groups first, until the jail is back to
// 90% of its bound (so that the work is done once per tenth of the bound,
// not once per ban). An aggregate never covers a protected or exempt
// address and lasts as long as the longest ban it replaces. Only when no
// neighbours are left at any level are the bans closest to their end
// lifted early (logged and counted).

// aggLevels are the prefix lengths tried, narrowest first: IPv4, IPv6.
var aggLevels = [][2]int{{24, 64}, {20, 56}, {16, 48}, {0, 40}, {0, 32}}

// aggEl is a ban of the plan: one of the jail's bans or a planned
// aggregate; it replaces the jail's bans snap[lo:hi].
type aggEl struct {
	r      rec
	lo, hi int
	merged bool // a planned aggregate
}

// enforceBound applies jail jid's maxbans bound (op held).
func (m *Manager) enforceBound(ctx context.Context, jid uint16, now time.Time) {
	m.mu.Lock()
	js := m.t.jails[jid]
	limit := m.maxBans(js.name)
	if limit <= 0 || js.active <= limit {
		m.mu.Unlock()
		return
	}
	snap := m.t.snapshot(jid, false)
	m.mu.Unlock()
	target := max(limit-limit/10, 1)
	aggs, evicted := m.planBound(js.name, snap, target, now)
	m.applyBound(ctx, jid, js.name, snap, aggs, evicted, limit, now)
}

// planBound returns the aggregates to make and the bans to lift early so
// that at most target bans remain.
func (m *Manager) planBound(jail string, snap []rec, target int, now time.Time) (aggs []aggEl, evicted []int) {
	cur := make([]aggEl, len(snap))
	for i := range snap {
		cur[i] = aggEl{r: snap[i], lo: i, hi: i + 1}
	}
	count := len(cur)
	for _, lv := range aggLevels {
		if count <= target {
			break
		}
		type run struct{ a, b int } // cur[a:b], same network at this level
		var runs []run
		for a := 0; a < len(cur); {
			bits := lv[cur[a].r.key.family()]
			if bits == 0 || int(cur[a].r.key.bits) < bits {
				a++
				continue
			}
			k := cur[a].r.key.masked(bits)
			b := a + 1
			for b < len(cur) && cur[b].r.key.v4 == k.v4 && int(cur[b].r.key.bits) >= bits && cur[b].r.key.masked(bits) == k {
				b++
			}
			if b-a >= 2 {
				runs = append(runs, run{a, b})
			}
			a = b
		}
		slices.SortStableFunc(runs, func(x, y run) int { return cmp.Compare(y.b-y.a, x.b-x.a) })
		take := map[int]int{} // run start -> end, for the runs merged
		for _, rn := range runs {
			if count <= target {
				break
			}
			k := cur[rn.a].r.key.masked(lv[cur[rn.a].r.key.family()])
			p := k.prefix()
			if m.Check(p) != nil || m.exempt(jail, p) {
				continue
			}
			take[rn.a] = rn.b
			count -= rn.b - rn.a - 1
		}
		if len(take) == 0 {
			continue
		}
		next := make([]aggEl, 0, count)
		for a := 0; a < len(cur); {
			b, ok := take[a]
			if !ok {
				next = append(next, cur[a])
				a++
				continue
			}
			k := cur[a].r.key.masked(lv[cur[a].r.key.family()])
			el := aggEl{r: rec{key: k, start: now.UnixNano(), heap: -1}, lo: cur[a].lo, hi: cur[b-1].hi, merged: true}
			perm := false
			for _, c := range cur[a:b] {
				perm = perm || c.r.permanent()
				el.r.expires = max(el.r.expires, c.r.expires)
				el.r.offence = max(el.r.offence, c.r.offence)
			}
			if perm {
				el.r.expires = 0
			}
			next = append(next, el)
			a = b
		}
		cur = next
	}
	if count > target {
		// No neighbours left: lift the bans closest to their end.
		var timed []int
		for i := range cur {
			if !cur[i].r.permanent() {
				timed = append(timed, i)
			}
		}
		slices.SortFunc(timed, func(x, y int) int { return cmp.Compare(cur[x].r.expires, cur[y].r.expires) })
		drop := map[int]bool{}
		for _, i := range timed {
			if count <= target {
				break
			}
			drop[i] = true
			count--
			for j := cur[i].lo; j < cur[i].hi; j++ {
				evicted = append(evicted, j)
			}
		}
		rest := make([]aggEl, 0, len(cur)-len(drop))
		for i := range cur {
			if !drop[i] {
				rest = append(rest, cur[i])
			}
		}
		cur = rest
	}
	for _, el := range cur {
		if el.merged {
			aggs = append(aggs, el)
		}
	}
	return aggs, evicted
}

// applyBound carries out the plan: the aggregates are stored and enforced
// before the bans they replace are lifted, so no address is unblocked in
// between.
func (m *Manager) applyBound(ctx context.Context, jid uint16, jail string, snap []rec, aggs []aggEl, evicted []int, limit int, now time.Time) {
	if len(aggs) == 0 && len(evicted) == 0 {
		return
	}
	reason := fmt.Sprintf("aggregated: jail reached maxbans %d", limit)
	newKeys := map[bkey]bool{}
	aggBans := make([]store.Ban, len(aggs))
	aggFW := make([]firewall.Ban, len(aggs))
	for i := range aggs {
		r := &aggs[i].r
		newKeys[r.key] = true
		aggBans[i] = store.Ban{Jail: jail, Prefix: r.key.prefix(), Start: now, Expires: fromNano(r.expires), Reason: reason}
		aggFW[i] = firewall.Ban{Jail: jail, Prefix: r.key.prefix(), Expires: fromNano(r.expires)}
	}
	var gone []rec // bans lifted: replaced (not by an equal key) or evicted
	var goneAgg []bool
	for _, el := range aggs {
		for j := el.lo; j < el.hi; j++ {
			if !newKeys[snap[j].key] {
				gone = append(gone, snap[j])
				goneAgg = append(goneAgg, true)
			}
		}
	}
	for _, j := range evicted {
		gone = append(gone, snap[j])
		goneAgg = append(goneAgg, false)
	}

	// Store: the aggregates (a new offence each), then the deletions.
	m.mu.Lock()
	down := m.storeDown(now)
	m.mu.Unlock()
	delKeys := make([]store.BanKey, len(gone))
	fwGone := make([]firewall.Ban, len(gone))
	for i := range gone {
		p := gone[i].key.prefix()
		delKeys[i] = store.BanKey{Jail: jail, Prefix: p}
		fwGone[i] = firewall.Ban{Jail: jail, Prefix: p}
	}
	var addErr, delErr error
	switch {
	case m.notStored(jail): // another component keeps the jail's bans
	case down:
		addErr, delErr = errStoreDown, errStoreDown
	default:
		if len(aggBans) > 0 {
			addErr = m.store.AddBans(aggBans)
		}
		if addErr != nil {
			delErr = errStoreDown
		} else if len(delKeys) > 0 {
			delErr = m.store.DeleteBans(delKeys)
		}
	}

	var ferr error
	if len(aggFW) > 0 {
		ferr = m.backend.Add(ctx, aggFW)
	}
	if ferr == nil && len(fwGone) > 0 {
		if err := m.backend.Remove(ctx, fwGone); err != nil {
			m.log.Error("firewall refused lifting bans replaced by aggregates; reconcile will retry", "count", len(fwGone), "err", err)
		}
	}

	m.mu.Lock()
	evs := make([]Event, 0, len(aggs)+len(gone))
	for i := range gone {
		if r, ok := m.t.drop(gone[i].key); ok {
			m.keepOffence(&r)
			m.t.jails[r.key.jail].unbans++
		}
		if delErr != nil {
			m.pendingDel[delKeys[i]] = struct{}{}
		}
	}
	merged, lifted := 0, 0
	for i := range aggs {
		r := aggs[i].r
		r.reason = m.t.reasonID(reason)
		if addErr == nil {
			r.offence = uint32(max(aggBans[i].Offence, 1)) // 0: not stored
		} else {
			r.flags |= fUnsaved | fNewOffence
		}
		if ferr == nil {
			r.flags |= fEnforced
		}
		delete(m.pendingDel, store.BanKey{Jail: jail, Prefix: r.key.prefix()})
		m.t.put(r)
		e := m.t.entry(&r)
		e.Reason = reason
		n := aggs[i].hi - aggs[i].lo
		merged += n
		m.stats.Bans++
		evs = append(evs, Event{Kind: EventBan, Entry: e, Aggregated: n, Time: now})
	}
	for i := range gone {
		cause := CauseAggregated
		if !goneAgg[i] {
			cause = CauseEvicted
			lifted++
		}
		evs = append(evs, Event{Kind: EventUnban, Entry: m.t.entry(&gone[i]), Cause: cause, Time: now})
	}
	m.stats.Aggregated += uint64(merged)
	m.stats.Evicted += uint64(lifted)
	m.stats.Unbans += uint64(len(gone))
	for _, err := range []error{addErr, delErr} {
		switch {
		case err == nil:
		case err == errStoreDown:
			m.markDirty()
		default:
			m.storeFailed(err, now)
		}
	}
	active := m.t.jails[jid].active
	m.mu.Unlock()
	m.poke()
	m.log.Warn("jail reached its maxbans bound: neighbouring bans merged into network bans",
		"jail", jail, "maxbans", limit, "merged", merged, "networks", len(aggs), "lifted_early", lifted, "active", active)
	for _, ev := range evs {
		verb := "Ban"
		if ev.Kind == EventUnban {
			verb = "Unban"
		}
		m.writeLog(now, jail, verb, ev.Entry.Prefix)
	}
	if ferr != nil {
		m.log.Error("firewall refused aggregate bans; they are kept and will be retried", "count", len(aggFW), "err", ferr)
	}
	m.emit(evs...)
}
