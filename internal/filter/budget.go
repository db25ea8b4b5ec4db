package filter

import "time"

// DefaultBacktrackBudget is the CPU time per second a filter may spend in
// backtracking matches (see Options.BacktrackBudget).
const DefaultBacktrackBudget = 200 * time.Millisecond

// btBudget is a token bucket of backtracking time: it refills at
// perSecond and holds at most perSecond, so a stream of hostile lines
// costs a filter at most that share of a core, and the lines the
// linear-time engine handles (and the bans they lead to) are never held
// up by more than about a second of it.
type btBudget struct {
	perSecond time.Duration
	clock     func() time.Time
	left      time.Duration
	last      time.Time

	used    time.Duration // total time spent
	skipped uint64        // matches not run because the budget was spent
}

func newBTBudget(perSecond time.Duration, clock func() time.Time) *btBudget {
	return &btBudget{perSecond: perSecond, clock: clock, left: perSecond}
}

// start reports whether a backtracking match may run now; it returns the
// start time to pass to done.
func (b *btBudget) start() (time.Time, bool) {
	now := b.clock()
	if !b.last.IsZero() {
		if d := now.Sub(b.last); d > 0 {
			// refill in proportion to the time passed
			b.left = min(b.perSecond, b.left+time.Duration(float64(b.perSecond)*d.Seconds()))
		}
	}
	b.last = now
	if b.left <= 0 {
		b.skipped++
		return now, false
	}
	return now, true
}

// done charges the time since t0.
func (b *btBudget) done(t0 time.Time) {
	now := b.clock()
	d := now.Sub(t0)
	if d < 0 {
		d = 0
	}
	b.left -= d
	b.used += d
	b.last = now
}
