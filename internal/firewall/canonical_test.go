package firewall

import (
	"net/netip"
	"testing"
)

func TestCanonical(t *testing.T) {
	tests := []struct {
		in, want string
		bad      bool
	}{
		{in: "192.0.2.7/32", want: "192.0.2.7/32"},
		{in: "192.0.2.7/24", want: "192.0.2.0/24"},
		{in: "::ffff:198.51.100.9/128", want: "198.51.100.9/32"},
		{in: "::ffff:198.51.100.0/120", want: "198.51.100.0/24"},
		{in: "2001:db8::1/64", want: "2001:db8::/64"},
		{in: "fe80::1%eth0/128", want: "fe80::1/128"},
		{in: "::ffff:0.0.0.0/80", bad: true},
	}
	for _, tc := range tests {
		var p netip.Prefix
		if a, bits, ok := cutPrefix(tc.in); ok {
			p = netip.PrefixFrom(a, bits)
		}
		got, err := Canonical(p)
		if tc.bad {
			if err == nil {
				t.Errorf("Canonical(%s) = %v, want an error", tc.in, got)
			}
			continue
		}
		if err != nil || got.String() != tc.want {
			t.Errorf("Canonical(%s) = %v, %v; want %s", tc.in, got, err, tc.want)
		}
	}
	if _, err := Canonical(netip.Prefix{}); err == nil {
		t.Error("Canonical(invalid) succeeded")
	}
}

// cutPrefix parses ADDR/BITS keeping a zone (netip.ParsePrefix refuses zones).
func cutPrefix(s string) (netip.Addr, int, bool) {
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == '/' {
			a, err := netip.ParseAddr(s[:i])
			if err != nil {
				return netip.Addr{}, 0, false
			}
			n := 0
			for _, c := range s[i+1:] {
				n = n*10 + int(c-'0')
			}
			return a, n, true
		}
	}
	return netip.Addr{}, 0, false
}
