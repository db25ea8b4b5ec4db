package pipeline

import (
	"context"
	"errors"
	"log/slog"
	"sync"

	"github.com/palisade-project/palisade/internal/ban"
	"github.com/palisade-project/palisade/internal/jail"
)

// A jail's ban decisions leave the line path: the reader hands a decision
// to the jail's ban queue and reads on, and one goroutine per jail takes
// every decision waiting and carries them out with one BanMany (one store
// transaction and one firewall call for the lot). Alone, a decision waits
// for nothing but the hand-over; in a storm the batches grow by themselves
// while the previous one commits (group commit), so the rate of new bans
// is not one database sync per ban. A full queue makes the reader wait:
// no decision is dropped.
const (
	banQueueLen = 4096
	banBatchMax = 4096
)

// banQueue is a jail's queue of ban decisions.
type banQueue struct {
	once   sync.Once
	ch     chan *jail.Decision
	done   chan struct{}
	mu     sync.RWMutex // closed and sends on ch
	closed bool
}

// enqueue hands a decision to the queue's goroutine (started on the first
// ban); after close it carries the decision out itself. A decision the
// address's ban already serves (Banner.Holds) goes nowhere: on a second
// core every batch wakes a thread, and a banned address that keeps failing
// would make one every maxretry failures.
func (r *Jail) enqueueBan(dec *jail.Decision) {
	if r.deps.Bans.Holds(r.name, dec.Prefix, dec.Duration) {
		r.held.Add(1)
		if r.log.Enabled(context.Background(), slog.LevelDebug) {
			r.log.Debug("already banned", "jail", r.name, "ip", banAddr(dec.Prefix), "failures", dec.Failures)
		}
		return
	}
	q := &r.banq
	q.once.Do(func() {
		q.ch = make(chan *jail.Decision, banQueueLen)
		q.done = make(chan struct{})
		go r.runBans()
	})
	q.mu.RLock()
	if !q.closed {
		q.ch <- dec
		q.mu.RUnlock()
		return
	}
	q.mu.RUnlock()
	r.carryOut([]*jail.Decision{dec})
}

// closeBans carries out the decisions still queued and stops the queue's
// goroutine.
func (r *Jail) closeBans() {
	q := &r.banq
	started := false
	q.once.Do(func() {}) // no goroutine after this unless one runs already
	q.mu.Lock()
	if !q.closed && q.ch != nil {
		close(q.ch)
		started = true
	}
	q.closed = true
	q.mu.Unlock()
	if started {
		<-q.done
	}
}

// runBans takes the decisions waiting, at most banBatchMax at a time,
// until the queue is closed and empty.
func (r *Jail) runBans() {
	q := &r.banq
	defer close(q.done)
	batch := make([]*jail.Decision, 0, 64)
	for dec := range q.ch {
		batch = append(batch[:0], dec)
	more:
		for len(batch) < banBatchMax {
			select {
			case d, ok := <-q.ch:
				if !ok {
					break more
				}
				batch = append(batch, d)
			default:
				break more
			}
		}
		r.carryOut(batch)
	}
}

// carryOut enforces decisions with one BanMany and logs each outcome.
func (r *Jail) carryOut(decs []*jail.Decision) {
	reqs := make([]ban.Request, len(decs))
	for i, d := range decs {
		reqs[i] = ban.Request{Jail: r.name, Prefix: d.Prefix, Duration: d.Duration, Reason: d.Reason, Lines: d.Matches}
	}
	// Not r.ctx: a ban decided while the jail is being replaced is still
	// carried out.
	ctx, cancel := context.WithTimeout(context.Background(), banTimeout)
	res := r.deps.Bans.BanMany(ctx, reqs)
	cancel()
	for i, dec := range decs {
		err := res[i].Err
		switch {
		case errors.Is(err, ban.ErrAlreadyBanned):
		case err != nil && !errors.Is(err, ban.ErrNotEnforced):
			r.log.Error("ban failed", "jail", r.name, "ip", banAddr(dec.Prefix), "err", err)
		default:
			if err != nil {
				r.log.Error("ban recorded, firewall refused it (retried by reconcile)", "jail", r.name, "ip", banAddr(dec.Prefix), "err", err)
			}
			if r.log.Enabled(context.Background(), slog.LevelDebug) {
				r.log.Debug("ban decided", "jail", r.name, "ip", banAddr(dec.Prefix), "failures", dec.Failures,
					"bantime", DurationText(dec.Duration), "offence", dec.Offence)
			}
			if r.deps.OnBan != nil {
				r.deps.OnBan(r.name, dec.Prefix)
			}
		}
	}
}
