package nft

import (
	"context"
	"errors"
	"testing"

	"github.com/palisade-project/palisade/internal/firewall"
	"github.com/palisade-project/palisade/internal/firewall/nstest"
)

func TestIntact(t *testing.T) {
	ns := nstest.New(t)
	b := newBackend(t, ns)
	ctx := context.Background()
	if err := b.Intact(ctx); err != nil {
		t.Fatalf("no jails: %v", err)
	}
	spec := []firewall.JailSpec{{Name: "sshd", Scope: firewall.Scope{Ports: []firewall.PortRange{{From: 22, To: 22}}, Protocol: "tcp"}}}
	for _, tc := range []struct {
		damage   []string
		setsLost bool
	}{
		{[]string{"flush", "table", "inet", "palisade"}, false},
		{[]string{"flush", "chain", "inet", "palisade", "input"}, false},
		{[]string{"flush", "chain", "inet", "palisade", "j_sshd"}, false},
		{[]string{"flush", "chain", "inet", "palisade", "j_sshd", ";", "delete", "set", "inet", "palisade", "sshd_n6"}, true},
		{[]string{"delete", "table", "inet", "palisade"}, true},
		{[]string{"flush", "ruleset"}, true},
	} {
		if err := b.Setup(ctx, spec); err != nil {
			t.Fatal(err)
		}
		if err := b.Intact(ctx); err != nil {
			t.Fatalf("after Setup: %v", err)
		}
		nftCmd(t, ns, tc.damage...)
		err := b.Intact(ctx)
		if err == nil || errors.Is(err, ErrSetsLost) != tc.setsLost {
			t.Errorf("after nft %v: %v (sets lost: want %v)", tc.damage, err, tc.setsLost)
		}
	}
}

// TestListHonoursDoneContext: the router probes listability with a
// cancelled context, which must not read the set elements.
func TestListHonoursDoneContext(t *testing.T) {
	ns := nstest.New(t)
	b := newBackend(t, ns)
	ctx := context.Background()
	if err := b.Setup(ctx, []firewall.JailSpec{sshd}); err != nil {
		t.Fatal(err)
	}
	if err := b.Add(ctx, []firewall.Ban{{Jail: "sshd", Prefix: pfx("192.0.2.1")}}); err != nil {
		t.Fatal(err)
	}
	done, cancel := context.WithCancel(ctx)
	cancel()
	l, err := b.List(done)
	if err == nil || errors.Is(err, firewall.ErrNotListable) || len(l) != 0 {
		t.Fatalf("List(done) = %v, %v; want the context's error and nothing read", l, err)
	}
}
