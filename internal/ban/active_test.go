package ban

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/palisade-project/palisade/internal/filter"
	"github.com/palisade-project/palisade/internal/jail"
)

// TestActiveBan: what the manager tells a jail about the bans in force.
func TestActiveBan(t *testing.T) {
	e := newEnv(t, Config{})
	ctx := context.Background()
	if _, err := e.m.Ban(ctx, "sshd", pfx("192.0.2.1"), time.Hour, "x"); err != nil {
		t.Fatal(err)
	}
	e.clock.Add(time.Minute)
	if _, err := e.m.Ban(ctx, "sshd", pfx("2001:db8:1::/64"), time.Hour, "x"); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		jail    string
		p       string
		ok      bool
		start   time.Time
		offence int
	}{
		{"own ban", "sshd", "192.0.2.1", true, t0, 1},
		{"IPv4-mapped", "sshd", "::ffff:192.0.2.1", true, t0, 1},
		{"network ban covers", "sshd", "2001:db8:1::7", true, t0.Add(time.Minute), 0},
		{"network's own", "sshd", "2001:db8:1::/64", true, t0.Add(time.Minute), 1},
		{"not banned", "sshd", "192.0.2.2", false, time.Time{}, 0},
		{"other jail", "postfix", "192.0.2.1", false, time.Time{}, 0},
		{"invalid", "sshd", "", false, time.Time{}, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var p netip.Prefix
			if tc.p != "" {
				p = pfx(tc.p)
			}
			start, off, ok := e.m.ActiveBan(tc.jail, p)
			if ok != tc.ok || !start.Equal(tc.start) || off != tc.offence {
				t.Fatalf("ActiveBan = %v, %d, %v; want %v, %d, %v", start, off, ok, tc.start, tc.offence, tc.ok)
			}
		})
	}
	if _, err := e.m.Unban(ctx, "sshd", pfx("192.0.2.1")); err != nil {
		t.Fatal(err)
	}
	if _, _, ok := e.m.ActiveBan("sshd", pfx("192.0.2.1")); ok {
		t.Fatal("lifted ban still reported")
	}
}

// TestJailAfterRestart: a jail that starts empty (a restart) learns the
// bans in force from the manager: an address's failures logged before its
// ban began are not counted again, its later ones are, and its next ban
// escalates from the offence the manager and the history know.
func TestJailAfterRestart(t *testing.T) {
	e := newEnv(t, Config{})
	ctx := context.Background()
	ip := netip.MustParseAddr("203.0.113.50")
	if _, err := e.m.Ban(ctx, "sshd", netip.PrefixFrom(ip, 32), time.Hour, "x"); err != nil {
		t.Fatal(err)
	}
	j, err := jail.New(jail.Config{
		Name: "sshd", MaxRetry: 4, FindTime: 10 * time.Minute, BanTime: time.Hour,
		Increment: jail.Increment{Enabled: true, Factor: 24},
	}, jail.Deps{History: e.m, Bans: e.m})
	if err != nil {
		t.Fatal(err)
	}
	now := t0.Add(time.Minute)
	var got []jail.Action
	for _, at := range []time.Duration{-time.Minute, -time.Second, 0, time.Second, 2 * time.Second} {
		got = append(got, j.Observe(filter.Failure{Addr: ip, Time: t0.Add(at)}, now).Action)
	}
	// Failures up to the ban's start are skipped; the known offender's
	// later failures weigh 2, so two ban again, escalated.
	want := []jail.Action{jail.Skipped, jail.Skipped, jail.Skipped, jail.Counted, jail.Banned}
	if !slices.Equal(got, want) {
		t.Fatalf("actions %v, want %v", got, want)
	}
}

// TestEventLines: the matched lines of a request travel with its ban
// event only.
func TestEventLines(t *testing.T) {
	e := newEnv(t, Config{})
	events, cancel := e.m.Subscribe(8)
	defer cancel()
	lines := []string{"Failed password for root from 192.0.2.1 port 22 ssh2"}
	res := e.m.BanMany(context.Background(), []Request{{Jail: "sshd", Prefix: pfx("192.0.2.1"), Duration: time.Hour, Reason: "x", Lines: lines}})
	if res[0].Err != nil {
		t.Fatal(res[0].Err)
	}
	if ev := <-events; ev.Kind != EventBan || !slices.Equal(ev.Lines, lines) {
		t.Fatalf("event %+v", ev)
	}
}

// TestRestoreSliceRefused: when the firewall refuses one slice of a
// restore, that slice's bans stay marked unenforced (the next reconcile
// adds them), the others are enforced, and Restore says how many failed.
func TestRestoreSliceRefused(t *testing.T) {
	e := newEnv(t, Config{})
	const n = restoreChunk + 100
	if err := e.st.AddBans(genStoreBans(n, t0)); err != nil {
		t.Fatal(err)
	}
	e.fw.FailNext = errors.New("netlink: device busy")
	st, err := e.m.Restore(context.Background())
	if !errors.Is(err, ErrNotEnforced) || st.Restored != n || !strings.Contains(err.Error(), fmt.Sprintf("restore %d of %d bans", restoreChunk, n)) {
		t.Fatalf("Restore: %+v, %v", st, err)
	}
	unenforced := 0
	for _, b := range e.m.List("") {
		if !b.Enforced {
			unenforced++
		}
	}
	if unenforced != restoreChunk {
		t.Fatalf("%d bans unenforced, want %d", unenforced, restoreChunk)
	}
	if l, _ := e.fw.List(context.Background()); len(l) != n-restoreChunk {
		t.Fatalf("firewall holds %d", len(l))
	}
	if rs, err := e.m.Reconcile(context.Background()); err != nil || rs.ReAdded != restoreChunk {
		t.Fatalf("reconcile %+v %v", rs, err)
	}
	if l, _ := e.fw.List(context.Background()); len(l) != n {
		t.Fatalf("after reconcile the firewall holds %d", len(l))
	}
}
