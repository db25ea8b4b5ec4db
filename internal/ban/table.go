package ban

import (
	"bytes"
	"cmp"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// The active bans are held in a table built for hundreds of thousands of
// entries: fixed-size records without pointers (so the garbage collector
// never scans them) in one slice, an index from key to record, and an
// expiry heap of record numbers. Jail names and ban reasons are interned.
// A record costs about 100 bytes with its index entry; an Entry (strings,
// time.Time, netip.Prefix) would cost three times that plus a pointer
// chase per ban for every collection.

// bkey identifies a ban: its jail (interned) and its prefix. An IPv4
// prefix is held as its IPv4-mapped form with v4 set.
type bkey struct {
	addr [16]byte
	bits uint8
	v4   bool
	jail uint16
}

func makeKey(jail uint16, p netip.Prefix) bkey {
	return bkey{addr: p.Addr().As16(), bits: uint8(p.Bits()), v4: p.Addr().Is4(), jail: jail}
}

// prefix returns the key's prefix (normalised: IPv4 unmapped, masked).
func (k bkey) prefix() netip.Prefix {
	if k.v4 {
		return netip.PrefixFrom(netip.AddrFrom4([4]byte(k.addr[12:])), int(k.bits))
	}
	return netip.PrefixFrom(netip.AddrFrom16(k.addr), int(k.bits))
}

// family is 0 for IPv4, 1 for IPv6 (the order List sorts in).
func (k bkey) family() int {
	if k.v4 {
		return 0
	}
	return 1
}

// masked returns k with the address cut to bits (which must not exceed
// the key's own length) in the family's own bit numbering.
func (k bkey) masked(bits int) bkey {
	p := netip.PrefixFrom(k.prefix().Addr(), bits).Masked()
	return makeKey(k.jail, p)
}

// compareAddr orders keys by family, address, then prefix length.
func compareAddr(a, b bkey) int {
	if c := cmp.Compare(a.family(), b.family()); c != 0 {
		return c
	}
	if c := bytes.Compare(a.addr[:], b.addr[:]); c != 0 {
		return c
	}
	return cmp.Compare(a.bits, b.bits)
}

// record flags
const (
	fLive       uint8 = 1 << iota // the slot holds a ban
	fEnforced                     // the firewall accepted the ban
	fUnsaved                      // the store does not hold this state yet
	fNewOffence                   // the store's offence history has not counted it yet
)

// rec is one active ban.
type rec struct {
	key     bkey
	start   int64 // unix nanoseconds
	expires int64 // unix nanoseconds; 0 = permanent
	offence uint32
	reason  uint32 // index into table.reasons
	heap    int32  // position in the expiry heap; -1 when not in it
	origin  Origin
	flags   uint8
}

func (r *rec) permanent() bool { return r.expires == 0 }

// outlasts reports whether a ban ending at exp (0 = never) ends after r.
func outlasts(exp int64, r *rec) bool {
	return exp == 0 && r.expires != 0 || r.expires != 0 && exp > r.expires
}

// jailState is the per-jail part of the table.
type jailState struct {
	name   string
	active int
	made   uint64 // bans made since the manager started (not restored)
	unbans uint64 // bans lifted since the manager started
	// bits counts the active bans by family and prefix length, so that
	// Find and the coverage check only probe lengths in use.
	bits [2][129]int32
}

// maxReasons bounds the interned ban reasons (they have few distinct
// values: a jail's rule and ban time, "manual"); past it, new reasons are
// kept in the store only.
const maxReasons = 4096

type table struct {
	recs    []rec
	free    []uint32
	index   map[bkey]uint32
	expiry  []uint32 // min-heap of record numbers by expires
	jails   []*jailState
	jailIDs map[string]uint16
	reasons []string
	reasonN map[string]uint32
}

func newTable() table {
	return table{index: map[bkey]uint32{}, jailIDs: map[string]uint16{}, reasons: []string{""}, reasonN: map[string]uint32{"": 0}}
}

// jailID returns the id of a jail name, adding it when add is set; ok is
// false for an unknown name (or when the id space is exhausted).
func (t *table) jailID(name string, add bool) (uint16, bool) {
	if id, ok := t.jailIDs[name]; ok {
		return id, true
	}
	if !add || len(t.jails) > 0xfffe {
		return 0, false
	}
	id := uint16(len(t.jails))
	t.jails = append(t.jails, &jailState{name: name})
	t.jailIDs[name] = id
	return id, true
}

// reserve makes room for n bans in an empty table, so that a bulk load
// does not grow (and copy) the slices and the index step by step.
func (t *table) reserve(n int) {
	if n <= 0 || len(t.index) > 0 {
		return
	}
	t.recs = make([]rec, 0, n)
	t.index = make(map[bkey]uint32, n)
	t.expiry = make([]uint32, 0, n)
}

func (t *table) reasonID(s string) uint32 {
	if id, ok := t.reasonN[s]; ok {
		return id
	}
	if len(t.reasons) >= maxReasons {
		return 0
	}
	id := uint32(len(t.reasons))
	t.reasons = append(t.reasons, s)
	t.reasonN[s] = id
	return id
}

func (t *table) get(k bkey) *rec {
	if i, ok := t.index[k]; ok {
		return &t.recs[i]
	}
	return nil
}

// put inserts or replaces the record of r.key and returns its number.
func (t *table) put(r rec) uint32 {
	r.flags |= fLive
	i, ok := t.index[r.key]
	if ok {
		old := &t.recs[i]
		r.heap = old.heap
		*old = r
		t.fixHeap(i)
		return i
	}
	if n := len(t.free); n > 0 {
		i = t.free[n-1]
		t.free = t.free[:n-1]
	} else {
		i = uint32(len(t.recs))
		t.recs = append(t.recs, rec{})
	}
	r.heap = -1
	t.recs[i] = r
	t.index[r.key] = i
	js := t.jails[r.key.jail]
	js.active++
	js.bits[r.key.family()][r.key.bits]++
	t.fixHeap(i)
	return i
}

// drop removes the record of k; it returns the record removed.
func (t *table) drop(k bkey) (rec, bool) {
	i, ok := t.index[k]
	if !ok {
		return rec{}, false
	}
	r := t.recs[i]
	if r.heap >= 0 {
		t.heapRemove(int(r.heap))
	}
	delete(t.index, k)
	t.recs[i] = rec{heap: -1}
	t.free = append(t.free, i)
	js := t.jails[k.jail]
	js.active--
	js.bits[k.family()][k.bits]--
	return r, true
}

// fixHeap puts record i where its expiry belongs in the heap.
func (t *table) fixHeap(i uint32) {
	r := &t.recs[i]
	switch {
	case r.permanent() && r.heap >= 0:
		t.heapRemove(int(r.heap))
	case r.permanent():
	case r.heap < 0:
		r.heap = int32(len(t.expiry))
		t.expiry = append(t.expiry, i)
		t.up(int(r.heap))
	default:
		if !t.down(int(r.heap)) {
			t.up(int(r.heap))
		}
	}
}

func (t *table) less(a, b int) bool {
	return t.recs[t.expiry[a]].expires < t.recs[t.expiry[b]].expires
}

func (t *table) swap(a, b int) {
	t.expiry[a], t.expiry[b] = t.expiry[b], t.expiry[a]
	t.recs[t.expiry[a]].heap = int32(a)
	t.recs[t.expiry[b]].heap = int32(b)
}

func (t *table) up(j int) {
	for j > 0 {
		p := (j - 1) / 2
		if !t.less(j, p) {
			return
		}
		t.swap(j, p)
		j = p
	}
}

func (t *table) down(i int) bool {
	start, n := i, len(t.expiry)
	for {
		l := 2*i + 1
		if l >= n {
			break
		}
		j := l
		if r := l + 1; r < n && t.less(r, l) {
			j = r
		}
		if !t.less(j, i) {
			break
		}
		t.swap(i, j)
		i = j
	}
	return i > start
}

func (t *table) heapRemove(pos int) {
	last := len(t.expiry) - 1
	removed := t.expiry[pos]
	if pos != last {
		t.swap(pos, last)
	}
	t.expiry = t.expiry[:last]
	t.recs[removed].heap = -1
	if pos != last {
		if !t.down(pos) {
			t.up(pos)
		}
	}
}

// next returns the earliest expiry (unix nanoseconds) and whether any
// timed ban exists.
func (t *table) next() (int64, bool) {
	if len(t.expiry) == 0 {
		return 0, false
	}
	return t.recs[t.expiry[0]].expires, true
}

// entry turns a record into the public Entry.
func (t *table) entry(r *rec) Entry {
	e := Entry{
		Jail:     t.jails[r.key.jail].name,
		Prefix:   r.key.prefix(),
		Start:    fromNano(r.start),
		Expires:  fromNano(r.expires),
		Offence:  int(r.offence),
		Reason:   t.reasons[r.reason],
		Enforced: r.flags&fEnforced != 0,
		Unsaved:  r.flags&(fUnsaved|fNewOffence) != 0,
		Origin:   r.origin,
	}
	return e
}

// covering returns the record of jail that contains p with the longest
// duration (p's own record included), or nil.
func (t *table) covering(jail uint16, p netip.Prefix) *rec {
	js := t.jails[jail]
	fam := 1
	if p.Addr().Is4() {
		fam = 0
	}
	var best *rec
	for bits := 0; bits <= p.Bits(); bits++ {
		if js.bits[fam][bits] == 0 {
			continue
		}
		k := makeKey(jail, netip.PrefixFrom(p.Addr(), bits).Masked())
		if r := t.get(k); r != nil && (best == nil || outlasts(r.expires, best)) {
			best = r
		}
	}
	return best
}

// find returns the record numbers of every ban whose prefix contains a.
func (t *table) find(a netip.Addr) []uint32 {
	fam := 1
	if a.Is4() {
		fam = 0
	}
	var out []uint32
	for id, js := range t.jails {
		if js.active == 0 {
			continue
		}
		for bits := 0; bits <= a.BitLen(); bits++ {
			if js.bits[fam][bits] == 0 {
				continue
			}
			k := makeKey(uint16(id), netip.PrefixFrom(a, bits).Masked())
			if i, ok := t.index[k]; ok {
				out = append(out, i)
			}
		}
	}
	return out
}

// snapshot copies the records of jail (or of every jail when all is set),
// sorted by jail name, then address.
func (t *table) snapshot(jail uint16, all bool) []rec {
	n := len(t.index)
	if !all {
		n = t.jails[jail].active
	}
	return t.snapshotOf(n, func(id uint16) bool { return all || id == jail })
}

// snapshotOf copies the live records of the jails keep accepts, ordered
// by jail name then prefix; n is a capacity hint.
func (t *table) snapshotOf(n int, keep func(jail uint16) bool) []rec {
	out := make([]rec, 0, n)
	for i := range t.recs {
		r := &t.recs[i]
		if r.flags&fLive != 0 && keep(r.key.jail) {
			out = append(out, *r)
		}
	}
	slices.SortFunc(out, func(a, b rec) int {
		if a.key.jail != b.key.jail {
			return strings.Compare(t.jails[a.key.jail].name, t.jails[b.key.jail].name)
		}
		return compareAddr(a.key, b.key)
	})
	return out
}

func toNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromNano(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
}
