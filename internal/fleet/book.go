package fleet

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/palisade-project/palisade/internal/control"
)

// Caps bound what one origin can make this server enforce. Zero fields
// mean "no cap" (Prefix4/Prefix6: the defaults).
type Caps struct {
	// Rate is the most bans one origin may issue per minute (by their
	// issue time, so a replay of old bans is not refused); the rest of
	// that minute's bans are refused.
	Rate int
	// Active is the most bans of one origin in force here at once.
	Active int
	// TTL is the longest a remote ban is enforced here (a longer or
	// permanent one is shortened to it).
	TTL time.Duration
	// Prefix4 and Prefix6 are the widest prefixes applied (default /24
	// and /48): a wider network ban is refused.
	Prefix4, Prefix6 int
}

// Default caps.
const (
	DefaultRate    = 600
	DefaultActive  = 50000
	DefaultTTL     = 7 * 24 * time.Hour
	DefaultPrefix4 = 24
	DefaultPrefix6 = 48
	// MaxSkew is how far in the future a record's issue time may be.
	MaxSkew = 5 * time.Minute
	// tombstoneLife is how long a tombstone of a permanent ban is kept.
	tombstoneLife = 7 * 24 * time.Hour
)

// Policy is what a server applies.
type Policy struct {
	// Self is this server's origin name: its own records are never
	// applied here.
	Self string
	// Apply says whether bans of an origin's jail are applied (nil: all).
	Apply func(jail string) bool
	// Quorum is the number of distinct origins that must ban an address
	// before it is banned here (default 1).
	Quorum int
	Caps   Caps
	// Exempt says why a prefix must never be banned here (ignoreip of a
	// local jail, the host's own addresses, the admin's session); ok
	// false when it may be.
	Exempt func(p netip.Prefix) (why string, exempt bool)
}

func (p *Policy) norm() {
	if p.Quorum < 1 {
		p.Quorum = 1
	}
	if p.Caps.Prefix4 <= 0 {
		p.Caps.Prefix4 = DefaultPrefix4
	}
	if p.Caps.Prefix6 <= 0 {
		p.Caps.Prefix6 = DefaultPrefix6
	}
}

type okey struct {
	origin string
	prefix netip.Prefix
}

func (k okey) String() string { return k.origin + " " + k.prefix.String() }

func parseOKey(s string) (okey, bool) {
	o, ps, ok := strings.Cut(s, " ")
	p, err := netip.ParsePrefix(ps)
	if !ok || err != nil || !ValidName(o) {
		return okey{}, false
	}
	return okey{o, p}, true
}

// entry is the latest record of one origin for one prefix.
type entry struct {
	Rec Record `json:"rec"`
	// Refused is the policy's refusal ("" when eligible).
	Refused string `json:"refused,omitempty"`
	// Detail says more about a refusal (the exempting rule).
	Detail string `json:"detail,omitempty"`
	// Until is when the record stops counting here: its expiry shortened
	// to the TTL cap (and a tombstone's life).
	Until    time.Time `json:"until"`
	Received time.Time `json:"received"`
	// Lifted: an admin unbanned the prefix here; the record is not
	// applied again until a newer one arrives.
	Lifted bool `json:"lifted,omitempty"`
	gen    uint64
}

func (e *entry) eligible(now time.Time) bool {
	return e.Rec.Kind == KindBan && e.Refused == "" && !e.Lifted && (e.Until.IsZero() || e.Until.After(now))
}

// originStats are one origin's counters.
type originStats struct {
	received, applied uint64
	refused           map[string]uint64
	active            int
	lastSeen          time.Time
	lastSeq           uint64
	minutes           map[int64]int // bans by issue minute (rate cap)
}

// applied is what the book put into the ban manager for a prefix.
type applied struct {
	until time.Time
}

// Change is one thing the ban manager must do.
type Change struct {
	Prefix netip.Prefix
	// Ban: ban for Duration (Lift first when Shorten); otherwise lift.
	Ban     bool
	Shorten bool
	// Duration is the ban length (ban manager semantics: negative is
	// permanent).
	Duration time.Duration
	Reason   string
}

// slot is what the book knows of one prefix.
type slot struct {
	// entries are the origins' latest records, at most one per origin,
	// ordered by origin.
	entries []*entry
	// applied is what the book put into the ban manager (when have).
	applied applied
	have    bool
	// one holds the entries of a prefix with one origin (most of them).
	one [1]*entry
}

func newSlot() *slot {
	s := &slot{}
	s.entries = s.one[:0]
	return s
}

// find returns the index of origin o's entry in s, or where it belongs.
func (s *slot) find(o string) (int, bool) {
	return slices.BinarySearchFunc(s.entries, o, func(e *entry, o string) int { return strings.Compare(e.Rec.Origin, o) })
}

// get returns origin o's entry (nil when none).
func (s *slot) get(o string) *entry {
	if s == nil {
		return nil
	}
	if i, ok := s.find(o); ok {
		return s.entries[i]
	}
	return nil
}

// book holds every origin's latest record per prefix and decides what is
// enforced. It is not safe for concurrent use (the node's applier owns it).
// One index, by prefix, serves both the records (a prefix has few
// origins) and what is enforced: a record received costs one lookup in
// it, not one per index.
type book struct {
	pol   Policy
	slots map[netip.Prefix]*slot
	// entries and enforced count the records and the prefixes applied.
	entries, enforced int
	origins           map[string]*originStats
	// dirty entries must be saved (nil: deleted); junk are stored keys
	// that could not be read, deleted by the next save.
	dirty   map[okey]*entry
	junk    []string
	touched map[netip.Prefix]bool
	refused map[string]uint64
	// ownSeen are this server's own records seen on the stream (prefix →
	// record), for republishing what the stream lost.
	ownSeen map[netip.Prefix]Record
}

func newBook(pol Policy) *book {
	pol.norm()
	return &book{pol: pol, slots: map[netip.Prefix]*slot{}, origins: map[string]*originStats{}, dirty: map[okey]*entry{},
		touched: map[netip.Prefix]bool{}, refused: map[string]uint64{}, ownSeen: map[netip.Prefix]Record{}}
}

// maxReserve bounds what a replay's message count makes the book set
// aside (the stream's count is the fleet's, not a bound of this server).
const maxReserve = 250_000

// reserve makes room for n records before a replay of n messages, so
// that the index is not grown and copied step by step as it arrives.
func (b *book) reserve(n int) {
	n = min(n, maxReserve)
	if n <= 2*len(b.slots) {
		return
	}
	slots := make(map[netip.Prefix]*slot, n)
	for p, s := range b.slots {
		slots[p] = s
	}
	b.slots = slots
}

// each calls fn for every entry. fn may replace or delete the entry it
// is given (and no other).
func (b *book) each(fn func(k okey, e *entry)) {
	for p, s := range b.slots {
		// Backwards: deleting entry i moves only those already seen.
		for i := len(s.entries) - 1; i >= 0; i-- {
			e := s.entries[i]
			fn(okey{e.Rec.Origin, p}, e)
		}
	}
}

// resetMap empties m for reuse, or returns a new map when m held many
// keys (a map keeps the room it once needed).
func resetMap[K comparable, V any](m map[K]V) map[K]V {
	if len(m) > 4*maxBatch {
		return map[K]V{}
	}
	clear(m)
	return m
}

func (b *book) origin(name string) *originStats {
	o := b.origins[name]
	if o == nil {
		o = &originStats{refused: map[string]uint64{}, minutes: map[int64]int{}}
		b.origins[name] = o
	}
	return o
}

func (b *book) refuse(origin, reason string) {
	b.refused[reason]++
	if origin != "" && ValidName(origin) {
		b.origin(origin).refused[reason]++
	}
}

// put stores e under k, keeping the index and counters right.
func (b *book) put(k okey, e *entry) { b.putIn(b.slots[k.prefix], k, e) }

// putIn is put with k's slot (nil when there is none yet).
func (b *book) putIn(s *slot, k okey, e *entry) {
	if s == nil {
		s = newSlot()
		b.slots[k.prefix] = s
	}
	if i, ok := s.find(k.origin); ok {
		if s.entries[i].eligibleCounted() {
			b.origin(k.origin).active--
		}
		s.entries[i] = e
	} else {
		s.entries = slices.Insert(s.entries, i, e)
		b.entries++
	}
	if e.eligibleCounted() {
		b.origin(k.origin).active++
	}
	b.dirty[k] = e
	b.touched[k.prefix] = true
}

// eligibleCounted: the entry counts against the origin's active cap.
func (e *entry) eligibleCounted() bool { return e.Rec.Kind == KindBan && e.Refused == "" }

func (b *book) del(k okey) {
	s := b.slots[k.prefix]
	if s == nil {
		return
	}
	i, ok := s.find(k.origin)
	if !ok {
		return
	}
	if s.entries[i].eligibleCounted() {
		b.origin(k.origin).active--
	}
	s.entries = slices.Delete(s.entries, i, i+1)
	b.entries--
	b.dropIfEmpty(k.prefix, s)
	b.dirty[k] = nil
	b.touched[k.prefix] = true
}

// dropIfEmpty forgets p's slot when it holds nothing.
func (b *book) dropIfEmpty(p netip.Prefix, s *slot) {
	if len(s.entries) == 0 && !s.have {
		delete(b.slots, p)
	}
}

// setApplied records what the ban manager holds for p (have false: nothing).
func (b *book) setApplied(p netip.Prefix, s *slot, a applied, have bool) {
	if s == nil {
		if !have {
			return
		}
		s = newSlot()
		b.slots[p] = s
	}
	switch {
	case have && !s.have:
		b.enforced++
	case !have && s.have:
		b.enforced--
	}
	s.applied, s.have = a, have
	if !have {
		b.dropIfEmpty(p, s)
	}
}

// restoreApplied records a ban the ban manager already holds (at start)
// and has it checked by the next changes.
func (b *book) restoreApplied(p netip.Prefix, until time.Time) {
	b.setApplied(p, b.slots[p], applied{until: until}, true)
	b.touched[p] = true
}

// touchAll has every prefix checked by the next changes.
func (b *book) touchAll() {
	for p := range b.slots {
		b.touched[p] = true
	}
}

// receive applies one verified message seen in replay generation gen.
func (b *book) receive(v Verified, gen uint64, now time.Time) {
	r := v.Record
	if v.Refused != "" {
		b.refuse(r.Origin, v.Refused)
		return
	}
	if r.Origin == b.pol.Self {
		if r.Kind == KindBan {
			b.ownSeen[r.Prefix] = r
		} else {
			delete(b.ownSeen, r.Prefix)
		}
		return
	}
	o := b.origin(r.Origin)
	o.lastSeen = now
	o.lastSeq = max(o.lastSeq, r.Seq)
	k := okey{r.Origin, r.Prefix}
	sl := b.slots[k.prefix]
	old := sl.get(k.origin)
	if old != nil {
		switch {
		case old.Rec.Seq == r.Seq:
			old.gen = gen // seen again (a replay)
			return
		case old.Rec.Seq > r.Seq:
			b.refuse(r.Origin, RefuseStale)
			return
		}
	}
	o.received++
	if r.Kind == KindUnban {
		if old == nil {
			return // nothing of it here
		}
		until := r.Expires
		if r.Permanent() || until.Sub(now) > tombstoneLife {
			until = now.Add(tombstoneLife)
		}
		b.putIn(sl, k, &entry{Rec: r, Until: until, Received: now, gen: gen})
		return
	}
	e := &entry{Rec: r, Received: now, gen: gen}
	e.Until = r.Expires
	if ttl := b.pol.Caps.TTL; ttl > 0 && (r.Permanent() || r.Expires.Sub(now) > ttl) {
		e.Until = now.Add(ttl)
	}
	e.Refused, e.Detail = b.judge(r, old, now)
	if e.Refused != "" {
		b.refuse(r.Origin, e.Refused)
	} else {
		o.minutes[r.Issued.Unix()/60]++
	}
	if e.Refused == RefuseExpired || e.Refused == RefuseJail {
		// Nothing to keep: it can never apply here.
		if old != nil {
			b.del(k)
		}
		return
	}
	b.putIn(sl, k, e)
}

// judge returns why r must not be applied ("" when it may).
func (b *book) judge(r Record, old *entry, now time.Time) (string, string) {
	p := b.pol
	c := p.Caps
	switch {
	case !r.Permanent() && !r.Expires.After(now):
		return RefuseExpired, ""
	case r.Issued.After(now.Add(MaxSkew)):
		return RefuseFuture, fmt.Sprintf("issued %s, %s ahead of this clock", r.Issued.UTC().Format(time.RFC3339), r.Issued.Sub(now).Round(time.Second))
	case p.Apply != nil && !p.Apply(r.Jail):
		return RefuseJail, ""
	case r.Prefix.Addr().Is4() && r.Prefix.Bits() < c.Prefix4:
		return RefusePrefix, fmt.Sprintf("/%d is wider than /%d", r.Prefix.Bits(), c.Prefix4)
	case r.Prefix.Addr().Is6() && r.Prefix.Bits() < c.Prefix6:
		return RefusePrefix, fmt.Sprintf("/%d is wider than /%d", r.Prefix.Bits(), c.Prefix6)
	}
	if p.Exempt != nil {
		if why, ok := p.Exempt(r.Prefix); ok {
			return RefuseExempt, why
		}
	}
	o := b.origin(r.Origin)
	replaces := old != nil && old.eligibleCounted()
	if c.Active > 0 && !replaces && o.active >= c.Active {
		return RefuseActive, fmt.Sprintf("%s already has %d bans in force here", r.Origin, o.active)
	}
	if c.Rate > 0 && !replaces && o.minutes[r.Issued.Unix()/60] >= c.Rate {
		return RefuseRate, fmt.Sprintf("more than %d bans issued by %s in one minute", c.Rate, r.Origin)
	}
	return "", ""
}

// want is the ban a prefix (its slot) should have here: the quorum-th longest of
// the eligible records (zero until: permanent).
func (b *book) want(s *slot, now time.Time) (until time.Time, ok bool, who []*entry) {
	if s == nil {
		return time.Time{}, false, nil
	}
	var buf [4]time.Time
	ups := buf[:0]
	for _, e := range s.entries {
		if e.eligible(now) {
			ups = append(ups, e.Until)
			who = append(who, e)
		}
	}
	if len(ups) < b.pol.Quorum {
		return time.Time{}, false, who
	}
	// Longest first; zero (permanent) is the longest.
	slices.SortFunc(ups, func(x, y time.Time) int {
		switch {
		case x.IsZero() != y.IsZero():
			if x.IsZero() {
				return -1
			}
			return 1
		case x.IsZero():
			return 0
		}
		return y.Compare(x)
	})
	return ups[b.pol.Quorum-1], true, who
}

// changes computes the ban manager work for every touched prefix and
// records the result as applied (the caller reports failures back).
func (b *book) changes(now time.Time) []Change {
	var out []Change
	ps := make([]netip.Prefix, 0, len(b.touched))
	for p := range b.touched {
		ps = append(ps, p)
	}
	b.touched = resetMap(b.touched)
	slices.SortFunc(ps, func(x, y netip.Prefix) int { return x.Addr().Compare(y.Addr()) })
	for _, p := range ps {
		s := b.slots[p]
		until, ok, who := b.want(s, now)
		have := s != nil && s.have
		switch {
		case !ok && have:
			b.setApplied(p, s, applied{}, false)
			out = append(out, Change{Prefix: p})
		case !ok:
		case !have || !until.Equal(s.applied.until):
			d := time.Duration(-1)
			if !until.IsZero() {
				if d = until.Sub(now); d <= 0 {
					break
				}
			}
			shorten := have && longer(s.applied.until, until)
			b.setApplied(p, s, applied{until: until}, true)
			if !have {
				for _, e := range who {
					b.origin(e.Rec.Origin).applied++
				}
			}
			out = append(out, Change{Prefix: p, Ban: true, Shorten: shorten, Duration: d, Reason: reasonOf(who)})
		}
	}
	return out
}

// longer reports whether a outlasts b (zero is permanent).
func longer(a, b time.Time) bool {
	if a.IsZero() {
		return !b.IsZero()
	}
	return !b.IsZero() && a.After(b)
}

func reasonOf(who []*entry) string {
	if len(who) == 1 { // the common case, in one allocation
		r := &who[0].Rec
		s := "fleet: " + r.Origin + "/" + r.Jail + ": " + r.Reason
		if r.Reason == "" {
			s = s[:len(s)-2]
		}
		return s[:min(len(s), 400)]
	}
	parts := make([]string, 0, len(who))
	for _, e := range who {
		parts = append(parts, e.Rec.Origin+"/"+e.Rec.Jail)
	}
	slices.Sort(parts)
	s := "fleet: " + strings.Join(parts, ", ")
	if len(s) > 400 {
		s = s[:400]
	}
	return s
}

// refusedByManager marks the records of p refused when the ban manager
// would not ban it (a protected address).
func (b *book) refusedByManager(p netip.Prefix, why string, now time.Time) {
	s := b.slots[p]
	if s == nil {
		return
	}
	b.setApplied(p, s, applied{}, false)
	for _, e := range slices.Clone(s.entries) {
		if !e.eligibleCounted() {
			continue
		}
		ne := *e
		ne.Refused, ne.Detail = RefuseExempt, why
		b.put(okey{e.Rec.Origin, p}, &ne)
		b.refuse(e.Rec.Origin, RefuseExempt)
	}
	delete(b.touched, p)
}

// liftedLocally records that an admin unbanned p in the fleet jail.
func (b *book) liftedLocally(p netip.Prefix) {
	s := b.slots[p]
	if s == nil {
		return
	}
	b.setApplied(p, s, applied{}, false)
	for _, e := range s.entries {
		if !e.Lifted {
			e.Lifted = true
			b.dirty[okey{e.Rec.Origin, p}] = e
		}
	}
}

// forgetUntrusted drops the records of origins no longer trusted.
func (b *book) forgetUntrusted(t *Trust) int {
	n := 0
	b.each(func(k okey, _ *entry) {
		if _, ok := t.Key(k.origin); !ok {
			b.del(k)
			n++
		}
	})
	for name := range b.origins {
		if _, ok := t.Key(name); !ok {
			delete(b.origins, name)
		}
	}
	return n
}

// reevaluate applies a changed policy (exemptions, jails, caps) to every
// record.
func (b *book) reevaluate(pol Policy, now time.Time) {
	pol.norm()
	b.pol = pol
	b.each(func(k okey, e *entry) {
		if e.Rec.Kind != KindBan {
			return
		}
		if why, ok := b.exemptNow(e.Rec); ok && e.Refused == "" {
			ne := *e
			ne.Refused, ne.Detail = RefuseExempt, why
			b.put(k, &ne)
		} else if !ok && e.Refused == RefuseExempt {
			ne := *e
			ne.Refused, ne.Detail = "", ""
			b.put(k, &ne)
		}
	})
}

func (b *book) exemptNow(r Record) (string, bool) {
	if b.pol.Apply != nil && !b.pol.Apply(r.Jail) {
		return "jail " + r.Jail + " is not applied here", true
	}
	if b.pol.Exempt != nil {
		return b.pol.Exempt(r.Prefix)
	}
	return "", false
}

// sweep drops records that stopped counting (expired) and, after a full
// replay of generation gen (gen > 0), records the stream no longer holds.
func (b *book) sweep(now time.Time, gen uint64) (expired, unseen int) {
	b.each(func(k okey, e *entry) {
		switch {
		case gen > 0 && e.gen != gen:
			b.del(k)
			unseen++
		case !e.Until.IsZero() && !e.Until.After(now):
			b.del(k)
			expired++
		}
	})
	for p, s := range b.slots {
		if s.have && !s.applied.until.IsZero() && !s.applied.until.After(now) {
			b.setApplied(p, s, applied{}, false) // the ban manager expired it
		}
	}
	if gen > 0 {
		for p, r := range b.ownSeen {
			if !r.Permanent() && !r.Expires.After(now) {
				delete(b.ownSeen, p)
			}
		}
	}
	for _, o := range b.origins {
		for m := range o.minutes {
			if now.Unix()/60-m > 24*60 {
				delete(o.minutes, m)
			}
		}
	}
	return expired, unseen
}

// saved is one dirty entry to write, copied out of the book.
type saved struct {
	k okey
	e entry
}

// save returns the dirty entries to put, the keys to delete and the
// unreadable stored keys to delete, and clears the dirty set.
func (b *book) save() (put []saved, del []okey, junk []string) {
	put = make([]saved, 0, len(b.dirty))
	for k, e := range b.dirty {
		if e != nil {
			put = append(put, saved{k, *e})
		} else {
			del = append(del, k)
		}
	}
	b.dirty = resetMap(b.dirty)
	junk, b.junk = b.junk, nil
	return put, del, junk
}

// encodeEntries is the stored form of saved entries (what load reads),
// by stored key.
func encodeEntries(put map[okey]entry) map[string][]byte {
	out := make(map[string][]byte, len(put))
	buf := make([]byte, 0, 128*len(put))
	for k, e := range put {
		s := len(buf)
		buf = appendEntry(buf, &e)
		out[k.String()] = buf[s:len(buf):len(buf)]
	}
	return out
}

// load restores persisted records (before any message); records of
// untrusted origins are dropped.
func (b *book) load(recs map[string][]byte, t *Trust, now time.Time) (bad int) {
	b.reserve(len(recs))
	for ks, v := range recs {
		k, ok := parseOKey(ks)
		e, err := decodeEntry(v)
		if !ok || err != nil || e.Rec.validate() != nil || e.Rec.Origin != k.origin || e.Rec.Prefix != k.prefix {
			bad++
			b.junk = append(b.junk, ks) // deleted by the next save
			continue
		}
		if _, trusted := t.Key(k.origin); !trusted {
			b.junk = append(b.junk, ks)
			continue
		}
		b.put(k, &e)
		o := b.origin(k.origin)
		o.lastSeq = max(o.lastSeq, e.Rec.Seq)
		if e.Refused == "" && e.Rec.Kind == KindBan {
			o.minutes[e.Rec.Issued.Unix()/60]++
		}
	}
	b.dirty = resetMap(b.dirty) // as stored (a small map again: each commit walks it)
	return bad
}

// Origin is one remote record behind (or refused for) a ban here: the
// control protocol's type, so banned and explain pass it on as it is.
// State is "applied", "quorum" (waiting for more origins), "lifted"
// (unbanned by an admin here), "unbanned" (a tombstone) or "refused".
type Origin = control.FleetOrigin

// explain lists the records of every prefix containing a.
func (b *book) explain(a netip.Addr, now time.Time) []Origin {
	var out []Origin
	for p, s := range b.slots {
		if !p.Contains(a) {
			continue
		}
		_, ok, _ := b.want(s, now)
		for _, e := range s.entries {
			v := Origin{Origin: e.Rec.Origin, Prefix: p.String(), Jail: e.Rec.Jail, Reason: e.Rec.Reason, Issued: e.Rec.Issued,
				Received: e.Received, Seq: e.Rec.Seq, Refused: e.Refused, Detail: e.Detail}
			if !e.Rec.Expires.IsZero() {
				t := e.Rec.Expires
				v.Expires = &t
			}
			if !e.Until.IsZero() {
				t := e.Until
				v.Until = &t
			}
			switch {
			case e.Rec.Kind == KindUnban:
				v.State = "unbanned"
			case e.Refused != "":
				v.State = "refused"
			case e.Lifted:
				v.State = "lifted"
			case ok:
				v.State = "applied"
			default:
				v.State = "quorum"
			}
			out = append(out, v)
		}
	}
	slices.SortFunc(out, func(x, y Origin) int { return strings.Compare(x.Origin, y.Origin) })
	return out
}
