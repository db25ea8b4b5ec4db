package policynft

import (
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"github.com/palisade-project/palisade/internal/firewall/policy"
)

// limitChain renders limit rule number n into chain pol_ID:
//
//	per family (IPv4 with the --mask prefix, IPv6 with --mask6):
//	  [penalty] saddr&M @p: update @p { saddr&M timeout DUR } BLOCK
//	  [conn]    add @c { saddr&M ct count over N } BLOCK
//	            saddr&M != @c: counter full, limit rate over BACKSTOP: BLOCK
//	  [rate, penalty] add @r { saddr&M timeout DUR limit rate over 1/UNIT burst N } add @p { saddr&M } BLOCK
//	  [rate, bucket]  update @r { saddr&M timeout DUR limit rate over N/DUR burst N } BLOCK
//	            saddr&M != @r: counter full, limit rate over BACKSTOP: BLOCK
//	accept
//
// In penalty mode a source's window starts with its first connection and
// lasts DUR; the (N+1)th inside it puts the source in penalty, where every
// further attempt is refused and restarts the penalty (iptables' recent
// with --update, ufw's limit). In bucket mode the element's token bucket
// holds N and refills at N per DUR. A full set cannot add the source: the
// "!= @set" rule then counts it and applies a shared, coarse backstop rate,
// so a full set never silently stops limiting.
func (pl *plan) limitChain(n int, r policy.Rule) (*chainPlan, LimitInfo, error) {
	l := r.Limit.Effective()
	id := limitID(r)
	info := LimitInfo{Rule: n, ID: id, Counter: Prefix + id + "_full"}
	c := &chainPlan{chain: &nftables.Chain{Name: Prefix + id, Table: pl.table}}
	pl.chains = append(pl.chains, c)
	pl.counters = append(pl.counters, info.Counter)
	block := drop()
	if r.Block() == policy.Reject {
		block = rejectICMPX()
	}
	fams := []int{4, 6}
	if f := r.Family(); f != 0 {
		fams = []int{f}
	}
	tag := "palisade:" + r.String()
	if len(tag) > 250 {
		tag = tag[:250]
	}
	for _, fam := range fams {
		bits := l.Mask4
		kt := nftables.TypeIPAddr
		if fam == 6 {
			bits, kt = l.Mask6, nftables.TypeIP6Addr
		}
		key := append(nfproto(fam), addrLoad(fam, true, bits)...)
		suffix := "4"
		if fam == 6 {
			suffix = "6"
		}
		newSet := func(kind string, timeout time.Duration) *nftables.Set {
			pl.nextID++
			s := &nftables.Set{
				Table: pl.table, Name: Prefix + id + "_" + kind[:1] + suffix, ID: pl.nextID,
				KeyType: kt, Dynamic: true, Size: uint32(l.Size),
				HasTimeout: timeout > 0, Timeout: timeout,
			}
			pl.sets = append(pl.sets, s)
			info.Sets = append(info.Sets, SetInfo{Name: s.Name, Kind: kind, Family: fam, Size: l.Size})
			return s
		}
		backstop := func(s *nftables.Set) {
			c.add(tag+" (set full: backstop)", key, lookup(s, true),
				[]expr.Any{&expr.Objref{Type: int(nftables.ObjTypeCounter), Name: info.Counter}},
				[]expr.Any{rateOver(l.Backstop, l.BackstopPer, l.Backstop)}, block)
		}
		var pen *nftables.Set
		if l.Rate > 0 && l.Mode == policy.Penalty {
			pen = newSet("penalty", l.Per)
			c.add(tag+" (in penalty)", key, lookup(pen, false),
				[]expr.Any{&expr.Dynset{SrcRegKey: 1, SetName: pen.Name, SetID: pen.ID, Operation: unix.NFT_DYNSET_OP_UPDATE, Timeout: l.Per}},
				block)
		}
		if l.Conn > 0 {
			cs := newSet("conn", 0)
			c.add(tag+" (connections)", key,
				[]expr.Any{&expr.Dynset{SrcRegKey: 1, SetName: cs.Name, SetID: cs.ID, Operation: unix.NFT_DYNSET_OP_ADD,
					Exprs: []expr.Any{&expr.Connlimit{Count: uint32(l.Conn), Flags: expr.NFT_CONNLIMIT_F_INV}}}},
				block)
			backstop(cs)
		}
		if l.Rate > 0 {
			rs := newSet("rate", l.Per)
			if l.Mode == policy.Penalty {
				// A bucket of N that does not refill within the window
				// (one token per unit longer than it): the (N+1)th
				// connection inside it is over.
				unit := expr.LimitTime(policy.PenaltyUnit(l.Per) / time.Second)
				c.add(tag+" (rate)", key,
					[]expr.Any{&expr.Dynset{SrcRegKey: 1, SetName: rs.Name, SetID: rs.ID, Operation: unix.NFT_DYNSET_OP_ADD, Timeout: l.Per,
						Exprs: []expr.Any{&expr.Limit{Type: expr.LimitTypePkts, Rate: 1, Unit: unit, Burst: uint32(l.Rate), Over: true}}}},
					[]expr.Any{&expr.Dynset{SrcRegKey: 1, SetName: pen.Name, SetID: pen.ID, Operation: unix.NFT_DYNSET_OP_ADD, Timeout: l.Per}},
					block)
			} else {
				c.add(tag+" (rate)", key,
					[]expr.Any{&expr.Dynset{SrcRegKey: 1, SetName: rs.Name, SetID: rs.ID, Operation: unix.NFT_DYNSET_OP_UPDATE, Timeout: l.Per,
						Exprs: []expr.Any{rateOver(l.Rate, l.Per, l.Rate)}}},
					block)
			}
			backstop(rs)
		}
	}
	c.add(tag, accept())
	pl.limits = append(pl.limits, info)
	return c, info, nil
}

// rateOver is "limit rate over N/PER burst B packets" in the units the
// kernel and nft understand (second, minute, hour, day, week): the
// smallest unit in which N per PER is a whole number, else a week with the
// rate rounded (an error below one in 600,000).
func rateOver(n int, per time.Duration, burst int) expr.Any {
	units := []expr.LimitTime{expr.LimitTimeSecond, expr.LimitTimeMinute, expr.LimitTimeHour, expr.LimitTimeDay, expr.LimitTimeWeek}
	for _, u := range units {
		num := int64(n) * int64(u) * int64(time.Second)
		if num%int64(per) == 0 {
			return &expr.Limit{Type: expr.LimitTypePkts, Rate: uint64(num / int64(per)), Unit: u, Burst: uint32(burst), Over: true}
		}
	}
	week := int64(expr.LimitTimeWeek) * int64(time.Second)
	rate := (int64(n)*week + int64(per)/2) / int64(per)
	return &expr.Limit{Type: expr.LimitTypePkts, Rate: uint64(max(rate, 1)), Unit: expr.LimitTimeWeek, Burst: uint32(burst), Over: true}
}
