// Package firewall defines how palisade enforces bans in the kernel: the
// Backend interface that the ban manager drives, the value types it speaks
// (jail scopes and bans) and an exported in-memory Fake for tests.
//
// Concrete backends live in sub-packages (nft, ipset, ufw, exec) so that a
// host pulls in only what it uses.
package firewall

import (
	"context"
	"fmt"
	"net/netip"
	"time"
)

// Block is what happens to a banned packet.
type Block string

// Block types.
const (
	Reject Block = "reject" // the client sees "connection refused" (default)
	Drop   Block = "drop"   // silently dropped
)

// PortRange is an inclusive range of ports; From == To for a single port.
type PortRange struct {
	From, To uint16
}

// Scope says which traffic of a banned address a jail blocks.
type Scope struct {
	// Ports to block; empty means every port.
	Ports []PortRange
	// Protocol is "tcp", "udp", "sctp" or "all". Empty means "tcp".
	Protocol string
}

// JailSpec describes how one jail's bans are enforced.
type JailSpec struct {
	Name  string
	Scope Scope
	Block Block
}

// Ban is one enforced ban. A single address is a full-length prefix
// (/32 or /128).
type Ban struct {
	Jail   string
	Prefix netip.Prefix
	// Expires is when the kernel should drop the ban by itself; the zero
	// value means permanent.
	Expires time.Time
}

// Backend enforces bans. Implementations must be safe for concurrent use.
// Every method applies its whole argument atomically where the kernel allows
// it (one nftables batch), and is idempotent: adding a ban that exists
// refreshes its expiry, removing one that does not exist is not an error.
type Backend interface {
	// Name identifies the backend ("nftables", "ipset", "ufw", "exec:NAME", "fake").
	Name() string
	// Setup installs or updates the structures for these jails. Jails not
	// listed keep their structures until Teardown.
	Setup(ctx context.Context, jails []JailSpec) error
	// Add enforces bans (bulk).
	Add(ctx context.Context, bans []Ban) error
	// Remove lifts bans (bulk).
	Remove(ctx context.Context, bans []Ban) error
	// List returns the bans the kernel enforces now, for verification and
	// reconciliation. Backends that cannot list return ErrNotListable, at
	// once and even when ctx is done: callers probe with a cancelled
	// context, which a backend that can list must honour before it reads
	// its bans.
	List(ctx context.Context) ([]Ban, error)
	// Teardown removes everything palisade installed.
	Teardown(ctx context.Context) error
}

// Canonical validates and normalises a ban prefix for the kernel: an
// IPv4-mapped IPv6 prefix becomes IPv4, the zone is dropped and host bits
// are cleared.
func Canonical(p netip.Prefix) (netip.Prefix, error) {
	if !p.IsValid() {
		return netip.Prefix{}, fmt.Errorf("invalid prefix %v", p)
	}
	a, bits := p.Addr(), p.Bits()
	if a.Is4In6() {
		if bits < 96 {
			return netip.Prefix{}, fmt.Errorf("prefix %v: IPv4-mapped prefix shorter than /96", p)
		}
		a, bits = a.Unmap(), bits-96
	}
	return netip.PrefixFrom(a.WithZone(""), bits).Masked(), nil
}

// IntactChecker is implemented by backends that can tell cheaply, without
// reading their bans back, whether the structures palisade installed for
// the jails set up are all still there (a flushed ruleset or a deleted
// table removes them, and their bans with them). Listing every ban of a
// large set costs the kernel seconds, so the ban manager lists only when a
// structure is missing, or when its full-reconcile interval has passed.
//
// Intact returns nil when everything is in place; an error when something
// is missing or could not be checked (either way the caller lists).
type IntactChecker interface {
	Intact(ctx context.Context) error
}

// MissingAdder is implemented by backends with a cheaper bulk add for
// start-up: AddMissing enforces every ban the kernel does not hold, and
// may leave a ban it holds as it is (its expiry possibly the one the
// kernel had). The ban manager restores with it; the reconcile that
// follows compares expiries and refreshes those that differ.
type MissingAdder interface {
	AddMissing(ctx context.Context, bans []Ban) error
}
