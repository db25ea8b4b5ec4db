package ipset

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/palisade-project/palisade/internal/firewall"
	"github.com/palisade-project/palisade/internal/firewall/fwtest"
	"github.com/palisade-project/palisade/internal/firewall/nstest"
	"github.com/palisade-project/palisade/internal/sysexec"
)

func cmd(name string, args ...string) sysexec.Cmd { return sysexec.Cmd{Name: name, Args: args} }

func newBackend(t *testing.T, ns *nstest.NS) firewall.Backend {
	t.Helper()
	nstest.RequireProgram(t, "ip", "ipset", "iptables", "ip6tables")
	b, err := New(Options{Runner: nstest.Runner{NS: ns, Inner: sysexec.NewExec(30 * time.Second)}})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestKernel(t *testing.T) {
	fwtest.Run(t, fwtest.Suite{
		New: newBackend,
		Damage: [][]sysexec.Cmd{
			{cmd("ipset", "flush", "pal_sshd_4"), cmd("ipset", "flush", "pal_sshd_6")},
			{cmd("iptables", "-w", "-F", "pal_sshd"), cmd("ip6tables", "-w", "-F", "pal_sshd")},
			{cmd("iptables", "-w", "-D", "INPUT", "-j", "palisade"), cmd("ip6tables", "-w", "-D", "INPUT", "-j", "palisade")},
			{cmd("iptables", "-w", "-F"), cmd("iptables", "-w", "-X"), cmd("ip6tables", "-w", "-F"), cmd("ip6tables", "-w", "-X"), cmd("ipset", "destroy")},
		},
		Leftovers: func(t *testing.T, ns *nstest.NS) string {
			r := nstest.Runner{NS: ns, Inner: sysexec.NewExec(10 * time.Second)}
			var left []string
			for _, c := range []sysexec.Cmd{cmd("iptables", "-S"), cmd("ip6tables", "-S"), cmd("ipset", "list", "-n")} {
				res, err := r.Run(context.Background(), c)
				if err != nil {
					t.Fatalf("%v: %v", c, err)
				}
				for _, l := range strings.Split(strings.TrimSpace(string(res.Stdout)), "\n") {
					if l != "" && !strings.HasPrefix(l, "-P ") {
						left = append(left, c.String()+": "+l)
					}
				}
			}
			return strings.Join(left, "\n")
		},
	})
}

func TestRules(t *testing.T) {
	many := firewall.JailSpec{Name: "many", Scope: firewall.Scope{Protocol: "udp"}}
	for p := uint16(1); p <= 20; p++ {
		many.Scope.Ports = append(many.Scope.Ports, firewall.PortRange{From: p * 10, To: p * 10})
	}
	tests := []struct {
		jail firewall.JailSpec
		v    int
		want []string
	}{
		{fwtest.Jail("sshd", firewall.Reject, 22), 4, []string{"-p tcp -m multiport --dports 22 -m set --match-set pal_sshd_4 src -j REJECT --reject-with tcp-reset"}},
		{fwtest.Jail("sshd", firewall.Drop, 22, 2222), 6, []string{"-p tcp -m multiport --dports 22,2222 -m set --match-set pal_sshd_6 src -j DROP"}},
		{firewall.JailSpec{Name: "a", Scope: firewall.Scope{Protocol: "all"}}, 6, []string{
			"-p tcp -m set --match-set pal_a_6 src -j REJECT --reject-with tcp-reset",
			"-m set --match-set pal_a_6 src -j REJECT --reject-with icmp6-port-unreachable"}},
		{firewall.JailSpec{Name: "u", Scope: firewall.Scope{Protocol: "udp"}}, 4, []string{"-p udp -m set --match-set pal_u_4 src -j REJECT --reject-with icmp-port-unreachable"}},
		{many, 4, []string{
			"-p udp -m multiport --dports 10,20,30,40,50,60,70,80,90,100,110,120,130,140,150 -m set --match-set pal_many_4 src -j REJECT --reject-with icmp-port-unreachable",
			"-p udp -m multiport --dports 160,170,180,190,200 -m set --match-set pal_many_4 src -j REJECT --reject-with icmp-port-unreachable"}},
	}
	for _, tt := range tests {
		var got []string
		for _, r := range Rules(tt.jail, tt.v) {
			got = append(got, strings.Join(r, " "))
		}
		if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
			t.Errorf("Rules(%s, %d):\n%s\nwant:\n%s", tt.jail.Name, tt.v, strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
		}
	}
}

func TestSetNameLength(t *testing.T) {
	long := strings.Repeat("x", 64)
	for _, j := range []string{"sshd", long, "exactly-twenty-four-char"} {
		for _, v := range []int{4, 6} {
			if n := SetName(j, v); len(n) > 31 {
				t.Errorf("SetName(%q) = %q: %d characters", j, n, len(n))
			}
		}
	}
	if SetName(long, 4) == SetName(long[:63]+"y", 4) {
		t.Error("shortened names collide")
	}
}

func TestRestoreInput(t *testing.T) {
	f := &sysexec.Fake{}
	f.On("ipset restore -exist", sysexec.Result{}, nil)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	b, _ := New(Options{Runner: f, Now: func() time.Time { return now }})
	b.jails["sshd"] = fwtest.Jail("sshd", firewall.Reject, 22)
	err := b.Add(context.Background(), []firewall.Ban{
		{Jail: "sshd", Prefix: fwtest.P("192.0.2.1"), Expires: now.Add(90*time.Second + time.Millisecond)},
		{Jail: "sshd", Prefix: fwtest.P("2001:db8::/32")},
		{Jail: "sshd", Prefix: fwtest.P("192.0.2.5"), Expires: now.Add(-time.Second)},        // over: skipped
		{Jail: "sshd", Prefix: fwtest.P("192.0.2.6"), Expires: now.Add(30 * 24 * time.Hour)}, // beyond ipset's limit
	})
	if err != nil {
		t.Fatal(err)
	}
	calls := f.Calls()
	if len(calls) != 1 {
		t.Fatalf("calls: %v", calls)
	}
	want := "add pal_sshd_4 192.0.2.1/32 timeout 91\nadd pal_sshd_6 2001:db8::/32 timeout 0\nadd pal_sshd_4 192.0.2.6/32 timeout 0\n"
	if string(calls[0].Stdin) != want {
		t.Errorf("restore input:\n%s\nwant:\n%s", calls[0].Stdin, want)
	}
	if err := b.Add(context.Background(), []firewall.Ban{{Jail: "sshd", Prefix: fwtest.P("0.0.0.0/0")}}); err == nil {
		t.Error("a /0 was accepted")
	}
}
