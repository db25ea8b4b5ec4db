package ban

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/palisade-project/palisade/internal/firewall"
)

// TestReenforce: after the firewall lost its sets, every active ban is
// added again — those made since start-up and those the database could
// not save included, expired ones not — with no ban events; a refusal
// leaves the bans unenforced for reconcile.
func TestReenforce(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, Config{})
	reqs := []Request{
		{Jail: "sshd", Prefix: pfx("192.0.2.1"), Duration: time.Hour, Reason: "test"},
		{Jail: "sshd", Prefix: pfx("2001:db8::1"), Duration: -1, Reason: "test"},
		{Jail: "web", Prefix: pfx("198.51.100.2"), Duration: time.Minute, Reason: "test"},
	}
	for i, r := range e.m.BanMany(ctx, reqs) {
		if r.Err != nil {
			t.Fatalf("ban %d: %v", i, r.Err)
		}
	}
	e.clock.Add(2 * time.Minute) // the web ban has ended (not yet expired by Run)
	events, cancel := e.m.Subscribe(16)
	defer cancel()

	lose := func() {
		if err := e.fw.Teardown(ctx); err != nil {
			t.Fatal(err)
		}
	}
	lose()
	e.fw.FailNext = errors.New("netlink: busy")
	if _, err := e.m.Reenforce(ctx); !errors.Is(err, ErrNotEnforced) {
		t.Fatalf("refused: err = %v, want ErrNotEnforced", err)
	}
	for _, b := range e.m.List("") {
		if b.Enforced && b.Jail == "sshd" {
			t.Fatalf("%s marked enforced after a refusal", b.Prefix)
		}
	}
	n, err := e.m.Reenforce(ctx)
	if err != nil || n != 2 {
		t.Fatalf("Reenforce = %d, %v; want 2", n, err)
	}
	got := fwPrefixes(t, e.fw)
	slices.Sort(got)
	if want := []string{"sshd 192.0.2.1/32", "sshd 2001:db8::1/128"}; !slices.Equal(got, want) {
		t.Fatalf("firewall holds %v, want %v", got, want)
	}
	for _, b := range e.m.List("sshd") {
		if !b.Enforced {
			t.Fatalf("%s not marked enforced", b.Prefix)
		}
	}
	select {
	case ev := <-events:
		t.Fatalf("Reenforce announced %+v", ev)
	default:
	}

	// Nothing to do on an empty manager.
	if n, err := newEnv(t, Config{}).m.Reenforce(ctx); n != 0 || err != nil {
		t.Fatalf("empty: %d, %v", n, err)
	}
}

// missingAdder is a Fake with AddMissing, counting its calls.
type missingAdder struct {
	*firewall.Fake
	calls, bans int
}

func (m *missingAdder) AddMissing(ctx context.Context, bans []firewall.Ban) error {
	m.calls++
	m.bans += len(bans)
	return m.Fake.Add(ctx, bans)
}

// TestReenforceUsesAddMissing: the bulk re-add goes through the cheap
// path when the backend has one, in one call.
func TestReenforceUsesAddMissing(t *testing.T) {
	ctx := context.Background()
	fw := &missingAdder{Fake: firewall.NewFake()}
	m, err := New(Config{}, Deps{Store: newEnv(t, Config{}).st, Backend: fw, Now: (&clock{t: t0}).Now})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		p := pfx("203.0.113." + string(rune('1'+i)))
		if _, err := m.Ban(ctx, "sshd", p, time.Hour, "test"); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := m.Reenforce(ctx); n != 3 || err != nil || fw.calls != 1 || fw.bans != 3 {
		t.Fatalf("Reenforce = %d, %v; AddMissing calls %d with %d bans", n, err, fw.calls, fw.bans)
	}
}
