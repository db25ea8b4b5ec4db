package jail

import (
	"net/netip"
	"time"
)

// FailureRecord is one counted failure, for Explain.
type FailureRecord struct {
	Time time.Time
	// Regex is the index of the failregex that matched.
	Regex int
	// InWindow reports whether it still counts (within findtime of now).
	InWindow bool
}

// Explanation says how the jail sees one address now.
type Explanation struct {
	Jail     string
	Addr     netip.Addr
	Key      netip.Prefix
	MaxRetry int
	FindTime time.Duration
	// Ignore is the ignoreself, ignoreip or implicit rule that exempts the
	// address, or nil (an ignorecommand's cached answer is added by the stage
	// beside the jail).
	Ignore *IgnoreMatch
	// IgnoreErrors lists ignoreip host names that did not resolve.
	IgnoreErrors []string
	// Tracked reports whether the failure table holds the address.
	Tracked bool
	// Failures are the kept failure records, oldest first (a known
	// offender's failure appears as many times as it counted).
	Failures []FailureRecord
	// Counting is how many failures count now.
	Counting int
	Matches  []string
	// NextBan is the ban length the next ban would get and its step.
	NextBanTime time.Duration
	NextStep    int
}

// Explain reports why addr is ignored, counted or was banned. The offence
// history is read without the jail's lock.
func (j *Jail) Explain(addr netip.Addr, now time.Time) Explanation {
	ex := Explanation{Jail: j.cfg.Name, MaxRetry: j.cfg.MaxRetry, FindTime: j.cfg.FindTime}
	a, ok := normalize(addr)
	if !ok {
		return ex
	}
	ex.Addr, ex.Key = a, j.keyOf(a)
	prev, loaded := 0, false
	j.mu.Lock()
	ex.IgnoreErrors = append([]string(nil), j.hostErrors...)
	ex.Ignore = j.exempt(a)
	if e := j.entries[ex.Key]; e != nil {
		ex.Tracked = true
		limit := now.Add(-j.cfg.FindTime).UnixNano()
		for _, r := range e.records() {
			in := r.t > limit
			if in {
				ex.Counting++
			}
			ex.Failures = append(ex.Failures, FailureRecord{Time: time.Unix(0, r.t), Regex: int(r.regex), InWindow: in})
		}
		ex.Matches = e.matchList()
		prev, loaded = e.prevBans, e.histLoaded
	} else if rb, ok := j.recent.get(ex.Key); ok {
		prev, loaded = int(rb.offence), true
	}
	j.mu.Unlock()
	if ex.Ignore == nil && j.deps.Implicit != nil {
		ex.Ignore = j.deps.Implicit(a)
	}
	if !loaded && j.cfg.Increment.Enabled && j.deps.History != nil {
		if n, _, err := j.deps.History.Offences(j.cfg.Name, ex.Key, j.cfg.Increment.OverallJails); err == nil {
			prev = n
		}
	}
	ex.NextBanTime, ex.NextStep = j.BanTime(prev)
	return ex
}
