package jail

import (
	"math"
	"time"
)

// BanTime computes the ban length for an address with prevBans earlier
// bans, as fail2ban's bantime.increment does, and returns the escalation
// step used (0 = base time). A negative result is permanent.
//
// Default formula: bantime × 2^min(n,20) × factor, never below bantime;
// with multipliers: bantime × factor × multipliers[min(n, len-1)]. Then the
// bantime.maxtime cap and up to bantime.rndtime of random time. As in
// fail2ban, escalation applies only to repeat offenders (n > 0).
func (j *Jail) BanTime(prevBans int) (time.Duration, int) {
	base := j.cfg.BanTime
	inc := j.cfg.Increment
	if IsPermanent(base) {
		return -1, 0
	}
	if !inc.Enabled || prevBans <= 0 {
		return base, 0
	}
	sec := base.Seconds()
	if len(inc.Multipliers) > 0 {
		sec = sec * inc.Factor * inc.Multipliers[min(prevBans, len(inc.Multipliers)-1)]
	} else {
		sec = math.Max(sec, sec*float64(int64(1)<<min(prevBans, 20))*inc.Factor)
	}
	if inc.MaxTime > 0 && sec > inc.MaxTime.Seconds() {
		sec = inc.MaxTime.Seconds()
	}
	if inc.RndTime > 0 {
		sec += j.rnd() * inc.RndTime.Seconds()
	}
	sec = math.Min(sec, maxBanSeconds)
	return time.Duration(sec * float64(time.Second)), prevBans
}

// IsPermanent reports whether a ban time means "never expires" (negative,
// as fail2ban's bantime = -1).
func IsPermanent(d time.Duration) bool { return d < 0 }
