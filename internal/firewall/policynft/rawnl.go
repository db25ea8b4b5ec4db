package policynft

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// Raw netlink for what github.com/google/nftables v0.3.0 cannot do:
// counting a chain's rules without decoding them (its decoder rejects the
// one-byte direction of "ct original proto-dst" the kernel sends back) and
// watching for deletions (its Monitor delivers events only when subscribed
// to everything, and then parses every set element of every bulk ban).

func dialNetfilter(netnsFd int) (*netlink.Conn, error) {
	cfg := &netlink.Config{}
	if netnsFd != 0 {
		cfg.NetNS = netnsFd
	}
	c, err := netlink.Dial(unix.NETLINK_NETFILTER, cfg)
	if err != nil {
		return nil, fmt.Errorf("netlink: %w", err)
	}
	return c, nil
}

func nfgen(family byte) []byte { return []byte{family, unix.NFNETLINK_V0, 0, 0} }

// countRules returns the number of rules in table inet TABLE chain CHAIN.
func countRules(netnsFd int, tableName, chain string) (int, error) {
	c, err := dialNetfilter(netnsFd)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	attrs, err := netlink.MarshalAttributes([]netlink.Attribute{
		{Type: unix.NFTA_RULE_TABLE, Data: []byte(tableName + "\x00")},
		{Type: unix.NFTA_RULE_CHAIN, Data: []byte(chain + "\x00")},
	})
	if err != nil {
		return 0, err
	}
	msgs, err := c.Execute(netlink.Message{
		Header: netlink.Header{
			Type:  netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_GETRULE),
			Flags: netlink.Request | netlink.Dump,
		},
		Data: append(nfgen(unix.NFPROTO_INET), attrs...),
	})
	if err != nil {
		return 0, fmt.Errorf("list rules of %s: %w", chain, err)
	}
	n := 0
	for _, m := range msgs {
		if m.Header.Type&0xff == unix.NFT_MSG_NEWRULE {
			n++
		}
	}
	return n, nil
}

// Watch calls changed (from its own goroutine) whenever a table, chain,
// rule, set or object of the inet family is deleted in the namespace
// (netnsFd 0: the current one), and when the event stream overflowed
// (events may have been lost). It returns when ctx ends; an error only
// when the subscription could not be made.
func Watch(ctx context.Context, netnsFd int, changed func()) error {
	c, err := dialNetfilter(netnsFd)
	if err != nil {
		return err
	}
	if err := c.JoinGroup(unix.NFNLGRP_NFTABLES); err != nil {
		c.Close()
		return fmt.Errorf("netlink: join nftables events: %w", err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			msgs, err := c.Receive()
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				var oe *netlink.OpError
				if errors.As(err, &oe) && errors.Is(oe.Err, unix.ENOBUFS) {
					changed() // overflow: something may have been lost
					continue
				}
				// Unexpected: back off briefly and keep listening.
				select {
				case <-ctx.Done():
					return
				case <-time.After(100 * time.Millisecond):
				}
				continue
			}
			for _, m := range msgs {
				if m.Header.Type>>8 != unix.NFNL_SUBSYS_NFTABLES || len(m.Data) < 1 {
					continue
				}
				switch m.Header.Type & 0xff {
				case unix.NFT_MSG_DELTABLE, unix.NFT_MSG_DELCHAIN, unix.NFT_MSG_DELRULE, unix.NFT_MSG_DELSET, unix.NFT_MSG_DELOBJ:
					if m.Data[0] == unix.NFPROTO_INET {
						changed()
					}
				}
			}
		}
	}()
	<-ctx.Done()
	c.Close()
	<-done
	return nil
}
