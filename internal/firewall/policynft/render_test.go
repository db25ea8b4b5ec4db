package policynft

import (
	"strings"
	"testing"
	"time"

	"github.com/google/nftables/expr"

	"github.com/palisade-project/palisade/internal/firewall/policy"
	"github.com/palisade-project/palisade/internal/sysexec"
)

func sysexecCmd(name string, args ...string) sysexec.Cmd { return sysexec.Cmd{Name: name, Args: args} }

// burstOf returns the burst of the first per-element limit in the plan.
func burstOf(pl *plan) int {
	for _, c := range pl.chains {
		for _, r := range c.rules {
			for _, e := range r.Exprs {
				if d, ok := e.(*expr.Dynset); ok {
					for _, x := range d.Exprs {
						if lim, ok := x.(*expr.Limit); ok {
							return int(lim.Burst)
						}
					}
				}
			}
		}
	}
	return -1
}

func TestRateOverUnits(t *testing.T) {
	tests := []struct {
		n    int
		per  time.Duration
		rate uint64
		unit expr.LimitTime
	}{
		{2, time.Second, 2, expr.LimitTimeSecond},
		{5, 30 * time.Second, 10, expr.LimitTimeMinute},
		{1, 7 * time.Second, 86400, expr.LimitTimeWeek},
		{10, time.Minute, 10, expr.LimitTimeMinute},
		{100, time.Hour, 100, expr.LimitTimeHour},
		{1, 11 * time.Second, 54982, expr.LimitTimeWeek}, // 604800/11 = 54981.8, rounded
		{3, 1500 * time.Millisecond, 2, expr.LimitTimeSecond},
	}
	for _, tt := range tests {
		l := rateOver(tt.n, tt.per, tt.n).(*expr.Limit)
		if l.Rate != tt.rate || l.Unit != tt.unit || l.Burst != uint32(tt.n) || !l.Over {
			t.Errorf("%d/%v: %+v, want %d per %d s", tt.n, tt.per, l, tt.rate, tt.unit)
		}
	}
}

func TestRenderOwnsOnlyPolicyNames(t *testing.T) {
	f, err := policy.Parse("x", []byte("enable\nallow 22/tcp\nlimit 2222/tcp --conn 2 --rate 1/1s\nlimit 53 --rate 10/1s --mode bucket\n"), policy.Names{})
	if err != nil {
		t.Fatal(err)
	}
	pl, err := render(f.Policy())
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, c := range pl.chains {
		names = append(names, c.chain.Name)
	}
	for _, s := range pl.sets {
		names = append(names, s.Name)
	}
	names = append(names, pl.counters...)
	for _, n := range names {
		if !Owned(n) || strings.HasPrefix(n, "cf_") {
			t.Errorf("%s is not a policy name", n)
		}
	}
	if len(pl.limits) != 2 || len(pl.limits[0].Sets) != 6 || len(pl.limits[1].Sets) != 2 {
		t.Errorf("limits = %+v", pl.limits)
	}
	for _, s := range pl.sets {
		if s.Size == 0 || !s.Dynamic {
			t.Errorf("set %s: size %d dynamic %v", s.Name, s.Size, s.Dynamic)
		}
		if strings.Contains(s.Name, "_c") && s.HasTimeout {
			t.Errorf("ct count set %s has a timeout", s.Name)
		}
	}
	// An unchanged limit keeps its id (and its sets) when rules move.
	g, _ := policy.Parse("x", []byte("enable\nallow 80/tcp\nallow 22/tcp\nlimit 2222/tcp --conn 2 --rate 1/1s\n"), policy.Names{})
	pl2, _ := render(g.Policy())
	if pl2.limits[0].ID != pl.limits[0].ID {
		t.Error("limit id changed when the rule moved")
	}
	if empty, _ := render(policy.Policy{}); len(empty.chains) != 0 {
		t.Error("a disabled policy renders chains")
	}
}
