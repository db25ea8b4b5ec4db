package daemon

import (
	"context"
	"errors"
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
