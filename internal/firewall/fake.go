package firewall

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"sync"
)

// ErrNotListable is returned by List on backends that cannot read back
// their state.
var ErrNotListable = errors.New("firewall backend cannot list its bans")

// Fake is an in-memory Backend for tests. It records every call and can be
// told to fail.
type Fake struct {
	mu    sync.Mutex
	jails map[string]JailSpec
	bans  map[banKey]Ban
	calls []string
	// FailNext, when set, is returned (once) by the next mutating call.
	FailNext error
}

type banKey struct {
	jail   string
	prefix netip.Prefix
}

// maxCalls bounds the call log (the log backend is a Fake that runs for
// the daemon's lifetime); Calls returns the latest calls.
const maxCalls = 4096

// NewFake returns an empty Fake backend.
func NewFake() *Fake {
	return &Fake{jails: map[string]JailSpec{}, bans: map[banKey]Ban{}}
}

// Name implements Backend.
func (f *Fake) Name() string { return "fake" }

func (f *Fake) fail(call string) error {
	if len(f.calls) >= maxCalls {
		f.calls = append(f.calls[:0], f.calls[len(f.calls)-maxCalls/2:]...)
	}
	f.calls = append(f.calls, call)
	if err := f.FailNext; err != nil {
		f.FailNext = nil
		return err
	}
	return nil
}

// Setup implements Backend.
func (f *Fake) Setup(_ context.Context, jails []JailSpec) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.fail("setup"); err != nil {
		return err
	}
	for _, j := range jails {
		f.jails[j.Name] = j
	}
	return nil
}

// Add implements Backend.
func (f *Fake) Add(_ context.Context, bans []Ban) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.fail("add"); err != nil {
		return err
	}
	for _, b := range bans {
		f.bans[banKey{b.Jail, b.Prefix}] = b
	}
	return nil
}

// Remove implements Backend.
func (f *Fake) Remove(_ context.Context, bans []Ban) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.fail("remove"); err != nil {
		return err
	}
	for _, b := range bans {
		delete(f.bans, banKey{b.Jail, b.Prefix})
	}
	return nil
}

// List implements Backend; the result is sorted by jail, then prefix.
func (f *Fake) List(context.Context) ([]Ban, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]Ban, 0, len(f.bans))
	for _, b := range f.bans {
		out = append(out, b)
	}
	slices.SortFunc(out, func(a, b Ban) int {
		if c := strings.Compare(a.Jail, b.Jail); c != 0 {
			return c
		}
		return a.Prefix.Addr().Compare(b.Prefix.Addr())
	})
	return out, nil
}

// Teardown implements Backend.
func (f *Fake) Teardown(context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.fail("teardown"); err != nil {
		return err
	}
	f.jails = map[string]JailSpec{}
	f.bans = map[banKey]Ban{}
	return nil
}

// Jails returns the jail specs set up so far.
func (f *Fake) Jails() map[string]JailSpec {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make(map[string]JailSpec, len(f.jails))
	for k, v := range f.jails {
		out[k] = v
	}
	return out
}

// Calls returns the names of the calls made so far ("setup", "add", ...),
// at most the latest 4096.
func (f *Fake) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}
