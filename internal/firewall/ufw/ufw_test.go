package ufw

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

func TestKernel(t *testing.T) {
	if testing.Short() {
		t.Skip("ufw kernel suite is slow (one ufw run per rule)")
	}
	ufw := func(args ...string) sysexec.Cmd { return sysexec.Cmd{Name: "ufw", Args: args} }
	fwtest.Run(t, fwtest.Suite{
		New: func(t *testing.T, ns *nstest.NS) firewall.Backend {
			b, err := New(Options{Runner: nstest.PrivateUFW(t, ns)})
			if err != nil {
				t.Fatal(err)
			}
			return b
		},
		NoKernelTimeouts: true,
		Damage: [][]sysexec.Cmd{
			{ufw("delete", "reject", "from", "192.0.2.2", "to", "any", "port", "22", "proto", "tcp")},
		},
		Leftovers: func(t *testing.T, ns *nstest.NS) string {
			r := nstest.Runner{NS: ns, Inner: sysexec.NewExec(time.Minute)}
			res, err := r.Run(context.Background(), ufw("show", "added"))
			if err != nil {
				t.Fatal(err)
			}
			var left []string
			for _, l := range strings.Split(string(res.Stdout), "\n") {
				if strings.Contains(l, "palisade:") {
					left = append(left, l)
				}
			}
			return strings.Join(left, "\n")
		},
	})
}

func TestRuleArgs(t *testing.T) {
	web := fwtest.Jail("web", firewall.Drop)
	web.Scope.Ports = []firewall.PortRange{{From: 80, To: 80}, {From: 8000, To: 8100}}
	tests := []struct {
		j    firewall.JailSpec
		p    string
		want string
	}{
		{fwtest.Jail("sshd", firewall.Reject, 22), "192.0.2.1", "reject from 192.0.2.1 to any port 22 proto tcp"},
		{web, "2001:db8::/64", "deny from 2001:db8::/64 to any port 80,8000:8100 proto tcp"},
		{firewall.JailSpec{Name: "all", Scope: firewall.Scope{Protocol: "all"}}, "192.0.2.0/24", "reject from 192.0.2.0/24"},
		{firewall.JailSpec{Name: "u", Scope: firewall.Scope{Protocol: "udp"}}, "192.0.2.1", "reject from 192.0.2.1 to any proto udp"},
	}
	for _, tt := range tests {
		got := RuleArgs(tt.j, fwtest.P(tt.p))
		if len(got) != 1 || strings.Join(got[0], " ") != tt.want {
			t.Errorf("RuleArgs(%s, %s) = %v, want %q", tt.j.Name, tt.p, got, tt.want)
		}
	}
}

func TestParseAdded(t *testing.T) {
	out := `Added user rules (see 'ufw status' for running firewall):
ufw allow 22/tcp
ufw deny from 192.0.2.0/24 comment 'palisade:all'
ufw reject from 192.0.2.2 to any port 22,80 proto tcp comment 'palisade:sshd'
ufw reject from 2001:db8::/64 to any port 22 proto tcp comment 'palisade:sshd'
ufw reject from 198.51.100.1 comment 'someone else'
ufw reject from 198.51.100.2 comment 'palisade:bad name;'
`
	var got []string
	for _, r := range parseAdded(out) {
		got = append(got, r.jail+" "+r.prefix.String()+" | "+strings.Join(r.args, " "))
	}
	want := []string{
		"all 192.0.2.0/24 | deny from 192.0.2.0/24",
		"sshd 192.0.2.2/32 | reject from 192.0.2.2 to any port 22,80 proto tcp",
		"sshd 2001:db8::/64 | reject from 2001:db8::/64 to any port 22 proto tcp",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("parseAdded:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestSetupRefusesInactive(t *testing.T) {
	f := &sysexec.Fake{}
	f.On("ufw status", sysexec.Result{Stdout: []byte("Status: inactive\n")}, nil)
	b, _ := New(Options{Runner: f})
	err := b.Setup(context.Background(), []firewall.JailSpec{fwtest.Jail("sshd", firewall.Reject, 22)})
	if err == nil || !strings.Contains(err.Error(), "not active") {
		t.Errorf("Setup with inactive ufw: %v", err)
	}
}
