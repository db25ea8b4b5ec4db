package jail

import (
	"net/netip"
	"sync/atomic"
	"testing"
)

// An implicit ignore (the Cloudflare lock's ranges) exempts addresses in
// every jail while it answers, after ignoreip, and Explain names it.
func TestImplicitIgnore(t *testing.T) {
	cf := netip.MustParsePrefix("198.51.100.0/24")
	var on atomic.Bool
	on.Store(true)
	implicit := func(a netip.Addr) *IgnoreMatch {
		if on.Load() && cf.Contains(a) {
			return &IgnoreMatch{Rule: "cloudflare", Entry: cf.String()}
		}
		return nil
	}
	cfg := guide()
	cfg.MaxRetry = 1
	cfg.IgnoreIP = append(cfg.IgnoreIP, ignore("198.51.100.7")...)
	j := mustNew(t, cfg, Deps{Implicit: implicit})

	v := j.Observe(fail("198.51.100.8", t0), t0)
	if v.Action != Ignored || v.Ignore == nil || v.Ignore.Rule != "cloudflare" || v.Ignore.Entry != "198.51.100.0/24" {
		t.Fatalf("verdict %+v, want ignored by the cloudflare rule", v)
	}
	if ex := j.Explain(netip.MustParseAddr("198.51.100.8"), t0); ex.Ignore == nil || ex.Ignore.Rule != "cloudflare" {
		t.Errorf("explain %+v", ex.Ignore)
	}
	// ignoreip comes first.
	if v := j.Observe(fail("198.51.100.7", t0), t0); v.Ignore == nil || v.Ignore.Rule != RuleIP {
		t.Errorf("ignoreip address: %+v", v.Ignore)
	}
	// Outside the range, and once the lock is off, addresses count again.
	if v := j.Observe(fail("192.0.2.9", t0), t0); v.Action != Banned {
		t.Errorf("outside the range: %v", v.Action)
	}
	on.Store(false)
	if v := j.Observe(fail("198.51.100.8", t0), t0); v.Action != Banned {
		t.Errorf("lock off: %v", v.Action)
	}
	if ex := j.Explain(netip.MustParseAddr("198.51.100.9"), t0); ex.Ignore != nil {
		t.Errorf("lock off: explain still ignores: %+v", ex.Ignore)
	}
}
