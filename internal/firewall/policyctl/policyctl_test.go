package policyctl

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/palisade-project/palisade/internal/firewall"
	"github.com/palisade-project/palisade/internal/firewall/policy"
	"github.com/palisade-project/palisade/internal/firewall/policynft"
	"github.com/palisade-project/palisade/internal/harden/rollback"
)

type fakeKernel struct {
	applied []policy.Policy
	fail    error
	broken  error // what Installed reports
}

func (k *fakeKernel) Apply(_ context.Context, p policy.Policy) error {
	if k.fail != nil {
		return k.fail
	}
	k.applied = append(k.applied, p)
	return nil
}

func (k *fakeKernel) Installed(context.Context, policy.Policy) error { return k.broken }
func (k *fakeKernel) Stats(context.Context, policy.Policy) ([]policynft.LimitStats, error) {
	return nil, nil
}

func (k *fakeKernel) last() policy.Policy {
	if len(k.applied) == 0 {
		return policy.Policy{}
	}
	return k.applied[len(k.applied)-1]
}

var admin = netip.MustParseAddr("203.0.113.9")

type fixture struct {
	c        *Controller
	k        *fakeKernel
	watchers int
	conflict error
	now      time.Time
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	dir := t.TempDir()
	fx := &fixture{k: &fakeKernel{}, now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	fx.c = &Controller{
		Path:   filepath.Join(dir, "etc/palisade", policy.FileName),
		Names:  policy.Names{Services: firewall.Services{"ssh/tcp": 22}},
		Kernel: fx.k,
		Store:  NewStore(dir),
		Protect: func(context.Context) ([]policy.Endpoint, []string) {
			return []policy.Endpoint{{Port: 22, Why: "sshd port 22"}, {Source: netip.PrefixFrom(admin, 32), Port: 22, Why: "your SSH session"}}, nil
		},
		Conflict:     func(context.Context) error { return fx.conflict },
		StartWatcher: func(*rollback.State) (int, error) { fx.watchers++; return 0, nil },
		Now:          func() time.Time { return fx.now },
	}
	return fx
}

func (fx *fixture) file(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile(fx.c.Path)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func rule(t *testing.T, a policy.Action, s string) (policy.Rule, []string) {
	t.Helper()
	r, given, err := policy.ParseRule(a, strings.Fields(s), policy.Names{Services: firewall.Services{"ssh/tcp": 22}})
	if err != nil {
		t.Fatal(err)
	}
	return r, given
}

func TestEnableKeepsSSHAndWaitsForConfirmation(t *testing.T) {
	fx := newFixture(t)
	ctx := context.Background()
	res, err := fx.c.SetDefault(ctx, policy.DefaultDeny, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Pending != nil || res.Applied {
		t.Errorf("default deny while disabled: %+v", res)
	}
	res, err = fx.c.Enable(ctx, Options{ConfirmWithin: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Kept) != 1 || !strings.HasPrefix(res.Kept[0], "allow 22/tcp") {
		t.Errorf("kept %v", res.Kept)
	}
	if res.Pending == nil || !res.Pending.Deadline.Equal(fx.now.Add(time.Minute)) || fx.watchers != 1 {
		t.Errorf("pending %+v, watchers %d", res.Pending, fx.watchers)
	}
	p := fx.k.last()
	if !p.Enabled || len(p.Rules) != 1 || !p.Reach(policy.Endpoint{Source: netip.PrefixFrom(admin, 32), Port: 22}, nil).Reachable {
		t.Errorf("applied %+v", p)
	}
	if !strings.Contains(fx.file(t), "\nenable\n") || !strings.Contains(fx.file(t), "allow 22/tcp comment 'palisade: keeps sshd port 22 open'") {
		t.Errorf("file:\n%s", fx.file(t))
	}
	// A second risky change in the window joins the transaction.
	r, given := rule(t, policy.Limit, "22/tcp --conn 3")
	fx.now = fx.now.Add(30 * time.Second)
	res2, err := fx.c.Add(ctx, r, given, Options{ConfirmWithin: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if res2.Pending == nil || res2.Pending.ID != res.Pending.ID || !res2.Pending.Deadline.Equal(fx.now.Add(time.Minute)) {
		t.Errorf("second change: %+v (first %+v)", res2.Pending, res.Pending)
	}
	// The watcher rolls back to before the first change at the deadline.
	fx.now = fx.now.Add(2 * time.Minute)
	st, done, err := fx.c.Rollback(ctx, true, res.Pending.ID)
	if err != nil || !done {
		t.Fatalf("rollback: %v %v", done, err)
	}
	if !st.RolledBack || fx.k.last().Enabled {
		t.Errorf("after rollback: %+v applied %+v", st, fx.k.last())
	}
	if f := fx.file(t); strings.Contains(f, "\nenable\n") || strings.Contains(f, "allow 22/tcp") {
		t.Errorf("file after rollback:\n%s", f)
	}
}

func TestConfirmStopsTheRollback(t *testing.T) {
	fx := newFixture(t)
	ctx := context.Background()
	res, err := fx.c.Enable(ctx, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fx.c.Confirm(ctx); err != nil {
		t.Fatal(err)
	}
	fx.now = fx.now.Add(time.Hour)
	if _, done, err := fx.c.Rollback(ctx, true, res.Pending.ID); done || err != nil {
		t.Errorf("watcher after confirm: done %v err %v", done, err)
	}
	if _, err := fx.c.Confirm(ctx); err == nil {
		t.Error("confirming twice succeeded")
	}
	// Safe changes need no confirmation.
	r, given := rule(t, policy.Allow, "80/tcp")
	res, err = fx.c.Add(ctx, r, given, Options{})
	if err != nil || res.Pending != nil || !res.Applied || res.Message != "Rule 2 added" {
		t.Errorf("allow: %+v %v", res, err)
	}
	res, err = fx.c.Add(ctx, r, given, Options{})
	if err != nil || res.Changed || res.Message != "Skipping adding existing rule" {
		t.Errorf("allow again: %+v %v", res, err)
	}
	// Deleting an allow rule is not safe.
	res, err = fx.c.DeleteNumber(ctx, 2, Options{})
	if err != nil || res.Pending == nil {
		t.Errorf("delete allow: %+v %v", res, err)
	}
}

func TestRefusesLockout(t *testing.T) {
	fx := newFixture(t)
	ctx := context.Background()
	if _, err := fx.c.Enable(ctx, Options{}); err != nil {
		t.Fatal(err)
	}
	before := fx.file(t)
	applied := len(fx.k.applied)
	// deny 22/tcp updates "allow 22/tcp" in place: SSH would be closed.
	r, given := rule(t, policy.Deny, "22/tcp")
	_, err := fx.c.Add(ctx, r, given, Options{})
	var re *RefusedError
	if !errors.As(err, &re) || !strings.Contains(err.Error(), "shut out SSH") {
		t.Errorf("deny 22/tcp: %v", err)
	}
	if _, err := fx.c.DeleteNumber(ctx, 1, Options{}); err == nil {
		t.Error("deleting the only SSH rule was accepted")
	}
	if fx.file(t) != before || len(fx.k.applied) != applied {
		t.Error("a refused change wrote or applied something")
	}
	// After the allow rule, a deny for the admin's network is harmless.
	r, given = rule(t, policy.Deny, "from 203.0.113.0/24")
	if _, err := fx.c.Add(ctx, r, given, Options{}); err != nil {
		t.Errorf("deny after allow 22/tcp: %v", err)
	}
	// With default allow and no SSH rule, it is not.
	fxa := newFixture(t)
	if _, err := fxa.c.SetDefault(ctx, policy.DefaultAllow, Options{}); err != nil {
		t.Fatal(err)
	}
	if _, err := fxa.c.Enable(ctx, Options{}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		a    policy.Action
		rule string
	}{
		{policy.Reject, "from 203.0.113.0/24"},
		{policy.Deny, "from 203.0.113.9 to any port 22 proto tcp"},
		{policy.Deny, "in on eth0 to any port 22"},
	} {
		r, given := rule(t, tc.a, tc.rule)
		_, err := fxa.c.Add(ctx, r, given, Options{})
		if !errors.As(err, &re) || !strings.Contains(err.Error(), "your SSH session") {
			t.Errorf("%s %s: %v", tc.a, tc.rule, err)
		}
	}
	if _, err := fxa.c.SetDefault(ctx, policy.DefaultDeny, Options{}); err != nil {
		t.Errorf("default deny (keeps SSH by adding a rule): %v", err)
	}
	// --force does it.
	r, given = rule(t, policy.Deny, "22/tcp")
	if _, err := fx.c.Add(ctx, r, given, Options{Force: true}); err != nil {
		t.Fatal(err)
	}
	// An explicit rule that shuts SSH out is not overridden by enable.
	fx2 := newFixture(t)
	r, given = rule(t, policy.Deny, "22/tcp")
	if _, err := fx2.c.Add(ctx, r, given, Options{}); err != nil {
		t.Fatal(err)
	}
	if _, err := fx2.c.Enable(ctx, Options{}); err == nil || !strings.Contains(err.Error(), "rule 1 (deny 22/tcp) refuses it") {
		t.Errorf("enable over deny 22/tcp: %v", err)
	}
}

func TestFailedApplyLeavesTheFile(t *testing.T) {
	fx := newFixture(t)
	ctx := context.Background()
	if _, err := fx.c.Enable(ctx, Options{}); err != nil {
		t.Fatal(err)
	}
	if _, err := fx.c.Confirm(ctx); err != nil {
		t.Fatal(err)
	}
	before := fx.file(t)
	fx.k.fail = errors.New("kernel says no")
	r, given := rule(t, policy.Limit, "22/tcp")
	if _, err := fx.c.Add(ctx, r, given, Options{}); err == nil || !strings.Contains(err.Error(), "kernel says no") {
		t.Fatalf("error %v", err)
	}
	if fx.file(t) != before {
		t.Errorf("file changed:\n%s", fx.file(t))
	}
	st, _ := fx.c.Store.Load()
	if st.Pending() {
		t.Error("a failed change left a pending transaction")
	}
	// Without a rollback watcher a risky change is undone.
	fx.k.fail = nil
	fx.c.StartWatcher = func(*rollback.State) (int, error) { return 0, errors.New("no exec") }
	if _, err := fx.c.Add(ctx, r, given, Options{}); err == nil || !strings.Contains(err.Error(), "without an automatic rollback") {
		t.Fatalf("error %v", err)
	}
	if fx.file(t) != before || fx.k.last().Rules[0].Action != policy.Allow {
		t.Errorf("not undone:\n%s", fx.file(t))
	}
}

func TestConflictAndDryRun(t *testing.T) {
	fx := newFixture(t)
	ctx := context.Background()
	fx.conflict = errors.New("ufw is active: ... palisade firewall import ufw, then ufw disable")
	if _, err := fx.c.Enable(ctx, Options{}); err == nil || !strings.Contains(err.Error(), "import ufw") {
		t.Errorf("enable with ufw: %v", err)
	}
	if _, err := os.Stat(fx.c.Path); err == nil {
		t.Error("refused enable wrote the file")
	}
	res, err := fx.c.Enable(ctx, Options{Force: true})
	if err != nil || len(res.Warnings) == 0 {
		t.Errorf("forced: %+v %v", res, err)
	}
	fx.conflict = nil
	before := fx.file(t)
	n := len(fx.k.applied)
	r, given := rule(t, policy.Deny, "25/tcp")
	res, err = fx.c.Add(ctx, r, given, Options{DryRun: true})
	if err != nil || !res.DryRun || !strings.Contains(res.Diff, "+deny 25/tcp") {
		t.Errorf("dry run: %+v %v", res, err)
	}
	if fx.file(t) != before || len(fx.k.applied) != n {
		t.Error("dry run changed something")
	}
}

func TestBadFileAndRecoveryAtBoot(t *testing.T) {
	fx := newFixture(t)
	ctx := context.Background()
	if err := os.MkdirAll(filepath.Dir(fx.c.Path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(fx.c.Path, []byte("enable\nallow 99999\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := fx.c.ApplyFile(ctx, true)
	var ue *UsageError
	if !errors.As(err, &ue) || !strings.Contains(err.Error(), "firewall.rules:2") {
		t.Errorf("bad file: %v", err)
	}
	if err := os.WriteFile(fx.c.Path, []byte("disable\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	res, err := fx.c.Enable(ctx, Options{})
	if err != nil {
		t.Fatal(err)
	}
	// The host reboots inside the window: no watcher; the boot-time apply
	// rolls back first.
	out, err := fx.c.ApplyFile(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	if out.RolledBack != res.Pending.ID || out.Policy.Enabled || fx.k.last().Enabled || fx.file(t) != "disable\n" {
		t.Errorf("boot apply: %+v, file %q", out, fx.file(t))
	}
	// Without recovery (the daemon) the file is applied as it is.
	if _, err := fx.c.Enable(ctx, Options{}); err != nil {
		t.Fatal(err)
	}
	out, err = fx.c.ApplyFile(ctx, false)
	if err != nil || out.RolledBack != "" || !out.Policy.Enabled {
		t.Errorf("daemon apply: %+v %v", out, err)
	}
}

func TestResetAndStatus(t *testing.T) {
	fx := newFixture(t)
	ctx := context.Background()
	r, given := rule(t, policy.Limit, "22/tcp --conn 2 --rate 1/1s")
	if _, err := fx.c.Add(ctx, r, given, Options{}); err != nil {
		t.Fatal(err)
	}
	r, given = rule(t, policy.Allow, "from 198.51.100.0/24 to any port 8080 proto tcp")
	if _, err := fx.c.Add(ctx, r, given, Options{}); err != nil {
		t.Fatal(err)
	}
	st, err := fx.c.Status(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	if st.Enabled || len(st.Rules) != 2 || st.Rules[0].To != "22/tcp" || st.Rules[0].From != "Anywhere" ||
		st.Rules[1].To != "8080/tcp" || st.Rules[1].From != "198.51.100.0/24" {
		t.Errorf("status %+v", st)
	}
	if l := st.Rules[0].Limit; l == nil || l.Conn != 2 || l.Rate != "1/1s" || l.Mode != "penalty" || l.Block != "drop" || l.Size != policy.DefaultSetSize {
		t.Errorf("limit %+v", st.Rules[0].Limit)
	}
	res, err := fx.c.Reset(ctx, Options{})
	if err != nil {
		t.Fatal(err)
	}
	saved, err := os.ReadFile(res.Backup)
	if err != nil || !strings.Contains(string(saved), "limit 22/tcp") {
		t.Errorf("backup %s: %v", res.Backup, err)
	}
	if strings.Contains(fx.file(t), "limit 22/tcp") {
		t.Error("reset kept rules")
	}
}

// Repair re-installs what was last installed, not a hand edit of the file.
func TestRepairReinstallsTheAppliedPolicy(t *testing.T) {
	fx := newFixture(t)
	ctx := context.Background()
	if damage, _, err := fx.c.Repair(ctx, time.Second); damage != "" || err != nil {
		t.Errorf("nothing installed yet: %q %v", damage, err)
	}
	if _, err := fx.c.Enable(ctx, Options{}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(fx.c.Path, []byte("enable\ndefault allow\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	n := len(fx.k.applied)
	if damage, _, err := fx.c.Repair(ctx, time.Second); damage != "" || err != nil || len(fx.k.applied) != n {
		t.Errorf("intact kernel: %q %v", damage, err)
	}
	fx.k.broken = errors.New("table inet palisade is missing")
	damage, busy, err := fx.c.Repair(ctx, time.Second)
	if damage == "" || busy || err != nil || len(fx.k.applied) != n+1 {
		t.Fatalf("repair: %q %v %v", damage, busy, err)
	}
	if p := fx.k.last(); p.Default != policy.DefaultDeny || len(p.Rules) != 1 {
		t.Errorf("repaired with %+v, want the applied policy (deny, allow 22/tcp)", p)
	}
	// A command holding the lock: Repair steps aside.
	unlock, err := fx.c.Store.Lock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	if _, busy, err := fx.c.Repair(ctx, 100*time.Millisecond); !busy || err != nil {
		t.Errorf("locked: busy %v err %v", busy, err)
	}
}
