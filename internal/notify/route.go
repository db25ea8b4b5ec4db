package notify

import (
	"context"
	"net/netip"
	"sort"
	"time"
)

// maxItems is how many events a message details; the rest are counted.
const maxItems = 20

// alertWait is the longest a health or lifecycle event waits for others
// to share its message.
const alertWait = time.Second

// maxDigestAddrs bounds the addresses a digest counts one by one.
const maxDigestAddrs = 10000

// outbox is how many finished messages may wait for the sink; beyond
// that, batches keep growing instead (nothing is lost, totals stay).
const outbox = 2

type route struct {
	n    *Notifier
	cfg  RouteConfig
	sink Sink
	jail map[string]bool
	in   chan Event
	out  chan *Report
	// room is signalled by the deliverer when it takes a report from out.
	room chan struct{}
	counters

	// accumulator state (its goroutine only)
	bans   *batch
	alerts *batch
	sends  []time.Time // ban messages sent within the last hour
	digest *digestAcc
	nextDg time.Time
}

func newRoute(n *Notifier, cfg RouteConfig, s Sink) *route {
	r := &route{n: n, cfg: cfg, sink: s, in: make(chan Event, cfg.Queue), out: make(chan *Report, outbox), room: make(chan struct{}, 1)}
	if len(cfg.Jails) > 0 {
		r.jail = map[string]bool{}
		for _, j := range cfg.Jails {
			r.jail[j] = true
		}
	}
	return r
}

func (r *route) forJail(j string) bool { return r.jail == nil || j == "" || r.jail[j] }

// takes reports whether the route wants ev (for its messages or its
// digest).
func (r *route) takes(ev Event) bool {
	if ev.Kind == KindStart || ev.Kind == KindStop {
		return r.cfg.Events.wants(ev)
	}
	if !r.forJail(ev.Jail) {
		return false
	}
	if r.cfg.Digest != nil && (ev.Kind == KindBan || ev.Kind == KindUnban) {
		return true
	}
	return r.cfg.Events.wants(ev)
}

// accumulate folds events into batches and hands finished batches to the
// deliverer, until the queue is closed.
func (r *route) accumulate() {
	defer close(r.out)
	now := time.Now()
	if r.cfg.Digest != nil {
		r.digest = newDigest(now)
		r.nextDg = nextDigest(now, *r.cfg.Digest, r.n.loc)
	}
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		timer.Stop()
		var wake <-chan time.Time
		if d, ok := r.nextWake(time.Now()); ok {
			timer.Reset(max(d, 0))
			wake = timer.C
		}
		select {
		case ev, ok := <-r.in:
			if !ok {
				r.drain()
				return
			}
			r.add(ev)
		case <-wake:
		case <-r.room:
		case <-r.n.ctx.Done():
			r.drain()
			return
		}
		r.flush(time.Now(), false)
	}
}

func (r *route) add(ev Event) {
	if r.digest != nil && (ev.Kind == KindBan || ev.Kind == KindUnban) {
		r.digest.add(ev)
	}
	if !r.cfg.Events.wants(ev) {
		return
	}
	r.pending.Add(1)
	switch ev.Kind {
	case KindBan, KindUnban:
		if r.bans == nil {
			r.bans = newBatch(ev.Time)
		}
		r.bans.add(ev)
	default:
		if r.alerts == nil {
			r.alerts = newBatch(ev.Time)
		}
		r.alerts.add(ev)
	}
}

// nextWake is how long until the accumulator must look again. While
// the outbox is full nothing can be handed over: it then waits for room
// (or new events) instead.
func (r *route) nextWake(now time.Time) (time.Duration, bool) {
	if len(r.out) == cap(r.out) {
		return 0, false
	}
	var at time.Time
	consider := func(t time.Time) {
		if at.IsZero() || t.Before(at) {
			at = t
		}
	}
	if r.alerts != nil {
		consider(r.alerts.opened.Add(min(r.cfg.GroupWait, alertWait)))
	}
	if r.bans != nil {
		t := r.bans.opened.Add(r.cfg.GroupWait)
		if slot := r.slot(now); slot.After(t) {
			t = slot
		}
		consider(t)
	}
	if r.digest != nil {
		consider(r.nextDg)
	}
	if at.IsZero() {
		return 0, false
	}
	return at.Sub(now), true
}

// slot is when the hourly cap next allows a ban message.
func (r *route) slot(now time.Time) time.Time {
	cut := now.Add(-time.Hour)
	i := 0
	for i < len(r.sends) && !r.sends[i].After(cut) {
		i++
	}
	r.sends = r.sends[i:]
	if r.cfg.MaxPerHour <= 0 || len(r.sends) < r.cfg.MaxPerHour {
		return now
	}
	return r.sends[len(r.sends)-r.cfg.MaxPerHour].Add(time.Hour)
}

// flush hands due batches to the deliverer; final (shutdown) sends
// everything pending, waiting for room.
func (r *route) flush(now time.Time, final bool) {
	hand := func(rep *Report) bool {
		if final {
			select {
			case r.out <- rep:
				return true
			case <-r.n.ctx.Done():
				return false
			}
		}
		select {
		case r.out <- rep:
			return true
		default:
			return false
		}
	}
	if b := r.alerts; b != nil && (final || !now.Before(b.opened.Add(min(r.cfg.GroupWait, alertWait)))) {
		if hand(r.report(b, ReportEvents, now)) {
			r.pending.Add(-int64(b.total))
			r.alerts = nil
		}
	}
	if b := r.bans; b != nil && (final || !now.Before(b.opened.Add(r.cfg.GroupWait)) && !r.slot(now).After(now)) {
		if hand(r.report(b, ReportEvents, now)) {
			r.pending.Add(-int64(b.total))
			r.bans = nil
			r.sends = append(r.sends, now)
		}
	}
	if r.digest != nil && !now.Before(r.nextDg) && !final {
		// A busy sink delays the digest until there is room.
		if hand(r.digestReport(now)) {
			r.digest = newDigest(now)
			r.nextDg = nextDigest(now, *r.cfg.Digest, r.n.loc)
		}
	}
}

// drain sends what is pending at shutdown; what cannot be handed over is
// counted as dropped.
func (r *route) drain() {
	for ev := range r.in {
		r.add(ev)
	}
	r.flush(time.Now(), true)
	for _, b := range []*batch{r.alerts, r.bans} {
		if b != nil {
			r.dropped.Add(uint64(b.total))
			r.pending.Add(-int64(b.total))
		}
	}
	r.alerts, r.bans = nil, nil
}

// deliver sends finished reports, one at a time, with retries.
func (r *route) deliver() {
	for rep := range r.out {
		select {
		case r.room <- struct{}{}:
		default:
		}
		err := r.sendRetry(rep)
		if err != nil {
			r.failed.Add(1)
			r.dropped.Add(uint64(rep.Total))
			msg := err.Error()
			r.lastErr.Store(&msg)
			r.n.log.Warn("notification not delivered", "route", r.cfg.Name, "type", r.cfg.Type, "target", r.sink.Target(), "events", rep.Total, "err", err)
			continue
		}
		r.sent.Add(1)
		r.lastErr.Store(nil)
	}
}

func (r *route) sendRetry(rep *Report) error {
	var err error
	backoff := time.Second
	for attempt := 0; attempt <= r.cfg.Retries; attempt++ {
		if attempt > 0 {
			select {
			case <-time.After(backoff):
			case <-r.n.ctx.Done():
				return err
			}
			backoff *= 2
		}
		if err = r.sendOnce(r.n.ctx, rep); err == nil {
			return nil
		}
		if r.n.ctx.Err() != nil {
			return err
		}
	}
	return err
}

func (r *route) sendOnce(ctx context.Context, rep *Report) error {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
	defer cancel()
	return r.sink.Send(ctx, rep)
}

// batch is a bounded summary of events: counts, per-jail totals and the
// first maxItems events in detail.
type batch struct {
	opened      time.Time
	first, last time.Time
	total       int
	counts      Counts
	jails       map[string]*JailCount
	items       []Event
	omitted     int
}

func newBatch(now time.Time) *batch {
	return &batch{opened: now, jails: map[string]*JailCount{}}
}

func (b *batch) add(ev Event) {
	if b.total == 0 || ev.Time.Before(b.first) {
		b.first = ev.Time
	}
	if ev.Time.After(b.last) {
		b.last = ev.Time
	}
	b.total++
	b.counts.add(ev)
	if ev.Jail != "" && (ev.Kind == KindBan || ev.Kind == KindUnban) {
		countJail(b.jails, ev)
	}
	if len(b.items) < maxItems {
		b.items = append(b.items, ev)
	} else {
		b.omitted++
	}
}

// countJail counts a ban or unban in its jail's entry of m.
func countJail(m map[string]*JailCount, ev Event) {
	jc := m[ev.Jail]
	if jc == nil {
		jc = &JailCount{Jail: ev.Jail}
		m[ev.Jail] = jc
	}
	if ev.Kind == KindBan {
		jc.Bans++
	} else {
		jc.Unbans++
	}
}

// jailList returns m's counts sorted by jail.
func jailList(m map[string]*JailCount) []JailCount {
	out := make([]JailCount, 0, len(m))
	for _, jc := range m {
		out = append(out, *jc)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Jail < out[j].Jail })
	return out
}

// digestAcc counts a day of bans for the digest.
type digestAcc struct {
	since        time.Time
	bans, unbans int
	jails        map[string]*JailCount
	// addrs counts bans per address, for at most maxDigestAddrs of them.
	addrs map[netip.Prefix]int
}

func newDigest(now time.Time) *digestAcc {
	return &digestAcc{since: now, jails: map[string]*JailCount{}, addrs: map[netip.Prefix]int{}}
}

func (d *digestAcc) add(ev Event) {
	countJail(d.jails, ev)
	if ev.Kind == KindUnban {
		d.unbans++
		return
	}
	d.bans++
	if _, ok := d.addrs[ev.Prefix]; ok || len(d.addrs) < maxDigestAddrs {
		d.addrs[ev.Prefix]++
	}
}

// nextDigest is the next time of day d strictly after now.
func nextDigest(now time.Time, d Digest, loc *time.Location) time.Time {
	l := now.In(loc)
	t := time.Date(l.Year(), l.Month(), l.Day(), d.Hour, d.Minute, 0, 0, loc)
	if !t.After(now) {
		t = time.Date(l.Year(), l.Month(), l.Day()+1, d.Hour, d.Minute, 0, 0, loc)
	}
	return t
}
