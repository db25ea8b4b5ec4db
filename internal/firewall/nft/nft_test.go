package nft

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/palisade-project/palisade/internal/firewall"
	"github.com/palisade-project/palisade/internal/firewall/fwtest"
	"github.com/palisade-project/palisade/internal/firewall/nstest"
	"github.com/palisade-project/palisade/internal/sysexec"
)

func newBackend(t *testing.T, ns *nstest.NS) *Backend {
	t.Helper()
	b, err := New(Options{NetNSFd: ns.Fd(), Verify: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func nftCmd(t *testing.T, ns *nstest.NS, args ...string) string {
	t.Helper()
	nstest.RequireProgram(t, "nft", "ip")
	r := nstest.Runner{NS: ns, Inner: sysexec.NewExec(10 * time.Second)}
	res, err := r.Run(context.Background(), sysexec.Cmd{Name: "nft", Args: args})
	if err != nil {
		t.Fatalf("nft %v: %v", args, err)
	}
	return string(res.Stdout)
}

func pfx(s string) netip.Prefix {
	if !strings.Contains(s, "/") {
		a := netip.MustParseAddr(s)
		return netip.PrefixFrom(a, a.BitLen())
	}
	return netip.MustParsePrefix(s)
}

var sshd = firewall.JailSpec{Name: "sshd", Scope: firewall.Scope{Ports: []firewall.PortRange{{From: 22, To: 22}}, Protocol: "tcp"}}

func TestSetsPrefixesIPv6ListTeardown(t *testing.T) {
	ns := nstest.New(t)
	b := newBackend(t, ns)
	ctx := context.Background()
	if err := b.Setup(ctx, []firewall.JailSpec{sshd}); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	hour := now.Add(time.Hour)
	bans := []firewall.Ban{
		{Jail: "sshd", Prefix: pfx("192.0.2.7"), Expires: hour},
		{Jail: "sshd", Prefix: pfx("192.0.2.8")},
		{Jail: "sshd", Prefix: pfx("198.51.100.0/24"), Expires: hour},
		{Jail: "sshd", Prefix: pfx("203.0.113.128/25")},
		{Jail: "sshd", Prefix: pfx("2001:db8::5"), Expires: hour},
		{Jail: "sshd", Prefix: pfx("2001:db8:1::/48")},
		{Jail: "sshd", Prefix: pfx("::ffff:192.0.2.9")}, // IPv4-mapped: stored as IPv4
		{Jail: "sshd", Prefix: pfx("192.0.2.0/0")},      // interval reaching the top: no end element
		{Jail: "sshd", Prefix: pfx("203.0.113.77"), Expires: now.Add(50 * 365 * 24 * time.Hour)},
	}
	if err := b.Add(ctx, bans); err != nil {
		t.Fatalf("Add: %v", err)
	}
	got := fwtest.Listed(t, b)
	want := map[string]bool{ // key -> permanent
		"sshd 192.0.2.7/32": false, "sshd 192.0.2.8/32": true, "sshd 198.51.100.0/24": false,
		"sshd 203.0.113.128/25": true, "sshd 2001:db8::5/128": false, "sshd 2001:db8:1::/48": true,
		"sshd 192.0.2.9/32": true, "sshd 0.0.0.0/0": true, "sshd 203.0.113.77/32": false,
	}
	if len(got) != len(want) {
		t.Errorf("List returned %d bans, want %d: %v", len(got), len(want), got)
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
		if !perm && k != "sshd 203.0.113.77/32" && g.Expires.Sub(hour).Abs() > 5*time.Second {
			t.Errorf("%s: expires %v, want about %v", k, g.Expires, hour)
		}
	}
	out := nftCmd(t, ns, "list", "table", "inet", "palisade")
	for _, s := range []string{"sshd_a4", "sshd_n6", "flags interval,timeout", "hook input priority filter - 1", "tcp dport 22", "reject with tcp reset"} {
		if !strings.Contains(out, s) {
			t.Errorf("ruleset lacks %q:\n%s", s, out)
		}
	}

	if err := b.Teardown(ctx); err != nil {
		t.Fatal(err)
	}
	if rs := strings.TrimSpace(nftCmd(t, ns, "list", "ruleset")); rs != "" {
		t.Errorf("teardown left:\n%s", rs)
	}
	if err := b.Teardown(ctx); err != nil {
		t.Errorf("second Teardown: %v", err)
	}
	if got := fwtest.Listed(t, b); len(got) != 0 {
		t.Errorf("List after teardown: %v", got)
	}
}

func TestTimeoutExpiresAndRefresh(t *testing.T) {
	ns := nstest.New(t)
	b := newBackend(t, ns)
	ctx := context.Background()
	if err := b.Setup(ctx, []firewall.JailSpec{sshd}); err != nil {
		t.Fatal(err)
	}
	short := []firewall.Ban{
		{Jail: "sshd", Prefix: pfx("192.0.2.1"), Expires: time.Now().Add(1500 * time.Millisecond)},
		{Jail: "sshd", Prefix: pfx("2001:db8::/64"), Expires: time.Now().Add(1500 * time.Millisecond)},
	}
	if err := b.Add(ctx, short); err != nil {
		t.Fatal(err)
	}
	if n := len(fwtest.Listed(t, b)); n != 2 {
		t.Fatalf("after Add: %d bans, want 2", n)
	}
	nstest.Eventually(t, 10*time.Second, "timed bans expire in the kernel", func() error {
		if got := fwtest.Listed(t, b); len(got) != 0 {
			return errString("still listed: " + keys(got))
		}
		return nil
	})

	// Refresh: a short ban re-added as permanent becomes permanent, and a
	// permanent one re-added with a timeout gets that timeout.
	ban := firewall.Ban{Jail: "sshd", Prefix: pfx("192.0.2.2"), Expires: time.Now().Add(2 * time.Second)}
	if err := b.Add(ctx, []firewall.Ban{ban}); err != nil {
		t.Fatal(err)
	}
	ban.Expires = time.Time{}
	if err := b.Add(ctx, []firewall.Ban{ban}); err != nil {
		t.Fatal(err)
	}
	if g := fwtest.Listed(t, b)["sshd 192.0.2.2/32"]; !g.Expires.IsZero() || !g.Prefix.IsValid() {
		t.Fatalf("refresh to permanent: got %+v", g)
	}
	ban.Expires = time.Now().Add(time.Hour)
	if err := b.Add(ctx, []firewall.Ban{ban}); err != nil {
		t.Fatal(err)
	}
	if g := fwtest.Listed(t, b)["sshd 192.0.2.2/32"]; g.Expires.Sub(ban.Expires).Abs() > 5*time.Second {
		t.Fatalf("refresh to 1h: got expiry %v, want %v", g.Expires, ban.Expires)
	}
}

type errString string

func (e errString) Error() string { return string(e) }

func keys(m map[string]firewall.Ban) string {
	var s []string
	for k := range m {
		s = append(s, k)
	}
	return strings.Join(s, ", ")
}

func TestIdempotent(t *testing.T) {
	ns := nstest.New(t)
	b := newBackend(t, ns)
	ctx := context.Background()
	for i := 0; i < 2; i++ {
		if err := b.Setup(ctx, []firewall.JailSpec{sshd}); err != nil {
			t.Fatalf("Setup #%d: %v", i, err)
		}
	}
	if rules := strings.Count(nftCmd(t, ns, "list", "chain", "inet", "palisade", "input"), "jump j_sshd"); rules != 1 {
		t.Errorf("input chain has %d jumps to j_sshd after two Setups, want 1", rules)
	}
	bans := []firewall.Ban{{Jail: "sshd", Prefix: pfx("192.0.2.3")}, {Jail: "sshd", Prefix: pfx("198.51.100.0/24")}}
	for i := 0; i < 2; i++ {
		if err := b.Add(ctx, bans); err != nil {
			t.Fatalf("Add #%d: %v", i, err)
		}
	}
	if n := len(fwtest.Listed(t, b)); n != 2 {
		t.Errorf("after double add: %d bans", n)
	}
	missing := []firewall.Ban{{Jail: "sshd", Prefix: pfx("203.0.113.9")}, {Jail: "sshd", Prefix: pfx("2001:db8:9::/48")}}
	for i := 0; i < 2; i++ {
		if err := b.Remove(ctx, append(bans, missing...)); err != nil {
			t.Fatalf("Remove #%d: %v", i, err)
		}
	}
	if n := len(fwtest.Listed(t, b)); n != 0 {
		t.Errorf("after remove: %d bans", n)
	}
	if err := b.Add(ctx, []firewall.Ban{{Jail: "nosuch", Prefix: pfx("192.0.2.1")}}); err == nil || !strings.Contains(err.Error(), "not set up") {
		t.Errorf("Add to unknown jail: %v", err)
	}
	if err := b.Setup(ctx, []firewall.JailSpec{{Name: "bad name;"}}); err == nil {
		t.Error("Setup accepted a bad jail name")
	}
}

// TestPortScoping checks real traffic: a client namespace connects to a
// server namespace where the firewall runs.
func TestPortScoping(t *testing.T) {
	srv, cli := nstest.New(t), nstest.New(t)
	nstest.Link(t, srv, cli,
		[]netip.Prefix{pfx("192.0.2.1/24"), pfx("2001:db8::1/64")},
		[]netip.Prefix{pfx("192.0.2.2/24"), pfx("2001:db8::2/64")})
	for _, a := range []string{"192.0.2.1:2222", "192.0.2.1:8080", "192.0.2.1:9090", "[2001:db8::1]:2222", "[2001:db8::1]:8080"} {
		nstest.Listen(t, srv, a)
	}
	b := newBackend(t, srv)
	ctx := context.Background()
	jails := []firewall.JailSpec{
		{Name: "ssh", Scope: firewall.Scope{Ports: []firewall.PortRange{{From: 2222, To: 2222}}, Protocol: "tcp"}, Block: firewall.Reject},
		{Name: "web", Scope: firewall.Scope{Ports: []firewall.PortRange{{From: 8000, To: 8100}}, Protocol: "tcp"}, Block: firewall.Drop},
		{Name: "all", Scope: firewall.Scope{Protocol: "all"}},
	}
	if err := b.Setup(ctx, jails); err != nil {
		t.Fatal(err)
	}
	expect := func(addr string, want nstest.Outcome) {
		t.Helper()
		got, err := nstest.Dial(cli, addr, 400*time.Millisecond)
		if err != nil {
			t.Fatalf("dial %s: %v", addr, err)
		}
		if got != want {
			t.Errorf("dial %s: %s, want %s", addr, got, want)
		}
	}
	expect("192.0.2.1:2222", nstest.Connected)
	expect("[2001:db8::1]:2222", nstest.Connected)

	ssh := []firewall.Ban{{Jail: "ssh", Prefix: pfx("192.0.2.2")}, {Jail: "ssh", Prefix: pfx("2001:db8::/64")}}
	if err := b.Add(ctx, ssh); err != nil {
		t.Fatal(err)
	}
	expect("192.0.2.1:2222", nstest.Refused)
	expect("[2001:db8::1]:2222", nstest.Refused)
	expect("192.0.2.1:8080", nstest.Connected)
	expect("[2001:db8::1]:8080", nstest.Connected)

	web := []firewall.Ban{{Jail: "web", Prefix: pfx("192.0.2.0/24")}}
	if err := b.Add(ctx, web); err != nil {
		t.Fatal(err)
	}
	expect("192.0.2.1:8080", nstest.TimedOut)
	expect("192.0.2.1:9090", nstest.Connected)

	if err := b.Remove(ctx, append(ssh, web...)); err != nil {
		t.Fatal(err)
	}
	expect("192.0.2.1:2222", nstest.Connected)
	expect("192.0.2.1:8080", nstest.Connected)
	expect("[2001:db8::1]:2222", nstest.Connected)

	all := []firewall.Ban{{Jail: "all", Prefix: pfx("192.0.2.2"), Expires: time.Now().Add(time.Hour)}}
	if err := b.Add(ctx, all); err != nil {
		t.Fatal(err)
	}
	expect("192.0.2.1:9090", nstest.Refused)
	expect("192.0.2.1:2222", nstest.Refused)
	expect("[2001:db8::1]:2222", nstest.Connected)
}

func TestReconcileAfterExternalFlush(t *testing.T) {
	srv, cli := nstest.New(t), nstest.New(t)
	nstest.Link(t, srv, cli, []netip.Prefix{pfx("192.0.2.1/24")}, []netip.Prefix{pfx("192.0.2.2/24")})
	nstest.Listen(t, srv, "192.0.2.1:22")
	b := newBackend(t, srv)
	ctx := context.Background()
	if err := b.Setup(ctx, []firewall.JailSpec{sshd}); err != nil {
		t.Fatal(err)
	}
	want := []firewall.Ban{
		{Jail: "sshd", Prefix: pfx("192.0.2.2"), Expires: time.Now().Add(time.Hour)},
		{Jail: "sshd", Prefix: pfx("2001:db8::/32")},
	}
	if err := b.Add(ctx, want); err != nil {
		t.Fatal(err)
	}
	dial := func() nstest.Outcome {
		o, err := nstest.Dial(cli, "192.0.2.1:22", 400*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		return o
	}
	if o := dial(); o != nstest.Refused {
		t.Fatalf("banned client: %s", o)
	}

	for _, step := range [][]string{
		{"flush", "table", "inet", "palisade"}, // rules gone
		{"flush", "table", "inet", "palisade", ";", "delete", "set", "inet", "palisade", "sshd_a4"},
		{"delete", "table", "inet", "palisade"},
	} {
		nftCmd(t, srv, step...)
		if len(step) == 4 && step[0] == "flush" {
			if o := dial(); o != nstest.Connected {
				t.Fatalf("after %v: client %s (flush did not lift the ban?)", step, o)
			}
		}
		if err := b.Setup(ctx, []firewall.JailSpec{sshd}); err != nil {
			t.Fatalf("Setup after %v: %v", step, err)
		}
		added, removed, err := firewall.Reconcile(ctx, b, want, time.Now())
		if err != nil {
			t.Fatalf("Reconcile after %v: %v", step, err)
		}
		if removed != 0 {
			t.Errorf("after %v: removed %d", step, removed)
		}
		t.Logf("after %v: re-added %d", step, added)
		if o := dial(); o != nstest.Refused {
			t.Errorf("after %v and Setup+Reconcile: client %s, want refused", step, o)
		}
		if got := fwtest.Listed(t, b); len(got) != 2 {
			t.Errorf("after %v: listed %v", step, keys(got))
		}
	}
	// An element palisade does not want is removed by Reconcile.
	extra := firewall.Ban{Jail: "sshd", Prefix: pfx("203.0.113.5")}
	if err := b.Add(ctx, []firewall.Ban{extra}); err != nil {
		t.Fatal(err)
	}
	if added, removed, err := firewall.Reconcile(ctx, b, want, time.Now()); err != nil || added != 0 || removed != 1 {
		t.Errorf("Reconcile extra: added %d removed %d err %v", added, removed, err)
	}
}

func TestSetupKeepsOtherJails(t *testing.T) {
	ns := nstest.New(t)
	b := newBackend(t, ns)
	ctx := context.Background()
	web := firewall.JailSpec{Name: "nginx-http-auth", Scope: firewall.Scope{Ports: []firewall.PortRange{{From: 80, To: 80}, {From: 443, To: 443}}}}
	if err := b.Setup(ctx, []firewall.JailSpec{sshd, web}); err != nil {
		t.Fatal(err)
	}
	sshd2 := sshd
	sshd2.Scope.Ports = []firewall.PortRange{{From: 2222, To: 2222}}
	if err := b.Setup(ctx, []firewall.JailSpec{sshd2}); err != nil {
		t.Fatal(err)
	}
	out := nftCmd(t, ns, "list", "chain", "inet", "palisade", "input")
	for _, s := range []string{"tcp dport 2222 jump j_sshd", "tcp dport 80 jump j_nginx-http-auth", "tcp dport 443 jump j_nginx-http-auth"} {
		if !strings.Contains(out, s) {
			t.Errorf("input chain lacks %q:\n%s", s, out)
		}
	}
	if strings.Contains(out, "dport 22 ") {
		t.Errorf("old sshd rule kept:\n%s", out)
	}
}

func TestElemsAndDecode(t *testing.T) {
	tests := []string{"192.0.2.0/24", "10.0.0.0/8", "0.0.0.0/0", "255.255.255.0/24", "2001:db8::/32", "::/0", "192.0.2.128/25"}
	for _, s := range tests {
		p := pfx(s)
		els := elems(p, 0)
		got := decode(els, kindNet4)
		if p.Addr().Is6() {
			got = decode(els, kindNet6)
		}
		if len(got) != 1 || got[0].prefix != p {
			t.Errorf("%s: round trip gave %v", s, got)
		}
	}
	// a range that is not one prefix decodes to covering prefixes
	got := rangePrefixes(netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.6"))
	var ss []string
	for _, p := range got {
		ss = append(ss, p.String())
	}
	if strings.Join(ss, " ") != "192.0.2.1/32 192.0.2.2/31 192.0.2.4/31 192.0.2.6/32" {
		t.Errorf("rangePrefixes = %v", ss)
	}
}

// TestKernelSuite runs the suite shared by every backend.
func TestKernelSuite(t *testing.T) {
	nft := func(args ...string) sysexec.Cmd { return sysexec.Cmd{Name: "nft", Args: args} }
	fwtest.Run(t, fwtest.Suite{
		New: func(t *testing.T, ns *nstest.NS) firewall.Backend { return newBackend(t, ns) },
		Damage: [][]sysexec.Cmd{
			{nft("flush", "set", "inet", "palisade", "sshd_a4"), nft("flush", "set", "inet", "palisade", "sshd_n6")},
			{nft("flush", "table", "inet", "palisade")},
			{nft("flush", "table", "inet", "palisade", ";", "delete", "chain", "inet", "palisade", "j_sshd")},
			{nft("delete", "table", "inet", "palisade")},
			{nft("flush", "ruleset")},
		},
		Leftovers: func(t *testing.T, ns *nstest.NS) string {
			return strings.TrimSpace(nftCmd(t, ns, "list", "ruleset"))
		},
	})
}
