package cloudflare

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/palisade-project/palisade/internal/firewall"
)

func TestParseEntry(t *testing.T) {
	for _, tc := range []struct {
		in   string
		ok   bool
		want string // part of the error
	}{
		{"173.245.48.0/20", true, ""},
		{"2400:cb00::/32", true, ""},
		{"192.0.2.0/24", true, ""},     // documentation ranges are allowed
		{"2001:db8:cf::/48", true, ""}, // IPv6 documentation
		{"11.0.0.0/8", true, ""},       // as wide as allowed
		{"2a00::/12", true, ""},
		{"", false, "empty"},
		{" 173.245.48.0/20", false, "blanks"},
		{"173.245.48.0/20\r", false, "blanks"},
		{"173.245.48.1", false, "not a CIDR"},
		{"131.0.72.0/222400:cb00::/32", false, "glued"},
		{"173.245.48.1/20", false, "host bits"},
		{"2400:CB00::/32", false, "canonical"},
		{"2400:cb00:0::/32", false, "canonical"},
		{"0.0.0.0/0", false, "default route"},
		{"::/0", false, "default route"},
		{"8.0.0.0/7", false, "wider than /8"},
		{"2000::/3", false, "wider than /12"},
		{"10.1.0.0/16", false, "private"},
		{"172.16.0.0/12", false, "private"},
		{"192.168.1.0/24", false, "private"},
		{"100.64.0.0/10", false, "shared"},
		{"127.0.0.0/8", false, "loopback"},
		{"::1/128", false, "loopback"},
		{"169.254.0.0/16", false, "link-local"},
		{"fe80::/64", false, "link-local"},
		{"224.0.0.0/8", false, "multicast"},
		{"ff02::/16", false, "multicast"},
		{"fd00::/16", false, "unique local"},
		{"::ffff:192.0.2.0/120", false, "IPv4-mapped"},
		{"240.0.0.0/8", false, "reserved"},
		{"0.1.0.0/16", false, "this network"},
		{"<html>", false, "not a CIDR"},
	} {
		p, err := ParseEntry(tc.in)
		if tc.ok {
			if err != nil || p.String() != tc.in {
				t.Errorf("ParseEntry(%q) = %v, %v; want it accepted", tc.in, p, err)
			}
			continue
		}
		if err == nil {
			t.Errorf("ParseEntry(%q) accepted %v", tc.in, p)
			continue
		}
		if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseEntry(%q) error %q, want ErrRefused mentioning %q", tc.in, err, tc.want)
		}
	}
}

const goodAPI = `{"result":{"ipv4_cidrs":["192.0.2.0/25","198.51.100.0/24"],"ipv6_cidrs":["2001:db8:1::/48","2001:db8:2::/48"],"etag":"3f0a9"},"success":true,"errors":[],"messages":[]}`

func TestParseAPI(t *testing.T) {
	l, err := ParseAPI([]byte(goodAPI))
	if err != nil {
		t.Fatal(err)
	}
	if l.ETag != "3f0a9" || len(l.IPv4) != 2 || len(l.IPv6) != 2 || l.IPv4[0] != netip.MustParsePrefix("192.0.2.0/25") {
		t.Fatalf("parsed %+v", l)
	}
	for _, tc := range []struct {
		name, body, want string
	}{
		{"challenge page", "<!DOCTYPE html><html><title>Just a moment...</title>", "not a JSON object"},
		{"empty", "", "not a JSON object"},
		{"success false", `{"success":false,"errors":[{"code":10000,"message":"Authentication error"}],"result":null}`, "success:false [10000"},
		{"no success", `{"result":{"ipv4_cidrs":["192.0.2.0/24"],"ipv6_cidrs":["2001:db8::/32"]}}`, "no \"success\""},
		{"no result", `{"success":true}`, "lacks result"},
		{"no v6", `{"success":true,"result":{"ipv4_cidrs":["192.0.2.0/24"]}}`, "lacks result"},
		{"empty v6", `{"success":true,"result":{"ipv4_cidrs":["192.0.2.0/24"],"ipv6_cidrs":[]}}`, "IPv6 list is empty"},
		{"empty v4", `{"success":true,"result":{"ipv4_cidrs":[],"ipv6_cidrs":["2001:db8::/32"]}}`, "IPv4 list is empty"},
		{"default route", `{"success":true,"result":{"ipv4_cidrs":["0.0.0.0/0"],"ipv6_cidrs":["2001:db8::/32"]}}`, "default route"},
		{"glued", `{"success":true,"result":{"ipv4_cidrs":["198.51.100.0/24","131.0.72.0/222400:cb00::/32"],"ipv6_cidrs":["2001:db8::/32"]}}`, "glued"},
		{"unmasked", `{"success":true,"result":{"ipv4_cidrs":["198.51.100.7/24"],"ipv6_cidrs":["2001:db8::/32"]}}`, "host bits"},
		{"family swap", `{"success":true,"result":{"ipv4_cidrs":["2001:db8::/32"],"ipv6_cidrs":["2001:db8:1::/48"]}}`, "IPv4 list"},
		{"overlap", `{"success":true,"result":{"ipv4_cidrs":["198.51.100.0/24","198.51.100.0/25"],"ipv6_cidrs":["2001:db8::/32"]}}`, "overlap"},
		{"number entry", `{"success":true,"result":{"ipv4_cidrs":[1],"ipv6_cidrs":["2001:db8::/32"]}}`, "malformed JSON"},
		{"trailing", goodAPI + `{}`, "trailing"},
		{"etag injection", `{"success":true,"result":{"ipv4_cidrs":["192.0.2.0/24"],"ipv6_cidrs":["2001:db8::/32"],"etag":"x\nset_real_ip_from 0.0.0.0/0;"}}`, "etag"},
	} {
		_, err := ParseAPI([]byte(tc.body))
		if err == nil || !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want ErrRefused mentioning %q", tc.name, err, tc.want)
		}
	}
}

func TestParseText(t *testing.T) {
	l, err := ParseText([]byte("# mirror\n192.0.2.0/24\n\n2001:db8::/32\r\n198.51.100.0/24")) // no final newline
	if err != nil {
		t.Fatal(err)
	}
	if len(l.IPv4) != 2 || len(l.IPv6) != 1 {
		t.Fatalf("parsed %+v", l)
	}
	// Two files concatenated without the final newline glue two entries.
	_, err = ParseText([]byte("192.0.2.0/24\n131.0.72.0/222400:cb00::/32\n"))
	if err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Errorf("glued line: %v", err)
	}
	if _, err := ParseText([]byte("192.0.2.0/24\n")); err == nil || !strings.Contains(err.Error(), "IPv6 list is empty") {
		t.Errorf("one family only: %v", err)
	}
	if l, err := ParseText([]byte(goodAPI)); err != nil || l.ETag != "3f0a9" {
		t.Errorf("saved API reply as a file: %+v, %v", l, err)
	}
}

func TestDiffAndShrink(t *testing.T) {
	p := func(ss ...string) []netip.Prefix {
		var out []netip.Prefix
		for _, s := range ss {
			out = append(out, netip.MustParsePrefix(s))
		}
		return out
	}
	cur := p("192.0.2.0/25", "198.51.100.0/24", "2001:db8:1::/48", "2001:db8:2::/48")
	d := DiffLists(cur, p("192.0.2.0/25", "203.0.113.0/24", "2001:db8:1::/48", "2001:db8:2::/48"))
	if d.Kept != 3 || len(d.Added) != 1 || len(d.Removed) != 1 || d.Added[0].String() != "203.0.113.0/24" || !d.Changed() {
		t.Errorf("diff %+v", d)
	}
	if DiffLists(cur, cur).Changed() {
		t.Error("an equal list differs")
	}
	if err := CheckShrink(cur, p("192.0.2.0/25", "2001:db8:1::/48")); err != nil {
		t.Errorf("dropping exactly half: %v", err)
	}
	if err := CheckShrink(cur, p("192.0.2.0/25", "2001:db8:9::/48")); !errors.Is(err, ErrRefused) {
		t.Errorf("dropping 3 of 4: %v", err)
	}
	if err := CheckShrink(nil, p("192.0.2.0/25")); err != nil {
		t.Errorf("no current list: %v", err)
	}
}

func TestSnapshotIsValidAndDated(t *testing.T) {
	l, err := Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	if l.Source != SnapshotSource || l.Fetched.IsZero() || len(l.IPv4) < 10 || len(l.IPv6) < 5 {
		t.Fatalf("snapshot %+v", l)
	}
	if _, ok := l.Contains(netip.MustParseAddr("104.16.1.1")); !ok {
		t.Error("snapshot lacks 104.16.0.0/13")
	}
}

func TestCheckSession(t *testing.T) {
	web := []firewall.PortRange{{From: 80, To: 80}, {From: 443, To: 443}}
	allow := []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24")}
	for _, tc := range []struct {
		env string
		ok  bool
	}{
		{"", true},
		{"198.51.100.7 50000 192.0.2.1 22", true},   // ssh on 22: not locked
		{"198.51.100.7 50000 192.0.2.1 443", false}, // ssh on 443, client outside
		{"203.0.113.9 50000 192.0.2.1 443", true},   // client allowed
		{"::ffff:198.51.100.7 50000 192.0.2.1 80", false},
		{"garbage", true},
	} {
		err := CheckSession(tc.env, web, allow, nil)
		if (err == nil) != tc.ok {
			t.Errorf("CheckSession(%q) = %v, want ok %v", tc.env, err, tc.ok)
		}
	}
}
