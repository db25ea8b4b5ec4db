package control

import (
	"strings"
	"testing"
)

func TestParseTarget(t *testing.T) {
	tests := []struct {
		in, want, err string
	}{
		{in: "192.0.2.7", want: "192.0.2.7/32"},
		{in: "2001:DB8::1", want: "2001:db8::1/128"},
		{in: "::ffff:198.51.100.3", want: "198.51.100.3/32"},
		{in: "198.51.100.77/24", want: "198.51.100.0/24"},
		{in: "2001:db8:1:2::5/64", want: "2001:db8:1:2::/64"},
		{in: "::ffff:203.0.113.0/120", want: "203.0.113.0/24"},
		{in: "0.0.0.0", err: "unspecified"},
		{in: "::", err: "unspecified"},
		{in: "127.0.0.1", err: "loopback"},
		{in: "127.8.0.0/16", err: "loopback"},
		{in: "::1", err: "loopback"},
		{in: "224.0.0.1", err: "multicast"},
		{in: "ff02::1", err: "multicast"},
		{in: "255.255.255.255", err: "broadcast"},
		{in: "169.254.10.1", err: "link-local"},
		{in: "fe80::1", err: "link-local"},
		{in: "0.0.0.0/0", err: "every address"},
		{in: "::/0", err: "every address"},
		{in: "96.0.0.0/3", err: "loopback"},
		{in: "168.0.0.0/6", err: "covers 169.254.0.0/16"},
		{in: "fe00::/8", err: "covers fe80::/10"},
		{in: "192.0.2.1/33", err: "invalid address"},
		{in: "fe80::1%eth0", err: "zones"},
		{in: "example.com", err: "invalid address"},
	}
	for _, tc := range tests {
		p, err := ParseTarget(tc.in)
		switch {
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%s: %v, %v; want error with %q", tc.in, p, err, tc.err)
		case tc.err == "" && (err != nil || p.String() != tc.want):
			t.Errorf("%s: %v, %v; want %s", tc.in, p, err, tc.want)
		}
	}
}
