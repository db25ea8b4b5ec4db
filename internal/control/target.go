package control

import (
	"fmt"
	"net/netip"
	"strings"
)

// ParseTarget parses what a manual ban names: one address, or a network
// in CIDR form (198.51.100.0/24, 2001:db8::/64; host bits are cleared).
// Addresses and networks that can never be an attacker's are refused
// (see NotAttacker).
func ParseTarget(s string) (netip.Prefix, error) {
	var p netip.Prefix
	if strings.Contains(s, "/") {
		q, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("invalid address %q: want an address or a network ADDRESS/BITS", truncate(s))
		}
		a := q.Addr()
		bits := q.Bits()
		if a.Is4In6() {
			if bits < 96 {
				return netip.Prefix{}, fmt.Errorf("invalid network %q: an IPv4-mapped prefix shorter than /96", truncate(s))
			}
			a, bits = a.Unmap(), bits-96
		}
		if bits == 0 {
			return netip.Prefix{}, fmt.Errorf("refusing to ban %s: that is every address", s)
		}
		p = netip.PrefixFrom(a, bits).Masked()
	} else {
		a, err := ParseIP(s)
		if err != nil {
			return netip.Prefix{}, err
		}
		p = netip.PrefixFrom(a, a.BitLen())
	}
	if why := NotAttacker(p); why != "" {
		return netip.Prefix{}, fmt.Errorf("refusing to ban %s: %s", p, why)
	}
	return p, nil
}

// NotAttacker says why no packet from (any address of) p can come from an
// attacker, or "" when it can: the unspecified address, loopback,
// multicast, link-local, the IPv4 limited broadcast. Banning them would
// block the host's own traffic or do nothing.
func NotAttacker(p netip.Prefix) string {
	a := p.Masked().Addr()
	last := lastAddr(p)
	for _, x := range []netip.Addr{a, last} {
		switch {
		case x.IsUnspecified():
			return "the unspecified address is never a peer's"
		case x.IsLoopback():
			return "a loopback address is this host's own"
		case x.IsMulticast():
			return "a multicast address is never a sender's"
		case x.IsLinkLocalUnicast():
			return "a link-local address is the local link's own (routers, neighbour discovery)"
		case x == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
			return "the broadcast address is never a sender's"
		}
	}
	// A network wider than one of those blocks covers them.
	for _, special := range []netip.Prefix{
		netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("169.254.0.0/16"),
		netip.MustParsePrefix("224.0.0.0/4"), netip.MustParsePrefix("::1/128"),
		netip.MustParsePrefix("fe80::/10"), netip.MustParsePrefix("ff00::/8"),
	} {
		if special.Addr().Is4() == a.Is4() && p.Bits() < special.Bits() && p.Contains(special.Addr()) {
			return "the network covers " + special.String()
		}
	}
	return ""
}

// lastAddr is the highest address of p.
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().AsSlice()
	host := len(b)*8 - p.Bits()
	for i := len(b) - 1; i >= 0 && host > 0; i-- {
		n := min(host, 8)
		b[i] |= byte(1<<n - 1)
		host -= n
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// parseUnbanTarget parses what unban names: an address, or a network as
// ban took it (no refusal: lifting is always allowed).
func parseUnbanTarget(s string) (netip.Prefix, error) {
	if !strings.Contains(s, "/") {
		a, err := ParseIP(s)
		if err != nil {
			return netip.Prefix{}, err
		}
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	q, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("invalid address %q: want an address or a network ADDRESS/BITS", truncate(s))
	}
	if q.Addr().Is4In6() && q.Bits() >= 96 {
		q = netip.PrefixFrom(q.Addr().Unmap(), q.Bits()-96)
	}
	return q.Masked(), nil
}

// Target returns the request's address or network (ban and unban); it is
// valid after Validate succeeded.
func (r Request) Target() netip.Prefix {
	var p netip.Prefix
	var err error
	if r.Verb == VerbBan {
		p, err = ParseTarget(r.IP)
	} else {
		p, err = parseUnbanTarget(r.IP)
	}
	if err != nil {
		return netip.Prefix{}
	}
	return p
}

// validateIP checks the IP field for the verb: ban takes an address or a
// network that may be an attacker's, unban an address or a network,
// others an address.
func (r Request) validateIP() error {
	var err error
	switch r.Verb {
	case VerbBan:
		_, err = ParseTarget(r.IP)
	case VerbUnban:
		_, err = parseUnbanTarget(r.IP)
	default:
		_, err = ParseIP(r.IP)
	}
	return err
}
