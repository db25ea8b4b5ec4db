package policynft

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/palisade-project/palisade/internal/firewall"
	"github.com/palisade-project/palisade/internal/firewall/nft"
	"github.com/palisade-project/palisade/internal/firewall/nstest"
	"github.com/palisade-project/palisade/internal/firewall/policy"
	"github.com/palisade-project/palisade/internal/harden/ports"
)

// lab is a server namespace (where the policy is installed) and a client
// namespace with several source addresses.
type lab struct {
	srv, cli *nstest.NS
	k        *Kernel
}

var (
	srv4 = netip.MustParseAddr("198.51.100.1")
	srv6 = netip.MustParseAddr("2001:db8::1")
	// a and b share a /24; c is in another one.
	cliA = netip.MustParseAddr("198.51.100.2")
	cliB = netip.MustParseAddr("198.51.100.3")
	cliC = netip.MustParseAddr("203.0.113.2")
	cli6 = netip.MustParseAddr("2001:db8::2")
)

func newLab(t *testing.T) *lab {
	t.Helper()
	nstest.RequireRoot(t)
	l := &lab{srv: nstest.New(t), cli: nstest.New(t)}
	nstest.Link(t, l.srv, l.cli,
		[]netip.Prefix{netip.MustParsePrefix("198.51.100.1/24"), netip.MustParsePrefix("203.0.113.1/24"), netip.MustParsePrefix("2001:db8::1/64")},
		[]netip.Prefix{netip.MustParsePrefix("198.51.100.2/24"), netip.MustParsePrefix("198.51.100.3/24"), netip.MustParsePrefix("203.0.113.2/24"), netip.MustParsePrefix("2001:db8::2/64")})
	l.k = New(Options{NetNSFd: l.srv.Fd()})
	return l
}

func (l *lab) apply(t *testing.T, text string) policy.Policy {
	t.Helper()
	f, err := policy.Parse("test.rules", []byte(text), policy.Names{})
	if err != nil {
		t.Fatal(err)
	}
	p := f.Policy()
	if err := l.k.Apply(context.Background(), p); err != nil {
		t.Fatalf("apply:\n%s\n%v", text, err)
	}
	if err := l.k.Installed(context.Background(), p); err != nil {
		t.Fatalf("installed: %v", err)
	}
	return p
}

func (l *lab) nft(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("ip", append([]string{"netns", "exec", l.srv.Name, "nft"}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("nft %v: %v\n%s", args, err, out)
	}
	return string(out)
}

func addr(a netip.Addr, port int) string { return net.JoinHostPort(a.String(), fmt.Sprint(port)) }

// dial is one connection attempt from the client; a dropped SYN is seen
// after timeout (short: the test never waits for a retransmission).
func (l *lab) dial(t *testing.T, from, to netip.Addr, port int) nstest.Outcome {
	t.Helper()
	o, err := nstest.DialFrom(l.cli, from, addr(to, port), 300*time.Millisecond)
	if err != nil {
		t.Fatalf("dial %s -> %s: %v", from, addr(to, port), err)
	}
	return o
}

func (l *lab) open(t *testing.T, from, to netip.Addr, port int) net.Conn {
	t.Helper()
	c, o, err := nstest.Open(l.cli, from, addr(to, port), time.Second)
	if err != nil || o != nstest.Connected {
		t.Fatalf("connection %s -> %s: %s %v", from, addr(to, port), o, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func want(t *testing.T, what string, got, want nstest.Outcome) {
	t.Helper()
	if got != want {
		t.Errorf("%s: %s, want %s", what, got, want)
	}
}

func TestRulesAndDefaultDeny(t *testing.T) {
	t.Parallel()
	l := newLab(t)
	for _, p := range []int{8080, 8081, 8082, 8083} {
		nstest.Listen(t, l.srv, fmt.Sprintf(":%d", p))
	}
	l.apply(t, `enable
default deny incoming
allow 8080/tcp
reject 8082/tcp
allow from 203.0.113.0/24 to any port 8083 proto tcp
`)
	for _, src := range []netip.Addr{cliA, cli6} {
		dst := srv4
		if src.Is6() {
			dst = srv6
		}
		want(t, "listed port "+src.String(), l.dial(t, src, dst, 8080), nstest.Connected)
		want(t, "unlisted port "+src.String(), l.dial(t, src, dst, 8081), nstest.TimedOut)
		want(t, "reject rule "+src.String(), l.dial(t, src, dst, 8082), nstest.Refused)
		want(t, "port for another network "+src.String(), l.dial(t, src, dst, 8083), nstest.TimedOut)
	}
	want(t, "port for this network", l.dial(t, cliC, netip.MustParseAddr("203.0.113.1"), 8083), nstest.Connected)

	// default reject; then disabled: everything reachable again.
	l.apply(t, "enable\ndefault reject\n")
	want(t, "default reject", l.dial(t, cliA, srv4, 8081), nstest.Refused)
	want(t, "default reject v6", l.dial(t, cli6, srv6, 8081), nstest.Refused)
	l.apply(t, "disable\n")
	want(t, "disabled", l.dial(t, cliA, srv4, 8081), nstest.Connected)
	if out := l.nft(t, "list", "table", "inet", "palisade"); strings.Contains(out, "chain pol_input") {
		t.Errorf("disabled policy left its chain:\n%s", out)
	}
}

// --conn 2: the third concurrent connection is dropped, accepted again
// once one closes.
func TestConnLimit(t *testing.T) {
	t.Parallel()
	l := newLab(t)
	nstest.ListenHold(t, l.srv, ":9000")
	l.apply(t, "enable\nlimit 9000/tcp --conn 2\n")
	for _, tc := range []struct{ src, dst netip.Addr }{{cliA, srv4}, {cli6, srv6}} {
		c1 := l.open(t, tc.src, tc.dst, 9000)
		l.open(t, tc.src, tc.dst, 9000)
		want(t, "3rd concurrent from "+tc.src.String(), l.dial(t, tc.src, tc.dst, 9000), nstest.TimedOut)
		c1.Close()
		nstest.Eventually(t, 5*time.Second, "accepted once one closed", func() error {
			if o := l.dial(t, tc.src, tc.dst, 9000); o != nstest.Connected {
				return fmt.Errorf("%s", o)
			}
			return nil
		})
	}
}

// --mask 24 groups sources: two addresses of one /24 share the limit, an
// address of another /24 does not.
func TestConnLimitMask(t *testing.T) {
	t.Parallel()
	l := newLab(t)
	nstest.ListenHold(t, l.srv, ":9000")
	l.apply(t, "enable\nlimit 9000/tcp --conn 2 --mask 24\n")
	l.open(t, cliA, srv4, 9000)
	l.open(t, cliB, srv4, 9000)
	want(t, "3rd from the same /24", l.dial(t, cliA, srv4, 9000), nstest.TimedOut)
	want(t, "3rd from the same /24 (other address)", l.dial(t, cliB, srv4, 9000), nstest.TimedOut)
	want(t, "another /24", l.dial(t, cliC, netip.MustParseAddr("203.0.113.1"), 9000), nstest.Connected)
}

// --rate 2/1s: the 3rd new connection inside 1 s is dropped; after a quiet
// window it is accepted. Penalty mode (the default) keeps refusing while
// attempts go on; bucket mode refills one connection per 500 ms.
func TestRateLimit(t *testing.T) {
	t.Parallel()
	l := newLab(t)
	nstest.Listen(t, l.srv, ":9100")
	nstest.Listen(t, l.srv, ":9101")
	l.apply(t, "enable\nlimit 9100/tcp --rate 2/1s\nlimit 9101/tcp --rate 2/1s --mode bucket\n")
	for _, tc := range []struct{ src, dst netip.Addr }{{cliA, srv4}, {cli6, srv6}} {
		t.Run(tc.src.String(), func(t *testing.T) {
			t.Parallel()
			for _, port := range []int{9100, 9101} {
				want(t, fmt.Sprintf("1st to %d", port), l.dial(t, tc.src, tc.dst, port), nstest.Connected)
				want(t, fmt.Sprintf("2nd to %d", port), l.dial(t, tc.src, tc.dst, port), nstest.Connected)
			}
			start := time.Now()
			want(t, "3rd within 1s to 9100 (penalty)", l.dial(t, tc.src, tc.dst, 9100), nstest.TimedOut)
			want(t, "3rd within 1s to 9101 (bucket)", l.dial(t, tc.src, tc.dst, 9101), nstest.TimedOut)
			// Still inside the penalty (1 s from the refusal at start):
			// refused, and the attempt restarts the penalty.
			time.Sleep(time.Until(start.Add(700 * time.Millisecond)))
			want(t, "penalty mode, 0.7 s after the refusal", l.dial(t, tc.src, tc.dst, 9100), nstest.TimedOut)
			// The bucket has refilled (2 per second): accepted.
			want(t, "bucket mode, 1 s after the burst", l.dial(t, tc.src, tc.dst, 9101), nstest.Connected)
			// A quiet window (1 s since the last attempt) ends the penalty.
			time.Sleep(time.Until(start.Add(1800 * time.Millisecond)))
			want(t, "penalty mode after a quiet second", l.dial(t, tc.src, tc.dst, 9100), nstest.Connected)
			if tc.src == cliA {
				want(t, "another source", l.dial(t, cliB, srv4, 9100), nstest.Connected)
			}
		})
	}
}

// Several limits on one rule combine: --conn and --rate both apply.
func TestConnAndRateCombine(t *testing.T) {
	t.Parallel()
	l := newLab(t)
	nstest.ListenHold(t, l.srv, ":9200")
	l.apply(t, "enable\nlimit 9200/tcp --conn 1 --rate 3/2s\n")
	c := l.open(t, cliA, srv4, 9200)
	want(t, "2nd concurrent (conn 1)", l.dial(t, cliA, srv4, 9200), nstest.TimedOut)
	c.Close()
	time.Sleep(300 * time.Millisecond)
	// conn-refused attempts do not count towards the rate: 1 counted so far
	c2 := l.open(t, cliA, srv4, 9200)
	c2.Close()
	time.Sleep(300 * time.Millisecond)
	c3 := l.open(t, cliA, srv4, 9200)
	c3.Close()
	time.Sleep(100 * time.Millisecond)
	want(t, "4th new connection within 2 s (rate 3/2s)", l.dial(t, cliA, srv4, 9200), nstest.TimedOut)
}

// attempts opens up to n connections one after the other and returns
// their outcomes.
func attempts(t *testing.T, ns *nstest.NS, from netip.Addr, to string, n int) []nstest.Outcome {
	t.Helper()
	var out []nstest.Outcome
	for i := 0; i < n; i++ {
		o, err := nstest.DialFrom(ns, from, to, 300*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, o)
	}
	return out
}

// Plain "limit" is ufw's limit: measured side by side with real ufw in
// another namespace, both let 5 new connections in and refuse the 6th and
// the attempts after it.
func TestPlainLimitMatchesUFW(t *testing.T) {
	t.Parallel()
	nstest.RequireProgram(t, "ufw", "iptables")
	l := newLab(t)
	nstest.Listen(t, l.srv, ":9300")
	p := l.apply(t, "enable\ndefault allow\nlimit 9300/tcp\n")

	u := &lab{srv: nstest.New(t), cli: nstest.New(t)}
	nstest.Link(t, u.srv, u.cli, []netip.Prefix{netip.MustParsePrefix("198.51.100.1/24")}, []netip.Prefix{netip.MustParsePrefix("198.51.100.2/24")})
	nstest.Listen(t, u.srv, ":9300")
	ufw := nstest.PrivateUFW(t, u.srv)
	if _, err := ufw.Run(context.Background(), sysexecCmd("ufw", "limit", "9300/tcp")); err != nil {
		t.Fatal(err)
	}

	pal := attempts(t, l.cli, cliA, addr(srv4, 9300), 8)
	real := attempts(t, u.cli, cliA, addr(srv4, 9300), 8)
	t.Logf("palisade limit: %v", pal)
	t.Logf("ufw limit:      %v", real)
	wantSeq := []nstest.Outcome{nstest.Connected, nstest.Connected, nstest.Connected, nstest.Connected, nstest.Connected, nstest.Refused, nstest.Refused, nstest.Refused}
	if fmt.Sprint(real) != fmt.Sprint(wantSeq) {
		t.Errorf("real ufw gave %v, expected %v", real, wantSeq)
	}
	if fmt.Sprint(pal) != fmt.Sprint(real) {
		t.Errorf("palisade %v, ufw %v", pal, real)
	}
	// IPv6 the same. (Over a veth pair the ICMPv6 error for the first SYN
	// arrives while connect(2) still holds the socket and is ignored; the
	// retransmitted SYN a second later gets the error: so the refused
	// attempts wait longer.)
	pal6 := attempts(t, l.cli, cli6, addr(srv6, 9300), 5)
	for i := 0; i < 2; i++ {
		o, err := nstest.DialFrom(l.cli, cli6, addr(srv6, 9300), 1500*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		pal6 = append(pal6, o)
	}
	if fmt.Sprint(pal6) != fmt.Sprint(wantSeq[:7]) {
		t.Errorf("palisade IPv6: %v", pal6)
	}
	// What is installed is ufw's unscaled figure: a 30 s window holding 5.
	out := l.nft(t, "list", "table", "inet", "palisade")
	for _, w := range []string{"timeout 30s limit rate over 1/minute", "update @pol_", "timeout 30s } reject"} {
		if !strings.Contains(out, w) {
			t.Errorf("ruleset lacks %q:\n%s", w, out)
		}
	}
	pl, err := render(p)
	if err != nil {
		t.Fatal(err)
	}
	if got := burstOf(pl); got != policy.UFWRate {
		t.Errorf("window holds %d, want %d", got, policy.UFWRate)
	}
}

// A full set never silently stops limiting: sources it cannot hold are
// counted and share the backstop.
func TestFullSetBackstop(t *testing.T) {
	t.Parallel()
	l := newLab(t)
	nstest.ListenHold(t, l.srv, ":9500")
	p := l.apply(t, "enable\nlimit 9500/tcp --conn 5 --size 1 --backstop 1/1m\n")
	l.open(t, cliA, srv4, 9500) // tracked: the set is now full
	want(t, "first untracked source (backstop burst 1)", l.dial(t, cliB, srv4, 9500), nstest.Connected)
	want(t, "second untracked source (backstop over)", l.dial(t, cliC, netip.MustParseAddr("203.0.113.1"), 9500), nstest.TimedOut)
	want(t, "the tracked source keeps its own limit", l.dial(t, cliA, srv4, 9500), nstest.Connected)
	st, err := l.k.Stats(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	if len(st) != 1 || st[0].Untracked < 2 || len(st[0].Full) != 1 || !strings.HasSuffix(st[0].Full[0], "_c4") {
		t.Errorf("stats = %+v", st)
	}
	if st[0].Sets[0].Elements != 1 || st[0].Sets[0].Size != 1 {
		t.Errorf("sets = %+v", st[0].Sets)
	}
}

// The policy touches only its own objects: the ban chains and sets, the
// hardening allow chain and another owner's chain and set (the Cloudflare
// lock's cf_*) are left as they are, and a banned source stays refused
// where the policy accepts it.
func TestCoexistence(t *testing.T) {
	t.Parallel()
	nstest.RequireProgram(t, "nft")
	l := newLab(t)
	nstest.Listen(t, l.srv, ":8080")
	nstest.Listen(t, l.srv, ":2222")
	ctx := context.Background()
	be, err := nft.New(nft.Options{NetNSFd: l.srv.Fd()})
	if err != nil {
		t.Fatal(err)
	}
	defer be.Close()
	if err := be.Setup(ctx, []firewall.JailSpec{{Name: "web", Scope: firewall.Scope{Ports: []firewall.PortRange{{From: 8080, To: 8080}}, Protocol: "tcp"}}}); err != nil {
		t.Fatal(err)
	}
	if err := be.Add(ctx, []firewall.Ban{{Jail: "web", Prefix: netip.PrefixFrom(cliA, 32)}}); err != nil {
		t.Fatal(err)
	}
	if err := (&ports.NFT{NetNSFd: l.srv.Fd()}).Open(ctx, 2222, "tcp"); err != nil {
		t.Fatal(err)
	}
	l.nft(t, "add", "set", "inet", "palisade", "cf_v4", "{ type ipv4_addr; flags interval; elements = { 192.0.2.0/24 } }")
	l.nft(t, "add", "chain", "inet", "palisade", "cf_lock", "{ type filter hook input priority filter - 5; }")
	l.nft(t, "add", "rule", "inet", "palisade", "cf_lock", "tcp", "dport", "443", "ip", "saddr", "!=", "@cf_v4", "drop")
	others := func() string {
		var b strings.Builder
		for _, c := range []string{"input", "j_web", "allow", "cf_lock"} {
			b.WriteString(l.nft(t, "list", "chain", "inet", "palisade", c))
		}
		for _, s := range []string{"web_a4", "cf_v4"} {
			b.WriteString(l.nft(t, "list", "set", "inet", "palisade", s))
		}
		return b.String()
	}
	before := others()
	l.apply(t, "enable\nallow 8080/tcp\nlimit 9000/tcp --conn 2\n")
	want(t, "banned source on an allowed port", l.dial(t, cliA, srv4, 8080), nstest.Refused)
	want(t, "other source", l.dial(t, cliB, srv4, 8080), nstest.Connected)
	want(t, "port opened by ssh harden, default deny", l.dial(t, cliB, srv4, 2222), nstest.Connected)
	l.apply(t, "enable\nallow 8081/tcp\n")
	l.apply(t, "disable\n")
	if after := others(); after != before {
		t.Errorf("other objects changed:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	if out := l.nft(t, "list", "table", "inet", "palisade"); strings.Contains(out, "pol_") {
		t.Errorf("disabled policy left objects:\n%s", out)
	}
}

// A failed apply changes nothing: a conflicting object makes the kernel
// refuse the batch, and the policy in force stays exactly as it was.
func TestFailedApplyChangesNothing(t *testing.T) {
	t.Parallel()
	nstest.RequireProgram(t, "nft")
	l := newLab(t)
	l.apply(t, "enable\nallow 22/tcp\nlimit 9000/tcp --conn 2\n")
	before := l.nft(t, "list", "table", "inet", "palisade")
	next := "enable\nallow 22/tcp\nallow 80/tcp\nlimit 9001/tcp --conn 3\n"
	f, err := policy.Parse("x", []byte(next), policy.Names{})
	if err != nil {
		t.Fatal(err)
	}
	p := f.Policy()
	// Someone made a set with the name the new limit needs, of another type.
	id := limitID(p.Rules[2])
	l.nft(t, "add", "set", "inet", "palisade", Prefix+id+"_c4", "{ type ipv6_addr; }")
	withConflict := l.nft(t, "list", "table", "inet", "palisade")
	if err := l.k.Apply(context.Background(), p); err == nil {
		t.Fatalf("apply over a conflicting set succeeded:\n%s", l.nft(t, "list", "table", "inet", "palisade"))
	} else {
		t.Logf("refused as expected: %v", err)
	}
	if after := l.nft(t, "list", "table", "inet", "palisade"); after != withConflict {
		t.Errorf("a failed apply changed the ruleset:\nbefore:\n%s\nafter:\n%s", withConflict, after)
	}
	if !strings.Contains(before, "tcp dport 22 accept") || strings.Contains(withConflict, "tcp dport 80 accept") {
		t.Errorf("unexpected ruleset:\n%s", withConflict)
	}
}

// Limits also hold for DNATed (container) ports in the forward path,
// matched by the connection's original destination port.
func TestLimitDNATedPort(t *testing.T) {
	t.Parallel()
	l := newLab(t)
	ctr := nstest.New(t)
	// (the container side first: the server already has a veth-a)
	nstest.Link(t, ctr, l.srv, []netip.Prefix{netip.MustParsePrefix("192.0.2.10/24")}, []netip.Prefix{netip.MustParsePrefix("192.0.2.1/24")})
	run := func(ns *nstest.NS, args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", append([]string{"netns", "exec", ns.Name}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
	}
	run(ctr, "ip", "route", "add", "default", "via", "192.0.2.1")
	run(l.srv, "sysctl", "-qw", "net.ipv4.ip_forward=1")
	l.nft(t, "add", "table", "ip", "natlab")
	l.nft(t, "add", "chain", "ip", "natlab", "pre", "{ type nat hook prerouting priority dstnat; }")
	l.nft(t, "add", "rule", "ip", "natlab", "pre", "tcp", "dport", "8088", "dnat", "to", "192.0.2.10:80")
	nstest.ListenHold(t, ctr, ":80")
	l.apply(t, "enable\ndefault allow\nlimit 8088/tcp --conn 1\n")
	l.open(t, cliA, srv4, 8088)
	want(t, "2nd concurrent connection to the DNATed port", l.dial(t, cliA, srv4, 8088), nstest.TimedOut)
	want(t, "another source", l.dial(t, cliB, srv4, 8088), nstest.Connected)
}
