package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/palisade-project/palisade/internal/firewall"
	"github.com/palisade-project/palisade/internal/harden/fsx"
	"github.com/palisade-project/palisade/internal/sysexec"
)

// RulesetReader reads the kernel's nftables ruleset.
type RulesetReader interface {
	Ruleset(ctx context.Context) (*Ruleset, error)
}

// NFTCommand reads the ruleset with "nft -j list ruleset".
type NFTCommand struct {
	Runner sysexec.Runner
}

// Ruleset implements RulesetReader.
func (n NFTCommand) Ruleset(ctx context.Context) (*Ruleset, error) {
	res, err := n.Runner.Run(ctx, sysexec.Cmd{Name: "nft", Args: []string{"-j", "list", "ruleset"}})
	if err != nil {
		var ee *sysexec.ExitError
		if errors.As(err, &ee) && (strings.Contains(ee.Stderr, "Operation not permitted") || strings.Contains(ee.Stderr, "Permission denied")) {
			return nil, fmt.Errorf("nft -j list ruleset: %w", ErrNotReadable)
		}
		return nil, err
	}
	rs, err := ParseRuleset(res.Stdout)
	if err != nil {
		return nil, fmt.Errorf("nft -j list ruleset: %w", err)
	}
	rs.Source = "nft -j list ruleset"
	return rs, nil
}

// RulesetFile reads a saved "nft -j list ruleset" output (under --root:
// DIR/nft-ruleset.json, see docs/audit.md).
type RulesetFile struct {
	Path string
}

// Ruleset implements RulesetReader.
func (f RulesetFile) Ruleset(context.Context) (*Ruleset, error) {
	data, err := fsx.ReadFile(f.Path)
	if err != nil {
		return nil, err
	}
	rs, err := ParseRuleset(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", f.Path, err)
	}
	rs.Source = f.Path
	return rs, nil
}

// RulesetFileName is the saved ruleset a --root tree may hold.
const RulesetFileName = "/nft-ruleset.json"

// DefaultRuleset picks the ruleset reader for root: the saved file when
// the root holds one, otherwise nft.
func DefaultRuleset(root string, r sysexec.Runner) RulesetReader {
	if p := fsx.Path(root, RulesetFileName); p != RulesetFileName {
		if _, err := os.Stat(p); err == nil {
			return RulesetFile{Path: p}
		}
	}
	return NFTCommand{Runner: r}
}

// Ruleset is the part of nft's JSON ruleset the audit reads.
type Ruleset struct {
	// Source is where it was read from.
	Source string
	Tables []NFTTable
	Chains []NFTChain
	Rules  []NFTRule
	Sets   []NFTSet
}

// NFTTable is a table.
type NFTTable struct {
	Family string `json:"family"`
	Name   string `json:"name"`
}

// NFTChain is a chain; base chains have a Hook.
type NFTChain struct {
	Family string `json:"family"`
	Table  string `json:"table"`
	Name   string `json:"name"`
	Type   string `json:"type"`
	Hook   string `json:"hook"`
	Prio   int    `json:"prio"`
	Policy string `json:"policy"`
}

// NFTRule is a rule with its raw expressions.
type NFTRule struct {
	Family  string            `json:"family"`
	Table   string            `json:"table"`
	Chain   string            `json:"chain"`
	Comment string            `json:"comment"`
	Expr    []json.RawMessage `json:"expr"`
}

// NFTSet is a named set with its raw elements.
type NFTSet struct {
	Family string            `json:"family"`
	Table  string            `json:"table"`
	Name   string            `json:"name"`
	Elem   []json.RawMessage `json:"elem"`
}

// ParseRuleset parses "nft -j list ruleset" output.
func ParseRuleset(data []byte) (*Ruleset, error) {
	var doc struct {
		Nftables []map[string]json.RawMessage `json:"nftables"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("not nft JSON: %w", err)
	}
	rs := &Ruleset{}
	for _, obj := range doc.Nftables {
		for kind, raw := range obj {
			var err error
			switch kind {
			case "table":
				var t NFTTable
				err = json.Unmarshal(raw, &t)
				rs.Tables = append(rs.Tables, t)
			case "chain":
				var c NFTChain
				err = json.Unmarshal(raw, &c)
				rs.Chains = append(rs.Chains, c)
			case "rule":
				var r NFTRule
				err = json.Unmarshal(raw, &r)
				rs.Rules = append(rs.Rules, r)
			case "set":
				// A concatenated set's type is an array: only the name and
				// the elements are read.
				var st NFTSet
				err = json.Unmarshal(raw, &st)
				rs.Sets = append(rs.Sets, st)
			}
			if err != nil {
				return nil, fmt.Errorf("%s: %w", kind, err)
			}
		}
	}
	return rs, nil
}

// HasTable reports whether the table exists.
func (rs *Ruleset) HasTable(family, name string) bool {
	return slices.ContainsFunc(rs.Tables, func(t NFTTable) bool { return t.Family == family && t.Name == name })
}

// Chain returns a chain.
func (rs *Ruleset) Chain(family, table, name string) (NFTChain, bool) {
	for _, c := range rs.Chains {
		if c.Family == family && c.Table == table && c.Name == name {
			return c, true
		}
	}
	return NFTChain{}, false
}

// ChainsOf returns the chains of a table.
func (rs *Ruleset) ChainsOf(family, table string) []NFTChain {
	var out []NFTChain
	for _, c := range rs.Chains {
		if c.Family == family && c.Table == table {
			out = append(out, c)
		}
	}
	return out
}

// RulesOf returns a chain's rules in order.
func (rs *Ruleset) RulesOf(family, table, chain string) []NFTRule {
	var out []NFTRule
	for _, r := range rs.Rules {
		if r.Family == family && r.Table == table && r.Chain == chain {
			out = append(out, r)
		}
	}
	return out
}

// Set returns a named set.
func (rs *Ruleset) Set(family, table, name string) (NFTSet, bool) {
	for _, s := range rs.Sets {
		if s.Family == family && s.Table == table && s.Name == name {
			return s, true
		}
	}
	return NFTSet{}, false
}

// InputChains returns the base chains on the input hook, in the order the
// kernel runs them (priority).
func (rs *Ruleset) InputChains() []NFTChain {
	var out []NFTChain
	for _, c := range rs.Chains {
		if c.Hook == "input" && c.Type == "filter" {
			out = append(out, c)
		}
	}
	slices.SortStableFunc(out, func(a, b NFTChain) int { return a.Prio - b.Prio })
	return out
}

// palisade's table and the names its parts use in it.
const (
	palFamily    = "inet"
	palTable     = "palisade"
	policyChain  = "pol_input"
	allowChain   = "allow"
	lockChain    = "cf_lock"
	jailChainPfx = "j_"
)

// PolicyInstalled reports whether palisade's policy chain is in the kernel
// and, when it is, the verdict of its final catch-all rule ("drop",
// "reject" or "" when the chain ends without one: default allow).
func (rs *Ruleset) PolicyInstalled() (installed bool, def string) {
	if _, ok := rs.Chain(palFamily, palTable, policyChain); !ok {
		return false, ""
	}
	rules := rs.RulesOf(palFamily, palTable, policyChain)
	if len(rules) > 0 {
		last := rules[len(rules)-1]
		if len(last.Expr) <= 2 {
			if v := verdictOf(last); v == "drop" || v == "reject" {
				return true, v
			}
		}
	}
	return true, ""
}

// OpenPorts returns the ports opened in palisade's allow chain by the
// hardening commands ("palisade:open:N/PROTO" comments).
func (rs *Ruleset) OpenPorts() []ProtoPort {
	var out []ProtoPort
	for _, r := range rs.RulesOf(palFamily, palTable, allowChain) {
		spec, ok := strings.CutPrefix(r.Comment, "palisade:open:")
		if !ok {
			continue
		}
		n, proto, _ := strings.Cut(spec, "/")
		p, err := strconv.ParseUint(n, 10, 16)
		if err != nil || (proto != "tcp" && proto != "udp") {
			continue
		}
		out = append(out, ProtoPort{Proto: proto, Port: uint16(p)})
	}
	return out
}

// ProtoPort is a port of one protocol.
type ProtoPort struct {
	Proto string
	Port  uint16
}

func (p ProtoPort) String() string { return strconv.Itoa(int(p.Port)) + "/" + p.Proto }

// JailChains returns the jail chains in palisade's table (j_NAME) by jail
// name.
func (rs *Ruleset) JailChains() []string {
	var out []string
	for _, c := range rs.ChainsOf(palFamily, palTable) {
		if n, ok := strings.CutPrefix(c.Name, jailChainPfx); ok {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out
}

// CloudflareLock reads the Cloudflare lock's chain and sets (see
// internal/firewall/nft/cflock.go) as a firewall.LockState.
func (rs *Ruleset) CloudflareLock() firewall.LockState {
	var st firewall.LockState
	if _, ok := rs.Chain(palFamily, palTable, lockChain); !ok {
		return st
	}
	st.Installed = true
	for _, name := range []string{"cf_v4", "cf_v6"} {
		if s, ok := rs.Set(palFamily, palTable, name); ok {
			st.Ranges = append(st.Ranges, prefixElems(s.Elem)...)
		}
	}
	for _, name := range []string{"cf_allow4", "cf_allow6"} {
		if s, ok := rs.Set(palFamily, palTable, name); ok {
			st.Allow = append(st.Allow, prefixElems(s.Elem)...)
		}
	}
	if s, ok := rs.Set(palFamily, palTable, "cf_ports"); ok {
		st.Ports = portElems(s.Elem)
	}
	for _, r := range rs.RulesOf(palFamily, palTable, lockChain) {
		switch verdictOf(r) {
		case "drop":
			st.Block = firewall.Drop
		case "reject":
			st.Block = firewall.Reject
		}
		st.Refused += counterOf(r)
	}
	return st
}

// Published is a port that Docker publishes with DNAT.
type Published struct {
	Proto string
	Port  uint16
	// To is the container's address:port.
	To string
	// Where names the table and chain ("ip nat DOCKER").
	Where string
}

// DockerPublished returns the ports Docker's nat chain forwards to
// containers. Such packets are routed, not delivered: the input hook, and
// with it a host firewall's default deny, never sees them.
func (rs *Ruleset) DockerPublished() []Published {
	var out []Published
	for _, fam := range []string{"ip", "ip6"} {
		for _, r := range rs.RulesOf(fam, "nat", "DOCKER") {
			to, ok := dnatOf(r)
			if !ok {
				continue
			}
			for _, pp := range dports(r) {
				out = append(out, Published{Proto: pp.Proto, Port: pp.Port, To: to, Where: fam + " nat DOCKER"})
			}
		}
	}
	return out
}

// UFWLoaded reports whether ufw's chains are in the kernel (iptables-nft).
func (rs *Ruleset) UFWLoaded() bool {
	_, ok := rs.Chain("ip", "filter", "ufw-user-input")
	_, ok6 := rs.Chain("ip6", "filter", "ufw6-user-input")
	return ok || ok6
}

// FirewalldLoaded reports whether firewalld's table is in the kernel.
func (rs *Ruleset) FirewalldLoaded() bool { return rs.HasTable("inet", "firewalld") }

// ForeignInput returns the input base chains of other tables than
// palisade's whose policy drops.
func (rs *Ruleset) ForeignInput() []NFTChain {
	var out []NFTChain
	for _, c := range rs.InputChains() {
		if c.Family == palFamily && c.Table == palTable {
			continue
		}
		if c.Policy == "drop" {
			out = append(out, c)
		}
	}
	return out
}

// verdictOf returns a rule's final verdict statement.
func verdictOf(r NFTRule) string {
	for i := len(r.Expr) - 1; i >= 0; i-- {
		var m map[string]json.RawMessage
		if json.Unmarshal(r.Expr[i], &m) != nil {
			continue
		}
		for _, v := range []string{"accept", "drop", "reject", "jump", "goto", "return"} {
			if _, ok := m[v]; ok {
				return v
			}
		}
	}
	return ""
}

func counterOf(r NFTRule) uint64 {
	for _, e := range r.Expr {
		var m struct {
			Counter *struct {
				Packets uint64 `json:"packets"`
			} `json:"counter"`
		}
		if json.Unmarshal(e, &m) == nil && m.Counter != nil {
			return m.Counter.Packets
		}
	}
	return 0
}

func dnatOf(r NFTRule) (string, bool) {
	for _, e := range r.Expr {
		var m struct {
			DNAT *struct {
				Addr json.RawMessage `json:"addr"`
				Port json.RawMessage `json:"port"`
			} `json:"dnat"`
		}
		if json.Unmarshal(e, &m) == nil && m.DNAT != nil {
			addr := strings.Trim(string(m.DNAT.Addr), `"`)
			if len(m.DNAT.Port) > 0 {
				return addr + ":" + strings.Trim(string(m.DNAT.Port), `"`), true
			}
			return addr, true
		}
	}
	return "", false
}

type nftMatch struct {
	Op    string          `json:"op"`
	Left  json.RawMessage `json:"left"`
	Right json.RawMessage `json:"right"`
}

// dports returns the destination ports a rule matches with a literal
// ("tcp dport 8080", "tcp dport { 80, 443 }", "tcp dport 8000-8100" up to
// 64 ports).
func dports(r NFTRule) []ProtoPort {
	var out []ProtoPort
	for _, e := range r.Expr {
		var m struct {
			Match *nftMatch `json:"match"`
		}
		if json.Unmarshal(e, &m) != nil || m.Match == nil || (m.Match.Op != "==" && m.Match.Op != "in") {
			continue
		}
		var left struct {
			Payload *struct {
				Protocol string `json:"protocol"`
				Field    string `json:"field"`
			} `json:"payload"`
		}
		if json.Unmarshal(m.Match.Left, &left) != nil || left.Payload == nil || left.Payload.Field != "dport" {
			continue
		}
		proto := left.Payload.Protocol
		if proto != "tcp" && proto != "udp" {
			continue
		}
		for _, pr := range portElems([]json.RawMessage{m.Match.Right}) {
			for p := int(pr.From); p <= int(pr.To) && p-int(pr.From) < 64; p++ {
				out = append(out, ProtoPort{Proto: proto, Port: uint16(p)})
			}
		}
	}
	return out
}

// portElems reads port set elements: numbers, {"range": [a, b]}, and an
// anonymous {"set": [...]}.
func portElems(elems []json.RawMessage) []firewall.PortRange {
	var out []firewall.PortRange
	for _, raw := range elems {
		raw = bytes.TrimSpace(raw)
		var n uint16
		if json.Unmarshal(raw, &n) == nil {
			out = append(out, firewall.PortRange{From: n, To: n})
			continue
		}
		var obj struct {
			Range []uint16          `json:"range"`
			Set   []json.RawMessage `json:"set"`
			Elem  *struct {
				Val json.RawMessage `json:"val"`
			} `json:"elem"`
		}
		if json.Unmarshal(raw, &obj) != nil {
			continue
		}
		switch {
		case len(obj.Range) == 2:
			out = append(out, firewall.PortRange{From: obj.Range[0], To: obj.Range[1]})
		case obj.Set != nil:
			out = append(out, portElems(obj.Set)...)
		case obj.Elem != nil:
			out = append(out, portElems([]json.RawMessage{obj.Elem.Val})...)
		}
	}
	return firewall.MergePorts(out)
}

// prefixElems reads address set elements: "192.0.2.1", {"prefix": {"addr",
// "len"}}, {"range": [a, b]} (split into prefixes) and {"elem": {"val"}}.
func prefixElems(elems []json.RawMessage) []netip.Prefix {
	var out []netip.Prefix
	for _, raw := range elems {
		var s string
		if json.Unmarshal(raw, &s) == nil {
			if a, err := netip.ParseAddr(s); err == nil {
				out = append(out, netip.PrefixFrom(a, a.BitLen()))
			}
			continue
		}
		var obj struct {
			Prefix *struct {
				Addr string `json:"addr"`
				Len  int    `json:"len"`
			} `json:"prefix"`
			Range []string `json:"range"`
			Elem  *struct {
				Val json.RawMessage `json:"val"`
			} `json:"elem"`
		}
		if json.Unmarshal(raw, &obj) != nil {
			continue
		}
		switch {
		case obj.Prefix != nil:
			if a, err := netip.ParseAddr(obj.Prefix.Addr); err == nil {
				if p, err := a.Prefix(obj.Prefix.Len); err == nil {
					out = append(out, p)
				}
			}
		case len(obj.Range) == 2:
			a, err1 := netip.ParseAddr(obj.Range[0])
			b, err2 := netip.ParseAddr(obj.Range[1])
			if err1 == nil && err2 == nil {
				out = append(out, rangePrefixes(a, b, 4096)...)
			}
		case obj.Elem != nil:
			out = append(out, prefixElems([]json.RawMessage{obj.Elem.Val})...)
		}
	}
	return out
}

// rangePrefixes splits the address range [a, b] into prefixes (at most
// max of them).
func rangePrefixes(a, b netip.Addr, max int) []netip.Prefix {
	if a.Is4() != b.Is4() || b.Less(a) {
		return nil
	}
	bits := a.BitLen()
	lo, hi := new(big.Int).SetBytes(a.AsSlice()), new(big.Int).SetBytes(b.AsSlice())
	one := big.NewInt(1)
	var out []netip.Prefix
	for lo.Cmp(hi) <= 0 && len(out) < max {
		// The largest block that starts at lo and ends at or before hi.
		size := 0
		for size < bits {
			block := new(big.Int).Lsh(one, uint(size+1))
			if new(big.Int).Mod(lo, block).Sign() != 0 {
				break
			}
			end := new(big.Int).Add(lo, new(big.Int).Sub(block, one))
			if end.Cmp(hi) > 0 {
				break
			}
			size++
		}
		buf := lo.FillBytes(make([]byte, bits/8))
		addr, _ := netip.AddrFromSlice(buf)
		out = append(out, netip.PrefixFrom(addr, bits-size))
		lo.Add(lo, new(big.Int).Lsh(one, uint(size)))
	}
	return out
}
