package jail

import (
	"net/netip"
	"time"
)

type failRec struct {
	t     int64 // unix nanoseconds of the failure
	regex int32
}

// ring keeps the last values pushed, up to a capacity; its storage grows
// as needed up to the capacity, then overwrites the oldest.
type ring[T any] struct {
	buf     []T
	head, n int
}

func (r *ring[T]) push(v T, capacity int) {
	if r.n < capacity {
		if r.head+r.n < len(r.buf) {
			r.buf[r.head+r.n] = v
		} else if r.head == 0 {
			r.buf = append(r.buf, v)
		} else {
			r.buf[(r.head+r.n)%len(r.buf)] = v
		}
		r.n++
		return
	}
	r.buf[r.head] = v
	r.head = (r.head + 1) % len(r.buf)
}

// at is the i-th value, oldest first.
func (r *ring[T]) at(i int) T { return r.buf[(r.head+i)%len(r.buf)] }

// list returns the values, oldest first (nil when empty).
func (r *ring[T]) list() []T {
	if r.n == 0 {
		return nil
	}
	out := make([]T, r.n)
	for i := range out {
		out[i] = r.at(i)
	}
	return out
}

// entry is one address (or aggregate network) in the failure table: an
// address with failures counted towards a ban. A ban removes the entry
// (its failures are spent, as in fail2ban); the ban manager then holds
// the ban, and the jail's recent list its last decisions (see recentBans).
type entry struct {
	key        netip.Prefix
	addr       netip.Addr    // the latest address seen for key
	recs       ring[failRec] // capacity MaxRetry
	matches    ring[string]  // capacity MaxMatches
	lastSeen   int64         // observation time (now), orders the LRU list
	histLoaded bool          // prevBans is known
	prevBans   int
	lastBan    int64 // when the key's last ban began: earlier failures do not count
	prev, next *entry
}

// table is the bounded failure table: a map and a least-recently-seen
// list (guarded by Jail.mu).
type table struct {
	entries    map[netip.Prefix]*entry
	head, tail *entry // most / least recently seen
	max        int
}

func (t *table) init(max int) {
	t.entries = map[netip.Prefix]*entry{}
	t.max = max
}

func (e *entry) push(r failRec, capacity int)     { e.recs.push(r, capacity) }
func (e *entry) pushMatch(m string, capacity int) { e.matches.push(m, capacity) }

func (e *entry) countSince(t int64) int {
	c := 0
	for i := 0; i < e.recs.n; i++ {
		if e.recs.at(i).t > t {
			c++
		}
	}
	return c
}

func (e *entry) records() []failRec  { return e.recs.list() }
func (e *entry) matchList() []string { return e.matches.list() }

// newEntry adds key, evicting the least recently seen entry when the
// table is full (returned).
func (t *table) newEntry(key netip.Prefix, now time.Time) (e, evicted *entry) {
	if len(t.entries) >= t.max {
		evicted = t.tail
		t.unlink(evicted)
	}
	e = &entry{key: key}
	t.entries[key] = e
	t.pushFront(e, now)
	return e, evicted
}

func (t *table) pushFront(e *entry, now time.Time) {
	e.lastSeen = now.UnixNano()
	e.prev, e.next = nil, t.head
	if t.head != nil {
		t.head.prev = e
	}
	t.head = e
	if t.tail == nil {
		t.tail = e
	}
}

func (t *table) touch(e *entry, now time.Time) {
	if t.head == e {
		e.lastSeen = now.UnixNano()
		return
	}
	t.detach(e)
	t.pushFront(e, now)
}

func (t *table) detach(e *entry) {
	if e.prev != nil {
		e.prev.next = e.next
	} else {
		t.head = e.next
	}
	if e.next != nil {
		e.next.prev = e.prev
	} else {
		t.tail = e.prev
	}
	e.prev, e.next = nil, nil
}

func (t *table) unlink(e *entry) {
	if e == nil {
		return
	}
	t.detach(e)
	delete(t.entries, e.key)
}

// purge drops a few entries not seen for longer than findtime (their
// failures no longer count), least recently seen first.
func (j *Jail) purge(now time.Time) {
	limit := now.Add(-j.cfg.FindTime).UnixNano()
	for i := 0; i < purgePerObserve && j.tail != nil && j.tail.lastSeen < limit; i++ {
		j.unlink(j.tail)
	}
}

// recentMax is how many of its latest ban decisions a jail remembers
// itself. A decision reaches the ban manager a little later (the ban
// queue of internal/pipeline holds up to 4096 decisions while a batch of
// up to 4096 is carried out); until then the manager cannot answer for
// it, so the jail must. Older decisions are the manager's to answer
// (Deps.Bans) and the offence history's (Deps.History).
const recentMax = 8192

// recentBan is one of the latest ban decisions.
type recentBan struct {
	key     netip.Prefix
	at      int64 // time of the failure that led to the ban (unix ns)
	offence int32 // the ban's offence number
}

// recentBans is a jail's latest ban decisions, oldest overwritten first
// (guarded by Jail.mu): a fixed ring and an index into it.
type recentBans struct {
	ring []recentBan
	next int
	idx  map[netip.Prefix]int32
}

func (r *recentBans) add(b recentBan) {
	if r.idx == nil {
		r.idx = map[netip.Prefix]int32{}
	}
	if i, ok := r.idx[b.key]; ok {
		r.ring[i] = b
		return
	}
	if len(r.ring) < recentMax {
		r.ring = append(r.ring, b)
		r.idx[b.key] = int32(len(r.ring) - 1)
		return
	}
	old := r.ring[r.next]
	if i, ok := r.idx[old.key]; ok && int(i) == r.next {
		delete(r.idx, old.key)
	}
	r.ring[r.next] = b
	r.idx[b.key] = int32(r.next)
	r.next = (r.next + 1) % recentMax
}

func (r *recentBans) get(k netip.Prefix) (recentBan, bool) {
	if i, ok := r.idx[k]; ok {
		return r.ring[i], true
	}
	return recentBan{}, false
}

// forget drops k's decision (its slot stays until overwritten).
func (r *recentBans) forget(k netip.Prefix) {
	if i, ok := r.idx[k]; ok {
		r.ring[i].key = netip.Prefix{}
		delete(r.idx, k)
	}
}
