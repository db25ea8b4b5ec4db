package policy

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/palisade-project/palisade/internal/firewall"
)

var testNames = Names{Services: firewall.Services{"ssh/tcp": 22, "http/tcp": 80, "https/tcp": 443, "domain/tcp": 53, "domain/udp": 53, "syslog/udp": 514}}

func TestParseRuleCanonical(t *testing.T) {
	tests := []struct {
		action Action
		in     string
		want   string // canonical String()
		match  string // Match()
	}{
		{Allow, "22", "allow 22", "22"},
		{Allow, "22/tcp", "allow 22/tcp", "22/tcp"},
		{Allow, "ssh", "allow ssh", "22/tcp"},
		{Allow, "domain", "allow domain", "53"},
		{Allow, "syslog", "allow syslog", "514/udp"},
		{Allow, "http/tcp", "allow http/tcp", "80/tcp"},
		{Allow, "443,80/tcp", "allow 80,443/tcp", "80,443/tcp"},
		{Allow, "6000:6007/udp", "allow 6000:6007/udp", "6000:6007/udp"},
		{Allow, "80,81,82/tcp", "allow 80:82/tcp", "80:82/tcp"},
		{Deny, "from 203.0.113.0/24", "deny from 203.0.113.0/24", "from 203.0.113.0/24"},
		{Deny, "from 203.0.113.7/24", "deny from 203.0.113.0/24", "from 203.0.113.0/24"},
		{Allow, "from 198.51.100.7 to any port 22 proto tcp", "allow from 198.51.100.7 to any port 22 proto tcp", "from 198.51.100.7 to any port 22 proto tcp"},
		{Allow, "proto tcp from any to any port 22", "allow 22/tcp", "22/tcp"},
		{Allow, "to any port 80,443/tcp", "allow 80,443/tcp", "80,443/tcp"},
		{Allow, "from 2001:db8::/32 to any port 9000 proto tcp", "allow from 2001:db8::/32 to any port 9000 proto tcp", "from 2001:db8::/32 to any port 9000 proto tcp"},
		{Allow, "from ::ffff:192.0.2.1 port 53 proto udp", "allow from 192.0.2.1 port 53 proto udp", "from 192.0.2.1 port 53 proto udp"},
		{Allow, "in on eth0 to any port 53 proto udp", "allow in on eth0 from any to any port 53 proto udp", "in on eth0 from any to any port 53 proto udp"},
		{Allow, "in on eth0 22/tcp", "allow in on eth0 from any to any port 22 proto tcp", "in on eth0 from any to any port 22 proto tcp"},
		{Allow, "to 192.0.2.1 port 22 proto tcp", "allow from any to 192.0.2.1 port 22 proto tcp", "from any to 192.0.2.1 port 22 proto tcp"},
		{Allow, "80/tcp comment 'web server'", "allow 80/tcp comment 'web server'", "80/tcp"},
		{Allow, "from 198.51.100.0/24 comment \"it's mine\"", "allow from 198.51.100.0/24 comment \"it's mine\"", "from 198.51.100.0/24"},
		{Limit, "22/tcp", "limit 22/tcp", "22/tcp"},
		{Limit, "22/tcp --conn 2", "limit 22/tcp --conn 2", "22/tcp"},
		{Limit, "22/tcp --conn 2 --mask 24", "limit 22/tcp --conn 2 --mask 24", "22/tcp"},
		{Limit, "22/tcp --conn=2 --mask6 64", "limit 22/tcp --conn 2 --mask6 64", "22/tcp"},
		{Limit, "22/tcp --rate 1/1s", "limit 22/tcp --rate 1/1s", "22/tcp"},
		{Limit, "22/tcp --rate 5/30 --mode bucket", "limit 22/tcp --rate 5/30s --mode bucket", "22/tcp"},
		{Limit, "22/tcp --rate 10/m --mode penalty", "limit 22/tcp --rate 10/1m", "22/tcp"},
		{Limit, "22/tcp --rate 100/1h --size 1000 --backstop 50/1s", "limit 22/tcp --rate 100/1h --size 1000 --backstop 50/1s", "22/tcp"},
		{Limit, "--conn 2 22/tcp --rate 1/1s", "limit 22/tcp --conn 2 --rate 1/1s", "22/tcp"},
	}
	for _, tt := range tests {
		r, _, err := ParseRule(tt.action, strings.Fields(tt.in), testNames)
		if err != nil {
			// the quoted cases go through Split first
			words, _, serr := Split(tt.in)
			if serr != nil {
				t.Fatalf("%q: %v", tt.in, serr)
			}
			if r, _, err = ParseRule(tt.action, words, testNames); err != nil {
				t.Errorf("%s %q: %v", tt.action, tt.in, err)
				continue
			}
		}
		if got := r.String(); got != tt.want {
			t.Errorf("%s %q: String() = %q, want %q", tt.action, tt.in, got, tt.want)
		}
		if got := r.Match(); got != tt.match {
			t.Errorf("%s %q: Match() = %q, want %q", tt.action, tt.in, got, tt.match)
		}
		// The canonical form parses back to the same rule.
		words, _, err := Split(r.String())
		if err != nil {
			t.Fatal(err)
		}
		back, _, err := ParseRule(Action(words[0]), words[1:], testNames)
		if err != nil || back.String() != r.String() {
			t.Errorf("%q does not round-trip: %v %q", r.String(), err, back.String())
		}
	}
}

// Every malformed RULE, port, CIDR, rate or mask is refused with a message
// naming the bad word.
func TestParseRuleErrors(t *testing.T) {
	tests := []struct {
		action Action
		in     string
		token  string // the word the error must name
	}{
		{Allow, "", ""},
		{Allow, "99999/tcp", "99999/tcp"},
		{Allow, "0", "0"},
		{Allow, "22/tcpx", "22/tcpx"},
		{Allow, "22/icmp", "22/icmp"},
		{Allow, "nosuchservice", "nosuchservice"},
		{Allow, "ssh/udp", "ssh/udp"},
		{Allow, "100:50/tcp", "100:50/tcp"},
		{Allow, "100:abc/tcp", "100:abc/tcp"},
		{Allow, "80,,443/tcp", "80,,443/tcp"},
		{Allow, "/tcp", "/tcp"},
		{Allow, "22 extra", "extra"},
		{Deny, "from 203.0.113.300", "203.0.113.300"},
		{Deny, "from 203.0.113.0/33", "203.0.113.0/33"},
		{Deny, "from 2001:db8::/129", "2001:db8::/129"},
		{Deny, "from fe80::1%eth0", "fe80::1%eth0"},
		{Deny, "from example.com", "example.com"},
		{Deny, "from", "from"},
		{Allow, "from 192.0.2.1 to 2001:db8::1", "2001:db8::1"},
		{Allow, "to any port 70000", "70000"},
		{Allow, "port 22", "port"},
		{Allow, "from any port", "port"},
		{Allow, "to any port 22 proto icmp", "icmp"},
		{Allow, "to any port 22/udp proto tcp", "tcp"},
		{Allow, "from any from any", "from"},
		{Allow, "out 22/tcp", "out"},
		{Allow, "in on", "on"},
		{Allow, "in on this-name-is-much-too-long 22", "this-name-is-much-too-long"},
		{Allow, "in on eth0", "eth0"},
		{Allow, "to any app OpenSSH", "app"},
		{Allow, "from any banana", "banana"},
		{Allow, "22/tcp --conn 2", "--conn"},
		{Limit, "22/tcp --conn 0", "0"},
		{Limit, "22/tcp --conn x", "x"},
		{Limit, "22/tcp --conn", "--conn"},
		{Limit, "22/tcp --conn 2 --conn 3", "--conn"},
		{Limit, "22/tcp --mask 33", "33"},
		{Limit, "22/tcp --mask -1", "-1"},
		{Limit, "22/tcp --mask6 129", "129"},
		{Limit, "22/tcp --rate 2", "2"},
		{Limit, "22/tcp --rate 0/1s", "0/1s"},
		{Limit, "22/tcp --rate x/1s", "x/1s"},
		{Limit, "22/tcp --rate 2/1q", "2/1q"},
		{Limit, "22/tcp --rate 2/100ms", "2/100ms"},
		{Limit, "22/tcp --rate 2/48h", "2/48h"},
		{Limit, "22/tcp --mode fast", "fast"},
		{Limit, "22/tcp --size 0", "0"},
		{Limit, "22/tcp --size 99999999", "99999999"},
		{Limit, "22/tcp --backstop 1", "1"},
		{Limit, "22/tcp --burst 3", "--burst"},
		{Limit, "22/tcp --conn 2 --mode bucket", "--mode"},
		{Limit, "22/tcp --rate 1000000/24h", "1000000/24h"},
	}
	for _, tt := range tests {
		_, _, err := ParseRule(tt.action, strings.Fields(tt.in), testNames)
		if err == nil {
			t.Errorf("%s %q: accepted", tt.action, tt.in)
			continue
		}
		var se *SyntaxError
		if !errors.As(err, &se) {
			t.Errorf("%s %q: %v is not a SyntaxError", tt.action, tt.in, err)
			continue
		}
		if se.Token != tt.token {
			t.Errorf("%s %q: error %q names %q, want %q", tt.action, tt.in, err, se.Token, tt.token)
		}
		if tt.token != "" && !strings.Contains(err.Error(), tt.token) {
			t.Errorf("%s %q: message %q does not show %q", tt.action, tt.in, err, tt.token)
		}
	}
}

func TestEffectiveLimits(t *testing.T) {
	plain := Limits{}.Effective()
	if plain.Rate != 5 || plain.Per != 30*time.Second || plain.Mode != Penalty || plain.Mask4 != 32 || plain.Mask6 != 128 || plain.Size != DefaultSetSize {
		t.Errorf("plain limit = %+v, want ufw's 5/30s penalty", plain)
	}
	if (Rule{Action: Limit}).Block() != Reject {
		t.Error("plain limit must reject like ufw")
	}
	conn := Limits{Conn: 2}
	if e := conn.Effective(); e.Rate != 0 || e.Conn != 2 || e.Backstop != 32 || e.BackstopPer != time.Second {
		t.Errorf("--conn 2 = %+v", e)
	}
	if (Rule{Action: Limit, Limit: conn}).Block() != Deny {
		t.Error("explicit limits drop like the guide's iptables rules")
	}
}

func TestMergeLimits(t *testing.T) {
	old, _, err := ParseRule(Limit, strings.Fields("22/tcp --conn 2 --mask6 64"), testNames)
	if err != nil {
		t.Fatal(err)
	}
	upd, given, err := ParseRule(Limit, strings.Fields("22/tcp --rate 1/1s --mask 24"), testNames)
	if err != nil {
		t.Fatal(err)
	}
	old.Limit = MergeLimits(old.Limit, upd.Limit, given)
	if got, want := old.String(), "limit 22/tcp --conn 2 --mask 24 --mask6 64 --rate 1/1s"; got != want {
		t.Errorf("merged = %q, want %q", got, want)
	}
}

func TestSplit(t *testing.T) {
	tests := []struct {
		in       string
		words    []string
		trailing string
	}{
		{"allow 22/tcp", []string{"allow", "22/tcp"}, ""},
		{"  allow\t22/tcp   # admin  ", []string{"allow", "22/tcp"}, "# admin"},
		{"allow 80/tcp comment 'web server'", []string{"allow", "80/tcp", "comment", "web server"}, ""},
		{`allow 80/tcp comment "it's"`, []string{"allow", "80/tcp", "comment", "it's"}, ""},
		{"# whole line", nil, "# whole line"},
		{"", nil, ""},
	}
	for _, tt := range tests {
		w, tr, err := Split(tt.in)
		if err != nil || strings.Join(w, "|") != strings.Join(tt.words, "|") || tr != tt.trailing {
			t.Errorf("Split(%q) = %q, %q, %v", tt.in, w, tr, err)
		}
	}
	if _, _, err := Split("allow 80 comment 'open"); err == nil {
		t.Error("unterminated quote accepted")
	}
}
