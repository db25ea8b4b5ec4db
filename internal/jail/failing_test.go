package jail

import (
	"testing"
	"time"
)

// TestCurrentlyFailedLeavesOutBanned: Stats.Failing is fail2ban's
// "Currently failed": addresses with failures counted towards a ban. An
// address just banned leaves it and the failure table (its failures are
// spent); a new failure after the ban brings it back.
func TestCurrentlyFailedLeavesOutBanned(t *testing.T) {
	j := mustNew(t, guide(), Deps{})
	at := func(m int) time.Time { return t0.Add(time.Duration(m) * time.Second) }
	steps := []struct {
		ip               string
		want             Action
		failing, tracked int
	}{
		{"192.0.2.1", Counted, 1, 1},
		{"192.0.2.2", Counted, 2, 2},
		{"192.0.2.1", Counted, 2, 2},
		{"192.0.2.1", Counted, 2, 2},
		{"192.0.2.1", Banned, 1, 1},
		{"198.51.100.3", Counted, 2, 2},
		{"192.0.2.1", Counted, 3, 3},
	}
	for i, s := range steps {
		v := j.Observe(fail(s.ip, at(i)), at(i))
		st := j.Stats()
		if v.Action != s.want || st.Failing != s.failing || st.Tracked != s.tracked {
			t.Fatalf("step %d %s: %v, failing %d tracked %d; want %v, %d, %d", i, s.ip, v.Action, st.Failing, st.Tracked, s.want, s.failing, s.tracked)
		}
	}
}
