package nft

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"syscall"

	"github.com/google/nftables"
	"github.com/google/nftables/userdata"
	"github.com/mdlayher/netlink"
)

// ErrSetsLost marks an Intact error after which the ban sets are gone
// (the table or a set was deleted): Setup brings them back empty, and every
// ban must be added again. Other damage (rules flushed) keeps the elements.
var ErrSetsLost = errors.New("ban sets lost")

// Intact checks that everything Setup installed is still in the kernel:
// the table, the input chain, and for every jail set up its four sets, its
// chain with its rules and at least one jump from the input chain. It
// returns nil when nothing is missing (set elements are not checked: the
// ban manager's reconciliation does that). It is cheap: a few small dumps.
func (b *Backend) Intact(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.jails) == 0 {
		return nil
	}
	if _, err := b.conn.ListTableOfFamily(TableName, nftables.TableFamilyINet); err != nil {
		if errors.Is(err, syscall.ENOENT) {
			return fmt.Errorf("table inet palisade is missing (%w)", ErrSetsLost)
		}
		return fmt.Errorf("list tables: %w", err)
	}
	if _, err := b.conn.ListChain(b.table, "input"); err != nil {
		return errors.New("chain input is missing")
	}
	rules, err := b.conn.GetRules(b.table, b.inputChain())
	if err != nil {
		return fmt.Errorf("read chain input: %w", err)
	}
	jumps := map[string]int{}
	for _, r := range rules {
		if tag, ok := userdata.GetString(r.UserData, userdata.TypeComment); ok {
			jumps[tag]++
		}
	}
	sets, err := b.conn.GetSets(b.table)
	if err != nil {
		return fmt.Errorf("list sets: %w", err)
	}
	have := map[string]bool{}
	for _, s := range sets {
		have[s.Name] = true
	}
	names := make([]string, 0, len(b.jails))
	for n := range b.jails {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, j := range names {
		for _, k := range kinds() {
			if !have[j+k] {
				return fmt.Errorf("jail %s: set %s is missing (%w)", j, j+k, ErrSetsLost)
			}
		}
	}
	for _, j := range names {
		if jumps["palisade:"+j] == 0 {
			return fmt.Errorf("jail %s: its rule in chain input is missing", j)
		}
		jr, err := b.conn.GetRules(b.table, b.jailChain(j))
		if err != nil || len(jr) == 0 {
			return fmt.Errorf("jail %s: chain %s is missing or empty", j, b.jailChain(j).Name)
		}
	}
	return nil
}

// BigBuffers raises a netlink socket's buffers so that one batch can carry
// a large change (nftables.WithSockOptions(nft.BigBuffers)); the policy
// installer (internal/firewall/policynft) uses it too.
func BigBuffers(c *netlink.Conn) error { return bigBuffers(c) }
