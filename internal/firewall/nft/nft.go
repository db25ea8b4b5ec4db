// Package nft is palisade's nftables firewall backend. It talks netlink
// directly (github.com/google/nftables); the nft binary is never run.
//
// Layout, all inside palisade's own "table inet palisade" (nothing else is
// touched):
//
//	chain input   type filter hook input priority filter - 1; policy accept
//	              one rule per jail and port range, tagged with the jail name:
//	              [meta l4proto P] [th dport RANGE] jump j_JAIL
//	chain j_JAIL  ip saddr @JAIL_a4 VERDICT; ip saddr @JAIL_n4 VERDICT
//	              ip6 saddr @JAIL_a6 VERDICT; ip6 saddr @JAIL_n6 VERDICT
//	set JAIL_a4 / JAIL_a6   single addresses, flags timeout
//	set JAIL_n4 / JAIL_n6   prefixes, flags interval,timeout
//
// VERDICT is "reject with tcp reset" for tcp (the client sees "connection
// refused"), "reject with icmpx port-unreachable" otherwise, or "drop".
//
// Every method sends one netlink batch, which the kernel applies
// atomically. Add refreshes existing bans by sending add, delete, add for
// each element in the same batch, which works on every kernel and also turns
// a timed ban into a permanent one; Remove sends add, delete so that
// removing a missing ban is not an error. Very large calls are split into
// batches of MaxBatchElements element operations.
//
// Reconciliation: Setup re-creates anything that was flushed or deleted
// (table, chains, rules, sets) and is idempotent; set elements lost to an
// external flush are restored by the ban manager (List, then Add what is
// missing) or by firewall.Reconcile.
package nft

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/palisade-project/palisade/internal/firewall"
)

// TableName is the nftables table palisade owns (family inet).
const TableName = "palisade"

// MaxBatchElements bounds the element operations sent in one batch (about
// 40 MB of netlink messages).
const MaxBatchElements = 600_000

// chunk is the number of elements per netlink message: a nested attribute
// holds at most 64 KiB.
const chunk = 1000

// Options configure a Backend.
type Options struct {
	// NetNSFd, when non-zero, is an open network namespace file descriptor;
	// the backend then works inside that namespace (tests, containers).
	NetNSFd int
	// Verify re-reads the touched sets after each Add and Remove and fails
	// if an element is not as requested. It costs one dump per touched set,
	// and a set dump is slow in the kernel for big sets (about 1 s per
	// 100,000 elements), so calls changing more than VerifyLimit elements are
	// not verified (bulk restores are checked by List-based reconciliation).
	Verify bool
	// VerifyLimit is the largest call Verify checks; 0 means 10,000.
	VerifyLimit int
	// Logger receives diagnostics; nil discards them.
	Logger *slog.Logger
	// Now is the clock (for tests); nil means time.Now.
	Now func() time.Time
}

// Backend is the nftables backend. It is safe for concurrent use.
type Backend struct {
	mu    sync.Mutex
	conn  *nftables.Conn
	opts  Options
	log   *slog.Logger
	table *nftables.Table
	jails map[string]firewall.JailSpec
}

var (
	_ firewall.Backend       = (*Backend)(nil)
	_ firewall.IntactChecker = (*Backend)(nil)
	_ firewall.MissingAdder  = (*Backend)(nil)
)

// New opens a netlink connection. It does not touch the ruleset; call Setup.
func New(opts Options) (*Backend, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.VerifyLimit <= 0 {
		opts.VerifyLimit = 10_000
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	connOpts := []nftables.ConnOption{nftables.AsLasting(), nftables.WithSockOptions(bigBuffers)}
	if opts.NetNSFd != 0 {
		connOpts = append(connOpts, nftables.WithNetNSFd(opts.NetNSFd))
	}
	conn, err := nftables.New(connOpts...)
	if err != nil {
		return nil, fmt.Errorf("nftables: open netlink: %w", err)
	}
	return &Backend{
		conn:  conn,
		opts:  opts,
		log:   log,
		table: &nftables.Table{Name: TableName, Family: nftables.TableFamilyINet},
		jails: map[string]firewall.JailSpec{},
	}, nil
}

// bigBuffers lets one batch carry a large bulk add: the kernel needs the
// whole batch in a single send. Forcing needs CAP_NET_ADMIN, which the
// backend needs anyway; the plain setting is the fallback.
func bigBuffers(c *netlink.Conn) error {
	const snd, rcv = 32 << 20, 4 << 20 // the kernel doubles these
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		if unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, snd) != nil {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUF, snd)
		}
		if unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, rcv) != nil {
			_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, rcv)
		}
	}); err != nil {
		return err
	}
	return serr
}

// Available reports whether the kernel answers nftables netlink requests
// (used by backend auto-detection). It lists tables and changes nothing.
func Available(netnsFd int) error {
	var opts []nftables.ConnOption
	if netnsFd != 0 {
		opts = append(opts, nftables.WithNetNSFd(netnsFd))
	}
	c, err := nftables.New(opts...)
	if err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	if _, err := c.ListTablesOfFamily(nftables.TableFamilyINet); err != nil {
		return fmt.Errorf("nftables: list tables: %w", err)
	}
	return nil
}

// Close releases the netlink connection; the ruleset stays in force.
func (b *Backend) Close() error { return b.conn.CloseLasting() }

// Name implements firewall.Backend.
func (b *Backend) Name() string { return "nftables" }

// set kinds, the suffix of a set name
const (
	kindAddr4 = "_a4"
	kindAddr6 = "_a6"
	kindNet4  = "_n4"
	kindNet6  = "_n6"
)

func kinds() [4]string { return [...]string{kindAddr4, kindNet4, kindAddr6, kindNet6} }

// objName is a jail's part of its set and chain names: the jail name, or
// for a name with characters nft's own parser would not read back ("@",
// ":"), the name mapped by firewall.ObjectName. Rules keep the real name in
// their comment.
func objName(jail string) string { return firewall.ObjectName(jail, firewall.MaxJailName) }

func (b *Backend) set(jail, kind string) *nftables.Set {
	s := &nftables.Set{Table: b.table, Name: objName(jail) + kind, HasTimeout: true}
	switch kind {
	case kindAddr4, kindNet4:
		s.KeyType = nftables.TypeIPAddr
	default:
		s.KeyType = nftables.TypeIP6Addr
	}
	if kind == kindNet4 || kind == kindNet6 {
		s.Interval = true
		s.KeyByteOrder = binaryutil.BigEndian
	}
	return s
}

func (b *Backend) inputChain() *nftables.Chain {
	return &nftables.Chain{
		Name:     "input",
		Table:    b.table,
		Type:     nftables.ChainTypeFilter,
		Hooknum:  nftables.ChainHookInput,
		Priority: nftables.ChainPriorityRef(*nftables.ChainPriorityFilter - 1),
		Policy:   ptr(nftables.ChainPolicyAccept),
	}
}

func ptr[T any](v T) *T { return &v }

func (b *Backend) jailChain(jail string) *nftables.Chain {
	return &nftables.Chain{Name: "j_" + objName(jail), Table: b.table}
}

// Setup implements firewall.Backend. It creates the table, the input chain,
// and for each jail its four sets and its rules, replacing the rules of a
// jail set up before. Existing set elements are kept. One batch.
func (b *Backend) Setup(ctx context.Context, jails []firewall.JailSpec) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	for _, j := range jails {
		if err := firewall.CheckJailName(j.Name); err != nil {
			return fmt.Errorf("nftables setup: %w", err)
		}
		switch normProto(j.Scope.Protocol) {
		case "tcp", "udp", "sctp", "all":
		default:
			return fmt.Errorf("nftables setup: jail %s: unsupported protocol %q", j.Name, j.Scope.Protocol)
		}
		switch j.Block {
		case "", firewall.Reject, firewall.Drop:
		default:
			return fmt.Errorf("nftables setup: jail %s: unknown block type %q", j.Name, j.Block)
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()

	// Rules of the input chain that belong to the jails being (re)set up.
	var stale []*nftables.Rule
	if b.tableExists() {
		if _, err := b.conn.ListChain(b.table, "input"); err == nil {
			rules, err := b.conn.GetRules(b.table, b.inputChain())
			if err != nil {
				return fmt.Errorf("nftables setup: read input chain: %w", err)
			}
			for _, r := range rules {
				r.Table, r.Chain = b.table, b.inputChain()
				name, _ := userdata.GetString(r.UserData, userdata.TypeComment)
				if slices.ContainsFunc(jails, func(j firewall.JailSpec) bool { return "palisade:"+j.Name == name }) {
					stale = append(stale, r)
				}
			}
		}
	}

	b.conn.AddTable(b.table)
	input := b.conn.AddChain(b.inputChain())
	for _, r := range stale {
		if err := b.conn.DelRule(r); err != nil {
			return fmt.Errorf("nftables setup: %w", err)
		}
	}
	for _, j := range jails {
		sets := map[string]*nftables.Set{}
		for _, k := range kinds() {
			s := b.set(j.Name, k)
			if err := b.conn.AddSet(s, nil); err != nil {
				return fmt.Errorf("nftables setup: jail %s: set %s: %w", j.Name, s.Name, err)
			}
			sets[k] = s
		}
		jc := b.conn.AddChain(b.jailChain(j.Name))
		b.conn.FlushChain(jc)
		proto := normProto(j.Scope.Protocol)
		for _, k := range kinds() {
			for _, v := range verdicts(proto, j.Block) {
				b.conn.AddRule(&nftables.Rule{Table: b.table, Chain: jc, Exprs: slices.Concat(v.pre, saddrLookup(sets[k]), v.verdict)})
			}
		}
		tag := userdata.AppendString(nil, userdata.TypeComment, "palisade:"+j.Name)
		for _, m := range portMatches(proto, j.Scope.Ports) {
			b.conn.AddRule(&nftables.Rule{
				Table: b.table, Chain: input, UserData: tag,
				Exprs: append(m, &expr.Verdict{Kind: expr.VerdictJump, Chain: jc.Name}),
			})
		}
	}
	if err := b.conn.Flush(); err != nil {
		return fmt.Errorf("nftables setup: %w", err)
	}
	for _, j := range jails {
		b.jails[j.Name] = j
	}
	return nil
}

func (b *Backend) tableExists() bool {
	_, err := b.conn.ListTableOfFamily(TableName, nftables.TableFamilyINet)
	return err == nil
}

func normProto(p string) string {
	p = strings.ToLower(strings.TrimSpace(p))
	if p == "" {
		return "tcp"
	}
	return p
}

func protoNum(p string) byte {
	switch p {
	case "udp":
		return unix.IPPROTO_UDP
	case "sctp":
		return unix.IPPROTO_SCTP
	}
	return unix.IPPROTO_TCP
}

// portMatches returns one expression list per port range (or one list for
// all ports); each list matches the jail's protocol and destination ports.
func portMatches(proto string, ports []firewall.PortRange) [][]expr.Any {
	if proto == "all" {
		return [][]expr.Any{nil}
	}
	l4 := []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{protoNum(proto)}},
	}
	if len(ports) == 0 {
		return [][]expr.Any{l4}
	}
	var out [][]expr.Any
	for _, r := range firewall.MergePorts(ports) {
		m := slices.Clone(l4)
		m = append(m, &expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2})
		if r.From == r.To {
			m = append(m, &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.BigEndian.PutUint16(r.From)})
		} else {
			m = append(m, &expr.Range{Op: expr.CmpOpEq, Register: 1,
				FromData: binaryutil.BigEndian.PutUint16(r.From), ToData: binaryutil.BigEndian.PutUint16(r.To)})
		}
		out = append(out, m)
	}
	return out
}

type verdict struct {
	pre     []expr.Any // extra match placed before the set lookup
	verdict []expr.Any
}

func verdicts(proto string, block firewall.Block) []verdict {
	if block == firewall.Drop {
		return []verdict{{verdict: []expr.Any{&expr.Verdict{Kind: expr.VerdictDrop}}}}
	}
	rst := []expr.Any{&expr.Reject{Type: unix.NFT_REJECT_TCP_RST}}
	icmpx := []expr.Any{&expr.Reject{Type: unix.NFT_REJECT_ICMPX_UNREACH, Code: unix.NFT_REJECT_ICMPX_PORT_UNREACH}}
	switch proto {
	case "tcp":
		return []verdict{{verdict: rst}}
	case "all":
		isTCP := []expr.Any{
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_TCP}},
		}
		return []verdict{{pre: isTCP, verdict: rst}, {verdict: icmpx}}
	default:
		return []verdict{{verdict: icmpx}}
	}
}

func saddrLookup(s *nftables.Set) []expr.Any {
	fam, off, n := byte(unix.NFPROTO_IPV4), uint32(12), uint32(4)
	if s.KeyType == nftables.TypeIP6Addr {
		fam, off, n = unix.NFPROTO_IPV6, 8, 16
	}
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{fam}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: n},
		&expr.Lookup{SourceRegister: 1, SetName: s.Name, SetID: s.ID},
	}
}

// kindOf returns the set kind for a (canonical) prefix.
func kindOf(p netip.Prefix) string {
	full := p.Bits() == p.Addr().BitLen()
	switch {
	case p.Addr().Is4() && full:
		return kindAddr4
	case p.Addr().Is4():
		return kindNet4
	case full:
		return kindAddr6
	default:
		return kindNet6
	}
}

// elems returns the set elements for a prefix: one key for an address, a
// start and (unless the range reaches the top of the address space) an
// interval-end element for a network.
func elems(p netip.Prefix, timeout time.Duration) []nftables.SetElement {
	return appendElems(nil, p, timeout)
}

// appendElems appends the elements of p to out (without a slice per
// prefix: bulk restores build hundreds of thousands).
func appendElems(out []nftables.SetElement, p netip.Prefix, timeout time.Duration) []nftables.SetElement {
	start := p.Addr().AsSlice()
	out = append(out, nftables.SetElement{Key: start, Timeout: timeout})
	if p.Bits() == p.Addr().BitLen() {
		return out
	}
	end := slices.Clone(start)
	// last address + 1
	hostBits := p.Addr().BitLen() - p.Bits()
	for i := len(end) - 1; i >= 0 && hostBits > 0; i-- {
		n := min(hostBits, 8)
		end[i] |= byte(1<<n - 1)
		hostBits -= n
	}
	carry := true
	for i := len(end) - 1; i >= 0 && carry; i-- {
		end[i]++
		carry = end[i] == 0
	}
	if !carry {
		// The kernel refuses a timeout on an interval end; it expires the
		// end together with its start.
		out = append(out, nftables.SetElement{Key: end, IntervalEnd: true})
	}
	return out
}

type setOps struct {
	set  *nftables.Set
	add  []nftables.SetElement // elements to (re-)add, with timeouts
	keys []nftables.SetElement // the same elements without timeouts, for delete
	want map[netip.Addr]bool   // start addresses, for verification
}

// group validates bans and groups their elements per set. Bans that have
// already expired are skipped when skipExpired is set; the elements
// without timeouts (for deleting) are built only when withKeys is set.
func (b *Backend) group(op string, bans []firewall.Ban, skipExpired, withKeys bool) (map[string]*setOps, int, error) {
	now := b.opts.Now()
	// Size each set's lists first: a bulk restore of 100,000 bans spent
	// most of its time growing them.
	sizes := map[string]int{}
	for _, ban := range bans {
		if p, err := firewall.Canonical(ban.Prefix); err == nil {
			n := 1
			if p.Bits() < p.Addr().BitLen() {
				n = 2 // start and interval end
			}
			sizes[ban.Jail+kindOf(p)] += n
		}
	}
	groups := map[string]*setOps{}
	count := 0
	for _, ban := range bans {
		if _, ok := b.jails[ban.Jail]; !ok {
			return nil, 0, fmt.Errorf("nftables %s: jail %q is not set up", op, ban.Jail)
		}
		p, err := firewall.Canonical(ban.Prefix)
		if err != nil {
			return nil, 0, fmt.Errorf("nftables %s: jail %s: %w", op, ban.Jail, err)
		}
		var timeout time.Duration
		if !ban.Expires.IsZero() {
			timeout = ban.Expires.Sub(now)
			if timeout <= 0 {
				if skipExpired {
					continue
				}
				timeout = 0
			} else if timeout < time.Millisecond {
				timeout = time.Millisecond
			}
			timeout = timeout.Round(time.Millisecond)
		}
		kind := kindOf(p)
		name := objName(ban.Jail) + kind
		g := groups[name]
		if g == nil {
			n := sizes[name]
			g = &setOps{set: b.set(ban.Jail, kind), want: make(map[netip.Addr]bool, n), add: make([]nftables.SetElement, 0, n)}
			if withKeys {
				g.keys = make([]nftables.SetElement, 0, n)
			}
			groups[name] = g
		}
		if g.want[p.Addr()] {
			continue // duplicate in this call; first one wins
		}
		g.want[p.Addr()] = true
		g.add = appendElems(g.add, p, timeout)
		if withKeys {
			g.keys = appendElems(g.keys, p, 0)
		}
		count++
	}
	return groups, count, nil
}

// Add implements firewall.Backend.
func (b *Backend) Add(ctx context.Context, bans []firewall.Ban) error {
	return b.change(ctx, "add", bans)
}

// Remove implements firewall.Backend.
func (b *Backend) Remove(ctx context.Context, bans []firewall.Ban) error {
	return b.change(ctx, "remove", bans)
}

func (b *Backend) change(ctx context.Context, op string, bans []firewall.Ban) error {
	if len(bans) == 0 {
		return nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	groups, count, err := b.group(op, bans, op == "add", true)
	if err != nil {
		return err
	}
	names := make([]string, 0, len(groups))
	for n := range groups {
		names = append(names, n)
	}
	slices.Sort(names)
	pending := 0
	flush := func() error {
		if pending == 0 {
			return nil
		}
		pending = 0
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := b.conn.Flush(); err != nil {
			return fmt.Errorf("nftables %s: %w", op, explain(err))
		}
		return nil
	}
	for _, n := range names {
		g := groups[n]
		for i := 0; i < len(g.add); {
			j := min(i+chunk, len(g.add))
			// Keep a network's start and end element in one message.
			if j < len(g.add) && g.add[j].IntervalEnd {
				j++
			}
			add, keys := g.add[i:j], g.keys[i:j]
			i = j
			// add (makes delete safe), delete, and for "add" add again with
			// the new timeout: refreshes existing elements on any kernel.
			if err := b.conn.SetAddElements(g.set, keys); err != nil {
				return fmt.Errorf("nftables %s: %w", op, err)
			}
			if err := b.conn.SetDeleteElements(g.set, keys); err != nil {
				return fmt.Errorf("nftables %s: %w", op, err)
			}
			pending += 2 * len(keys)
			if op == "add" {
				if err := b.conn.SetAddElements(g.set, add); err != nil {
					return fmt.Errorf("nftables %s: %w", op, err)
				}
				pending += len(add)
			}
			if pending >= MaxBatchElements {
				if err := flush(); err != nil {
					return err
				}
			}
		}
	}
	if err := flush(); err != nil {
		return err
	}
	if b.opts.Verify && count <= b.opts.VerifyLimit {
		for _, n := range names {
			if err := b.verify(ctx, groups[n], op == "add"); err != nil {
				return fmt.Errorf("nftables %s: verify: %w", op, err)
			}
		}
	}
	return nil
}

func explain(err error) error {
	switch {
	case errors.Is(err, syscall.ENOENT):
		return fmt.Errorf("%w (palisade table, chain or set missing: run Setup)", err)
	case errors.Is(err, syscall.EEXIST):
		return fmt.Errorf("%w (a prefix overlaps another in the same jail)", err)
	}
	return err
}

// verify checks that the start keys of g are present (or absent). A dump
// of a hash set that the kernel is resizing right after a bulk change can
// skip elements, so a mismatch is re-checked a few times before it counts.
func (b *Backend) verify(ctx context.Context, g *setOps, present bool) error {
	var err error
	for attempt := 0; attempt < 4; attempt++ {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(time.Duration(attempt) * 50 * time.Millisecond):
			}
		}
		if err = b.verifyOnce(g, present); err == nil {
			return nil
		}
	}
	return err
}

func (b *Backend) verifyOnce(g *setOps, present bool) error {
	got, err := b.conn.GetSetElements(g.set)
	if err != nil {
		return fmt.Errorf("read set %s: %w", g.set.Name, err)
	}
	have := make(map[netip.Addr]bool, len(got))
	for _, e := range got {
		if a, ok := netip.AddrFromSlice(e.Key); ok && !e.IntervalEnd {
			have[a] = true
		}
	}
	missing := 0
	var example string
	for a := range g.want {
		if have[a] != present {
			if missing == 0 {
				example = a.String()
			}
			missing++
		}
	}
	if missing > 0 {
		state := "missing from"
		if !present {
			state = "still in"
		}
		return fmt.Errorf("%d element(s) %s set %s (for example %s)", missing, state, g.set.Name, example)
	}
	return nil
}

// List implements firewall.Backend: it reads every palisade set back.
// Expires is now + the kernel's remaining time; zero for permanent bans.
func (b *Backend) List(ctx context.Context) ([]firewall.Ban, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.tableExists() {
		return nil, nil
	}
	sets, err := b.conn.GetSets(b.table)
	if err != nil {
		return nil, fmt.Errorf("nftables list: %w", err)
	}
	// Sets of jails with mapped names belong to the jail set up under that
	// name in this process.
	jailOf := map[string]string{}
	for j := range b.jails {
		jailOf[objName(j)] = j
	}
	now := b.opts.Now()
	var out []firewall.Ban
	for _, s := range sets {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		var jail, kind string
		for _, k := range kinds() {
			if strings.HasSuffix(s.Name, k) {
				jail, kind = strings.TrimSuffix(s.Name, k), k
			}
		}
		if kind == "" {
			continue
		}
		if j, ok := jailOf[jail]; ok {
			jail = j
		}
		els, err := b.conn.GetSetElements(s)
		if err != nil {
			return nil, fmt.Errorf("nftables list: set %s: %w", s.Name, err)
		}
		for _, p := range decode(els, kind) {
			ban := firewall.Ban{Jail: jail, Prefix: p.prefix}
			if p.timeout > 0 {
				ban.Expires = now.Add(p.expires)
			}
			out = append(out, ban)
		}
	}
	slices.SortFunc(out, func(x, y firewall.Ban) int {
		if c := strings.Compare(x.Jail, y.Jail); c != 0 {
			return c
		}
		if c := x.Prefix.Addr().Compare(y.Prefix.Addr()); c != 0 {
			return c
		}
		return x.Prefix.Bits() - y.Prefix.Bits()
	})
	return out, nil
}

type decoded struct {
	prefix           netip.Prefix
	timeout, expires time.Duration
}

// decode turns set elements back into prefixes. Interval sets hold start
// and end elements; a range that is not exactly one prefix is reported as
// the prefixes that cover it.
func decode(els []nftables.SetElement, kind string) []decoded {
	var out []decoded
	if kind == kindAddr4 || kind == kindAddr6 {
		for _, e := range els {
			a, ok := netip.AddrFromSlice(e.Key)
			if !ok {
				continue
			}
			out = append(out, decoded{netip.PrefixFrom(a, a.BitLen()), e.Timeout, e.Expires})
		}
		return out
	}
	slices.SortStableFunc(els, func(x, y nftables.SetElement) int {
		if c := strings.Compare(string(x.Key), string(y.Key)); c != 0 {
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
	for i := 0; i < len(els); i++ {
		s := els[i]
		if s.IntervalEnd {
			continue
		}
		start, ok := netip.AddrFromSlice(s.Key)
		if !ok {
			continue
		}
		var last netip.Addr
		if i+1 < len(els) && els[i+1].IntervalEnd {
			end, _ := netip.AddrFromSlice(els[i+1].Key)
			last = end.Prev()
			i++
		} else if start.Is4() {
			last = netip.AddrFrom4([4]byte{255, 255, 255, 255})
		} else {
			last = netip.AddrFrom16([16]byte{255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255})
		}
		for _, p := range rangePrefixes(start, last) {
			out = append(out, decoded{p, s.Timeout, s.Expires})
		}
	}
	return out
}

// rangePrefixes returns the smallest list of prefixes covering [first, last].
func rangePrefixes(first, last netip.Addr) []netip.Prefix {
	var out []netip.Prefix
	for i := 0; i < 256 && first.IsValid() && first.Compare(last) <= 0; i++ {
		bits := first.BitLen()
		for bits > 0 {
			p := netip.PrefixFrom(first, bits-1)
			if p.Masked().Addr() != first || lastOf(p).Compare(last) > 0 {
				break
			}
			bits--
		}
		p := netip.PrefixFrom(first, bits)
		out = append(out, p)
		first = lastOf(p).Next()
	}
	return out
}

func lastOf(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().AsSlice()
	host := p.Addr().BitLen() - p.Bits()
	for i := len(b) - 1; i >= 0 && host > 0; i-- {
		n := min(host, 8)
		b[i] |= byte(1<<n - 1)
		host -= n
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// Teardown implements firewall.Backend: it deletes table inet palisade.
func (b *Backend) Teardown(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.jails = map[string]firewall.JailSpec{}
	if !b.tableExists() {
		return nil
	}
	b.conn.DelTable(b.table)
	if err := b.conn.Flush(); err != nil && !errors.Is(err, syscall.ENOENT) {
		return fmt.Errorf("nftables teardown: %w", err)
	}
	return nil
}
