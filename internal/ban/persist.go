package ban

import (
	"context"
	"fmt"
	"time"

	"github.com/palisade-project/palisade/internal/store"
)

// When the database cannot be written (read-only file system, disk full,
// a directory that vanished), the manager keeps banning from memory: every
// ban is enforced and kept as usual, marked unsaved, and lifted bans are
// remembered as pending deletions. Run retries the writes with a doubling
// delay (Config.RetryDelay up to Config.MaxRetryDelay); between retries no
// write is attempted, so a failing disk never slows banning down. The first
// successful retry writes everything at once. Health reports the state.

// storeHealth is the manager's view of the database (mu guards it).
type storeHealth struct {
	err     error
	since   time.Time
	retries int
	delay   time.Duration
	next    time.Time
	// dirty: unsaved records or pending deletions exist.
	dirty bool
}

// Health is the database's state as the manager sees it, for status and
// health checks.
type Health struct {
	// OK is false while database writes fail.
	OK bool
	// Error is the last write error; Since is when writes began failing.
	Error string
	Since time.Time
	// Unsaved counts active bans the database does not hold yet;
	// PendingDeletes counts lifted bans it still holds.
	Unsaved        int
	PendingDeletes int
	// PendingOffences counts offences of bans lifted before they could be
	// written, kept for the history that ban-time escalation reads.
	PendingOffences int
	// Retries counts failed attempts since writes began failing;
	// NextRetry is when the next one is due.
	Retries   int
	NextRetry time.Time
}

// Health returns the database's state.
func (m *Manager) Health() Health {
	m.mu.Lock()
	defer m.mu.Unlock()
	h := Health{OK: m.health.err == nil, PendingDeletes: len(m.pendingDel), PendingOffences: len(m.pendingOff)}
	if m.health.err != nil {
		h.Error = m.health.err.Error()
		h.Since = m.health.since
		h.Retries = m.health.retries
		h.NextRetry = m.health.next
	}
	if m.health.dirty {
		for i := range m.t.recs {
			if r := &m.t.recs[i]; r.flags&fLive != 0 && r.flags&(fUnsaved|fNewOffence) != 0 {
				h.Unsaved++
			}
		}
	}
	return h
}

// storeDown reports whether writes are failing and the next retry is not
// due yet (mu held): callers then skip the write and mark what they
// changed as unsaved.
func (m *Manager) storeDown(now time.Time) bool {
	return m.health.err != nil && now.Before(m.health.next)
}

// storeFailed records a failed write (mu held).
func (m *Manager) storeFailed(err error, now time.Time) {
	m.health.dirty = true
	if m.health.err == nil {
		m.health.since = now
		m.health.delay = m.cfg.RetryDelay
		m.log.Error("DATABASE WRITE FAILED: bans are enforced and kept in memory, and will be written when the database is writable again",
			"err", err, "retry_in", m.health.delay.String())
	} else {
		m.health.retries++
		m.health.delay = min(2*m.health.delay, m.cfg.MaxRetryDelay)
	}
	m.health.err = err
	m.health.next = now.Add(m.health.delay)
}

// storeRecovered records that the database took every pending write (mu
// held).
func (m *Manager) storeRecovered(now time.Time, wrote int) {
	if m.health.err != nil {
		m.log.Warn("database writable again: pending bans written", "records", wrote,
			"failing_for", now.Sub(m.health.since).Round(time.Second).String())
	}
	m.health = storeHealth{}
}

// maxPendingOffences bounds the offences of lifted bans kept for the
// history while the database cannot be written; past it the oldest are
// forgotten (counted in the log).
const maxPendingOffences = 100_000

// keepOffence remembers the offence of a ban lifted before the store
// counted it (mu held).
func (m *Manager) keepOffence(r *rec) {
	if r.flags&fNewOffence == 0 {
		return
	}
	if len(m.pendingOff) >= maxPendingOffences {
		m.pendingOff = m.pendingOff[1:]
		m.lostOffences++
		if m.lostOffences == 1 {
			m.log.Error("database still not writable: forgetting the offence history of the oldest lifted bans", "kept", maxPendingOffences)
		}
	}
	e := m.t.entry(r)
	m.pendingOff = append(m.pendingOff, toStore(e))
}

// errReporter is implemented by stores that know they cannot be written
// (*store.Store opened read-only): Err is nil once they can.
type errReporter interface {
	Err() error
}

// probeStore asks the store whether it can be written (mu held).
func (m *Manager) probeStore(now time.Time) {
	er, ok := m.store.(errReporter)
	if !ok {
		return
	}
	if err := er.Err(); err != nil {
		m.storeFailed(err, now)
	} else if m.health.err != nil && !m.health.dirty {
		m.storeRecovered(now, 0)
	}
}

// markDirty notes that something awaits writing (mu held) and makes Run
// retry soon.
func (m *Manager) markDirty() {
	m.health.dirty = true
}

// Flush writes every unsaved ban and pending deletion now, in at most
// three transactions. Run calls it when a retry is due; it is exported for
// shutdown and tests.
func (m *Manager) Flush(ctx context.Context) error {
	m.op.Lock()
	defer m.op.Unlock()
	return m.flushLocked(ctx)
}

func (m *Manager) flushLocked(context.Context) error {
	m.mu.Lock()
	if !m.health.dirty {
		if m.health.err != nil {
			m.probeStore(m.now())
		}
		err := m.health.err
		m.mu.Unlock()
		if err != nil {
			return fmt.Errorf("ban: database: %w", err)
		}
		return nil
	}
	var fresh, update []store.Ban
	var freshKeys, updateKeys []bkey
	for i := range m.t.recs {
		r := &m.t.recs[i]
		switch {
		case r.flags&fLive == 0:
		case r.flags&fNewOffence != 0:
			fresh = append(fresh, toStore(m.t.entry(r)))
			freshKeys = append(freshKeys, r.key)
		case r.flags&fUnsaved != 0:
			update = append(update, toStore(m.t.entry(r)))
			updateKeys = append(updateKeys, r.key)
		}
	}
	dels := make([]store.BanKey, 0, len(m.pendingDel))
	for k := range m.pendingDel {
		dels = append(dels, k)
	}
	offs := m.pendingOff
	m.mu.Unlock()

	err := func() error {
		// Offences of lifted bans first (AddBans writes the ban too; the
		// deletions that follow remove it again).
		if len(offs) > 0 {
			if err := m.store.AddBans(offs); err != nil {
				return err
			}
			m.mu.Lock()
			m.pendingOff = m.pendingOff[len(offs):]
			m.mu.Unlock()
		}
		if len(dels) > 0 {
			if err := m.store.DeleteBans(dels); err != nil {
				return err
			}
			m.mu.Lock()
			for _, k := range dels {
				delete(m.pendingDel, k)
			}
			m.mu.Unlock()
		}
		if len(fresh) > 0 {
			if err := m.store.AddBans(fresh); err != nil {
				return err
			}
			m.mu.Lock()
			for i, k := range freshKeys {
				if r := m.t.get(k); r != nil {
					r.offence = uint32(fresh[i].Offence)
					r.flags &^= fNewOffence | fUnsaved
				}
			}
			m.mu.Unlock()
		}
		if len(update) > 0 {
			if err := m.store.UpdateBans(update); err != nil {
				return err
			}
			m.mu.Lock()
			for _, k := range updateKeys {
				if r := m.t.get(k); r != nil {
					r.flags &^= fUnsaved
				}
			}
			m.mu.Unlock()
		}
		return nil
	}()
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	if err != nil {
		m.storeFailed(err, now)
		return fmt.Errorf("ban: writing pending bans: %w", err)
	}
	m.storeRecovered(now, len(offs)+len(dels)+len(fresh)+len(update))
	return nil
}
