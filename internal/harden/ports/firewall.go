package ports

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"golang.org/x/sys/unix"

	"github.com/palisade-project/palisade/internal/sysexec"
)

// Firewall ways of opening a port (the "via" of an opening).
const (
	ViaNFT  = "nftables"
	ViaUFW  = "ufw"
	ViaNone = "none"
)

// AllowChain is the regular chain in palisade's table that holds the ports
// the hardening commands opened: "meta l4proto tcp th dport N accept", each
// rule tagged "palisade:open:N/tcp". A default-deny policy in palisade's
// table jumps to it before dropping.
const AllowChain = "allow"

// TableName is palisade's nftables table (family inet).
const TableName = "palisade"

// Opener opens and closes ports in a firewall.
type Opener interface {
	Via() string
	Open(ctx context.Context, port int, proto string) error
	Close(ctx context.Context, port int, proto string) error
	// IsOpen reports whether the opener's rule for port exists.
	IsOpen(ctx context.Context, port int, proto string) (bool, error)
}

// Detect picks the firewall to open ports in: ufw when it is active,
// otherwise palisade's nftables table when the kernel answers nftables
// requests, otherwise none.
func Detect(ctx context.Context, r sysexec.Runner) string {
	if res, err := r.Run(ctx, sysexec.Cmd{Name: "ufw", Args: []string{"status"}}); err == nil && strings.HasPrefix(strings.TrimSpace(string(res.Stdout)), "Status: active") {
		return ViaUFW
	}
	if c, err := nftables.New(); err == nil {
		if _, err := c.ListTablesOfFamily(nftables.TableFamilyINet); err == nil {
			return ViaNFT
		}
	}
	return ViaNone
}

// NewOpener returns the opener for via.
func NewOpener(via string, r sysexec.Runner) (Opener, error) {
	switch via {
	case ViaUFW:
		return UFW{Runner: r}, nil
	case ViaNFT:
		return &NFT{}, nil
	case ViaNone, "":
		return None{}, nil
	}
	return nil, fmt.Errorf("unknown firewall %q (nftables, ufw or none)", via)
}

func checkProto(proto string) error {
	if proto != "tcp" && proto != "udp" {
		return fmt.Errorf("protocol %q: tcp or udp", proto)
	}
	return nil
}

// None opens nothing (no firewall to follow).
type None struct{}

// Via implements Opener.
func (None) Via() string { return ViaNone }

// Open implements Opener.
func (None) Open(context.Context, int, string) error { return nil }

// Close implements Opener.
func (None) Close(context.Context, int, string) error { return nil }

// IsOpen implements Opener.
func (None) IsOpen(context.Context, int, string) (bool, error) { return true, nil }

// UFW opens ports with "ufw allow N/PROTO".
type UFW struct{ Runner sysexec.Runner }

// Via implements Opener.
func (UFW) Via() string { return ViaUFW }

func rule(port int, proto string) string { return strconv.Itoa(port) + "/" + proto }

// Open implements Opener.
func (u UFW) Open(ctx context.Context, port int, proto string) error {
	if err := checkProto(proto); err != nil {
		return err
	}
	if _, err := u.Runner.Run(ctx, sysexec.Cmd{Name: "ufw", Args: []string{"allow", rule(port, proto)}}); err != nil {
		return fmt.Errorf("open port %d in ufw: %w", port, err)
	}
	return nil
}

// Close implements Opener.
func (u UFW) Close(ctx context.Context, port int, proto string) error {
	if err := checkProto(proto); err != nil {
		return err
	}
	if _, err := u.Runner.Run(ctx, sysexec.Cmd{Name: "ufw", Args: []string{"delete", "allow", rule(port, proto)}}); err != nil {
		return fmt.Errorf("close port %d in ufw: %w", port, err)
	}
	return nil
}

// IsOpen implements Opener.
func (u UFW) IsOpen(ctx context.Context, port int, proto string) (bool, error) {
	res, err := u.Runner.Run(ctx, sysexec.Cmd{Name: "ufw", Args: []string{"status"}})
	if err != nil {
		return false, err
	}
	want := rule(port, proto)
	for _, l := range strings.Split(string(res.Stdout), "\n") {
		f := strings.Fields(l)
		if len(f) >= 2 && f[0] == want && strings.EqualFold(f[1], "ALLOW") {
			return true, nil
		}
	}
	return false, nil
}

// NFT opens ports in palisade's nftables table, chain AllowChain.
type NFT struct {
	// NetNSFd, when non-zero, selects a network namespace (tests).
	NetNSFd int
}

// Via implements Opener.
func (*NFT) Via() string { return ViaNFT }

func (n *NFT) conn() (*nftables.Conn, error) {
	var opts []nftables.ConnOption
	if n.NetNSFd != 0 {
		opts = append(opts, nftables.WithNetNSFd(n.NetNSFd))
	}
	c, err := nftables.New(opts...)
	if err != nil {
		return nil, fmt.Errorf("nftables: %w", err)
	}
	return c, nil
}

func allowTable() *nftables.Table {
	return &nftables.Table{Name: TableName, Family: nftables.TableFamilyINet}
}

func allowChain() *nftables.Chain { return &nftables.Chain{Name: AllowChain, Table: allowTable()} }

func tag(port int, proto string) string { return "palisade:open:" + rule(port, proto) }

func (n *NFT) rules(c *nftables.Conn, port int, proto string) ([]*nftables.Rule, error) {
	tables, err := c.ListTablesOfFamily(nftables.TableFamilyINet)
	if err != nil {
		return nil, fmt.Errorf("nftables: list tables: %w", err)
	}
	exists := false
	for _, t := range tables {
		if t.Name == TableName {
			exists = true
		}
	}
	if !exists {
		return nil, nil
	}
	table, chain := allowTable(), allowChain()
	if _, err := c.ListChain(table, AllowChain); err != nil {
		return nil, nil
	}
	rs, err := c.GetRules(table, chain)
	if err != nil {
		return nil, fmt.Errorf("nftables: read chain %s: %w", AllowChain, err)
	}
	var out []*nftables.Rule
	for _, r := range rs {
		if t, ok := userdata.GetString(r.UserData, userdata.TypeComment); ok && t == tag(port, proto) {
			r.Table, r.Chain = table, chain
			out = append(out, r)
		}
	}
	return out, nil
}

// Open implements Opener. Opening an open port changes nothing.
func (n *NFT) Open(_ context.Context, port int, proto string) error {
	if err := checkProto(proto); err != nil {
		return err
	}
	c, err := n.conn()
	if err != nil {
		return err
	}
	have, err := n.rules(c, port, proto)
	if err != nil {
		return err
	}
	if len(have) > 0 {
		return nil
	}
	p := byte(unix.IPPROTO_TCP)
	if proto == "udp" {
		p = unix.IPPROTO_UDP
	}
	table := c.AddTable(allowTable())
	ch := c.AddChain(&nftables.Chain{Name: AllowChain, Table: table})
	c.AddRule(&nftables.Rule{
		Table: table, Chain: ch,
		UserData: userdata.AppendString(nil, userdata.TypeComment, tag(port, proto)),
		Exprs: []expr.Any{
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{p}},
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{byte(port >> 8), byte(port)}},
			&expr.Verdict{Kind: expr.VerdictAccept},
		},
	})
	if err := c.Flush(); err != nil {
		return fmt.Errorf("nftables: open port %d/%s: %w", port, proto, err)
	}
	return nil
}

// Close implements Opener. Closing a port that is not open is not an error.
func (n *NFT) Close(_ context.Context, port int, proto string) error {
	if err := checkProto(proto); err != nil {
		return err
	}
	c, err := n.conn()
	if err != nil {
		return err
	}
	have, err := n.rules(c, port, proto)
	if err != nil || len(have) == 0 {
		return err
	}
	for _, r := range have {
		if err := c.DelRule(r); err != nil {
			return fmt.Errorf("nftables: close port %d/%s: %w", port, proto, err)
		}
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("nftables: close port %d/%s: %w", port, proto, err)
	}
	return nil
}

// IsOpen implements Opener.
func (n *NFT) IsOpen(_ context.Context, port int, proto string) (bool, error) {
	c, err := n.conn()
	if err != nil {
		return false, err
	}
	have, err := n.rules(c, port, proto)
	return len(have) > 0, err
}
