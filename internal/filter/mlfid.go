package filter

import "time"

// mlfidCache is fail2ban's Utils.Cache for connection ids: at most size
// entries, each living age; when full, the oldest entries are evicted
// (insertion order, like an OrderedDict).
type mlfidCache struct {
	size  int
	age   time.Duration
	clock func() time.Time
	m     map[string]*failData
	// order[head:] holds keys in insertion order; entries whose seq no
	// longer matches were removed and are skipped. The slice is compacted
	// in place, so it is not reallocated as keys come and go.
	order []orderKey
	head  int
	seq   uint64
	// free holds dropped entries for reuse (see recycle).
	free []*failData
}

// maxFree bounds the dropped entries kept for reuse.
const maxFree = 64

type orderKey struct {
	k   string
	seq uint64
}

func newMLFIDCache(size int, age time.Duration, clock func() time.Time) *mlfidCache {
	return &mlfidCache{size: size, age: age, clock: clock, m: make(map[string]*failData)}
}

// get returns the live entry of k; k may point into a scratch buffer.
func (c *mlfidCache) get(k string) *failData {
	e := c.m[k]
	if e == nil {
		return nil
	}
	if e.expires.After(c.clock()) {
		return e
	}
	delete(c.m, k)
	c.recycle(e)
	return nil
}

// alloc returns an empty entry with n fields, reusing a dropped one.
func (c *mlfidCache) alloc(n int) *failData {
	if k := len(c.free); k > 0 {
		d := c.free[k-1]
		c.free = c.free[:k-1]
		if len(d.fields) == n {
			return d
		}
	}
	return &failData{fields: newFieldSet(n)}
}

// recycle takes back an entry no longer in the cache. What failures
// share with it (matches, the captures, the sorted users) is let go,
// not reused; its own fields, user and no-failure lists are.
func (c *mlfidCache) recycle(d *failData) {
	if len(c.free) >= maxFree {
		return
	}
	clear(d.fields)
	clear(d.users)
	clear(d.nofailMatches)
	*d = failData{fields: d.fields, users: d.users[:0], nofailMatches: d.nofailMatches[:0]}
	c.free = append(c.free, d)
}

func (c *mlfidCache) unset(k string) { delete(c.m, k) }

// set stores v under k (which must not point into a scratch buffer).
func (c *mlfidCache) set(k string, v *failData) {
	now := c.clock()
	if e := c.m[k]; e != nil {
		// an existing key keeps its place
		v.seq = e.seq
		v.expires = now.Add(c.age)
		c.m[k] = v
		return
	}
	if len(c.m) >= c.size {
		for c.head < len(c.order) {
			ok := c.order[c.head]
			c.order[c.head] = orderKey{}
			c.head++
			e := c.m[ok.k]
			if e == nil || e.seq != ok.seq {
				continue
			}
			live := e.expires.After(now) // (recycle clears e)
			delete(c.m, ok.k)
			c.recycle(e)
			if live && len(c.m) < c.size {
				break
			}
		}
	}
	c.seq++
	v.expires, v.seq = now.Add(c.age), c.seq
	c.m[k] = v
	if len(c.order) == cap(c.order) && c.head >= len(c.order)/2 {
		c.compact() // half the array is free at its front: no new one
	}
	c.order = append(c.order, orderKey{k: k, seq: c.seq})
	// keep the order slice from growing without bound through unset keys
	if len(c.order)-c.head > 4*c.size+16 {
		c.compact()
	}
}

// compact moves the live keys of order[head:] to the front of its array.
func (c *mlfidCache) compact() {
	kept := c.order[:0]
	for _, o := range c.order[c.head:] {
		if e := c.m[o.k]; e != nil && e.seq == o.seq {
			kept = append(kept, o) // (never ahead of the read)
		}
	}
	clear(c.order[len(kept):])
	c.order, c.head = kept, 0
}

func (c *mlfidCache) len() int { return len(c.m) }
