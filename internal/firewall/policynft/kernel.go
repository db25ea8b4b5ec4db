package policynft

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"syscall"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"

	"github.com/palisade-project/palisade/internal/firewall/nft"
	"github.com/palisade-project/palisade/internal/firewall/policy"
)

// Options configure a Kernel.
type Options struct {
	// NetNSFd, when non-zero, is a network namespace file descriptor to
	// work in (tests).
	NetNSFd int
}

// Kernel installs policies. It keeps no state between calls: every call
// reads what it needs from the kernel.
type Kernel struct {
	opts Options
}

// New returns a Kernel; it opens netlink connections per call.
func New(opts Options) *Kernel { return &Kernel{opts: opts} }

func (k *Kernel) conn() (*nftables.Conn, error) {
	o := []nftables.ConnOption{nftables.WithSockOptions(nft.BigBuffers)}
	if k.opts.NetNSFd != 0 {
		o = append(o, nftables.WithNetNSFd(k.opts.NetNSFd))
	}
	c, err := nftables.New(o...)
	if err != nil {
		return nil, fmt.Errorf("nftables: %w", err)
	}
	return c, nil
}

// existing is what the policy owns in the kernel now.
type existing struct {
	table    bool
	chains   []*nftables.Chain
	sets     []string
	counters []string
}

// read opens a connection and reads what the policy owns.
func (k *Kernel) read() (*nftables.Conn, existing, error) {
	c, err := k.conn()
	if err != nil {
		return nil, existing{}, err
	}
	ex, err := k.existing(c)
	return c, ex, err
}

func (k *Kernel) existing(c *nftables.Conn) (existing, error) {
	var ex existing
	if _, err := c.ListTableOfFamily(TableName, nftables.TableFamilyINet); err != nil {
		if errors.Is(err, syscall.ENOENT) {
			return ex, nil
		}
		return ex, fmt.Errorf("nftables: list tables: %w", err)
	}
	ex.table = true
	chains, err := c.ListChainsOfTableFamily(nftables.TableFamilyINet)
	if err != nil {
		return ex, fmt.Errorf("nftables: list chains: %w", err)
	}
	for _, ch := range chains {
		if ch.Table.Name == TableName && Owned(ch.Name) {
			ex.chains = append(ex.chains, ch)
		}
	}
	sets, err := c.GetSets(table())
	if err != nil {
		return ex, fmt.Errorf("nftables: list sets: %w", err)
	}
	for _, s := range sets {
		if Owned(s.Name) {
			ex.sets = append(ex.sets, s.Name)
		}
	}
	objs, err := c.GetObjects(table())
	if err != nil {
		return ex, fmt.Errorf("nftables: list objects: %w", err)
	}
	for _, o := range objs {
		if co, ok := o.(*nftables.CounterObj); ok && Owned(co.Name) {
			ex.counters = append(ex.counters, co.Name)
		}
		if no, ok := o.(*nftables.NamedObj); ok && Owned(no.Name) && no.Type == nftables.ObjTypeCounter {
			ex.counters = append(ex.counters, no.Name)
		}
	}
	return ex, nil
}

// Apply installs p, replacing the policy in force, in one transaction: the
// policy's chains are flushed and refilled, its sets and counters that p
// no longer needs are deleted, unchanged limit sets keep their entries.
// A disabled p removes the policy. Nothing else in the table is touched
// (the table and the "allow" chain are created when missing). On error
// the kernel keeps the previous policy.
func (k *Kernel) Apply(ctx context.Context, p policy.Policy) error {
	pl, err := render(p)
	if err != nil {
		return fmt.Errorf("firewall policy: %w", err)
	}
	return k.install(ctx, pl)
}

// Remove takes the policy out of the kernel (the table and everything
// else in it stay).
func (k *Kernel) Remove(ctx context.Context) error {
	return k.install(ctx, &plan{table: table()})
}

func (k *Kernel) install(ctx context.Context, pl *plan) error {
	var err error
	// A table deleted between reading and sending fails the batch; read
	// again and retry once.
	for attempt := 0; attempt < 2; attempt++ {
		if err = ctx.Err(); err != nil {
			return err
		}
		if err = k.installOnce(pl); err == nil || !errors.Is(err, syscall.ENOENT) {
			break
		}
	}
	return err
}

func (k *Kernel) installOnce(pl *plan) error {
	c, ex, err := k.read()
	if err != nil {
		return err
	}
	empty := len(pl.chains) == 0
	if empty && !ex.table {
		return nil
	}
	t := c.AddTable(pl.table)
	if !empty {
		c.AddChain(&nftables.Chain{Name: AllowChain, Table: t})
	}
	want := map[string]bool{}
	for _, ch := range pl.chains {
		want[ch.chain.Name] = true
	}
	// Flush every chain of ours first (that drops every jump and set
	// reference), then delete what is no longer wanted.
	for _, ch := range ex.chains {
		c.FlushChain(&nftables.Chain{Name: ch.Name, Table: t})
	}
	for _, ch := range ex.chains {
		if !want[ch.Name] {
			c.DelChain(&nftables.Chain{Name: ch.Name, Table: t})
		}
	}
	wantSet := map[string]bool{}
	for _, s := range pl.sets {
		wantSet[s.Name] = true
	}
	for _, s := range ex.sets {
		if !wantSet[s] {
			c.DelSet(&nftables.Set{Name: s, Table: t})
		}
	}
	wantCounter := map[string]bool{}
	for _, n := range pl.counters {
		wantCounter[n] = true
	}
	for _, n := range ex.counters {
		if !wantCounter[n] {
			c.DeleteObject(&nftables.CounterObj{Table: t, Name: n})
		}
	}
	for _, ch := range pl.chains {
		c.AddChain(ch.chain)
	}
	for _, s := range pl.sets {
		if err := c.AddSet(s, nil); err != nil {
			return fmt.Errorf("nftables: set %s: %w", s.Name, err)
		}
	}
	for _, a := range pl.anon {
		if err := c.AddSet(a.set, a.elems); err != nil {
			return fmt.Errorf("nftables: anonymous set: %w", err)
		}
	}
	for _, n := range pl.counters {
		if !slices.Contains(ex.counters, n) {
			c.AddObj(&nftables.CounterObj{Table: t, Name: n})
		}
	}
	for _, ch := range pl.chains {
		for _, r := range ch.rules {
			c.AddRule(r)
		}
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("nftables: install the firewall policy: %w", explain(err))
	}
	return nil
}

// explain shortens the library's batch errors to their cause.
func explain(err error) error {
	for _, e := range []syscall.Errno{syscall.EEXIST, syscall.ENOENT, syscall.EBUSY, syscall.EINVAL, syscall.EOPNOTSUPP, syscall.ENOMEM, syscall.EPERM} {
		if errors.Is(err, e) {
			switch e {
			case syscall.EEXIST:
				return fmt.Errorf("%w: an object with one of the policy's names (pol_...) exists with other properties", e)
			case syscall.EPERM:
				return fmt.Errorf("%w: needs root (CAP_NET_ADMIN)", e)
			}
			return e
		}
	}
	return err
}

// Installed checks that the kernel holds p as Apply would install it:
// every chain of the policy with its number of rules, every set and
// counter. It returns nil when the policy is intact (for a disabled p:
// when no policy chain exists).
func (k *Kernel) Installed(ctx context.Context, p policy.Policy) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	pl, err := render(p)
	if err != nil {
		return err
	}
	_, ex, err := k.read()
	if err != nil {
		return err
	}
	if len(pl.chains) == 0 {
		for _, ch := range ex.chains {
			if ch.Name == InputChain {
				return fmt.Errorf("the policy is disabled but chain %s exists", InputChain)
			}
		}
		return nil
	}
	if !ex.table {
		return errors.New("table inet palisade is missing")
	}
	for _, ch := range pl.chains {
		if !slices.ContainsFunc(ex.chains, func(x *nftables.Chain) bool { return x.Name == ch.chain.Name }) {
			return fmt.Errorf("chain %s is missing", ch.chain.Name)
		}
		n, err := countRules(k.opts.NetNSFd, TableName, ch.chain.Name)
		if err != nil {
			return err
		}
		if n != len(ch.rules) {
			return fmt.Errorf("chain %s holds %d rules, want %d", ch.chain.Name, n, len(ch.rules))
		}
	}
	for _, s := range pl.sets {
		if !slices.Contains(ex.sets, s.Name) {
			return fmt.Errorf("set %s is missing", s.Name)
		}
	}
	for _, n := range pl.counters {
		if !slices.Contains(ex.counters, n) {
			return fmt.Errorf("counter %s is missing", n)
		}
	}
	return nil
}

// LimitStats is the kernel state of one limit rule.
type LimitStats struct {
	LimitInfo
	// Untracked is the number of packets from sources a full set could
	// not hold (the backstop applied to them).
	Untracked uint64 `json:"untracked"`
	// Full lists the sets at their size.
	Full []string `json:"full,omitempty"`
}

// Stats reads the limit sets and counters of p: entries per set and the
// packets the backstop handled. It lists every entry, which takes about a
// second per 100,000.
func (k *Kernel) Stats(ctx context.Context, p policy.Policy) ([]LimitStats, error) {
	pl, err := render(p)
	if err != nil {
		return nil, err
	}
	c, err := k.conn()
	if err != nil {
		return nil, err
	}
	var out []LimitStats
	for _, li := range pl.limits {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		ls := LimitStats{LimitInfo: li}
		ls.Sets = slices.Clone(li.Sets)
		for i, si := range ls.Sets {
			els, err := c.GetSetElements(&nftables.Set{Table: pl.table, Name: si.Name})
			if err != nil {
				return nil, fmt.Errorf("read set %s: %w", si.Name, err)
			}
			ls.Sets[i].Elements = len(els)
			if len(els) >= si.Size {
				ls.Full = append(ls.Full, si.Name)
			}
		}
		objs, err := c.GetObj(&nftables.CounterObj{Table: pl.table, Name: li.Counter})
		if err != nil {
			return nil, fmt.Errorf("read counter %s: %w", li.Counter, err)
		}
		for _, o := range objs {
			switch v := o.(type) {
			case *nftables.CounterObj:
				if v.Name == li.Counter {
					ls.Untracked = v.Packets
				}
			case *nftables.NamedObj:
				if ce, ok := v.Obj.(*expr.Counter); ok && v.Name == li.Counter {
					ls.Untracked = ce.Packets
				}
			}
		}
		out = append(out, ls)
	}
	return out, nil
}
