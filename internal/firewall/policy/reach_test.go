package policy

import (
	"net/netip"
	"strings"
	"testing"
)

func policyOf(t *testing.T, text string) Policy {
	t.Helper()
	f, err := Parse("p", []byte(text), testNames)
	if err != nil {
		t.Fatal(err)
	}
	return f.Policy()
}

func TestReach(t *testing.T) {
	admin := netip.MustParsePrefix("198.51.100.7/32")
	office := netip.MustParsePrefix("198.51.100.0/24")
	v6 := netip.MustParsePrefix("2001:db8::7/128")
	anyone := netip.Prefix{}
	tests := []struct {
		policy string
		src    netip.Prefix
		port   uint16
		want   bool
		rule   int
	}{
		{"disable\n", admin, 22, true, 0},
		{"enable\n", admin, 22, false, 0},
		{"enable\ndefault allow\n", admin, 22, true, 0},
		{"enable\nallow 22/tcp\n", admin, 22, true, 1},
		{"enable\nallow 22/tcp\n", anyone, 22, true, 1},
		{"enable\nallow 22/tcp\n", admin, 2222, false, 0},
		{"enable\nallow 22/udp\n", admin, 22, false, 0},
		{"enable\nallow 22\n", v6, 22, true, 1},
		{"enable\nlimit 22/tcp --conn 2\n", admin, 22, true, 1},
		{"enable\nallow 20:30/tcp\n", admin, 22, true, 1},
		{"enable\ndeny 22/tcp\nallow 22/tcp\n", admin, 22, false, 1},
		{"enable\ndefault allow\ndeny from 198.51.100.0/24\n", admin, 22, false, 1},
		{"enable\ndefault allow\ndeny from 198.51.100.0/24\n", anyone, 22, true, 0},
		{"enable\ndefault allow\ndeny from 198.51.100.7\n", office, 22, false, 1},              // part of ignoreip
		{"enable\nallow from 198.51.100.7 to any port 22 proto tcp\n", office, 22, false, 0},   // only part of it is let in
		{"enable\nallow from 198.51.100.0/24 to any port 22 proto tcp\n", admin, 22, true, 1},  // covered
		{"enable\nallow from 198.51.100.0/24 to any port 22 proto tcp\n", anyone, 22, true, 1}, // somebody
		{"enable\nallow from 198.51.100.0/24 to any port 22 proto tcp\n", v6, 22, false, 0},    // other family
		{"enable\ndefault allow\ndeny from 2001:db8::/32\n", admin, 22, true, 0},               // other family
		{"enable\ndefault allow\ndeny in on eth0 to any port 22\n", admin, 22, false, 1},       // may apply
		{"enable\ndefault allow\ndeny in on eth0 to any port 22\n", anyone, 22, true, 0},       // not for everyone
		{"enable\nallow in on eth0 to any port 22 proto tcp\n", admin, 22, false, 0},           // may not apply
		{"enable\nallow from any port 22 to any proto tcp\n", admin, 22, false, 0},             // source port: never decides
		{"enable\ndefault allow\nreject 22/tcp\n", anyone, 22, false, 1},
	}
	for _, tt := range tests {
		p := policyOf(t, tt.policy)
		v := p.Reach(Endpoint{Source: tt.src, Port: tt.port, Why: "test"}, nil)
		if v.Reachable != tt.want || v.Rule != tt.rule {
			t.Errorf("%q from %v to %d: %+v, want reachable %v by rule %d", tt.policy, tt.src, tt.port, v, tt.want, tt.rule)
		}
		if v.Reason == "" {
			t.Errorf("%q: no reason", tt.policy)
		}
	}
	// A port opened in the allow chain counts after the rules.
	p := policyOf(t, "enable\n")
	open := func(port uint16) bool { return port == 2222 }
	if !p.Reach(Endpoint{Source: admin, Port: 2222}, open).Reachable || p.Reach(Endpoint{Source: admin, Port: 22}, open).Reachable {
		t.Error("allow-chain ports")
	}
	if policyOf(t, "enable\ndeny 2222/tcp\n").Reach(Endpoint{Source: admin, Port: 2222}, open).Reachable {
		t.Error("a rule refusing the port comes before the allow chain")
	}
}

func TestKeep(t *testing.T) {
	admin := netip.MustParsePrefix("203.0.113.9/32")
	eps := []Endpoint{
		{Source: admin, Port: 22, Why: "your SSH session"},
		{Port: 22, Why: "sshd port 22"},
	}
	// Nothing allowed: the port is opened for everyone; the admin then
	// gets in through it.
	f, _ := Parse("p", []byte("enable\n"), testNames)
	added, cuts := Keep(f, eps, nil)
	if len(cuts) != 0 || len(added) != 1 || added[0].Match() != "22/tcp" {
		t.Fatalf("added %v cuts %v", added, cuts)
	}
	// Only an office network allowed: the admin's own address is added.
	f, _ = Parse("p", []byte("enable\nallow from 198.51.100.0/24 to any port 22 proto tcp\n"), testNames)
	added, cuts = Keep(f, eps, nil)
	if len(cuts) != 0 || len(added) != 1 || added[0].Match() != "from 203.0.113.9 to any port 22 proto tcp" {
		t.Fatalf("added %v cuts %v", added, cuts)
	}
	if !f.Policy().Reach(eps[0], nil).Reachable {
		t.Error("admin still cut off")
	}
	if !strings.Contains(string(f.Bytes()), "comment 'palisade: keeps your SSH session reachable'") {
		t.Errorf("no comment:\n%s", f.Bytes())
	}
	// An explicit deny is not overridden: it is reported.
	f, _ = Parse("p", []byte("enable\ndeny 22/tcp\n"), testNames)
	added, cuts = Keep(f, eps, nil)
	if len(added) != 0 || len(cuts) != 2 || cuts[0].Verdict.Rule != 1 {
		t.Fatalf("added %v cuts %v", added, cuts)
	}
	// NewCuts: only what a change newly refuses.
	before := policyOf(t, "enable\nallow 22/tcp\n")
	after := policyOf(t, "enable\n")
	if c := NewCuts(before, after, eps, nil); len(c) != 2 {
		t.Errorf("new cuts %v", c)
	}
	if c := NewCuts(after, after, eps, nil); len(c) != 0 {
		t.Errorf("no change, cuts %v", c)
	}
}
