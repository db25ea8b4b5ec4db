package jail

import (
	"net/netip"
	"strings"
)

// Ignore rules.
const (
	RuleSelf    = "ignoreself"
	RuleIP      = "ignoreip"
	RuleCommand = "ignorecommand"
)

// IgnoreMatch says which ignore rule exempts an address.
type IgnoreMatch struct {
	// Rule is RuleSelf, RuleIP or RuleCommand.
	Rule string
	// Entry is the matching entry: "127.0.0.1/8", "admin.example.org
	// (192.0.2.7)", "loopback", "own address", or the command.
	Entry string
}

type ignoreEntry struct {
	prefix netip.Prefix
	text   string
}

// ignoreSet is a jail's exemptions (guarded by Jail.mu).
type ignoreSet struct {
	static     []ignoreEntry // ignoreip addresses and networks
	hosts      []ignoreEntry // ignoreip host names, as resolved
	self       []ignoreEntry // loopback and the host's own addresses
	hostErrors []string
	selfOn     bool
}

var loopback = []ignoreEntry{
	{netip.MustParsePrefix("127.0.0.0/8"), "loopback"},
	{netip.MustParsePrefix("::1/128"), "loopback"},
}

func (s *ignoreSet) init(cfg Config) {
	for _, e := range cfg.IgnoreIP {
		text := e.Text
		if text == "" {
			text = e.Prefix.String()
		}
		s.static = append(s.static, ignoreEntry{canonPrefix(e.Prefix), text})
	}
	s.selfOn = cfg.IgnoreSelf
	if s.selfOn {
		s.self = loopback
	}
	for _, h := range cfg.IgnoreHosts {
		s.hostErrors = append(s.hostErrors, h+": not resolved yet")
	}
}

// canonPrefix makes an IPv4-mapped prefix IPv4 and clears host bits.
func canonPrefix(p netip.Prefix) netip.Prefix {
	if a := p.Addr(); a.Is4In6() {
		p = netip.PrefixFrom(a.Unmap(), max(p.Bits()-96, 0))
	}
	return netip.PrefixFrom(p.Addr().WithZone(""), p.Bits()).Masked()
}

// ResolvedHost is an ignoreip host name with the addresses it resolved to
// (or the error).
type ResolvedHost struct {
	Host  string
	Addrs []netip.Addr
	Err   error
}

// maxResolved bounds the addresses kept per host name.
const maxResolved = 16

// SetIgnoreExtra gives the jail what is found outside it: the host's own
// addresses (for ignoreself) and the ignoreip host names as resolved.
func (j *Jail) SetIgnoreExtra(self []netip.Addr, hosts []ResolvedHost) {
	var selfList []ignoreEntry
	if j.cfg.IgnoreSelf {
		selfList = append(selfList, loopback...)
		for _, a := range self {
			a = a.Unmap().WithZone("")
			if a.IsValid() {
				selfList = append(selfList, ignoreEntry{netip.PrefixFrom(a, a.BitLen()), "own address " + a.String()})
			}
		}
	}
	var list []ignoreEntry
	var errs []string
	for _, h := range hosts {
		if h.Err != nil {
			errs = append(errs, h.Host+": "+h.Err.Error())
			continue
		}
		for i, a := range h.Addrs {
			if i == maxResolved {
				break
			}
			a = a.Unmap().WithZone("")
			if a.IsValid() {
				list = append(list, ignoreEntry{netip.PrefixFrom(a, a.BitLen()), h.Host + " (" + a.String() + ")"})
			}
		}
	}
	j.mu.Lock()
	j.self, j.hosts, j.hostErrors = selfList, list, errs
	j.mu.Unlock()
}

// normalize makes a failure address comparable: IPv4-mapped IPv6 becomes
// IPv4, zones are dropped. Invalid, unspecified and multicast addresses are
// rejected.
func normalize(a netip.Addr) (netip.Addr, bool) {
	a = a.Unmap().WithZone("")
	if !a.IsValid() || a.IsUnspecified() || a.IsMulticast() {
		return netip.Addr{}, false
	}
	return a, true
}

// Exempt returns the ignoreself, ignoreip or implicit (Deps.Implicit) rule
// that exempts a, or nil. It is cheap and pure: the stage beside the jail
// asks it before running an ignorecommand.
func (j *Jail) Exempt(a netip.Addr) *IgnoreMatch {
	n, ok := normalize(a)
	if !ok {
		return nil
	}
	j.mu.Lock()
	m := j.exempt(n)
	j.mu.Unlock()
	if m == nil && j.deps.Implicit != nil {
		m = j.deps.Implicit(n)
	}
	return m
}

// exempt applies ignoreself then ignoreip (fail2ban's order; the
// ignorecommand comes after, as a Fact).
func (s *ignoreSet) exempt(a netip.Addr) *IgnoreMatch {
	if m := firstMatch(s.self, RuleSelf, a); m != nil {
		return m
	}
	if m := firstMatch(s.static, RuleIP, a); m != nil {
		return m
	}
	return firstMatch(s.hosts, RuleIP, a)
}

func (s *ignoreSet) overlapsExempt(p netip.Prefix) bool {
	for _, l := range [][]ignoreEntry{s.self, s.static, s.hosts} {
		for _, ie := range l {
			if ie.prefix.Overlaps(p) {
				return true
			}
		}
	}
	return false
}

func firstMatch(list []ignoreEntry, rule string, a netip.Addr) *IgnoreMatch {
	for _, ie := range list {
		if ie.prefix.Contains(a) {
			return &IgnoreMatch{Rule: rule, Entry: ie.text}
		}
	}
	return nil
}

// CommandMatch is the IgnoreMatch of an ignorecommand that said "ignore".
func CommandMatch(argv []string, cached bool) *IgnoreMatch {
	e := strings.Join(argv, " ")
	if cached {
		e += " (cached)"
	}
	return &IgnoreMatch{Rule: RuleCommand, Entry: e}
}

// ExemptOverlap returns an ignoreself or ignoreip rule with an address
// inside p, or nil: a manual ban of network p would cover that exempt
// address.
func (j *Jail) ExemptOverlap(p netip.Prefix) *IgnoreMatch {
	p = p.Masked()
	j.mu.Lock()
	defer j.mu.Unlock()
	for _, l := range []struct {
		rule string
		list []ignoreEntry
	}{{RuleSelf, j.self}, {RuleIP, j.static}, {RuleIP, j.hosts}} {
		for _, ie := range l.list {
			if ie.prefix.Overlaps(p) {
				return &IgnoreMatch{Rule: l.rule, Entry: ie.text}
			}
		}
	}
	return nil
}
