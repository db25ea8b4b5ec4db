package nft

import (
	"context"
	"testing"
	"time"

	"github.com/palisade-project/palisade/internal/firewall"
	"github.com/palisade-project/palisade/internal/firewall/nstest"
)

// TestAddMissing: bans the kernel lacks are added with their timeouts,
// the one it holds stays, expired ones are skipped, and nothing fails on
// elements already present.
func TestAddMissing(t *testing.T) {
	ns := nstest.New(t)
	b := newBackend(t, ns)
	ctx := context.Background()
	if err := b.Setup(ctx, []firewall.JailSpec{sshd}); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if err := b.Add(ctx, []firewall.Ban{{Jail: "sshd", Prefix: pfx("192.0.2.1"), Expires: now.Add(time.Hour)}}); err != nil {
		t.Fatal(err)
	}
	want := []firewall.Ban{
		{Jail: "sshd", Prefix: pfx("192.0.2.1"), Expires: now.Add(time.Hour)},
		{Jail: "sshd", Prefix: pfx("192.0.2.2"), Expires: now.Add(2 * time.Hour)},
		{Jail: "sshd", Prefix: pfx("2001:db8:5::/64")},
		{Jail: "sshd", Prefix: pfx("198.51.100.0/24"), Expires: now.Add(3 * time.Hour)},
	}
	expired := firewall.Ban{Jail: "sshd", Prefix: pfx("203.0.113.9"), Expires: now.Add(-time.Second)}
	for range 2 { // idempotent
		if err := b.AddMissing(ctx, append(want, expired)); err != nil {
			t.Fatal(err)
		}
	}
	got, err := b.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("kernel holds %+v, want %d bans", got, len(want))
	}
	byPrefix := map[string]firewall.Ban{}
	for _, g := range got {
		byPrefix[g.Prefix.String()] = g
	}
	for _, w := range want {
		g, ok := byPrefix[w.Prefix.String()]
		switch {
		case !ok:
			t.Fatalf("%s missing", w.Prefix)
		case w.Expires.IsZero() != g.Expires.IsZero():
			t.Fatalf("%s: permanence differs: %v", w.Prefix, g.Expires)
		case !w.Expires.IsZero() && g.Expires.Sub(w.Expires).Abs() > firewall.ReconcileSlack:
			t.Fatalf("%s: expires %v, want %v", w.Prefix, g.Expires, w.Expires)
		}
	}
}
