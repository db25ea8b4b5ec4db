package nft

import (
	"context"
	"fmt"
	"slices"

	"github.com/palisade-project/palisade/internal/firewall"
)

// restoreSlice is how many bans AddMissing prepares and sends at a time:
// a restore needs no atomicity across all its bans, and building the
// elements of 300,000 bans at once took 76 MB.
const restoreSlice = 1 << 16

// AddMissing implements firewall.MissingAdder: one add per element,
// without the delete and re-add with which Add refreshes an element, sent
// in batches of at most restoreSlice bans. An element the kernel holds
// keeps it (kernels since 6.9 take the new timeout, older ones keep
// theirs). It is the cheap way to re-install the stored bans at start-up,
// when the kernel usually kept them (a restart, not a reboot) with the
// timeouts the database holds: 100,000 IPv6 bans in half the time of Add
// (BenchmarkNftAddMissing100kIPv6Storm).
func (b *Backend) AddMissing(ctx context.Context, bans []firewall.Ban) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	for len(bans) > 0 {
		n := min(len(bans), restoreSlice)
		if err := b.addMissing(ctx, bans[:n]); err != nil {
			return err
		}
		bans = bans[n:]
	}
	return nil
}

// addMissing sends one slice of AddMissing (mu held).
func (b *Backend) addMissing(ctx context.Context, bans []firewall.Ban) error {
	groups, _, err := b.group("add", bans, true, false)
	if err != nil {
		return err
	}
	names := make([]string, 0, len(groups))
	for n := range groups {
		names = append(names, n)
	}
	slices.Sort(names)
	pending := 0
	for _, n := range names {
		g := groups[n]
		for i := 0; i < len(g.add); {
			j := min(i+chunk, len(g.add))
			if j < len(g.add) && g.add[j].IntervalEnd {
				j++
			}
			if err := b.conn.SetAddElements(g.set, g.add[i:j]); err != nil {
				return fmt.Errorf("nftables add: %w", err)
			}
			pending += j - i
			i = j
		}
	}
	if pending > 0 {
		return b.flushBatch(ctx, "add")
	}
	return nil
}

func (b *Backend) flushBatch(ctx context.Context, op string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := b.conn.Flush(); err != nil {
		return fmt.Errorf("nftables %s: %w", op, explain(err))
	}
	return nil
}
