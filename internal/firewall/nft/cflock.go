package nft

// The Cloudflare origin lock lives in palisade's table next to the jails,
// in objects of its own (every name starts with "cf_"):
//
//	set cf_v4, cf_v6          the proxy's ranges     (flags interval)
//	set cf_allow4, cf_allow6  extra allowed sources  (flags interval)
//	set cf_ports              the locked TCP ports   (inet_service, flags interval)
//	chain cf_lock             type filter hook prerouting priority raw; policy accept
//	    meta iiftype loopback return
//	    meta l4proto tcp th dport @cf_ports meta nfproto ipv4
//	        ip saddr != @cf_v4 ip saddr != @cf_allow4 fib daddr type local counter VERDICT
//	    (the same for IPv6 with cf_v6 and cf_allow6)
//
// The chain hooks prerouting at priority raw, before connection tracking
// and before destination NAT: refused packets create no conntrack state
// (a flood from outside Cloudflare fills no table), and ports that Docker
// publishes by DNAT are locked like the host's own. "fib daddr type local"
// keeps the lock to traffic addressed to this host, so a host that also
// routes (a gateway) never locks its clients' web browsing. Loopback
// traffic (health checks, a local reverse proxy) is never touched.
//
// The lock only drops or rejects; it never accepts, so it composes with
// any policy (palisade's own, ufw, firewalld): traffic from Cloudflare
// still has to pass them.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"syscall"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"golang.org/x/sys/unix"

	"github.com/palisade-project/palisade/internal/firewall"
)

// Names of the lock's objects in table inet palisade.
const (
	LockChain  = "cf_lock"
	LockV4     = "cf_v4"
	LockV6     = "cf_v6"
	LockAllow4 = "cf_allow4"
	LockAllow6 = "cf_allow6"
	LockPorts  = "cf_ports"
)

// lockPriority is priority raw: before conntrack and destination NAT.
var lockPriority = nftables.ChainPriorityRaw

// lockTag prefixes the comment of every lock rule.
const lockTag = "palisade:cloudflare:"

// CloudflareLock is the origin lock over netlink. It is safe for
// concurrent use; every change is one atomic batch.
type CloudflareLock struct {
	mu    sync.Mutex
	conn  *nftables.Conn
	table *nftables.Table
}

// NewCloudflareLock opens a netlink connection (in opts.NetNSFd when set).
// Only NetNSFd of opts is used.
func NewCloudflareLock(opts Options) (*CloudflareLock, error) {
	connOpts := []nftables.ConnOption{nftables.AsLasting()}
	if opts.NetNSFd != 0 {
		connOpts = append(connOpts, nftables.WithNetNSFd(opts.NetNSFd))
	}
	conn, err := nftables.New(connOpts...)
	if err != nil {
		return nil, fmt.Errorf("nftables: open netlink: %w", err)
	}
	return &CloudflareLock{conn: conn, table: &nftables.Table{Name: TableName, Family: nftables.TableFamilyINet}}, nil
}

// Close releases the netlink connection; the lock stays in force.
func (l *CloudflareLock) Close() error { return l.conn.CloseLasting() }

// lockSets are the lock's sets in a fixed order.
func (l *CloudflareLock) lockSets() []*nftables.Set {
	mk := func(name string, key nftables.SetDatatype) *nftables.Set {
		return &nftables.Set{Table: l.table, Name: name, KeyType: key, Interval: true, KeyByteOrder: binaryutil.BigEndian}
	}
	return []*nftables.Set{
		mk(LockV4, nftables.TypeIPAddr), mk(LockV6, nftables.TypeIP6Addr),
		mk(LockAllow4, nftables.TypeIPAddr), mk(LockAllow6, nftables.TypeIP6Addr),
		mk(LockPorts, nftables.TypeInetService),
	}
}

func (l *CloudflareLock) chain() *nftables.Chain {
	return &nftables.Chain{
		Name: LockChain, Table: l.table, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookPrerouting, Priority: lockPriority,
		Policy: ptr(nftables.ChainPolicyAccept),
	}
}

// span is one interval element of a set: [from, to), to nil meaning up to
// the top of the key space.
type span struct{ from, to []byte }

func (s span) key() string { return string(s.from) + "-" + string(s.to) }

func (s span) elements() []nftables.SetElement {
	out := []nftables.SetElement{{Key: s.from}}
	if s.to != nil {
		out = append(out, nftables.SetElement{Key: s.to, IntervalEnd: true})
	}
	return out
}

// overlaps reports whether two spans share a key.
func (s span) overlaps(o span) bool {
	// s.from < o.to && o.from < s.to, nil meaning +infinity.
	less := func(a, b []byte) bool { return b == nil || bytes.Compare(a, b) < 0 }
	return less(s.from, o.to) && less(o.from, s.to)
}

func prefixSpan(p netip.Prefix) span {
	s := span{from: p.Addr().AsSlice()}
	if next := lastOf(p).Next(); next.IsValid() {
		s.to = next.AsSlice()
	}
	return s
}

func portSpan(r firewall.PortRange) span {
	s := span{from: binaryutil.BigEndian.PutUint16(r.From)}
	if r.To < 65535 {
		s.to = binaryutil.BigEndian.PutUint16(r.To + 1)
	}
	return s
}

// spans turns a set's elements back into intervals.
func spans(els []nftables.SetElement) []span {
	els = slices.Clone(els)
	slices.SortStableFunc(els, func(x, y nftables.SetElement) int {
		if c := bytes.Compare(x.Key, y.Key); c != 0 {
			return c
		}
		switch { // an end sorts before a start with the same key
		case x.IntervalEnd && !y.IntervalEnd:
			return -1
		case !x.IntervalEnd && y.IntervalEnd:
			return 1
		}
		return 0
	})
	var out []span
	for i := 0; i < len(els); i++ {
		if els[i].IntervalEnd {
			continue
		}
		s := span{from: els[i].Key}
		if i+1 < len(els) && els[i+1].IntervalEnd {
			s.to = els[i+1].Key
			i++
		}
		out = append(out, s)
	}
	return out
}

func spanPrefixes(ss []span) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range ss {
		first, ok := netip.AddrFromSlice(s.from)
		if !ok {
			continue
		}
		var last netip.Addr
		if s.to == nil {
			last = lastOf(netip.PrefixFrom(first, 0))
		} else {
			end, ok := netip.AddrFromSlice(s.to)
			if !ok {
				continue
			}
			last = end.Prev()
		}
		out = append(out, rangePrefixes(first, last)...)
	}
	return out
}

func spanPorts(ss []span) []firewall.PortRange {
	var out []firewall.PortRange
	for _, s := range ss {
		if len(s.from) != 2 || s.to != nil && len(s.to) != 2 {
			continue
		}
		r := firewall.PortRange{From: binaryutil.BigEndian.Uint16(s.from), To: 65535}
		if s.to != nil {
			r.To = binaryutil.BigEndian.Uint16(s.to) - 1
		}
		out = append(out, r)
	}
	return firewall.MergePorts(out)
}

// lockPlan is what the lock's sets should hold, by set name.
type lockPlan map[string][]span

func planLock(spec firewall.LockSpec) (lockPlan, error) {
	if len(spec.Ports) == 0 {
		return nil, errors.New("no ports (a lock never covers every port)")
	}
	switch spec.Block {
	case firewall.Drop, firewall.Reject:
	default:
		return nil, fmt.Errorf("unknown block type %q", spec.Block)
	}
	plan := lockPlan{}
	add := func(list []netip.Prefix, v4, v6 string) {
		for _, p := range firewall.MergePrefixes(list) {
			if p.Addr().Is4() {
				plan[v4] = append(plan[v4], prefixSpan(p))
			} else {
				plan[v6] = append(plan[v6], prefixSpan(p))
			}
		}
	}
	var ranges []netip.Prefix
	for _, p := range spec.Ranges {
		c, err := firewall.Canonical(p)
		if err != nil {
			return nil, err
		}
		ranges = append(ranges, c)
	}
	if len(ranges) == 0 {
		return nil, errors.New("no ranges (the lock would refuse every client)")
	}
	var allow []netip.Prefix
	for _, p := range spec.Allow {
		c, err := firewall.Canonical(p)
		if err != nil {
			return nil, err
		}
		allow = append(allow, c)
	}
	add(ranges, LockV4, LockV6)
	add(allow, LockAllow4, LockAllow6)
	for _, r := range firewall.MergePorts(spec.Ports) {
		plan[LockPorts] = append(plan[LockPorts], portSpan(r))
	}
	return plan, nil
}

// lockRules returns the rule expressions of chain cf_lock, each with its
// comment.
func (l *CloudflareLock) lockRules(sets map[string]*nftables.Set, block firewall.Block) ([][]expr.Any, []string) {
	verdict := []expr.Any{&expr.Verdict{Kind: expr.VerdictDrop}}
	if block == firewall.Reject {
		verdict = []expr.Any{&expr.Reject{Type: unix.NFT_REJECT_TCP_RST}}
	}
	lo := []expr.Any{
		&expr.Meta{Key: expr.MetaKeyIIFTYPE, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.NativeEndian.PutUint16(unix.ARPHRD_LOOPBACK)},
		&expr.Verdict{Kind: expr.VerdictReturn},
	}
	family := func(nfproto byte, off, n uint32, ranges, allow *nftables.Set) []expr.Any {
		return slices.Concat([]expr.Any{
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_TCP}},
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
			&expr.Lookup{SourceRegister: 1, SetName: sets[LockPorts].Name, SetID: sets[LockPorts].ID},
			&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{nfproto}},
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: n},
			&expr.Lookup{SourceRegister: 1, SetName: ranges.Name, SetID: ranges.ID, Invert: true},
			&expr.Lookup{SourceRegister: 1, SetName: allow.Name, SetID: allow.ID, Invert: true},
			&expr.Fib{Register: 1, FlagDADDR: true, ResultADDRTYPE: true},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(unix.RTN_LOCAL)},
			&expr.Counter{},
		}, verdict)
	}
	rules := [][]expr.Any{
		lo,
		family(unix.NFPROTO_IPV4, 12, 4, sets[LockV4], sets[LockAllow4]),
		family(unix.NFPROTO_IPV6, 8, 16, sets[LockV6], sets[LockAllow6]),
	}
	tags := []string{lockTag + "loopback", lockTag + "ipv4:" + string(block), lockTag + "ipv6:" + string(block)}
	return rules, tags
}

// current is what the kernel holds for the lock.
type current struct {
	table, chain bool
	chainOK      bool // hook and priority as expected
	sets         map[string][]span
	tags         []string
	refused      uint64
}

func (l *CloudflareLock) read() (current, error) {
	cur := current{sets: map[string][]span{}}
	if _, err := l.conn.ListTableOfFamily(TableName, nftables.TableFamilyINet); err != nil {
		return cur, nil
	}
	cur.table = true
	sets, err := l.conn.GetSets(l.table)
	if err != nil {
		return cur, fmt.Errorf("list sets: %w", err)
	}
	for _, s := range sets {
		if !slices.ContainsFunc(l.lockSets(), func(w *nftables.Set) bool { return w.Name == s.Name }) {
			continue
		}
		els, err := l.conn.GetSetElements(s)
		if err != nil {
			return cur, fmt.Errorf("read set %s: %w", s.Name, err)
		}
		cur.sets[s.Name] = spans(els)
	}
	ch, err := l.conn.ListChain(l.table, LockChain)
	if err != nil {
		return cur, nil
	}
	cur.chain = true
	want := l.chain()
	cur.chainOK = ch.Hooknum != nil && *ch.Hooknum == *want.Hooknum && ch.Priority != nil && *ch.Priority == *want.Priority &&
		ch.Type == want.Type
	rules, err := l.conn.GetRules(l.table, want)
	if err != nil {
		return cur, fmt.Errorf("read chain %s: %w", LockChain, err)
	}
	for _, r := range rules {
		tag, _ := userdata.GetString(r.UserData, userdata.TypeComment)
		cur.tags = append(cur.tags, tag)
		for _, e := range r.Exprs {
			if c, ok := e.(*expr.Counter); ok {
				cur.refused += c.Packets
			}
		}
	}
	return cur, nil
}

// Apply makes the kernel's lock equal to spec in one atomic batch. Ranges
// in both the old and the new list are not touched; new ranges are added
// before stale ones are removed (an added range that overlaps a removed
// one follows its removal, since an interval set refuses overlaps — the
// batch is atomic either way, so no packet sees a half-applied list).
// The rules are rewritten only when the block type or layout changed,
// which keeps their counters. The result is read back and checked.
func (l *CloudflareLock) Apply(ctx context.Context, spec firewall.LockSpec) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	plan, err := planLock(spec)
	if err != nil {
		return fmt.Errorf("cloudflare lock: %w", err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	cur, err := l.read()
	if err != nil {
		return fmt.Errorf("cloudflare lock: %w", err)
	}
	l.conn.AddTable(l.table)
	sets := map[string]*nftables.Set{}
	var late []func() error // adds that overlap a removal
	var dels []func() error
	for _, s := range l.lockSets() {
		if err := l.conn.AddSet(s, nil); err != nil {
			return fmt.Errorf("cloudflare lock: set %s: %w", s.Name, err)
		}
		sets[s.Name] = s
		have := map[string]span{}
		for _, sp := range cur.sets[s.Name] {
			have[sp.key()] = sp
		}
		want := map[string]bool{}
		var removed []span
		for _, sp := range plan[s.Name] {
			want[sp.key()] = true
		}
		for k, sp := range have {
			if !want[k] {
				removed = append(removed, sp)
			}
		}
		slices.SortFunc(removed, func(a, b span) int { return bytes.Compare(a.from, b.from) })
		for _, sp := range plan[s.Name] {
			if _, ok := have[sp.key()]; ok {
				continue
			}
			els := sp.elements()
			if slices.ContainsFunc(removed, sp.overlaps) {
				late = append(late, func() error { return l.conn.SetAddElements(s, els) })
				continue
			}
			if err := l.conn.SetAddElements(s, els); err != nil {
				return fmt.Errorf("cloudflare lock: set %s: %w", s.Name, err)
			}
		}
		for _, sp := range removed {
			els := sp.elements()
			dels = append(dels, func() error { return l.conn.SetDeleteElements(s, els) })
		}
	}
	for _, f := range append(dels, late...) {
		if err := f(); err != nil {
			return fmt.Errorf("cloudflare lock: %w", err)
		}
	}
	rules, tags := l.lockRules(sets, spec.Block)
	if cur.chain && !cur.chainOK {
		// Hook or priority of an older layout: replace the chain.
		old := &nftables.Chain{Name: LockChain, Table: l.table}
		l.conn.FlushChain(old)
		l.conn.DelChain(old)
		cur.tags = nil
	}
	ch := l.conn.AddChain(l.chain())
	if !slices.Equal(cur.tags, tags) {
		l.conn.FlushChain(ch)
		for i, r := range rules {
			l.conn.AddRule(&nftables.Rule{Table: l.table, Chain: ch, Exprs: r,
				UserData: userdata.AppendString(nil, userdata.TypeComment, tags[i])})
		}
	}
	if err := l.conn.Flush(); err != nil {
		if spec.Block == firewall.Reject && errors.Is(err, syscall.EOPNOTSUPP) {
			return fmt.Errorf("cloudflare lock: apply: %w (this kernel cannot reject before routing: use blocktype = drop)", err)
		}
		return fmt.Errorf("cloudflare lock: apply: %w", err)
	}
	st, err := l.state()
	if err != nil {
		return fmt.Errorf("cloudflare lock: read back: %w", err)
	}
	if !st.Same(spec) {
		return fmt.Errorf("cloudflare lock: the kernel holds %d+%d ranges, %d allowed, ports %s after the update, not what was asked",
			countFamily(st.Ranges, true), countFamily(st.Ranges, false), len(st.Allow), firewall.FormatPorts(st.Ports))
	}
	return nil
}

func countFamily(l []netip.Prefix, v4 bool) int {
	n := 0
	for _, p := range l {
		if p.Addr().Is4() == v4 {
			n++
		}
	}
	return n
}

// State reads the lock back from the kernel.
func (l *CloudflareLock) State(ctx context.Context) (firewall.LockState, error) {
	if err := ctx.Err(); err != nil {
		return firewall.LockState{}, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	st, err := l.state()
	if err != nil {
		return st, fmt.Errorf("cloudflare lock: %w", err)
	}
	return st, nil
}

func (l *CloudflareLock) state() (firewall.LockState, error) {
	cur, err := l.read()
	if err != nil || !cur.chain {
		return firewall.LockState{}, err
	}
	st := firewall.LockState{Installed: true, Refused: cur.refused}
	st.Ranges = append(spanPrefixes(cur.sets[LockV4]), spanPrefixes(cur.sets[LockV6])...)
	st.Allow = append(spanPrefixes(cur.sets[LockAllow4]), spanPrefixes(cur.sets[LockAllow6])...)
	st.Ports = spanPorts(cur.sets[LockPorts])
	// The block type counts only when the rules are exactly palisade's.
	for _, b := range []firewall.Block{firewall.Drop, firewall.Reject} {
		_, tags := l.lockRules(l.setsByName(), b)
		if cur.chainOK && slices.Equal(cur.tags, tags) {
			st.Block = b
		}
	}
	return st, nil
}

func (l *CloudflareLock) setsByName() map[string]*nftables.Set {
	out := map[string]*nftables.Set{}
	for _, s := range l.lockSets() {
		out[s.Name] = s
	}
	return out
}

// Remove deletes the lock's chain and sets, and nothing else (the table
// and every other chain and set stay). Removing an absent lock is not an
// error.
func (l *CloudflareLock) Remove(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	cur, err := l.read()
	if err != nil {
		return fmt.Errorf("cloudflare lock: %w", err)
	}
	if !cur.table {
		return nil
	}
	n := 0
	if cur.chain {
		ch := &nftables.Chain{Name: LockChain, Table: l.table}
		l.conn.FlushChain(ch)
		l.conn.DelChain(ch)
		n++
	}
	for _, s := range l.lockSets() {
		if _, ok := cur.sets[s.Name]; ok {
			l.conn.DelSet(s)
			n++
		}
	}
	if n == 0 {
		return nil
	}
	if err := l.conn.Flush(); err != nil && !errors.Is(err, syscall.ENOENT) {
		return fmt.Errorf("cloudflare lock: remove: %w", err)
	}
	return nil
}
