package daemon

import (
	"context"
	"errors"
	"net/netip"
	"testing"

	"github.com/palisade-project/palisade/internal/firewall"
)

// selfChecking is a Fake that says whether it is intact.
type selfChecking struct {
	*firewall.Fake
	intact bool
}

func (s *selfChecking) Intact(context.Context) error {
	if !s.intact {
		return errors.New("set missing")
	}
	return nil
}

func TestRouterIntact(t *testing.T) {
	ctx := context.Background()
	checked := &selfChecking{Fake: firewall.NewFake(), intact: true}
	tests := []struct {
		name  string
		other firewall.Backend // enforces jail "web"
		want  bool
	}{
		{"every backend checks itself", &selfChecking{Fake: firewall.NewFake(), intact: true}, true},
		{"one is not intact", &selfChecking{Fake: firewall.NewFake(), intact: false}, false},
		{"one cannot tell", firewall.NewFake(), false},
		{"one cannot list: skipped", unlistable{firewall.NewFake()}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newRouter(ctx, checked)
			r.route(ctx, "web", tc.other)
			if err := r.Setup(ctx, []firewall.JailSpec{{Name: "sshd"}, {Name: "web"}}); err != nil {
				t.Fatal(err)
			}
			if err := r.Intact(ctx); (err == nil) != tc.want {
				t.Fatalf("Intact = %v; want intact %v", err, tc.want)
			}
		})
	}
}

// listCounter counts the Lists that read its bans (honouring a done
// context first, as firewall.Backend requires).
type listCounter struct {
	*firewall.Fake
	full int
}

func (l *listCounter) List(ctx context.Context) ([]firewall.Ban, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	l.full++
	return l.Fake.List(ctx)
}

// TestRouterProbeDoesNotList: finding out whether a backend can list must
// not read its bans (100,000 nftables elements took seconds at start-up).
func TestRouterProbeDoesNotList(t *testing.T) {
	ctx := context.Background()
	a, b := &listCounter{Fake: firewall.NewFake()}, &listCounter{Fake: firewall.NewFake()}
	r := newRouter(ctx, a)
	r.route(ctx, "web", b)
	if a.full+b.full != 0 {
		t.Fatalf("probing listed %d times", a.full+b.full)
	}
	if _, err := r.List(ctx); err != nil || a.full != 1 || b.full != 1 {
		t.Fatalf("List: %v, lists %d/%d", err, a.full, b.full)
	}
	x := unlistable{firewall.NewFake()}
	only := newRouter(ctx, x)
	if !only.notListable[x] {
		t.Fatal("a backend that cannot list was not recognised")
	}
}

// TestMeteredKeepsCapabilities: the metrics wrapper passes AddMissing and
// Intact through, and falls back to Add and "not intact" for a backend
// without them.
func TestMeteredKeepsCapabilities(t *testing.T) {
	ctx := context.Background()
	d := &Daemon{}
	checked := d.meter(&selfChecking{Fake: firewall.NewFake(), intact: true})
	plain := d.meter(firewall.NewFake())
	for _, tc := range []struct {
		b      firewall.Backend
		intact bool
	}{{checked, true}, {plain, false}} {
		ic, ok := tc.b.(firewall.IntactChecker)
		if !ok {
			t.Fatal("metered backend hides IntactChecker")
		}
		if err := ic.Intact(ctx); (err == nil) != tc.intact {
			t.Fatalf("Intact = %v; want intact %v", err, tc.intact)
		}
		ma, ok := tc.b.(firewall.MissingAdder)
		if !ok {
			t.Fatal("metered backend hides MissingAdder")
		}
		if err := ma.AddMissing(ctx, []firewall.Ban{{Jail: "sshd", Prefix: netip.MustParsePrefix("192.0.2.1/32")}}); err != nil {
			t.Fatal(err)
		}
		if l, _ := tc.b.List(ctx); len(l) != 1 {
			t.Fatalf("AddMissing enforced %d bans", len(l))
		}
	}
}
