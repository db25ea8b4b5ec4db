package fleet

import (
	"log/slog"
	"sync"
)

// saver writes the book's changes to the store off the applier's path.
// The applier hands over each commit's changes and goes on enforcing;
// the saver writes them in order, and what piles up during one write
// goes into the next transaction as one (a replay of 100,000 records
// waited two of its three seconds on these writes' fsyncs before). The
// book is the only store of the remote bans (the ban manager does not
// write the fleet jail's), so a crash loses the changes not written yet:
// the records of the last few milliseconds, which the next replay brings
// back. Pending changes are bounded by the book: one entry per record
// key. The entries are encoded here too, off the applier's path.
type saver struct {
	store Store
	space string
	log   *slog.Logger

	mu   sync.Mutex
	put  map[okey]entry
	del  map[okey]bool
	junk []string // unreadable stored keys
	wake chan struct{}
}

func newSaver(store Store, space string, log *slog.Logger) *saver {
	return &saver{store: store, space: space, log: log,
		put: map[okey]entry{}, del: map[okey]bool{}, wake: make(chan struct{}, 1)}
}

// add queues changes; a later change of a key replaces an earlier one.
func (s *saver) add(put []saved, del []okey, junk []string) {
	if len(put)+len(del)+len(junk) == 0 {
		return
	}
	s.mu.Lock()
	s.junk = append(s.junk, junk...)
	for i := range put {
		k := put[i].k
		s.put[k] = put[i].e
		delete(s.del, k)
	}
	for _, k := range del {
		delete(s.put, k)
		s.del[k] = true
	}
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// run writes queued changes until done is closed, then writes what is
// left and returns.
func (s *saver) run(done <-chan struct{}) {
	for {
		select {
		case <-s.wake:
			s.flush()
		case <-done:
			s.flush()
			return
		}
	}
}

// flush writes every queued change in one transaction.
func (s *saver) flush() {
	s.mu.Lock()
	put, del, junk := s.put, s.del, s.junk
	if len(put)+len(del)+len(junk) == 0 {
		s.mu.Unlock()
		return
	}
	s.put, s.del, s.junk = map[okey]entry{}, map[okey]bool{}, nil
	s.mu.Unlock()
	dels := make([]string, 0, len(del)+len(junk))
	dels = append(dels, junk...)
	for k := range del {
		dels = append(dels, k.String())
	}
	if err := s.store.PutRecords(s.space, encodeEntries(put), dels); err != nil {
		s.log.Error("fleet: cannot save the remote records (the bans are enforced anyway)", "err", err)
	}
}
