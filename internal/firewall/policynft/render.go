// Package policynft installs palisade's firewall policy (internal/firewall/policy)
// in nftables, over netlink (github.com/google/nftables), inside palisade's
// own "table inet palisade", next to the ban chains of the nft backend, the
// port-hardening chain "allow" and the Cloudflare lock (cf_*), none of which
// it touches:
//
//	chain pol_input   type filter hook input priority filter - 10; policy accept
//	                  ct state established,related accept; iifname "lo" accept
//	                  the ICMP and ICMPv6 types IPv6 and path-MTU discovery need,
//	                  the DHCPv6 client's replies; ct state invalid drop
//	                  then the rules in order (first match decides), then
//	                  jump allow (ports opened by ssh harden), then the default
//	chain pol_ID      one per limit rule: its limits, then accept
//	chain pol_forward type filter hook forward priority filter - 10: the limit
//	                  rules again for DNATed connections (ct original proto-dst)
//	set pol_ID_c4/c6  concurrent connections: ct count per (masked) source
//	set pol_ID_r4/r6  new connections per window: a limit in each element
//	set pol_ID_p4/p6  sources in penalty (refused, timeout refreshed per attempt)
//	counter pol_ID_full  packets from sources a full set could not track
//
// Everything it owns is named "pol_..." ("policy" itself is a keyword of
// the nft language, so a chain of that name could not be listed by name). An accept is
// not final in nftables: the ban chain (priority filter - 1) still refuses
// banned sources the policy lets in. Apply sends one batch, which the
// kernel applies atomically: on any error nothing changes.
package policynft

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"golang.org/x/sys/unix"

	"github.com/palisade-project/palisade/internal/firewall"
	"github.com/palisade-project/palisade/internal/firewall/policy"
)

// Names of the objects in palisade's table.
const (
	TableName    = "palisade"
	InputChain   = "pol_input"
	ForwardChain = "pol_forward"
	Prefix       = "pol_"
	// AllowChain holds the ports the hardening commands opened
	// (internal/harden/ports); the policy jumps to it after its rules.
	AllowChain = "allow"
)

// Owned reports whether a chain, set or object name belongs to the policy.
func Owned(name string) bool { return strings.HasPrefix(name, Prefix) }

// InputPriority is the policy chain's priority: before the ban chain
// (filter - 1), so that a policy drop is final and the ban chain still sees
// what the policy accepts.
var InputPriority = nftables.ChainPriorityRef(*nftables.ChainPriorityFilter - 10)

type plan struct {
	table    *nftables.Table
	chains   []*chainPlan
	sets     []*nftables.Set
	counters []string
	limits   []LimitInfo
	// anon are the anonymous sets (with their elements) rules use; they
	// are added before the rules.
	anon   []anonSet
	nextID uint32
}

type chainPlan struct {
	chain *nftables.Chain
	rules []*nftables.Rule
}

type anonSet struct {
	set   *nftables.Set
	elems []nftables.SetElement
}

// LimitInfo describes the kernel objects of one limit rule.
type LimitInfo struct {
	// Rule is the rule's number (1-based).
	Rule int `json:"rule"`
	// ID names the rule's chain (pol_ID), sets and counter.
	ID string `json:"id"`
	// Sets are the rule's dynamic sets with their sizes.
	Sets []SetInfo `json:"sets"`
	// Counter counts packets from sources the sets could not hold.
	Counter string `json:"counter"`
}

// SetInfo is one dynamic set of a limit rule.
type SetInfo struct {
	Name string `json:"name"`
	// Kind is "conn" (concurrent connections), "rate" (new connections per
	// window) or "penalty" (sources being refused).
	Kind   string `json:"kind"`
	Family int    `json:"family"`
	Size   int    `json:"size"`
	// Elements is the number of entries now (filled in by Stats).
	Elements int `json:"elements"`
}

func table() *nftables.Table {
	return &nftables.Table{Name: TableName, Family: nftables.TableFamilyINet}
}

// render builds the objects for p (an empty plan when p is disabled).
func render(p policy.Policy) (*plan, error) {
	pl := &plan{table: table()}
	if !p.Enabled {
		return pl, nil
	}
	input := &chainPlan{chain: &nftables.Chain{
		Name: InputChain, Table: pl.table, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookInput, Priority: InputPriority, Policy: ptr(nftables.ChainPolicyAccept),
	}}
	pl.chains = append(pl.chains, input)
	input.add("palisade:conntrack", ctState(expr.CtStateBitESTABLISHED|expr.CtStateBitRELATED), accept())
	input.add("palisade:loopback", iifname("lo"), accept())
	// destination-unreachable, time-exceeded, parameter-problem, echo-request
	icmp4 := pl.anonSet(nftables.TypeICMPType, false, byteKeys(3, 11, 12, 8))
	// ICMPv6 errors (packet-too-big: path MTU), echo, MLD, neighbour discovery, MLDv2
	icmp6 := pl.anonSet(nftables.TypeICMP6Type, false, byteKeys(1, 2, 3, 4, 128, 129, 130, 131, 132, 133, 134, 135, 136, 143))
	input.add("palisade:icmp", nfproto(4), l4(unix.IPPROTO_ICMP), loadTransport(0, 1), lookup(icmp4, false), accept())
	input.add("palisade:icmpv6", nfproto(6), l4(unix.IPPROTO_ICMPV6), loadTransport(0, 1), lookup(icmp6, false), accept())
	input.add("palisade:dhcpv6-client",
		nfproto(6), l4(unix.IPPROTO_UDP), matchPrefix(netip.MustParsePrefix("fe80::/10"), true),
		pl.matchPorts(0, []firewall.PortRange{{From: 547, To: 547}}), pl.matchPorts(2, []firewall.PortRange{{From: 546, To: 546}}), accept())
	input.add("palisade:invalid", ctState(expr.CtStateBitINVALID), drop())

	var forward *chainPlan
	seen := map[string]bool{}
	for i, r := range p.Rules {
		n := i + 1
		tag := fmt.Sprintf("palisade:%d %s", n, r)
		if len(tag) > 250 {
			tag = tag[:250]
		}
		var verdict [][]expr.Any
		switch r.Action {
		case policy.Allow:
			verdict = [][]expr.Any{accept()}
		case policy.Deny:
			verdict = [][]expr.Any{drop()}
		case policy.Reject:
			if r.Proto == "tcp" {
				verdict = [][]expr.Any{rejectTCP()}
			} else {
				verdict = [][]expr.Any{rejectICMPX()}
			}
		case policy.Limit:
			lc, info, err := pl.limitChain(n, r)
			if err != nil {
				return nil, err
			}
			if seen[info.ID] {
				return nil, fmt.Errorf("rule %d: limit id %s used twice", n, info.ID)
			}
			seen[info.ID] = true
			verdict = [][]expr.Any{{&expr.Verdict{Kind: expr.VerdictJump, Chain: lc.chain.Name}}}
			if forward == nil {
				forward = &chainPlan{chain: &nftables.Chain{
					Name: ForwardChain, Table: pl.table, Type: nftables.ChainTypeFilter,
					Hooknum: nftables.ChainHookForward, Priority: InputPriority, Policy: ptr(nftables.ChainPolicyAccept),
				}}
			}
			if len(r.ToPorts) > 0 && !r.To.IsValid() && r.Iface == "" {
				// DNATed connections to the rule's (original) ports.
				for _, m := range pl.forwardMatches(r) {
					forward.add(tag, m, verdict[0])
				}
			}
		default:
			return nil, fmt.Errorf("rule %d: unknown action %q", n, r.Action)
		}
		for _, m := range pl.matches(r) {
			for _, v := range verdict {
				input.add(tag, m, v)
			}
		}
	}
	input.add("palisade:hardening", []expr.Any{&expr.Verdict{Kind: expr.VerdictJump, Chain: AllowChain}})
	switch p.Default {
	case policy.DefaultDeny, "":
		input.add("palisade:default deny", drop())
	case policy.DefaultReject:
		input.add("palisade:default reject", l4(unix.IPPROTO_TCP), rejectTCP())
		input.add("palisade:default reject", rejectICMPX())
	case policy.DefaultAllow:
	default:
		return nil, fmt.Errorf("unknown default policy %q", p.Default)
	}
	if forward != nil && len(forward.rules) > 0 {
		pl.chains = append(pl.chains, forward)
	}
	return pl, nil
}

func ptr[T any](v T) *T { return &v }

func (c *chainPlan) add(tag string, parts ...[]expr.Any) {
	c.rules = append(c.rules, &nftables.Rule{
		Chain: c.chain, Table: c.chain.Table,
		UserData: userdata.AppendString(nil, userdata.TypeComment, tag),
		Exprs:    slices.Concat(parts...),
	})
}

// anonSet adds an anonymous constant set of keys (interval: keys are
// start, end pairs of a range, the end exclusive).
func (pl *plan) anonSet(kt nftables.SetDatatype, interval bool, elems []nftables.SetElement) *nftables.Set {
	pl.nextID++
	s := &nftables.Set{Table: pl.table, Anonymous: true, Constant: true, KeyType: kt, Interval: interval,
		ID: pl.nextID, Name: "__set%d"}
	if interval {
		s.KeyByteOrder = binaryutil.BigEndian
	}
	pl.anon = append(pl.anon, anonSet{set: s, elems: elems})
	return s
}

func byteKeys(keys ...byte) []nftables.SetElement {
	out := make([]nftables.SetElement, len(keys))
	for i, k := range keys {
		out[i] = nftables.SetElement{Key: []byte{k}}
	}
	return out
}

// matches returns one expression list per protocol of the rule (its port
// lists become one match each).
func (pl *plan) matches(r policy.Rule) [][]expr.Any {
	var base []expr.Any
	if r.Iface != "" {
		base = append(base, iifname(r.Iface)...)
	}
	fams := []int{4, 6}
	if f := r.Family(); f != 0 {
		fams = []int{f}
	}
	var out [][]expr.Any
	for _, fam := range fams {
		if len(fams) == 2 && !r.From.IsValid() && !r.To.IsValid() {
			fam = 0 // no address: one match for both families
		}
		m := slices.Clone(base)
		if fam != 0 {
			m = append(m, nfproto(fam)...)
		}
		if r.From.IsValid() {
			m = append(m, matchPrefix(r.From, true)...)
		}
		if r.To.IsValid() {
			m = append(m, matchPrefix(r.To, false)...)
		}
		protos := r.Protos()
		if protos == nil {
			out = append(out, m)
		}
		for _, pr := range protos {
			pm := slices.Clone(m)
			pm = append(pm, l4(protoNum(pr))...)
			if len(r.FromPorts) > 0 {
				pm = append(pm, pl.matchPorts(0, r.FromPorts)...)
			}
			if len(r.ToPorts) > 0 {
				pm = append(pm, pl.matchPorts(2, r.ToPorts)...)
			}
			out = append(out, pm)
		}
		if fam == 0 {
			break
		}
	}
	return out
}

// forwardMatches selects new, DNATed connections whose original
// destination port is one of the rule's ports.
func (pl *plan) forwardMatches(r policy.Rule) [][]expr.Any {
	var out [][]expr.Any
	protos := r.Protos()
	for _, pr := range protos {
		m := ctState(expr.CtStateBitNEW)
		m = append(m, ctStatus(ipsDstNAT)...)
		if f := r.Family(); f != 0 {
			m = append(m, nfproto(f)...)
		}
		if r.From.IsValid() {
			m = append(m, matchPrefix(r.From, true)...)
		}
		m = append(m, l4(protoNum(pr))...)
		if len(r.FromPorts) > 0 {
			m = append(m, pl.matchPorts(0, r.FromPorts)...)
		}
		m = append(m, &expr.Ct{Register: 1, Key: expr.CtKeyPROTODST, Direction: 0})
		m = append(m, pl.portCmp(r.ToPorts)...)
		out = append(out, m)
	}
	return out
}

func protoNum(p string) byte {
	if p == "udp" {
		return unix.IPPROTO_UDP
	}
	return unix.IPPROTO_TCP
}

func accept() []expr.Any { return []expr.Any{&expr.Verdict{Kind: expr.VerdictAccept}} }
func drop() []expr.Any   { return []expr.Any{&expr.Verdict{Kind: expr.VerdictDrop}} }
func rejectTCP() []expr.Any {
	return []expr.Any{&expr.Reject{Type: unix.NFT_REJECT_TCP_RST}}
}
func rejectICMPX() []expr.Any {
	return []expr.Any{&expr.Reject{Type: unix.NFT_REJECT_ICMPX_UNREACH, Code: unix.NFT_REJECT_ICMPX_PORT_UNREACH}}
}

func ctState(bits uint32) []expr.Any {
	return []expr.Any{
		&expr.Ct{Register: 1, Key: expr.CtKeySTATE},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: binaryutil.NativeEndian.PutUint32(bits), Xor: make([]byte, 4)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: make([]byte, 4)},
	}
}

func ctStatus(bits uint32) []expr.Any {
	return []expr.Any{
		&expr.Ct{Register: 1, Key: expr.CtKeySTATUS},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: binaryutil.NativeEndian.PutUint32(bits), Xor: make([]byte, 4)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: make([]byte, 4)},
	}
}

func ifname(n string) []byte {
	b := make([]byte, 16)
	copy(b, n)
	return b
}

func iifname(n string) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: ifname(n)},
	}
}

func nfproto(fam int) []expr.Any {
	f := byte(unix.NFPROTO_IPV4)
	if fam == 6 {
		f = unix.NFPROTO_IPV6
	}
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{f}},
	}
}

func l4(p byte) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{p}},
	}
}

func loadTransport(off, n uint32) []expr.Any {
	return []expr.Any{&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: off, Len: n}}
}

func lookup(s *nftables.Set, invert bool) []expr.Any {
	return []expr.Any{&expr.Lookup{SourceRegister: 1, SetID: s.ID, SetName: s.Name, Invert: invert}}
}

// addrLoad loads the source (src) or destination address of family fam
// into register 1, masked to bits.
func addrLoad(fam int, src bool, bits int) []expr.Any {
	off, n := uint32(16), uint32(4)
	if src {
		off = 12
	}
	if fam == 6 {
		off, n = 24, 16
		if src {
			off = 8
		}
	}
	out := []expr.Any{&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: n}}
	if bits < int(n)*8 {
		out = append(out, &expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: n, Mask: maskBytes(int(n), bits), Xor: make([]byte, n)})
	}
	return out
}

func maskBytes(n, bits int) []byte {
	m := make([]byte, n)
	for i := range m {
		switch {
		case bits >= 8:
			m[i] = 0xff
			bits -= 8
		case bits > 0:
			m[i] = byte(0xff << (8 - bits))
			bits = 0
		}
	}
	return m
}

// matchPrefix matches the source (src) or destination network p; the
// packet's family must have been matched before.
func matchPrefix(p netip.Prefix, src bool) []expr.Any {
	fam := 4
	if p.Addr().Is6() {
		fam = 6
	}
	if p.Bits() == 0 {
		return nfproto(fam)
	}
	return slices.Concat(nfproto(fam), addrLoad(fam, src, p.Bits()),
		[]expr.Any{&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: p.Masked().Addr().AsSlice()}})
}

// matchPorts matches the transport header's source (off 0) or destination
// (off 2) port against rs.
func (pl *plan) matchPorts(off uint32, rs []firewall.PortRange) []expr.Any {
	return append(loadTransport(off, 2), pl.portCmp(rs)...)
}

// portCmp compares register 1 (a port) with rs: a comparison for one
// port, a range for one range, an anonymous interval set for a list.
func (pl *plan) portCmp(rs []firewall.PortRange) []expr.Any {
	if len(rs) == 1 {
		r := rs[0]
		if r.From == r.To {
			return []expr.Any{&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.BigEndian.PutUint16(r.From)}}
		}
		return []expr.Any{&expr.Range{Op: expr.CmpOpEq, Register: 1,
			FromData: binaryutil.BigEndian.PutUint16(r.From), ToData: binaryutil.BigEndian.PutUint16(r.To)}}
	}
	var elems []nftables.SetElement
	for _, r := range firewall.MergePorts(rs) {
		elems = append(elems, nftables.SetElement{Key: binaryutil.BigEndian.PutUint16(r.From)})
		if r.To < 65535 {
			elems = append(elems, nftables.SetElement{Key: binaryutil.BigEndian.PutUint16(r.To + 1), IntervalEnd: true})
		}
	}
	return lookup(pl.anonSet(nftables.TypeInetService, true, elems), false)
}

// limitID names a limit rule's objects: a hash of everything that shapes
// them, so an unchanged rule keeps its sets (and their state) across
// applies, wherever it moves in the list.
func limitID(r policy.Rule) string {
	l := r.Limit.Effective()
	sum := sha256.Sum256([]byte(fmt.Sprintf("%s|%d|%d/%d|%d/%s|%s|%d|%d/%s", r.Match(), l.Conn, l.Mask4, l.Mask6, l.Rate, l.Per, l.Mode, l.Size, l.Backstop, l.BackstopPer)))
	return hex.EncodeToString(sum[:4])
}

// ipsDstNAT is conntrack's IPS_DST_NAT status bit ("ct status dnat").
const ipsDstNAT = 1 << 5
