// Package fwtest is the shared kernel test suite for firewall backends:
// each case runs in fresh network namespaces (package nstest) and checks
// sets, kernel timeouts, prefixes, IPv6, port scoping with real TCP
// connections, idempotence, reconciliation after external damage and a
// clean teardown. Only tests import it.
package fwtest

import (
	"context"
	"fmt"
	"net/netip"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/palisade-project/palisade/internal/firewall"
	"github.com/palisade-project/palisade/internal/firewall/nstest"
	"github.com/palisade-project/palisade/internal/sysexec"
)

// Suite describes the backend under test.
type Suite struct {
	// New returns a backend that works inside ns.
	New func(t *testing.T, ns *nstest.NS) firewall.Backend
	// Damage lists external changes (each a list of commands run inside the
	// namespace) after which Setup plus firewall.Reconcile must restore
	// enforcement, for example flushing the sets or deleting the chain.
	Damage [][]sysexec.Cmd
	// Leftovers describes what the backend left in ns after Teardown
	// ("" when clean).
	Leftovers func(t *testing.T, ns *nstest.NS) string
	// NoKernelTimeouts skips the kernel-expiry case (ufw: the ban manager
	// lifts expired bans itself).
	NoKernelTimeouts bool
}

// Run runs every case.
func Run(t *testing.T, s Suite) {
	t.Run("SetsPrefixesIPv6", s.setsPrefixesIPv6)
	if !s.NoKernelTimeouts {
		t.Run("TimeoutExpires", s.timeoutExpires)
	}
	t.Run("Refresh", s.refresh)
	t.Run("Idempotent", s.idempotent)
	t.Run("PortScoping", s.portScoping)
	t.Run("Reconcile", s.reconcile)
	t.Run("JailNames", s.jailNames)
}

// P parses an address (as a full-length prefix) or a prefix.
func P(s string) netip.Prefix {
	if !strings.Contains(s, "/") {
		a := netip.MustParseAddr(s)
		return netip.PrefixFrom(a, a.BitLen())
	}
	return netip.MustParsePrefix(s)
}

// Jail is a tcp jail on the given ports.
func Jail(name string, block firewall.Block, ports ...uint16) firewall.JailSpec {
	j := firewall.JailSpec{Name: name, Block: block, Scope: firewall.Scope{Protocol: "tcp"}}
	for _, p := range ports {
		j.Scope.Ports = append(j.Scope.Ports, firewall.PortRange{From: p, To: p})
	}
	return j
}

// Listed returns the backend's bans keyed "jail prefix".
func Listed(t *testing.T, b firewall.Backend) map[string]firewall.Ban {
	t.Helper()
	bans, err := b.List(context.Background())
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	out := map[string]firewall.Ban{}
	for _, x := range bans {
		out[x.Jail+" "+x.Prefix.String()] = x
	}
	return out
}

func keys(m map[string]firewall.Ban) string {
	var s []string
	for k := range m {
		s = append(s, k)
	}
	sort.Strings(s)
	return strings.Join(s, ", ")
}

func (s Suite) setsPrefixesIPv6(t *testing.T) {
	ns := nstest.New(t)
	b := s.New(t, ns)
	ctx := context.Background()
	if err := b.Setup(ctx, []firewall.JailSpec{Jail("sshd", firewall.Reject, 22)}); err != nil {
		t.Fatal(err)
	}
	hour := time.Now().Add(time.Hour)
	bans := []firewall.Ban{
		{Jail: "sshd", Prefix: P("192.0.2.7"), Expires: hour},
		{Jail: "sshd", Prefix: P("192.0.2.8")},
		{Jail: "sshd", Prefix: P("198.51.100.0/24"), Expires: hour},
		{Jail: "sshd", Prefix: P("203.0.113.128/25")},
		{Jail: "sshd", Prefix: P("2001:db8::5"), Expires: hour},
		{Jail: "sshd", Prefix: P("2001:db8:1::/48")},
		{Jail: "sshd", Prefix: P("::ffff:192.0.2.9")},
	}
	if err := b.Add(ctx, bans); err != nil {
		t.Fatalf("Add: %v", err)
	}
	want := map[string]bool{ // key -> permanent
		"sshd 192.0.2.7/32": false, "sshd 192.0.2.8/32": true, "sshd 198.51.100.0/24": false,
		"sshd 203.0.113.128/25": true, "sshd 2001:db8::5/128": false, "sshd 2001:db8:1::/48": true,
		"sshd 192.0.2.9/32": true,
	}
	got := Listed(t, b)
	if len(got) != len(want) {
		t.Errorf("List: %s; want %d bans", keys(got), len(want))
	}
	for k, perm := range want {
		g, ok := got[k]
		if !ok {
			t.Errorf("List lacks %s", k)
			continue
		}
		if g.Expires.IsZero() != perm {
			t.Errorf("%s: permanent = %v, want %v", k, g.Expires.IsZero(), perm)
		}
		if !perm && g.Expires.Sub(hour).Abs() > 5*time.Second {
			t.Errorf("%s: expires %v, want about %v", k, g.Expires, hour)
		}
	}
	if err := b.Teardown(ctx); err != nil {
		t.Fatalf("Teardown: %v", err)
	}
	if s.Leftovers != nil {
		if left := s.Leftovers(t, ns); left != "" {
			t.Errorf("Teardown left:\n%s", left)
		}
	}
	if err := b.Teardown(ctx); err != nil {
		t.Errorf("second Teardown: %v", err)
	}
}

func (s Suite) timeoutExpires(t *testing.T) {
	ns := nstest.New(t)
	b := s.New(t, ns)
	ctx := context.Background()
	if err := b.Setup(ctx, []firewall.JailSpec{Jail("sshd", firewall.Reject, 22)}); err != nil {
		t.Fatal(err)
	}
	exp := time.Now().Add(1500 * time.Millisecond)
	bans := []firewall.Ban{
		{Jail: "sshd", Prefix: P("192.0.2.1"), Expires: exp},
		{Jail: "sshd", Prefix: P("2001:db8::/64"), Expires: exp},
		{Jail: "sshd", Prefix: P("192.0.2.2")}, // permanent: stays
	}
	if err := b.Add(ctx, bans); err != nil {
		t.Fatal(err)
	}
	if got := Listed(t, b); len(got) != 3 {
		t.Fatalf("after Add: %s", keys(got))
	}
	nstest.Eventually(t, 10*time.Second, "timed bans expire in the kernel", func() error {
		if got := Listed(t, b); len(got) != 1 {
			return fmt.Errorf("listed: %s", keys(got))
		}
		return nil
	})
	if _, ok := Listed(t, b)["sshd 192.0.2.2/32"]; !ok {
		t.Error("permanent ban vanished")
	}
}

func (s Suite) refresh(t *testing.T) {
	ns := nstest.New(t)
	b := s.New(t, ns)
	ctx := context.Background()
	if err := b.Setup(ctx, []firewall.JailSpec{Jail("sshd", firewall.Reject, 22)}); err != nil {
		t.Fatal(err)
	}
	for _, pfx := range []string{"192.0.2.2", "2001:db8:5::/48"} {
		ban := firewall.Ban{Jail: "sshd", Prefix: P(pfx), Expires: time.Now().Add(30 * time.Second)}
		if err := b.Add(ctx, []firewall.Ban{ban}); err != nil {
			t.Fatal(err)
		}
		ban.Expires = time.Time{}
		if err := b.Add(ctx, []firewall.Ban{ban}); err != nil {
			t.Fatal(err)
		}
		k := "sshd " + ban.Prefix.String()
		if g, ok := Listed(t, b)[k]; !ok || !g.Expires.IsZero() {
			t.Errorf("%s refreshed to permanent: got %+v (listed %v)", k, g, ok)
		}
		ban.Expires = time.Now().Add(time.Hour)
		if err := b.Add(ctx, []firewall.Ban{ban}); err != nil {
			t.Fatal(err)
		}
		if g := Listed(t, b)[k]; g.Expires.Sub(ban.Expires).Abs() > 5*time.Second {
			t.Errorf("%s refreshed to 1h: expiry %v, want %v", k, g.Expires, ban.Expires)
		}
	}
}

func (s Suite) idempotent(t *testing.T) {
	ns := nstest.New(t)
	b := s.New(t, ns)
	ctx := context.Background()
	for i := 0; i < 2; i++ {
		if err := b.Setup(ctx, []firewall.JailSpec{Jail("sshd", firewall.Reject, 22)}); err != nil {
			t.Fatalf("Setup #%d: %v", i, err)
		}
	}
	bans := []firewall.Ban{{Jail: "sshd", Prefix: P("192.0.2.3")}, {Jail: "sshd", Prefix: P("198.51.100.0/24")}, {Jail: "sshd", Prefix: P("2001:db8::3")}}
	for i := 0; i < 2; i++ {
		if err := b.Add(ctx, bans); err != nil {
			t.Fatalf("Add #%d: %v", i, err)
		}
	}
	if got := Listed(t, b); len(got) != 3 {
		t.Errorf("after double add: %s", keys(got))
	}
	missing := []firewall.Ban{{Jail: "sshd", Prefix: P("203.0.113.9")}, {Jail: "sshd", Prefix: P("2001:db8:9::/48")}}
	for i := 0; i < 2; i++ {
		if err := b.Remove(ctx, append(bans, missing...)); err != nil {
			t.Fatalf("Remove #%d: %v", i, err)
		}
	}
	if got := Listed(t, b); len(got) != 0 {
		t.Errorf("after remove: %s", keys(got))
	}
	if err := b.Add(ctx, []firewall.Ban{{Jail: "nosuch", Prefix: P("192.0.2.1")}}); err == nil {
		t.Error("Add to a jail that is not set up succeeded")
	}
}

// Pair returns a server namespace (where the firewall runs) linked to a
// client namespace: server 192.0.2.1 / 2001:db8::1, client 192.0.2.2 /
// 2001:db8::2, with TCP listeners on the given server ports.
func Pair(t *testing.T, ports ...int) (srv, cli *nstest.NS) {
	srv, cli = nstest.New(t), nstest.New(t)
	nstest.Link(t, srv, cli,
		[]netip.Prefix{P("192.0.2.1/24"), P("2001:db8::1/64")},
		[]netip.Prefix{P("192.0.2.2/24"), P("2001:db8::2/64")})
	for _, p := range ports {
		nstest.Listen(t, srv, fmt.Sprintf("192.0.2.1:%d", p))
		nstest.Listen(t, srv, fmt.Sprintf("[2001:db8::1]:%d", p))
	}
	return srv, cli
}

// Expect dials addr from cli and checks the outcome.
func Expect(t *testing.T, cli *nstest.NS, addr string, want nstest.Outcome) {
	t.Helper()
	got, err := nstest.Dial(cli, addr, 400*time.Millisecond)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	if got != want {
		t.Errorf("dial %s: %s, want %s", addr, got, want)
	}
}

func (s Suite) portScoping(t *testing.T) {
	srv, cli := Pair(t, 2222, 8080, 9090)
	b := s.New(t, srv)
	ctx := context.Background()
	web := Jail("web", firewall.Drop)
	web.Scope.Ports = []firewall.PortRange{{From: 8000, To: 8100}}
	jails := []firewall.JailSpec{Jail("ssh", firewall.Reject, 2222), web, {Name: "all", Scope: firewall.Scope{Protocol: "all"}}}
	if err := b.Setup(ctx, jails); err != nil {
		t.Fatal(err)
	}
	Expect(t, cli, "192.0.2.1:2222", nstest.Connected)
	Expect(t, cli, "[2001:db8::1]:2222", nstest.Connected)

	ssh := []firewall.Ban{{Jail: "ssh", Prefix: P("192.0.2.2")}, {Jail: "ssh", Prefix: P("2001:db8::/64")}}
	if err := b.Add(ctx, ssh); err != nil {
		t.Fatal(err)
	}
	Expect(t, cli, "192.0.2.1:2222", nstest.Refused)
	Expect(t, cli, "[2001:db8::1]:2222", nstest.Refused)
	Expect(t, cli, "192.0.2.1:8080", nstest.Connected)
	Expect(t, cli, "[2001:db8::1]:8080", nstest.Connected)

	webBans := []firewall.Ban{{Jail: "web", Prefix: P("192.0.2.0/24")}, {Jail: "web", Prefix: P("2001:db8::2")}}
	if err := b.Add(ctx, webBans); err != nil {
		t.Fatal(err)
	}
	Expect(t, cli, "192.0.2.1:8080", nstest.TimedOut)
	Expect(t, cli, "[2001:db8::1]:8080", nstest.TimedOut)
	Expect(t, cli, "192.0.2.1:9090", nstest.Connected)

	if err := b.Remove(ctx, append(ssh, webBans...)); err != nil {
		t.Fatal(err)
	}
	Expect(t, cli, "192.0.2.1:2222", nstest.Connected)
	Expect(t, cli, "192.0.2.1:8080", nstest.Connected)
	Expect(t, cli, "[2001:db8::1]:2222", nstest.Connected)

	all := []firewall.Ban{{Jail: "all", Prefix: P("192.0.2.2"), Expires: time.Now().Add(time.Hour)}}
	if err := b.Add(ctx, all); err != nil {
		t.Fatal(err)
	}
	Expect(t, cli, "192.0.2.1:9090", nstest.Refused)
	Expect(t, cli, "192.0.2.1:2222", nstest.Refused)
	Expect(t, cli, "[2001:db8::1]:2222", nstest.Connected)
}

func (s Suite) reconcile(t *testing.T) {
	srv, cli := Pair(t, 22)
	b := s.New(t, srv)
	ctx := context.Background()
	jails := []firewall.JailSpec{Jail("sshd", firewall.Reject, 22)}
	if err := b.Setup(ctx, jails); err != nil {
		t.Fatal(err)
	}
	want := []firewall.Ban{
		{Jail: "sshd", Prefix: P("192.0.2.2"), Expires: time.Now().Add(time.Hour)},
		{Jail: "sshd", Prefix: P("2001:db8::/64")},
	}
	if err := b.Add(ctx, want); err != nil {
		t.Fatal(err)
	}
	Expect(t, cli, "192.0.2.1:22", nstest.Refused)
	run := nstest.Runner{NS: srv, Inner: sysexec.NewExec(10 * time.Second)}
	for i, damage := range s.Damage {
		for _, c := range damage {
			if _, err := run.Run(ctx, c); err != nil {
				t.Fatalf("damage %d: %v", i, err)
			}
		}
		if err := b.Setup(ctx, jails); err != nil {
			t.Fatalf("Setup after damage %d: %v", i, err)
		}
		added, removed, err := firewall.Reconcile(ctx, b, want, time.Now())
		if err != nil {
			t.Fatalf("Reconcile after damage %d: %v", i, err)
		}
		t.Logf("damage %d (%v): re-added %d, removed %d", i, damage, added, removed)
		Expect(t, cli, "192.0.2.1:22", nstest.Refused)
		Expect(t, cli, "[2001:db8::1]:22", nstest.Refused)
		if got := Listed(t, b); len(got) != 2 {
			t.Errorf("after damage %d: %s", i, keys(got))
		}
	}
	extra := firewall.Ban{Jail: "sshd", Prefix: P("203.0.113.5")}
	if err := b.Add(ctx, []firewall.Ban{extra}); err != nil {
		t.Fatal(err)
	}
	if added, removed, err := firewall.Reconcile(ctx, b, want, time.Now()); err != nil || added != 0 || removed != 1 {
		t.Errorf("Reconcile with an unwanted ban: added %d removed %d err %v", added, removed, err)
	}
}

// jailNames checks that every name firewall.CheckJailName accepts works:
// characters kernel objects do not take, the longest name, and two long
// names that differ only at their end. Bans are enforced, listed under the
// jail's own name and removed.
func (s Suite) jailNames(t *testing.T) {
	srv, cli := Pair(t, 22)
	b := s.New(t, srv)
	ctx := context.Background()
	long := strings.Repeat("j", firewall.MaxJailName-1)
	names := []string{"web@x", "mail:smtp", long + "a", long + "b"}
	var jails []firewall.JailSpec
	for _, n := range names {
		if err := firewall.CheckJailName(n); err != nil {
			t.Fatal(err)
		}
		jails = append(jails, Jail(n, firewall.Reject, 22))
	}
	if err := b.Setup(ctx, jails); err != nil {
		t.Fatal(err)
	}
	var bans []firewall.Ban
	for i, n := range names {
		bans = append(bans, firewall.Ban{Jail: n, Prefix: P(fmt.Sprintf("203.0.113.%d", i+1))})
	}
	bans = append(bans, firewall.Ban{Jail: "web@x", Prefix: P("192.0.2.2")})
	if err := b.Add(ctx, bans); err != nil {
		t.Fatal(err)
	}
	got := Listed(t, b)
	for _, x := range bans {
		if _, ok := got[x.Jail+" "+x.Prefix.String()]; !ok {
			t.Errorf("ban %s %s not listed under its jail: %s", x.Jail, x.Prefix, keys(got))
		}
	}
	if len(got) != len(bans) {
		t.Errorf("listed %s, want %d bans", keys(got), len(bans))
	}
	Expect(t, cli, "192.0.2.1:22", nstest.Refused)
	if err := b.Remove(ctx, bans); err != nil {
		t.Fatal(err)
	}
	if got := Listed(t, b); len(got) != 0 {
		t.Errorf("after remove: %s", keys(got))
	}
	Expect(t, cli, "192.0.2.1:22", nstest.Connected)
}
