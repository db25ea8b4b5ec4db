package firewall

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"sync"
)

// LockSpec is an origin lock: TCP traffic to Ports is refused unless its
// source is in Ranges (the proxy's published ranges) or Allow (extra
// sources such as monitoring). Everything else is left alone: a lock only
// ever drops or rejects, it never accepts.
type LockSpec struct {
	Ranges []netip.Prefix
	Allow  []netip.Prefix
	// Ports must not be empty: a lock never covers every port.
	Ports []PortRange
	Block Block
}

// LockState is what the kernel holds for a lock.
type LockState struct {
	// Installed is false when the lock's chain is absent.
	Installed bool
	LockSpec
	// Refused counts the packets the lock refused since its rules were
	// installed.
	Refused uint64
}

// Same reports whether s holds exactly what spec asks for (order and
// duplicates aside).
func (s LockState) Same(spec LockSpec) bool {
	return s.Installed && s.Block == spec.Block &&
		samePrefixes(s.Ranges, spec.Ranges) && samePrefixes(s.Allow, spec.Allow) &&
		slices.Equal(MergePorts(s.Ports), MergePorts(spec.Ports))
}

func samePrefixes(a, b []netip.Prefix) bool {
	return slices.Equal(MergePrefixes(a), MergePrefixes(b))
}

// MergePrefixes returns the prefixes canonical (see Canonical; invalid ones
// are skipped), sorted, without duplicates and without prefixes that lie
// inside another: the form an interval set holds them in.
func MergePrefixes(in []netip.Prefix) []netip.Prefix {
	var canon []netip.Prefix
	for _, p := range in {
		if c, err := Canonical(p); err == nil {
			canon = append(canon, c)
		}
	}
	var out []netip.Prefix
	for _, p := range SortPrefixes(canon) {
		if n := len(out); n > 0 && out[n-1].Overlaps(p) {
			if out[n-1].Bits() > p.Bits() {
				out[n-1] = p // p contains the previous one
			}
			continue
		}
		out = append(out, p)
	}
	return out
}

// SortPrefixes returns the prefixes sorted (IPv4 first, then by address and
// length) without duplicates.
func SortPrefixes(in []netip.Prefix) []netip.Prefix {
	out := slices.Clone(in)
	slices.SortFunc(out, func(a, b netip.Prefix) int {
		if c := a.Addr().Compare(b.Addr()); c != 0 {
			return c
		}
		return a.Bits() - b.Bits()
	})
	return slices.Compact(out)
}

// FakeLock is an in-memory lock for tests. Its zero value is an empty,
// uninstalled lock.
type FakeLock struct {
	mu    sync.Mutex
	state LockState
	// applies counts successful Apply calls.
	applies int
	fail    error
}

// SetFail makes every later call return err (nil: succeed again).
func (f *FakeLock) SetFail(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fail = err
}

// ErrFakeLock is a convenient error for FakeLock.SetFail.
var ErrFakeLock = errors.New("fake lock failure")

// Apply installs spec.
func (f *FakeLock) Apply(_ context.Context, spec LockSpec) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return f.fail
	}
	if len(spec.Ports) == 0 {
		return errors.New("lock: no ports")
	}
	f.state = LockState{Installed: true, LockSpec: LockSpec{
		Ranges: MergePrefixes(spec.Ranges), Allow: MergePrefixes(spec.Allow),
		Ports: MergePorts(spec.Ports), Block: spec.Block,
	}}
	f.applies++
	return nil
}

// State returns what was applied.
func (f *FakeLock) State(context.Context) (LockState, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return LockState{}, f.fail
	}
	return f.state, nil
}

// Remove uninstalls the lock.
func (f *FakeLock) Remove(context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return f.fail
	}
	f.state = LockState{}
	return nil
}

// Applies returns how many Apply calls succeeded.
func (f *FakeLock) Applies() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.applies
}

// Flush forgets the installed lock, as an external "nft flush ruleset"
// would.
func (f *FakeLock) Flush() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.state = LockState{}
}
