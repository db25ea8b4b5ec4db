// Package detect chooses and builds palisade's firewall backend: nftables
// when the kernel answers nftables netlink requests, else iptables + ipset
// when both programs are installed, else ufw when installed. An explicit
// choice overrides detection.
package detect

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/palisade-project/palisade/internal/firewall"
	"github.com/palisade-project/palisade/internal/firewall/ipset"
	"github.com/palisade-project/palisade/internal/firewall/nft"
	"github.com/palisade-project/palisade/internal/firewall/ufw"
	"github.com/palisade-project/palisade/internal/sysexec"
)

// Backend kinds.
const (
	Auto     = "auto"
	Nftables = "nftables"
	Ipset    = "ipset" // iptables + ipset
	UFW      = "ufw"
)

// Deps are what detection and construction use.
type Deps struct {
	Runner sysexec.Runner
	Logger *slog.Logger
	// NetNSFd, when non-zero, makes the nftables backend work in that
	// network namespace.
	NetNSFd int
	// NftVerify turns on nftables write verification.
	NftVerify bool
	// LookPath finds programs; nil means sysexec.LookPath.
	LookPath func(string) (string, error)
	// NftAvailable probes the kernel; nil means nft.Available.
	NftAvailable func(netnsFd int) error
}

// Normalize maps accepted spellings to a kind: "" and "auto" to Auto,
// "nft" to Nftables, "iptables" and "iptables-ipset" to Ipset.
func Normalize(want string) (string, error) {
	switch strings.ToLower(strings.TrimSpace(want)) {
	case "", Auto:
		return Auto, nil
	case Nftables, "nft":
		return Nftables, nil
	case Ipset, "iptables", "iptables-ipset", "iptables+ipset":
		return Ipset, nil
	case UFW:
		return UFW, nil
	}
	return "", fmt.Errorf("unknown firewall backend %q (want auto, nftables, iptables or ufw)", want)
}

// Choose resolves want (see Normalize) to a concrete kind and says why.
func Choose(want string, d Deps) (kind, reason string, err error) {
	kind, err = Normalize(want)
	if err != nil {
		return "", "", err
	}
	look := d.LookPath
	if look == nil {
		look = sysexec.LookPath
	}
	probe := d.NftAvailable
	if probe == nil {
		probe = nft.Available
	}
	missing := func(progs ...string) error {
		var errs []error
		for _, p := range progs {
			if _, err := look(p); err != nil {
				errs = append(errs, fmt.Errorf("%s not found", p))
			}
		}
		return errors.Join(errs...)
	}
	switch kind {
	case Nftables:
		if err := probe(d.NetNSFd); err != nil {
			return "", "", fmt.Errorf("firewall backend nftables requested but unusable: %w", err)
		}
		return Nftables, "requested", nil
	case Ipset:
		if err := missing("ipset", "iptables", "ip6tables"); err != nil {
			return "", "", fmt.Errorf("firewall backend iptables requested but unusable: %w", err)
		}
		return Ipset, "requested", nil
	case UFW:
		if err := missing("ufw"); err != nil {
			return "", "", fmt.Errorf("firewall backend ufw requested but unusable: %w", err)
		}
		return UFW, "requested", nil
	}
	nftErr := probe(d.NetNSFd)
	if nftErr == nil {
		return Nftables, "kernel answers nftables netlink requests", nil
	}
	iptErr := missing("ipset", "iptables", "ip6tables")
	if iptErr == nil {
		return Ipset, fmt.Sprintf("nftables unusable (%v); iptables and ipset installed", nftErr), nil
	}
	if missing("ufw") == nil {
		return UFW, fmt.Sprintf("nftables unusable (%v); %v; ufw installed", nftErr, iptErr), nil
	}
	return "", "", fmt.Errorf("no usable firewall backend: nftables: %v; iptables: %v; ufw not found", nftErr, iptErr)
}

// New builds a backend of a concrete kind (not Auto). The nftables backend
// holds a netlink socket: callers release it through its Close method
// (interface{ Close() error }) at shutdown.
func New(kind string, d Deps) (firewall.Backend, error) {
	switch kind {
	case Nftables:
		return nft.New(nft.Options{NetNSFd: d.NetNSFd, Verify: d.NftVerify, Logger: d.Logger})
	case Ipset:
		return ipset.New(ipset.Options{Runner: d.Runner, Logger: d.Logger})
	case UFW:
		return ufw.New(ufw.Options{Runner: d.Runner, Logger: d.Logger})
	}
	return nil, fmt.Errorf("firewall backend %q: not a concrete backend kind", kind)
}
