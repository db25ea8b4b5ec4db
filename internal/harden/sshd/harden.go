package sshd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/palisade-project/palisade/internal/harden/fsx"
	"github.com/palisade-project/palisade/internal/harden/ports"
	"github.com/palisade-project/palisade/internal/harden/rollback"
	"github.com/palisade-project/palisade/internal/sysexec"
)

// DefaultConfirmWithin is how long a change waits for "palisade ssh confirm".
const DefaultConfirmWithin = 2 * time.Minute

// RefusedError is a change refused before anything was written. Usage
// marks refusals caused by bad input (exit 2 at the command line).
type RefusedError struct {
	Usage bool
	Err   error
}

func (e *RefusedError) Error() string { return e.Err.Error() }
func (e *RefusedError) Unwrap() error { return e.Err }

func refuse(usage bool, format string, args ...any) error {
	return &RefusedError{Usage: usage, Err: fmt.Errorf(format, args...)}
}

// Hardener applies Settings safely.
type Hardener struct {
	Daemon *Daemon
	// Runner runs the firewall tools (ufw) for openings recorded in a state.
	Runner   sysexec.Runner
	Reloader ServiceReloader
	Store    *rollback.Store
	Root     string
	// Firewall opens the new port; nil means no firewall to follow.
	Firewall ports.Opener
	// Getenv reads SUDO_USER, SSH_CONNECTION and USER (os.Getenv).
	Getenv func(string) string
	// StartWatcher starts the detached rollback watcher for a saved state
	// and returns its pid.
	StartWatcher func(st *rollback.State) (int, error)
	Now          func() time.Time
	Log          *slog.Logger
}

// Options are the choices of one harden run.
type Options struct {
	Settings
	ConfirmWithin time.Duration
	DryRun        bool
	Force         bool
	// Jails are the jails whose port follows a port change, each with the
	// file where its port is set (default: sshd in
	// /etc/palisade/jail.local under the root).
	Jails []ports.JailTarget
}

// Result describes what Harden did.
type Result struct {
	Diff     string   `json:"diff"`
	Files    []string `json:"files"`
	OldPorts []int    `json:"old_ports"`
	NewPorts []int    `json:"new_ports"`
	Warnings []string `json:"warnings,omitempty"`
	// Jails are the jails whose port follows a port change.
	Jails     []string `json:"jails,omitempty"`
	StateID   string   `json:"state_id,omitempty"`
	Deadline  string   `json:"deadline,omitempty"`
	DryRun    bool     `json:"dry_run"`
	NoChanges bool     `json:"no_changes"`
}

func (h *Hardener) now() time.Time {
	if h.Now != nil {
		return h.Now()
	}
	return time.Now()
}

func (h *Hardener) getenv(k string) string {
	if h.Getenv != nil {
		return h.Getenv(k)
	}
	return os.Getenv(k)
}

func (h *Hardener) log() *slog.Logger {
	if h.Log != nil {
		return h.Log
	}
	return slog.New(slog.DiscardHandler)
}

// Harden plans, checks and applies opts. Every refusal happens before any
// file is written; a failure after writing restores every file.
func (h *Hardener) Harden(ctx context.Context, opts Options) (*Result, error) {
	if opts.ConfirmWithin <= 0 {
		opts.ConfirmWithin = DefaultConfirmWithin
	}
	if len(opts.Jails) == 0 {
		opts.Jails = []ports.JailTarget{{Name: "sshd", File: fsx.Path(h.Root, ports.JailLocal)}}
	}
	if !opts.KeysOnly && !opts.NoRootPassword && opts.Port == 0 {
		return nil, refuse(true, "nothing to do: give --keys-only, --no-root-password and/or --port N")
	}
	if opts.Port != 0 && (opts.Port < ports.MinPort || opts.Port > ports.MaxPort) {
		return nil, refuse(true, "port %d is outside %d-%d (the range the hardening guide asks for)", opts.Port, ports.MinPort, ports.MaxPort)
	}
	if st, err := h.Store.Load(); err != nil {
		return nil, err
	} else if st != nil && st.Pending() {
		return nil, refuse(false, "an earlier change (%s) waits for confirmation until %s: run palisade ssh confirm or palisade ssh rollback first", st.ID, st.Deadline.Format(time.RFC3339))
	}
	cfg, err := Load(h.Root, h.Daemon.Config)
	if err != nil {
		return nil, refuse(false, "%w", err)
	}
	eff, err := h.Daemon.Effective(ctx, nil)
	if err != nil {
		return nil, refuse(false, "the current sshd configuration does not load: %w", err)
	}
	res := &Result{OldPorts: Ports(eff), DryRun: opts.DryRun}
	if opts.KeysOnly {
		if err := h.checkKeys(eff, opts.Force, res); err != nil {
			return nil, err
		}
	}
	if opts.Port != 0 && !slices.Equal(res.OldPorts, []int{opts.Port}) {
		ck := (&ports.Checker{Root: h.Root, Ignore: res.OldPorts}).Check(opts.Port)
		if err := ck.Error(opts.Force); err != nil {
			return nil, refuse(!ck.Usable && ck.Problems[0].Code == ports.CodeRange, "%w", err)
		}
		for _, p := range ck.Problems {
			res.Warnings = append(res.Warnings, "forced: "+p.Message)
		}
	}
	changes, err := Plan(cfg, opts.Settings)
	if err != nil {
		return nil, refuse(false, "%w", err)
	}
	portChange := opts.Port != 0 && !slices.Equal(res.OldPorts, []int{opts.Port})
	socket := portChange && h.Reloader.SocketActive(ctx)
	if portChange {
		jc, err := ports.PlanJailPorts(h.Root, opts.Jails, strconv.Itoa(opts.Port))
		if err != nil {
			return nil, refuse(false, "%w", err)
		}
		for _, c := range jc {
			changes = append(changes, Change{Path: c.Path, Existed: c.Existed, Old: c.Old, New: c.New})
		}
		for _, j := range opts.Jails {
			res.Jails = append(res.Jails, j.Name)
		}
		if socket {
			p := fsx.Path(h.Root, SocketUnitDropIn)
			old, err := fsx.ReadFileIn(h.Root, p)
			existed := err == nil
			changes = append(changes, Change{Path: p, Existed: existed, Old: old, New: SocketDropIn(opts.Port)})
		}
	}
	var diff strings.Builder
	for _, c := range changes {
		res.Files = append(res.Files, c.Path)
		diff.WriteString(fsx.Diff(c.Path, c.Old, c.New))
	}
	res.Diff = diff.String()
	if len(changes) == 0 {
		res.NoChanges = true
		return res, nil
	}
	if opts.DryRun {
		return res, nil
	}
	return res, h.apply(ctx, opts, changes, portChange, socket, eff, res)
}

// checkKeys refuses to switch passwords off when the admin could not log in.
func (h *Hardener) checkKeys(eff Effective, force bool, res *Result) error {
	users, err := LoadUsers(h.Root)
	if err != nil {
		return refuse(false, "cannot check authorized keys: %w", err)
	}
	pats := strings.Fields(strings.Join(eff["authorizedkeysfile"], " "))
	who := h.getenv("SUDO_USER")
	if who == "" && h.getenv("SSH_CONNECTION") != "" {
		who = h.getenv("USER")
		if who == "" {
			if u, err := user.Current(); err == nil {
				who = u.Username
			}
		}
	}
	if who != "" {
		i := slices.IndexFunc(users, func(u User) bool { return u.Name == who })
		if i < 0 {
			if force {
				res.Warnings = append(res.Warnings, "forced: user "+who+" is not in /etc/passwd")
				return nil
			}
			return refuse(false, "refusing --keys-only: you (%s) are not in /etc/passwd; use --force if you are sure", who)
		}
		uk := KeysOf(h.Root, pats, users[i])
		if uk.Keys == 0 {
			if force {
				res.Warnings = append(res.Warnings, "forced: "+who+" has no usable authorized_keys entry")
				return nil
			}
			return refuse(false, "refusing --keys-only: you (%s) have no usable key in %s: you would be locked out; add your public key first (ssh-copy-id), or use --force", who, strings.Join(KeyFiles(h.Root, pats, users[i]), ", "))
		}
		return nil
	}
	var without []string
	anyKeys := false
	for _, u := range LoginUsers(users, eff) {
		if KeysOf(h.Root, pats, u).Keys > 0 {
			anyKeys = true
		} else {
			without = append(without, u.Name)
		}
	}
	if !anyKeys {
		if force {
			res.Warnings = append(res.Warnings, "forced: no login user has a usable authorized_keys entry")
			return nil
		}
		return refuse(false, "refusing --keys-only: no user allowed to log in has a usable authorized_keys entry, so nobody could log in; add a key first, or use --force")
	}
	if len(without) > 0 {
		res.Warnings = append(res.Warnings, "these login users have no key and will not be able to log in: "+strings.Join(without, ", "))
	}
	return nil
}

func (h *Hardener) apply(ctx context.Context, opts Options, changes []Change, portChange, socket bool, eff Effective, res *Result) error {
	// A change that fails leaves no trace: not even the state directory
	// when this run created it.
	created := firstMissing(h.Store.Dir)
	unlock, err := h.Store.Lock(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	if cur, err := h.Store.Load(); err != nil {
		return err
	} else if cur != nil && cur.Pending() {
		return refuse(false, "another change (%s) started meanwhile and waits for confirmation", cur.ID)
	}
	paths := make([]string, len(changes))
	for i, c := range changes {
		paths[i] = c.Path
	}
	st, err := h.Store.Begin("ssh", h.Root, paths, opts.ConfirmWithin, h.now())
	if err != nil {
		return err
	}
	st.Reload = h.Reloader.Detect(ctx, eff)
	if socket {
		st.Reload += "+socket"
	}
	undo := func(cause error) error {
		rerr := rollback.Restore(st)
		h.Store.Discard(st)
		if created != "" {
			os.RemoveAll(created)
		}
		if rerr != nil {
			return fmt.Errorf("%w; restoring the files also failed: %v", cause, rerr)
		}
		return cause
	}
	// sshd files first: validate and verify before anything else moves.
	for _, c := range changes {
		if err := fsx.Replace(h.Root, c.Path, c.New, 0o644); err != nil {
			return undo(err)
		}
	}
	if err := h.Daemon.Test(ctx); err != nil {
		return undo(fmt.Errorf("the new configuration is rejected: %w", err))
	}
	if err := h.verify(ctx, opts); err != nil {
		return undo(err)
	}
	// Firewall: open the new port before sshd moves to it.
	fw := h.Firewall
	if fw == nil {
		fw = ports.None{}
	}
	if portChange {
		if fw.Via() == ports.ViaNone {
			res.Warnings = append(res.Warnings, fmt.Sprintf("no firewall to open: make sure port %d/tcp is reachable", opts.Port))
		} else {
			if open, _ := fw.IsOpen(ctx, opts.Port, "tcp"); !open {
				if err := fw.Open(ctx, opts.Port, "tcp"); err != nil {
					return undo(err)
				}
				st.Opened = append(st.Opened, rollback.PortOp{Port: opts.Port, Proto: "tcp", Via: fw.Via()})
			}
			for _, p := range res.OldPorts {
				if p != opts.Port {
					st.CloseOnConfirm = append(st.CloseOnConfirm, rollback.PortOp{Port: p, Proto: "tcp", Via: fw.Via()})
				}
			}
		}
	}
	undoAll := func(cause error) error {
		h.closeOpened(ctx, st)
		return undo(cause)
	}
	if err := h.Store.Save(st); err != nil {
		return undoAll(err)
	}
	if h.StartWatcher == nil {
		return undoAll(errors.New("no rollback watcher: refusing to change sshd without an automatic rollback"))
	}
	pid, err := h.StartWatcher(st)
	if err != nil {
		return undoAll(fmt.Errorf("start the rollback watcher: %w", err))
	}
	st.WatcherPID = pid
	if err := h.Store.Save(st); err != nil {
		h.Store.StopWatcher(st)
		return undoAll(err)
	}
	if err := h.Reloader.Reload(ctx, strings.TrimSuffix(st.Reload, "+socket"), socket); err != nil {
		// Put everything back now rather than at the deadline.
		rerr := h.rollbackLocked(ctx, st)
		return errors.Join(err, rerr)
	}
	res.StateID = st.ID
	res.Deadline = st.Deadline.Format(time.RFC3339)
	if portChange {
		res.NewPorts = []int{opts.Port}
	} else {
		res.NewPorts = res.OldPorts
	}
	h.log().Info("sshd hardened; waiting for confirmation", "id", st.ID, "deadline", st.Deadline)
	return nil
}

// verify checks with sshd -T that the settings took effect, for the global
// section and for each Match block.
func (h *Hardener) verify(ctx context.Context, opts Options) error {
	eff, err := h.Daemon.Effective(ctx, nil)
	if err != nil {
		return err
	}
	check := func(e Effective, ctxName string) error {
		if opts.KeysOnly {
			for _, k := range []string{"passwordauthentication", "kbdinteractiveauthentication", "permitemptypasswords"} {
				if e.Get(k) != "no" {
					return fmt.Errorf("verify with sshd -T%s: %s is still %q", ctxName, k, e.Get(k))
				}
			}
			if e.Get("pubkeyauthentication") != "yes" {
				return fmt.Errorf("verify with sshd -T%s: pubkeyauthentication is %q", ctxName, e.Get("pubkeyauthentication"))
			}
			if am := e.Get("authenticationmethods"); !KeyLoginPossible(am) {
				return fmt.Errorf("verify with sshd -T%s: AuthenticationMethods %q needs a password, which --keys-only switches off: nobody could log in", ctxName, am)
			}
		}
		if opts.NoRootPassword && e.Get("permitrootlogin") == "yes" {
			return fmt.Errorf("verify with sshd -T%s: permitrootlogin is still yes", ctxName)
		}
		return nil
	}
	if err := check(eff, ""); err != nil {
		return err
	}
	if opts.Port != 0 {
		if got := Ports(eff); !slices.Equal(got, []int{opts.Port}) {
			return fmt.Errorf("verify with sshd -T: sshd would listen on %v, not %d", got, opts.Port)
		}
	}
	cfg, err := Load(h.Root, h.Daemon.Config)
	if err != nil {
		return err
	}
	for _, m := range cfg.Matches() {
		conn := MatchConn(m)
		e, err := h.Daemon.Effective(ctx, &conn)
		if err != nil {
			return err
		}
		if err := check(e, " -C "+conn.spec()+" (Match at "+m.Where()+")"); err != nil {
			return err
		}
	}
	return nil
}

func (h *Hardener) closeOpened(ctx context.Context, st *rollback.State) {
	for _, op := range st.Opened {
		if o, err := ports.NewOpener(op.Via, h.Runner); err == nil {
			if err := o.Close(ctx, op.Port, op.Proto); err != nil {
				h.log().Warn("close port after rollback", "port", op.Port, "err", err)
			}
		}
	}
}

// Confirm keeps the pending change: the watcher stops and the old ports
// are closed in the firewall.
func (h *Hardener) Confirm(ctx context.Context) (*rollback.State, error) {
	unlock, err := h.Store.Lock(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	st, err := h.Store.Load()
	if err != nil {
		return nil, err
	}
	if st == nil || !st.Pending() {
		if st != nil && st.RolledBack {
			return nil, fmt.Errorf("nothing to confirm: change %s was already rolled back", st.ID)
		}
		return nil, errors.New("nothing to confirm: no change is waiting")
	}
	st.Confirmed = true
	if err := h.Store.Save(st); err != nil {
		return nil, err
	}
	h.Store.StopWatcher(st)
	var errs []error
	for _, op := range st.CloseOnConfirm {
		o, err := ports.NewOpener(op.Via, h.Runner)
		if err == nil {
			err = o.Close(ctx, op.Port, op.Proto)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("close old port %d: %w", op.Port, err))
		}
	}
	return st, errors.Join(errs...)
}

// Rollback restores the last change. With ifUnconfirmed it first waits for
// the change id's deadline and does nothing when it was confirmed (the
// watcher's mode).
func (h *Hardener) Rollback(ctx context.Context, ifUnconfirmed bool, id string) (*rollback.State, bool, error) {
	if ifUnconfirmed {
		due, err := h.Store.WaitUnconfirmed(ctx, id, 100*time.Millisecond, h.now)
		if err != nil || !due {
			return nil, false, err
		}
	}
	unlock, err := h.Store.Lock(ctx)
	if err != nil {
		return nil, false, err
	}
	defer unlock()
	st, err := h.Store.Load()
	if err != nil {
		return nil, false, err
	}
	if st == nil {
		return nil, false, errors.New("nothing to roll back: no change recorded")
	}
	if ifUnconfirmed && (st.ID != id || !st.Pending()) {
		return st, false, nil
	}
	if st.RolledBack {
		return st, false, fmt.Errorf("change %s was already rolled back", st.ID)
	}
	if !ifUnconfirmed {
		h.Store.StopWatcher(st)
	}
	return st, true, h.rollbackLocked(ctx, st)
}

// RecoverPending finishes a change whose watcher is gone (the host
// rebooted inside the confirmation window): when the recorded change is
// still unconfirmed, it waits for its deadline and rolls it back, exactly as
// the watcher would have. It reports false when nothing was pending.
func (h *Hardener) RecoverPending(ctx context.Context) (*rollback.State, bool, error) {
	st, err := h.Store.Load()
	if err != nil || st == nil || !st.Pending() {
		return st, false, err
	}
	return h.Rollback(ctx, true, st.ID)
}

// rollbackLocked undoes st; the store lock is held.
func (h *Hardener) rollbackLocked(ctx context.Context, st *rollback.State) error {
	var errs []error
	if st.Confirmed {
		// The old ports were closed at confirmation: open them again first.
		for _, op := range st.CloseOnConfirm {
			o, err := ports.NewOpener(op.Via, h.Runner)
			if err == nil {
				err = o.Open(ctx, op.Port, op.Proto)
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("reopen port %d: %w", op.Port, err))
			}
		}
	}
	if err := rollback.Restore(st); err != nil {
		errs = append(errs, err)
	}
	method, socket := strings.CutSuffix(st.Reload, "+socket")
	if err := h.Reloader.Reload(ctx, method, socket); err != nil {
		errs = append(errs, err)
	}
	h.closeOpened(ctx, st)
	st.RolledBack = true
	if err := h.Store.Save(st); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// firstMissing returns the outermost directory of path that does not
// exist yet ("" when path exists).
func firstMissing(path string) string {
	missing := ""
	for p := filepath.Clean(path); ; p = filepath.Dir(p) {
		if _, err := os.Lstat(p); err == nil {
			return missing
		}
		missing = p
		if p == filepath.Dir(p) {
			return missing
		}
	}
}

// KeyLoginPossible reports whether an AuthenticationMethods value lets a
// user in with keys alone: "any" (or unset), or one method list made of
// publickey steps only.
func KeyLoginPossible(methods string) bool {
	if methods == "" || methods == "any" {
		return true
	}
	for _, list := range strings.Fields(methods) {
		ok := true
		for _, m := range strings.Split(list, ",") {
			if m != "publickey" {
				ok = false
				break
			}
		}
		if ok {
			return true
		}
	}
	return false
}
