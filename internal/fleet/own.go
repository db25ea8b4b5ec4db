package fleet

import (
	"context"
	"fmt"
	"net/netip"
	"strconv"
	"time"

	"github.com/palisade-project/palisade/internal/ban"
)

// The outgoing side: this server's shared bans become signed records in
// a bounded, persisted queue that the publisher empties into the stream.

// queued is one outgoing record.
type queued struct {
	seq     uint64
	subject string
	body    []byte
	rec     Record
}

// queue is the outgoing queue, oldest first (guarded by Node.mu).
type queue struct {
	max     int
	items   []queued
	lastSeq uint64
	dropped uint64
}

func newQueue(max int) *queue { return &queue{max: max} }

func seqKey(seq uint64) string { return fmt.Sprintf("%020d", seq) }

const seqRecord = "seq"

func (q *queue) load(recs map[string][]byte) (bad int) {
	for k, v := range recs {
		if k == seqRecord {
			if s, err := strconv.ParseUint(string(v), 10, 64); err == nil {
				q.lastSeq = max(q.lastSeq, s)
			}
			continue
		}
		seq, err := strconv.ParseUint(k, 10, 64)
		r, _, derr := decode(v)
		if err != nil || derr != nil || r.Seq != seq {
			bad++
			continue
		}
		q.items = append(q.items, queued{seq: seq, subject: r.Subject(), body: v, rec: r})
		q.lastSeq = max(q.lastSeq, seq)
	}
	sortQueued(q.items)
	return bad
}

func sortQueued(l []queued) {
	for i := 1; i < len(l); i++ {
		for j := i; j > 0 && l[j].seq < l[j-1].seq; j-- {
			l[j], l[j-1] = l[j-1], l[j]
		}
	}
}

// nextSeq is a hybrid clock: above the last sequence and at least the
// current time in microseconds, so a server whose database was lost still
// issues sequences newer than its old ones.
func (q *queue) nextSeq(now time.Time) uint64 {
	s := max(q.lastSeq+1, uint64(now.UnixMicro()))
	q.lastSeq = s
	return s
}

// own follows the ban manager's events and keeps the stream in line with
// this server's shared bans.
type ownState struct {
	// active holds the shared bans in force here: prefix → jail → entry.
	active map[netip.Prefix]map[string]ban.Entry
	// published is the latest record this server queued or saw on the
	// stream per prefix (bans only).
	published map[netip.Prefix]Record
	// synced is set once the stream was replayed: before, the node does
	// not know what the stream holds and only follows new events.
	synced bool
	// again is set when the full queue dropped records: a resync soon
	// queues again what is still banned.
	again bool
}

func (n *Node) own(ctx context.Context, events <-chan ban.Event) {
	s := &ownState{active: map[netip.Prefix]map[string]ban.Entry{}, published: map[netip.Prefix]Record{}}
	n.mu.Lock()
	for _, it := range n.q.items {
		if it.rec.Kind == KindBan {
			s.published[it.rec.Prefix] = it.rec
		}
	}
	n.mu.Unlock()
	n.rebuildActive(s)
	resync := time.NewTicker(n.cfg.ResyncInterval)
	defer resync.Stop()
	soon := time.NewTimer(time.Hour)
	soon.Stop()
	defer soon.Stop()
	var pending []Record
	for {
		select {
		case <-soon.C:
			pending = n.resync(s, pending)
		case <-ctx.Done():
			return
		case op := <-n.ownOps:
			op(s)
			pending = n.resync(s, pending)
		case <-resync.C:
			n.rebuildActive(s)
			pending = n.resync(s, pending)
		case ev, ok := <-events:
			if !ok {
				return
			}
			pending = n.onEvent(s, ev, pending)
		drain:
			for len(pending) < 4096 {
				select {
				case ev, ok := <-events:
					if !ok {
						break drain
					}
					pending = n.onEvent(s, ev, pending)
				default:
					break drain
				}
			}
		}
		pending = n.flush(s, pending)
		if s.again {
			s.again = false
			n.mu.Lock()
			connected := n.st.connected
			n.mu.Unlock()
			if connected { // disconnected, the replay on reconnect resyncs
				soon.Reset(time.Second)
			}
		}
	}
}

// rebuildActive reads the shared bans from the ban manager (catching
// events dropped under load and extensions).
func (n *Node) rebuildActive(s *ownState) {
	n.mu.Lock()
	share := n.share
	n.mu.Unlock()
	s.active = map[netip.Prefix]map[string]ban.Entry{}
	// Not the fleet's own jail: it holds the remote bans, which can be
	// most of the table.
	own := n.cfg.Jail
	for _, e := range n.deps.Bans.ListJails(func(j string) bool { return j != own && share(j) }) {
		m := s.active[e.Prefix]
		if m == nil {
			m = map[string]ban.Entry{}
			s.active[e.Prefix] = m
		}
		m[e.Jail] = e
	}
}

func (n *Node) onEvent(s *ownState, ev ban.Event, pending []Record) []Record {
	e := ev.Entry
	if e.Jail == n.cfg.Jail {
		if ev.Kind == ban.EventUnban {
			n.fleetUnban(ev)
		}
		return pending
	}
	n.mu.Lock()
	share := n.share
	n.mu.Unlock()
	if !share(e.Jail) {
		return pending
	}
	switch ev.Kind {
	case ban.EventUnban:
		if m := s.active[e.Prefix]; m != nil {
			delete(m, e.Jail)
			if len(m) == 0 {
				delete(s.active, e.Prefix)
			}
		}
	default: // a ban (or an extension)
		m := s.active[e.Prefix]
		if m == nil {
			m = map[string]ban.Entry{}
			s.active[e.Prefix] = m
		}
		m[e.Jail] = e
		if ev.Restored() && !s.synced {
			// In force before this start: whether the stream still holds
			// it is known only after the replay, whose resync decides.
			return pending
		}
	}
	return n.reconcilePrefix(s, e.Prefix, ev.Kind == ban.EventUnban && ev.Cause == "expired", pending)
}

// desired is the record a prefix should have on the stream: the longest
// of its shared bans.
func desired(m map[string]ban.Entry) (ban.Entry, bool) {
	var best ban.Entry
	found := false
	for _, e := range m {
		if !found || longer(e.Expires, best.Expires) || e.Expires.Equal(best.Expires) && e.Jail < best.Jail {
			best, found = e, true
		}
	}
	return best, found
}

// reconcilePrefix queues what makes the stream agree with the bans of p.
func (n *Node) reconcilePrefix(s *ownState, p netip.Prefix, expired bool, pending []Record) []Record {
	now := n.now()
	want, ok := desired(s.active[p])
	pub, had := s.published[p]
	switch {
	case ok:
		if had && pub.Jail == want.Jail && pub.Expires.Equal(want.Expires) && pub.Reason == want.Reason {
			return pending
		}
		r := Record{Origin: n.cfg.Name, Kind: KindBan, Prefix: p, Jail: want.Jail, Reason: want.Reason,
			Issued: want.Start, Expires: want.Expires}
		if r.Issued.IsZero() {
			r.Issued = now
		}
		s.published[p] = r
		return append(pending, r)
	case had:
		delete(s.published, p)
		if expired || !pub.Permanent() && !pub.Expires.After(now.Add(time.Second)) {
			return pending // its TTL removes it from the stream
		}
		return append(pending, Record{Origin: n.cfg.Name, Kind: KindUnban, Prefix: p, Jail: pub.Jail,
			Issued: now, Expires: pub.Expires})
	}
	return pending
}

// ownFromStream takes what the stream holds of this server's records
// after a replay (called on the own goroutine through ownOps).
func (n *Node) ownFromStream(s *ownState, stream map[netip.Prefix]Record) {
	queuedNow := map[netip.Prefix]Record{}
	n.mu.Lock()
	for _, it := range n.q.items {
		queuedNow[it.rec.Prefix] = it.rec
	}
	n.mu.Unlock()
	s.published = map[netip.Prefix]Record{}
	for p, r := range stream {
		s.published[p] = r
	}
	for p, r := range queuedNow {
		if r.Kind == KindBan {
			s.published[p] = r
		} else {
			delete(s.published, p)
		}
	}
	s.synced = true
	n.rebuildActive(s)
}

// resync compares every shared ban with the stream (after a replay).
func (n *Node) resync(s *ownState, pending []Record) []Record {
	if !s.synced {
		return pending
	}
	seen := map[netip.Prefix]bool{}
	for p := range s.active {
		seen[p] = true
		pending = n.reconcilePrefix(s, p, false, pending)
	}
	for p := range s.published {
		if !seen[p] {
			pending = n.reconcilePrefix(s, p, false, pending)
		}
	}
	return pending
}

// flush signs and queues records, wakes the publisher, and saves them
// (one store transaction). The publisher does not wait for the disk: a
// record is on its way to the fleet while it is being saved, and only
// its removal from the saved queue, once acknowledged, waits for the
// save (Node.qsave), so that an acknowledged record is never left in it.
func (n *Node) flush(s *ownState, pending []Record) []Record {
	if len(pending) == 0 {
		return pending
	}
	now := n.now()
	put := map[string][]byte{}
	var del []string
	n.qsave.Lock()
	defer n.qsave.Unlock()
	n.mu.Lock()
	for _, r := range pending {
		r.Seq = n.q.nextSeq(now)
		body, err := Sign(r, n.cfg.Key)
		if err != nil {
			n.log.Error("fleet: cannot sign a record", "prefix", r.Prefix, "err", err)
			continue
		}
		it := queued{seq: r.Seq, subject: r.Subject(), body: body, rec: r}
		n.q.items = append(n.q.items, it)
		put[seqKey(r.Seq)] = body
		if r.Kind == KindBan {
			s.published[r.Prefix] = r
		}
		for len(n.q.items) > n.q.max {
			old := n.q.items[0]
			n.q.items = n.q.items[1:]
			n.q.dropped++
			if pub, ok := s.published[old.rec.Prefix]; ok && pub.Seq == old.seq {
				// Not on the stream after all: queued again by a resync.
				delete(s.published, old.rec.Prefix)
				s.again = true
			}
			if _, ok := put[seqKey(old.seq)]; ok {
				delete(put, seqKey(old.seq))
			} else {
				del = append(del, seqKey(old.seq))
			}
		}
	}
	put[seqRecord] = []byte(strconv.FormatUint(n.q.lastSeq, 10))
	n.mu.Unlock()
	n.pokePublisher()
	if err := n.deps.Store.PutRecords(SpaceQueue, put, del); err != nil {
		n.log.Error("fleet: cannot persist the outgoing queue (published anyway when connected)", "err", err)
	}
	n.log.Debug("fleet: records queued", "count", len(pending))
	return pending[:0]
}

// publisher empties the queue into the stream while connected, in order,
// in pipelined batches; a record is removed once the stream acknowledged
// it.
func (n *Node) publisher(ctx context.Context, bus Bus) {
	backoff := time.Duration(0)
	for {
		if backoff > 0 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
		}
		n.mu.Lock()
		items := append([]queued(nil), n.q.items[:min(len(n.q.items), 512)]...)
		n.mu.Unlock()
		if len(items) == 0 || !bus.Connected() {
			select {
			case <-ctx.Done():
				return
			case <-n.pubWake:
			case <-time.After(5 * time.Second):
			}
			backoff = 0
			continue
		}
		now := n.now()
		var out []Outgoing
		var skip []uint64
		for _, it := range items {
			ttl := time.Duration(0)
			if !it.rec.Permanent() {
				ttl = it.rec.Expires.Sub(now)
				if ttl < time.Second {
					if it.rec.Kind == KindBan || ttl <= 0 {
						skip = append(skip, it.seq) // over before it could be published
						continue
					}
					ttl = time.Second
				}
			} else if it.rec.Kind == KindUnban {
				ttl = tombstoneLife
			}
			out = append(out, Outgoing{Subject: it.subject, Data: it.body, TTL: ttl, Seq: it.seq})
		}
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		acked, err := bus.Publish(cctx, out)
		cancel()
		done := append(skip, acked...)
		n.log.Debug("fleet: records published", "sent", len(out), "acked", len(acked), "skipped", len(skip), "err", err)
		n.dequeue(done, len(acked), err)
		if err != nil {
			n.setErr(fmt.Errorf("publish: %w", err))
			n.log.Warn("fleet: publishing failed; the records stay queued", "queued", n.Status().Queue.Depth, "err", err)
			backoff = min(max(2*backoff, 500*time.Millisecond), 30*time.Second)
			continue
		}
		backoff = 0
	}
}

func (n *Node) dequeue(seqs []uint64, published int, pubErr error) {
	if len(seqs) == 0 {
		if pubErr != nil {
			n.mu.Lock()
			n.st.pubErrors++
			n.mu.Unlock()
		}
		return
	}
	gone := map[uint64]bool{}
	del := make([]string, len(seqs))
	for i, s := range seqs {
		gone[s] = true
		del[i] = seqKey(s)
	}
	n.mu.Lock()
	kept := n.q.items[:0]
	for _, it := range n.q.items {
		if !gone[it.seq] {
			kept = append(kept, it)
		}
	}
	n.q.items = kept
	n.st.published += uint64(published)
	if published > 0 {
		n.st.lastPublish = n.now()
	}
	if pubErr != nil {
		n.st.pubErrors++
	}
	n.mu.Unlock()
	n.qsave.Lock()
	defer n.qsave.Unlock()
	if err := n.deps.Store.PutRecords(SpaceQueue, nil, del); err != nil {
		n.log.Error("fleet: cannot drop published records from the queue", "err", err)
	}
}
