package firewall

import (
	"context"
	"errors"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestMergePrefixes(t *testing.T) {
	in := []netip.Prefix{
		netip.MustParsePrefix("2001:db8:1::/48"),
		netip.MustParsePrefix("198.51.100.7/24"), // host bits cleared
		netip.MustParsePrefix("198.51.100.0/25"), // inside the /24
		netip.MustParsePrefix("192.0.2.0/24"),
		netip.MustParsePrefix("192.0.2.0/24"), // duplicate
		netip.MustParsePrefix("::ffff:203.0.113.0/120"),
		netip.MustParsePrefix("2001:db8::/32"), // contains the /48
		{},
	}
	want := []string{"192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32"}
	var got []string
	for _, p := range MergePrefixes(in) {
		got = append(got, p.String())
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("MergePrefixes (-want +got):\n%s", d)
	}
}

func TestLockStateSameAndFake(t *testing.T) {
	spec := LockSpec{
		Ranges: []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24"), netip.MustParsePrefix("192.0.2.0/24")},
		Ports:  []PortRange{{443, 443}, {80, 80}},
		Block:  Drop,
	}
	var f FakeLock
	ctx := context.Background()
	if st, _ := f.State(ctx); st.Same(spec) {
		t.Fatal("an empty lock is the same as a spec")
	}
	if err := f.Apply(ctx, spec); err != nil {
		t.Fatal(err)
	}
	st, _ := f.State(ctx)
	if !st.Same(spec) {
		t.Fatalf("applied lock differs: %+v", st)
	}
	for name, other := range map[string]LockSpec{
		"block":  {Ranges: spec.Ranges, Ports: spec.Ports, Block: Reject},
		"ports":  {Ranges: spec.Ranges, Ports: []PortRange{{80, 80}}, Block: Drop},
		"ranges": {Ranges: spec.Ranges[:1], Ports: spec.Ports, Block: Drop},
		"allow":  {Ranges: spec.Ranges, Allow: spec.Ranges[:1], Ports: spec.Ports, Block: Drop},
	} {
		if st.Same(other) {
			t.Errorf("%s: a different spec reads as the same", name)
		}
	}
	f.SetFail(ErrFakeLock)
	if err := f.Apply(ctx, spec); !errors.Is(err, ErrFakeLock) {
		t.Errorf("Apply with a failure set: %v", err)
	}
	f.SetFail(nil)
	f.Flush()
	if st, _ := f.State(ctx); st.Installed || f.Applies() != 1 {
		t.Errorf("after Flush: %+v, %d applies", st, f.Applies())
	}
}
