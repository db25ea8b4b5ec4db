package firewall

import (
	"context"
	"errors"
	"net/netip"
	"testing"
	"time"
)

func TestReconcile(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	p := func(s string) netip.Prefix { return netip.MustParsePrefix(s) }
	f := NewFake()
	ctx := context.Background()
	// Kernel state: one correct, one with a wrong expiry, one unwanted.
	if err := f.Add(ctx, []Ban{
		{Jail: "sshd", Prefix: p("192.0.2.1/32"), Expires: now.Add(time.Hour)},
		{Jail: "sshd", Prefix: p("192.0.2.2/32"), Expires: now.Add(time.Minute)},
		{Jail: "sshd", Prefix: p("192.0.2.3/32")},
	}); err != nil {
		t.Fatal(err)
	}
	want := []Ban{
		{Jail: "sshd", Prefix: p("192.0.2.1/32"), Expires: now.Add(time.Hour + time.Second)}, // within slack
		{Jail: "sshd", Prefix: p("192.0.2.2/32"), Expires: now.Add(time.Hour)},               // expiry differs
		{Jail: "sshd", Prefix: p("2001:db8::/64")},                                           // missing
		{Jail: "sshd", Prefix: p("198.51.100.1/32"), Expires: now.Add(-time.Second)},         // already over: ignored
	}
	added, removed, err := Reconcile(ctx, f, want, now)
	if err != nil {
		t.Fatal(err)
	}
	if added != 2 || removed != 1 {
		t.Errorf("Reconcile: added %d removed %d, want 2 and 1", added, removed)
	}
	got, _ := f.List(ctx)
	if len(got) != 3 {
		t.Fatalf("after Reconcile: %v", got)
	}
	for _, b := range got {
		if b.Prefix == p("192.0.2.2/32") && !b.Expires.Equal(now.Add(time.Hour)) {
			t.Errorf("192.0.2.2 expiry not refreshed: %v", b.Expires)
		}
	}
	// A second run has nothing to do.
	if added, removed, err := Reconcile(ctx, f, want, now); err != nil || added != 0 || removed != 0 {
		t.Errorf("second Reconcile: added %d removed %d err %v", added, removed, err)
	}
	// Backend errors are reported with the backend's name.
	f.FailNext = errors.New("boom")
	if _, _, err := Reconcile(ctx, f, append(want, Ban{Jail: "sshd", Prefix: p("203.0.113.1/32")}), now); err == nil {
		t.Error("Reconcile ignored a failing Add")
	}
}

func TestRestore(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	p := func(s string) netip.Prefix { return netip.MustParsePrefix(s) }
	f := NewFake()
	ctx := context.Background()
	if err := f.Add(ctx, []Ban{{Jail: "sshd", Prefix: p("192.0.2.1/32")}, {Jail: "old", Prefix: p("192.0.2.9/32")}}); err != nil {
		t.Fatal(err)
	}
	want := []Ban{
		{Jail: "sshd", Prefix: p("192.0.2.1/32"), Expires: now.Add(time.Hour)},
		{Jail: "sshd", Prefix: p("2001:db8::/64")},
		{Jail: "sshd", Prefix: p("198.51.100.1/32"), Expires: now.Add(-time.Second)},
	}
	enforced, removed, err := Restore(ctx, f, want, now)
	if err != nil || enforced != 2 || removed != 1 {
		t.Fatalf("Restore = %d, %d, %v; want 2, 1", enforced, removed, err)
	}
	got, _ := f.List(ctx)
	if len(got) != 2 || got[0].Jail != "sshd" || got[1].Jail != "sshd" {
		t.Errorf("after Restore: %v", got)
	}
	if calls := f.Calls(); calls[len(calls)-2] != "add" {
		t.Errorf("Restore did not add before removing: %v", calls)
	}
}
