package ban

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/palisade-project/palisade/internal/firewall"
)

// TestCountersForMetrics checks the counters internal/metrics reads:
// unbans per jail and the reconcile repairs and failures.
func TestCountersForMetrics(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, Config{})
	for _, ip := range []string{"192.0.2.1", "192.0.2.2", "192.0.2.3"} {
		if _, err := e.m.Ban(ctx, "sshd", pfx(ip), time.Hour, ""); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.m.Ban(ctx, "nginx", pfx("198.51.100.1"), time.Minute, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := e.m.Unban(ctx, "sshd", pfx("192.0.2.1")); err != nil {
		t.Fatal(err)
	}
	e.clock.Add(2 * time.Minute)
	if n, err := e.m.ExpireDue(ctx); err != nil || n != 1 {
		t.Fatalf("expire %d %v", n, err)
	}
	if e.m.Unbans("sshd") != 1 || e.m.Unbans("nginx") != 1 || e.m.Unbans("other") != 0 {
		t.Fatalf("unbans sshd %d nginx %d", e.m.Unbans("sshd"), e.m.Unbans("nginx"))
	}
	_ = e.fw.Remove(ctx, []firewall.Ban{{Jail: "sshd", Prefix: pfx("192.0.2.2")}})
	_ = e.fw.Add(ctx, []firewall.Ban{{Jail: "sshd", Prefix: pfx("203.0.113.7")}})
	if _, err := e.m.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	// Flushed again, and the firewall refuses the repair.
	_ = e.fw.Remove(ctx, []firewall.Ban{{Jail: "sshd", Prefix: pfx("192.0.2.3")}})
	e.fw.FailNext = errors.New("netlink: busy")
	if _, err := e.m.Reconcile(ctx); err == nil {
		t.Fatal("reconcile with a failing re-add succeeded")
	}
	st := e.m.Stats()
	if st.ReconcileReAdded != 1 || st.ReconcileRemoved != 1 || st.ReconcileFailures != 1 {
		t.Fatalf("stats %+v", st)
	}
}
