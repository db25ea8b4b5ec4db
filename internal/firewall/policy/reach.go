package policy

import (
	"fmt"
	"net/netip"
	"slices"

	"github.com/palisade-project/palisade/internal/firewall"
)

// Endpoint is a client that must keep reaching a local TCP port (an SSH
// port, from the admin's session address, an ignoreip network, or from
// anybody).
type Endpoint struct {
	// Source is the client network; the zero Prefix means "somebody": the
	// port must not be closed to everyone.
	Source netip.Prefix
	Port   uint16
	// Why describes the endpoint in messages.
	Why string
}

func (e Endpoint) String() string {
	if !e.Source.IsValid() {
		return fmt.Sprintf("port %d/tcp (%s)", e.Port, e.Why)
	}
	return fmt.Sprintf("port %d/tcp from %s (%s)", e.Port, formatAddr(e.Source), e.Why)
}

// Verdict says whether a policy lets an endpoint in.
type Verdict struct {
	Reachable bool
	// Rule is the number of the rule that decides (0: the default policy,
	// a port opened outside the rules, or a disabled policy).
	Rule   int
	Reason string
}

// Reach reports whether p lets new TCP connections from ep.Source to
// ep.Port in, evaluating the rules the way the kernel does (first match
// decides), conservatively: a refusing rule that might apply (it names an
// interface or a destination address, or it covers part of the source)
// counts as refusing; an accepting one that might not apply does not
// count. open reports ports opened outside the rules (palisade's allow
// chain, consulted after them); it may be nil.
func (p Policy) Reach(ep Endpoint, open func(port uint16) bool) Verdict {
	if !p.Enabled {
		return Verdict{Reachable: true, Reason: "the firewall policy is disabled"}
	}
	general := !ep.Source.IsValid()
	for i, r := range p.Rules {
		n := i + 1
		if r.Proto == "udp" || len(r.FromPorts) > 0 || (len(r.ToPorts) > 0 && !inPorts(r.ToPorts, ep.Port)) {
			continue
		}
		accepting := r.Action == Allow || r.Action == Limit
		conditional := r.Iface != "" || r.To.IsValid()
		if r.To.IsValid() && !general && r.To.Addr().Is4() != ep.Source.Addr().Is4() {
			continue
		}
		var full, partial bool
		switch {
		case !r.From.IsValid():
			full = true
		case general:
			// A rule for some sources: an accept opens the port to them.
			if accepting && !conditional {
				return Verdict{Reachable: true, Rule: n, Reason: fmt.Sprintf("rule %d (%s) lets %s in", n, r, formatAddr(r.From))}
			}
			continue
		case r.From.Addr().Is4() != ep.Source.Addr().Is4():
			continue
		case r.From.Bits() <= ep.Source.Bits() && r.From.Contains(ep.Source.Addr()):
			full = true
		case ep.Source.Bits() < r.From.Bits() && ep.Source.Contains(r.From.Addr()):
			partial = true
		default:
			continue
		}
		switch {
		case accepting && full && !conditional:
			return Verdict{Reachable: true, Rule: n, Reason: fmt.Sprintf("rule %d (%s) lets it in", n, r)}
		case accepting:
			continue
		case general && conditional:
			continue
		case partial:
			return Verdict{Rule: n, Reason: fmt.Sprintf("rule %d (%s) refuses part of %s", n, r, formatAddr(ep.Source))}
		case conditional:
			return Verdict{Rule: n, Reason: fmt.Sprintf("rule %d (%s) may refuse it", n, r)}
		default:
			return Verdict{Rule: n, Reason: fmt.Sprintf("rule %d (%s) refuses it", n, r)}
		}
	}
	if open != nil && open(ep.Port) {
		return Verdict{Reachable: true, Reason: fmt.Sprintf("port %d is opened in palisade's allow chain", ep.Port)}
	}
	if p.Default == DefaultAllow {
		return Verdict{Reachable: true, Reason: "the default policy allows it"}
	}
	return Verdict{Reason: fmt.Sprintf("the default policy (%s) refuses it", p.Default)}
}

func inPorts(rs []firewall.PortRange, port uint16) bool {
	return slices.ContainsFunc(rs, func(r firewall.PortRange) bool { return r.From <= port && port <= r.To })
}

// Cut is an endpoint a policy refuses.
type Cut struct {
	Endpoint Endpoint
	Verdict  Verdict
}

func (c Cut) String() string { return c.Endpoint.String() + ": " + c.Verdict.Reason }

// Cuts returns the endpoints p refuses.
func (p Policy) Cuts(eps []Endpoint, open func(uint16) bool) []Cut {
	var out []Cut
	for _, ep := range eps {
		if v := p.Reach(ep, open); !v.Reachable {
			out = append(out, Cut{ep, v})
		}
	}
	return out
}

// NewCuts returns the endpoints after refuses that before let in.
func NewCuts(before, after Policy, eps []Endpoint, open func(uint16) bool) []Cut {
	var out []Cut
	for _, c := range after.Cuts(eps, open) {
		if before.Reach(c.Endpoint, open).Reachable {
			out = append(out, c)
		}
	}
	return out
}

// Keep adds to f the allow rules that keep every endpoint reachable where
// only the default policy shuts it out: "allow PORT/tcp" for a port closed
// to everyone, then "allow from SOURCE to any port PORT proto tcp" for each
// source still cut off. Endpoints refused by an explicit rule are not
// touched: they are returned, for the caller to refuse the change.
func Keep(f *File, eps []Endpoint, open func(uint16) bool) (added []Rule, cuts []Cut) {
	ordered := slices.Clone(eps)
	slices.SortStableFunc(ordered, func(a, b Endpoint) int {
		if a.Source.IsValid() == b.Source.IsValid() {
			return 0
		}
		if !a.Source.IsValid() {
			return -1
		}
		return 1
	})
	for _, ep := range ordered {
		v := f.Policy().Reach(ep, open)
		if v.Reachable {
			continue
		}
		if v.Rule > 0 {
			cuts = append(cuts, Cut{ep, v})
			continue
		}
		r := Rule{Action: Allow, ToPorts: []firewall.PortRange{{From: ep.Port, To: ep.Port}}, Proto: "tcp", From: ep.Source}
		if ep.Source.IsValid() {
			r.Comment = "palisade: keeps " + ep.Why + " reachable"
		} else {
			r.Comment = "palisade: keeps " + ep.Why + " open"
		}
		if len(r.Comment) > 128 {
			r.Comment = r.Comment[:128]
		}
		f.Add(r, nil)
		added = append(added, r)
	}
	return added, cuts
}
