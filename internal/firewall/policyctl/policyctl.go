// Package policyctl runs the `palisade firewall` commands: it edits the
// policy file (firewall.rules) under a lock, keeps the admin's SSH access
// reachable, applies the result to the kernel in one transaction, and puts
// every change that could cut access under the confirm/rollback machinery
// of internal/harden/rollback (a detached watcher restores the previous
// file and policy unless `palisade firewall confirm` runs in time).
//
// Who writes the kernel: whoever changes the file applies it, the command
// line tool itself, holding the policy lock; the daemon only re-installs
// the same file, under the same lock, when the table vanished behind its
// back. Both read the file at the moment they apply, so they never
// disagree about what the policy is, whether a daemon runs or not.
package policyctl

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/palisade-project/palisade/internal/firewall"
	"github.com/palisade-project/palisade/internal/firewall/policy"
	"github.com/palisade-project/palisade/internal/firewall/policynft"
	"github.com/palisade-project/palisade/internal/harden/fsx"
	"github.com/palisade-project/palisade/internal/harden/rollback"
)

// StateDir is where firewall transactions are kept (root-prefixed): the
// same layout as internal/harden/rollback's, in its own directory so that
// SSH and firewall changes are confirmed independently.
const StateDir = "/var/lib/palisade/firewall"

// AppliedFile, in the state directory, is the policy file as last
// installed in the kernel: the daemon re-installs that one when the table
// vanishes (a hand edit of firewall.rules takes effect with palisade
// firewall apply, never behind the admin's back).
const AppliedFile = "applied.rules"

// DefaultConfirmWithin is how long a change waits for confirmation.
const DefaultConfirmWithin = 2 * time.Minute

// Kernel installs policies (policynft.Kernel).
type Kernel interface {
	Apply(ctx context.Context, p policy.Policy) error
	Installed(ctx context.Context, p policy.Policy) error
	Stats(ctx context.Context, p policy.Policy) ([]policynft.LimitStats, error)
}

// Controller runs firewall commands against one policy file.
type Controller struct {
	// Path is the policy file (CONFIGDIR/firewall.rules).
	Path  string
	Names policy.Names
	// Kernel applies policies.
	Kernel Kernel
	// Store holds transactions and the lock (NewStore).
	Store *rollback.Store
	// Root is the --root the commands run under (recorded in transactions).
	Root string
	// Protect lists what must stay reachable (the admin's SSH access) and
	// warnings about what could not be found out; nil protects nothing.
	Protect func(ctx context.Context) ([]policy.Endpoint, []string)
	// Open reports ports opened outside the policy (the hardening "allow"
	// chain); nil means none.
	Open func(port uint16) bool
	// Conflict returns an error when another firewall manager (ufw,
	// firewalld) is active; nil when it is not or cannot be told.
	Conflict func(ctx context.Context) error
	// StartWatcher starts the detached rollback watcher for a transaction
	// and returns its pid.
	StartWatcher func(st *rollback.State) (int, error)
	// Now is the clock (time.Now).
	Now func() time.Time
}

// NewStore returns the transaction store under root.
func NewStore(root string) *rollback.Store { return &rollback.Store{Dir: fsx.Path(root, StateDir)} }

// LoadNames reads /etc/services (under root, else the host's) for service
// names in rules; without one, only port numbers are understood.
func LoadNames(root string) policy.Names {
	for _, p := range []string{fsx.Path(root, "/etc/services"), "/etc/services"} {
		if s, err := firewall.LoadServices(p); err == nil {
			return policy.Names{Services: s}
		}
	}
	return policy.Names{}
}

func (c *Controller) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

// UsageError is bad input (exit 2): a malformed rule, a policy file that
// does not parse, a rule number that does not exist.
type UsageError struct{ Err error }

func (e *UsageError) Error() string { return e.Err.Error() }
func (e *UsageError) Unwrap() error { return e.Err }

// RefusedError is a change refused before anything was written (exit 1):
// it would shut the admin out, or another firewall manager is active.
type RefusedError struct{ Err error }

func (e *RefusedError) Error() string { return e.Err.Error() }
func (e *RefusedError) Unwrap() error { return e.Err }

// Load reads the policy file; a missing file is a fresh, disabled policy
// (exists false). A file that does not parse is a *UsageError.
func (c *Controller) Load() (*policy.File, []byte, bool, error) {
	data, err := fsx.ReadFile(c.Path)
	if errors.Is(err, os.ErrNotExist) {
		return policy.NewFile(c.Path), nil, false, nil
	}
	if err != nil {
		return nil, nil, false, fmt.Errorf("read %s: %w", c.Path, err)
	}
	f, err := policy.Parse(c.Path, data, c.Names)
	if err != nil {
		return nil, nil, true, &UsageError{Err: fmt.Errorf("%w\n(fix %s, then run palisade firewall apply)", err, c.Path)}
	}
	return f, data, true, nil
}

// Options of a changing command.
type Options struct {
	// Force skips the lockout protection and the ufw/firewalld check.
	Force bool
	// DryRun shows the change and writes nothing.
	DryRun bool
	// ConfirmWithin is the confirmation window (DefaultConfirmWithin).
	ConfirmWithin time.Duration
}

// Pending is a change waiting for confirmation.
type Pending struct {
	ID       string    `json:"id"`
	Deadline time.Time `json:"deadline"`
}

// Result says what a command did.
type Result struct {
	// Message is ufw's wording of the outcome ("Rule added").
	Message string `json:"message"`
	// Changed says whether the policy file changed.
	Changed bool `json:"changed"`
	// Diff of the policy file.
	Diff string `json:"diff,omitempty"`
	// Kept are the rules added to keep SSH reachable.
	Kept []string `json:"kept,omitempty"`
	// Warnings about the lockout protection and the change.
	Warnings []string `json:"warnings,omitempty"`
	// Applied says whether the kernel was updated.
	Applied bool `json:"applied"`
	// Pending is set when the change waits for confirmation.
	Pending *Pending `json:"pending,omitempty"`
	DryRun  bool     `json:"dry_run,omitempty"`
	// Backup is where a replaced file was saved (reset, import).
	Backup string `json:"backup,omitempty"`
}

// edit is one change of the policy file.
type edit struct {
	// apply changes f and returns the outcome message.
	apply func(f *policy.File) (string, error)
	// keep adds the rules that keep SSH reachable instead of refusing
	// (enable, default).
	keep bool
	// safe edits cannot cut access (adding an allow rule, deleting a deny
	// rule, disabling): no confirmation needed.
	safe func(before, after policy.Policy) bool
	// backup saves the old file beside it first (reset, import).
	backup bool
}

// Enable turns the policy on.
func (c *Controller) Enable(ctx context.Context, o Options) (*Result, error) {
	return c.change(ctx, o, edit{keep: true, apply: func(f *policy.File) (string, error) {
		if !f.SetEnabled(true) {
			return "Firewall policy is already enabled", nil
		}
		return "Firewall policy is active and enabled on system startup", nil
	}})
}

// Disable turns the policy off (bans stay in force).
func (c *Controller) Disable(ctx context.Context, o Options) (*Result, error) {
	return c.change(ctx, o, edit{safe: always, apply: func(f *policy.File) (string, error) {
		if !f.SetEnabled(false) {
			return "Firewall policy is already disabled", nil
		}
		return "Firewall policy stopped and disabled on system startup", nil
	}})
}

func always(policy.Policy, policy.Policy) bool { return true }

// SetDefault sets the default incoming policy.
func (c *Controller) SetDefault(ctx context.Context, d policy.Default, o Options) (*Result, error) {
	return c.change(ctx, o, edit{keep: true,
		safe: func(_, after policy.Policy) bool { return after.Default == policy.DefaultAllow },
		apply: func(f *policy.File) (string, error) {
			f.SetDefault(d)
			return fmt.Sprintf("Default incoming policy changed to '%s'\n(be sure to update your rules accordingly)", d), nil
		}})
}

// Add adds (or updates, the way ufw does) a rule.
func (c *Controller) Add(ctx context.Context, r policy.Rule, given []string, o Options) (*Result, error) {
	return c.change(ctx, o, edit{
		safe: func(_, _ policy.Policy) bool { return r.Action == policy.Allow },
		apply: func(f *policy.File) (string, error) {
			out, n := f.Add(r, given)
			switch out {
			case policy.Exists:
				return "Skipping adding existing rule", nil
			case policy.Updated:
				return fmt.Sprintf("Rule %d updated", n), nil
			}
			return fmt.Sprintf("Rule %d added", n), nil
		}})
}

// DeleteNumber deletes rule number n.
func (c *Controller) DeleteNumber(ctx context.Context, n int, o Options) (*Result, error) {
	var deleted policy.Rule
	return c.change(ctx, o, edit{
		safe: func(_, _ policy.Policy) bool { return deleted.Action == policy.Deny || deleted.Action == policy.Reject },
		apply: func(f *policy.File) (string, error) {
			r, err := f.DeleteNumber(n)
			if err != nil {
				return "", &UsageError{Err: err}
			}
			deleted = r
			return fmt.Sprintf("Rule %d deleted: %s", n, r), nil
		}})
}

// Delete deletes the rule with r's action and match.
func (c *Controller) Delete(ctx context.Context, r policy.Rule, given []string, o Options) (*Result, error) {
	return c.change(ctx, o, edit{
		safe: func(_, _ policy.Policy) bool { return r.Action == policy.Deny || r.Action == policy.Reject },
		apply: func(f *policy.File) (string, error) {
			n, err := f.Delete(r, given)
			if err != nil {
				return "", &UsageError{Err: err}
			}
			return fmt.Sprintf("Rule %d deleted", n), nil
		}})
}

// Reset disables the policy and removes every rule (the old file is saved
// beside it).
func (c *Controller) Reset(ctx context.Context, o Options) (*Result, error) {
	return c.change(ctx, o, edit{safe: always, backup: true, apply: func(f *policy.File) (string, error) {
		*f = *policy.NewFile(c.Path)
		return "Firewall policy reset to installed defaults (disabled, no rules)", nil
	}})
}

// Import replaces the policy's rules and default with ufw's; the enabled
// state is kept. The old file is saved beside it.
func (c *Controller) Import(ctx context.Context, imp *policy.Import, o Options) (*Result, error) {
	res, err := c.change(ctx, o, edit{backup: true, apply: func(f *policy.File) (string, error) {
		note := fmt.Sprintf("imported from ufw (%s) on %s", strings.Join(imp.Files, ", "), c.now().UTC().Format(time.RFC3339))
		*f = *imp.File(c.Path, f.Policy().Enabled, note)
		return fmt.Sprintf("Imported %d rules and the default incoming policy (%s) from ufw", len(imp.Rules), imp.Default), nil
	}})
	if res != nil {
		res.Warnings = append(imp.Warnings, res.Warnings...)
	}
	return res, err
}

// change runs one edit: lock, read, edit, protect, write, apply, and put a
// risky change under confirmation.
func (c *Controller) change(ctx context.Context, o Options, e edit) (*Result, error) {
	if o.ConfirmWithin <= 0 {
		o.ConfirmWithin = DefaultConfirmWithin
	}
	unlock, err := c.Store.Lock(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	f, oldData, existed, err := c.Load()
	if err != nil {
		return nil, err
	}
	before := f.Policy()
	g := f.Clone()
	res := &Result{DryRun: o.DryRun}
	if res.Message, err = e.apply(g); err != nil {
		return nil, err
	}
	after := g.Policy()
	if after.Enabled && !before.Enabled && c.Conflict != nil {
		if err := c.Conflict(ctx); err != nil {
			if !o.Force {
				return nil, &RefusedError{Err: err}
			}
			res.Warnings = append(res.Warnings, "forced: "+err.Error())
		}
	}
	if after.Enabled && !o.Force && c.Protect != nil {
		eps, warns := c.Protect(ctx)
		res.Warnings = append(res.Warnings, warns...)
		var cuts []policy.Cut
		if e.keep {
			var added []policy.Rule
			added, cuts = policy.Keep(g, eps, c.Open)
			for _, r := range added {
				res.Kept = append(res.Kept, r.String())
			}
			after = g.Policy()
		} else {
			cuts = policy.NewCuts(before, after, eps, c.Open)
		}
		if len(cuts) > 0 {
			var b strings.Builder
			b.WriteString("refusing: the change would shut out SSH access:")
			for _, cut := range cuts {
				b.WriteString("\n  " + cut.String())
			}
			b.WriteString("\nfix the rules (palisade firewall status numbered), or use --force if you are sure")
			return nil, &RefusedError{Err: errors.New(b.String())}
		}
	}
	newData := g.Bytes()
	if existed && bytes.Equal(newData, oldData) {
		return res, nil
	}
	res.Changed = true
	res.Diff = fsx.Diff(c.Path, oldData, newData)
	if o.DryRun {
		return res, nil
	}
	kernel := before.Enabled || after.Enabled
	risky := kernel && after.Enabled && (e.safe == nil || !e.safe(before, after))
	var st *rollback.State
	newTx := false
	if risky {
		if st, newTx, err = c.begin(o.ConfirmWithin); err != nil {
			return nil, err
		}
	}
	if e.backup && existed {
		res.Backup = c.Path + "." + c.now().UTC().Format("20060102_150405")
		if err := fsx.WriteAtomic(res.Backup, oldData, 0o644); err != nil {
			return nil, c.abandon(st, newTx, err)
		}
	}
	if err := os.MkdirAll(filepath.Dir(c.Path), 0o755); err != nil {
		return nil, c.abandon(st, newTx, err)
	}
	if err := fsx.WriteAtomic(c.Path, newData, 0o644); err != nil {
		return nil, c.abandon(st, newTx, err)
	}
	if kernel {
		if err := c.install(ctx, after, newData); err != nil {
			// The kernel kept the old policy: put the file back.
			return nil, c.abandon(st, newTx, c.restore(oldData, existed, err))
		}
		res.Applied = true
	}
	if risky {
		if err := c.watch(st, newTx); err != nil {
			// No automatic rollback possible: undo now.
			err = c.restore(oldData, existed, err)
			_ = c.install(ctx, before, f.Bytes())
			return nil, c.abandon(st, newTx, fmt.Errorf("refusing to change the firewall without an automatic rollback: %w", err))
		}
		res.Pending = &Pending{ID: st.ID, Deadline: st.Deadline}
	}
	return res, nil
}

// restore writes the old file back after a failed step and returns cause.
func (c *Controller) restore(old []byte, existed bool, cause error) error {
	var err error
	if existed {
		err = fsx.WriteAtomic(c.Path, old, 0o644)
	} else {
		err = os.Remove(c.Path)
	}
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("%w; restoring %s also failed: %v", cause, c.Path, err)
	}
	return cause
}

// begin opens a transaction for a risky change, or extends the pending
// one (its backup stays the last confirmed file: a rollback goes back
// there). The state is saved before anything changes, so that a crash
// part-way is rolled back at boot.
func (c *Controller) begin(within time.Duration) (*rollback.State, bool, error) {
	st, err := c.Store.Load()
	if err != nil {
		return nil, false, err
	}
	now := c.now()
	if st != nil && st.Pending() && st.Kind == "firewall" {
		st.Deadline = now.Add(within)
		return st, false, c.Store.Save(st)
	}
	st, err = c.Store.Begin("firewall", c.Root, []string{c.Path}, within, now)
	if err != nil {
		return nil, false, err
	}
	if err := c.Store.Save(st); err != nil {
		c.Store.Discard(st)
		return nil, false, err
	}
	return st, true, nil
}

// abandon marks a transaction opened by this change as never in force.
func (c *Controller) abandon(st *rollback.State, newTx bool, cause error) error {
	if st != nil && newTx {
		st.RolledBack = true
		_ = c.Store.Save(st)
		c.Store.Discard(st)
	}
	return cause
}

// watch makes sure a watcher runs for st.
func (c *Controller) watch(st *rollback.State, newTx bool) error {
	if !newTx && WatcherAlive(c.Store, st) {
		return c.Store.Save(st)
	}
	if c.StartWatcher == nil {
		return errors.New("no rollback watcher")
	}
	pid, err := c.StartWatcher(st)
	if err != nil {
		return fmt.Errorf("start the rollback watcher: %w", err)
	}
	st.WatcherPID = pid
	return c.Store.Save(st)
}

// WatcherAlive reports whether st's watcher process still runs.
func WatcherAlive(s *rollback.Store, st *rollback.State) bool {
	if st.WatcherPID <= 0 {
		return false
	}
	cmdline, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(st.WatcherPID), "cmdline"))
	return err == nil && bytes.Contains(cmdline, []byte("--if-unconfirmed")) && bytes.Contains(cmdline, []byte(s.StatePath()))
}

// Confirm keeps the pending change.
func (c *Controller) Confirm(ctx context.Context) (*rollback.State, error) {
	unlock, err := c.Store.Lock(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	st, err := c.Store.Load()
	if err != nil {
		return nil, err
	}
	if st == nil || !st.Pending() {
		if st != nil && st.RolledBack {
			return nil, fmt.Errorf("nothing to confirm: change %s was already rolled back", st.ID)
		}
		return nil, errors.New("nothing to confirm: no firewall change is waiting")
	}
	st.Confirmed = true
	if err := c.Store.Save(st); err != nil {
		return nil, err
	}
	c.Store.StopWatcher(st)
	return st, nil
}

// Rollback restores the policy file of the last change and applies it.
// With ifUnconfirmed (the watcher) it first waits for change id's deadline
// (which a later change in the same window extends) and does nothing when
// the change was confirmed or replaced.
func (c *Controller) Rollback(ctx context.Context, ifUnconfirmed bool, id string) (*rollback.State, bool, error) {
	for {
		if ifUnconfirmed {
			due, err := c.Store.WaitUnconfirmed(ctx, id, 100*time.Millisecond, c.now)
			if err != nil || !due {
				return nil, false, err
			}
		}
		st, done, again, err := c.rollbackOnce(ctx, ifUnconfirmed, id)
		if !again {
			return st, done, err
		}
	}
}

func (c *Controller) rollbackOnce(ctx context.Context, ifUnconfirmed bool, id string) (*rollback.State, bool, bool, error) {
	unlock, err := c.Store.Lock(ctx)
	if err != nil {
		return nil, false, false, err
	}
	defer unlock()
	st, err := c.Store.Load()
	if err != nil {
		return nil, false, false, err
	}
	if st == nil {
		return nil, false, false, errors.New("nothing to roll back: no firewall change recorded")
	}
	if ifUnconfirmed {
		if st.ID != id || !st.Pending() {
			return st, false, false, nil
		}
		if c.now().Before(st.Deadline) {
			return st, false, true, nil // extended meanwhile: wait again
		}
	}
	if st.RolledBack {
		return st, false, false, fmt.Errorf("change %s was already rolled back", st.ID)
	}
	if !ifUnconfirmed {
		c.Store.StopWatcher(st)
	}
	return st, true, false, c.rollbackLocked(ctx, st)
}

func (c *Controller) rollbackLocked(ctx context.Context, st *rollback.State) error {
	var errs []error
	if err := rollback.Restore(st); err != nil {
		errs = append(errs, err)
	}
	st.RolledBack = true
	if err := c.Store.Save(st); err != nil {
		errs = append(errs, err)
	}
	f, _, _, err := c.Load()
	if err == nil {
		err = c.install(ctx, f.Policy(), f.Bytes())
	}
	if err != nil {
		errs = append(errs, fmt.Errorf("apply the restored policy: %w", err))
	}
	return errors.Join(errs...)
}

// install applies p and records data (its file) as the policy in force.
func (c *Controller) install(ctx context.Context, p policy.Policy, data []byte) error {
	if err := c.Kernel.Apply(ctx, p); err != nil {
		return err
	}
	if err := os.MkdirAll(c.Store.Dir, 0o700); err != nil {
		return err
	}
	return fsx.WriteAtomic(filepath.Join(c.Store.Dir, AppliedFile), data, 0o600)
}

// Repair re-installs the policy last installed (AppliedFile) when the
// kernel no longer holds it, as after "nft flush ruleset". It reports what
// was wrong ("" when the kernel was intact). When a command holds the lock
// longer than wait, it does nothing and reports busy: that command leaves
// the kernel consistent, and the caller checks again later.
func (c *Controller) Repair(ctx context.Context, wait time.Duration) (damage string, busy bool, err error) {
	lctx, cancel := context.WithTimeout(ctx, wait)
	unlock, err := c.Store.Lock(lctx)
	cancel()
	if err != nil {
		if ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
			return "", true, nil
		}
		return "", false, err
	}
	defer unlock()
	data, err := fsx.ReadFile(filepath.Join(c.Store.Dir, AppliedFile))
	if errors.Is(err, os.ErrNotExist) {
		return "", false, nil // nothing installed yet
	}
	if err != nil {
		return "", false, err
	}
	f, err := policy.Parse(c.Path, data, c.Names)
	if err != nil {
		return "", false, fmt.Errorf("the recorded policy %s: %w", AppliedFile, err)
	}
	p := f.Policy()
	ierr := c.Kernel.Installed(ctx, p)
	if ierr == nil {
		return "", false, nil
	}
	return ierr.Error(), false, c.Kernel.Apply(ctx, p)
}

// ApplyResult says what ApplyFile did.
type ApplyResult struct {
	// RolledBack is the id of an unconfirmed change found without its
	// watcher (the host rebooted inside the window), rolled back first.
	RolledBack string
	Policy     policy.Policy
	Exists     bool
}

// ApplyFile installs the policy file as it is (boot, daemon start, after a
// hand edit). With recover, an unconfirmed change whose watcher is gone
// (a reboot inside its window) is rolled back first: the admin may have
// rebooted because the change locked them out.
func (c *Controller) ApplyFile(ctx context.Context, recover bool) (*ApplyResult, error) {
	unlock, err := c.Store.Lock(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	res := &ApplyResult{}
	if recover {
		st, err := c.Store.Load()
		if err != nil {
			return nil, err
		}
		if st != nil && st.Pending() && !WatcherAlive(c.Store, st) {
			if err := rollback.Restore(st); err != nil {
				return nil, fmt.Errorf("roll back unconfirmed change %s: %w", st.ID, err)
			}
			st.RolledBack = true
			if err := c.Store.Save(st); err != nil {
				return nil, err
			}
			res.RolledBack = st.ID
		}
	}
	f, _, exists, err := c.Load()
	if err != nil {
		return nil, err
	}
	res.Policy, res.Exists = f.Policy(), exists
	return res, c.install(ctx, res.Policy, f.Bytes())
}

// Status is the policy and its state in the kernel.
type Status struct {
	File    string `json:"file"`
	Exists  bool   `json:"exists"`
	Enabled bool   `json:"enabled"`
	// Default is the incoming default; outgoing is always allowed.
	Default  string       `json:"default_incoming"`
	Outgoing string       `json:"default_outgoing"`
	Rules    []RuleStatus `json:"rules"`
	// Installed says whether the kernel holds the policy as the file says
	// (InstallError says what differs).
	Installed    bool                   `json:"installed"`
	InstallError string                 `json:"install_error,omitempty"`
	Limits       []policynft.LimitStats `json:"limits,omitempty"`
	Pending      *Pending               `json:"pending,omitempty"`
	// Conflict names an active ufw or firewalld.
	Conflict string   `json:"conflict,omitempty"`
	Warnings []string `json:"warnings,omitempty"`
}

// RuleStatus is one rule in Status.
type RuleStatus struct {
	Number  int        `json:"number"`
	Rule    string     `json:"rule"`
	Action  string     `json:"action"`
	To      string     `json:"to"`
	From    string     `json:"from"`
	Iface   string     `json:"interface,omitempty"`
	Comment string     `json:"comment,omitempty"`
	Limit   *LimitJSON `json:"limit,omitempty"`
}

// LimitJSON is a limit rule's effective limits in Status.
type LimitJSON struct {
	Conn     int    `json:"conn,omitempty"`
	Mask     int    `json:"mask"`
	Mask6    int    `json:"mask6"`
	Rate     string `json:"rate,omitempty"`
	Mode     string `json:"mode,omitempty"`
	Block    string `json:"block"`
	Size     int    `json:"size"`
	Backstop string `json:"backstop"`
}

// Status reads the policy file and the kernel. With stats it also counts
// the limit sets' entries (slow for big sets).
func (c *Controller) Status(ctx context.Context, stats bool) (*Status, error) {
	f, _, exists, err := c.Load()
	if err != nil {
		return nil, err
	}
	p := f.Policy()
	st := &Status{File: c.Path, Exists: exists, Enabled: p.Enabled, Default: string(p.Default), Outgoing: "allow", Rules: []RuleStatus{}}
	for i, r := range p.Rules {
		rs := RuleStatus{Number: i + 1, Rule: r.String(), Action: string(r.Action), To: To(r), From: From(r), Iface: r.Iface, Comment: r.Comment}
		if r.Action == policy.Limit {
			l := r.Limit.Effective()
			lj := &LimitJSON{Conn: l.Conn, Mask: l.Mask4, Mask6: l.Mask6, Size: l.Size, Block: string(r.Block()), Backstop: policy.FormatRate(l.Backstop, l.BackstopPer)}
			if l.Rate > 0 {
				lj.Rate, lj.Mode = policy.FormatRate(l.Rate, l.Per), string(l.Mode)
			}
			if lj.Block == string(policy.Deny) {
				lj.Block = "drop"
			}
			rs.Limit = lj
		}
		st.Rules = append(st.Rules, rs)
	}
	if err := c.Kernel.Installed(ctx, p); err != nil {
		st.InstallError = err.Error()
	} else {
		st.Installed = true
	}
	if stats && p.Enabled && st.Installed {
		if st.Limits, err = c.Kernel.Stats(ctx, p); err != nil {
			st.Warnings = append(st.Warnings, "limit sets: "+err.Error())
		}
	}
	if tx, err := c.Store.Load(); err == nil && tx != nil && tx.Pending() {
		st.Pending = &Pending{ID: tx.ID, Deadline: tx.Deadline}
	}
	if c.Conflict != nil {
		if err := c.Conflict(ctx); err != nil {
			st.Conflict = err.Error()
		}
	}
	return st, nil
}

// To renders a rule's destination the way ufw status does ("22/tcp",
// "Anywhere", "192.0.2.1 80/tcp").
func To(r policy.Rule) string {
	var parts []string
	if r.To.IsValid() {
		parts = append(parts, addrText(r))
	}
	if len(r.ToPorts) > 0 {
		p := firewall.FormatPorts(r.ToPorts)
		if r.Service != "" {
			p = r.Service
		} else if r.Proto != "" {
			p += "/" + r.Proto
		}
		parts = append(parts, p)
	} else if r.Proto != "" {
		parts = append(parts, "any/"+r.Proto)
	}
	if len(parts) == 0 {
		return "Anywhere" + v6Suffix(r)
	}
	s := strings.Join(parts, " ")
	if !r.To.IsValid() {
		s += v6Suffix(r)
	}
	if r.Iface != "" {
		s += " on " + r.Iface
	}
	return s
}

// From renders a rule's source ("Anywhere", "203.0.113.0/24 53/udp").
func From(r policy.Rule) string {
	s := "Anywhere"
	if r.From.IsValid() && r.From.Bits() > 0 {
		s = r.From.Masked().String()
		if r.From.IsSingleIP() {
			s = r.From.Addr().String()
		}
	} else if r.From.IsValid() && r.From.Addr().Is6() {
		s = "Anywhere (v6)"
	}
	if len(r.FromPorts) > 0 {
		s += " " + firewall.FormatPorts(r.FromPorts)
		if r.Proto != "" {
			s += "/" + r.Proto
		}
	}
	return s
}

func addrText(r policy.Rule) string {
	if r.To.IsSingleIP() {
		return r.To.Addr().String()
	}
	return r.To.String()
}

func v6Suffix(r policy.Rule) string {
	if r.Family() == 6 && !r.To.IsValid() {
		return " (v6)"
	}
	return ""
}
