package jail

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"time"
)

// SplitList splits a fail2ban list value (ignoreip and friends): entries
// are separated by blanks and/or commas.
func SplitList(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool {
		return r == ',' || r == ' ' || r == '\t' || r == '\n' || r == '\r'
	})
}

// NetResolver is the system Resolver (the host's resolver configuration),
// each lookup bounded by Timeout (default 5s). It is the adapter the daemon
// injects; the Jail itself never touches the network.
type NetResolver struct {
	Timeout time.Duration
}

// LookupHost implements Resolver.
func (r NetResolver) LookupHost(host string) ([]netip.Addr, error) {
	t := r.Timeout
	if t <= 0 {
		t = 5 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), t)
	defer cancel()
	return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
}

// InterfaceAddrs returns the host's own addresses (every interface), for
// Deps.SelfAddrs. Errors yield an empty list: loopback is covered anyway.
func InterfaceAddrs() []netip.Addr {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil
	}
	out := make([]netip.Addr, 0, len(addrs))
	for _, a := range addrs {
		if p, err := netip.ParsePrefix(a.String()); err == nil {
			out = append(out, p.Addr().Unmap().WithZone(""))
		}
	}
	return out
}
