package ftp

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/palisade-project/palisade/internal/harden/fsx"
	"github.com/palisade-project/palisade/internal/harden/ports"
	"github.com/palisade-project/palisade/internal/harden/rollback"
	"github.com/palisade-project/palisade/internal/sysexec"
)

// Mover changes an FTP server's port.
type Mover struct {
	Runner   sysexec.Runner
	Root     string
	Store    *rollback.Store
	Firewall ports.Opener // nil: none
	Now      func() time.Time
}

// Options of one move.
type Options struct {
	Kind   string // "" finds proftpd, then vsftpd
	Port   int
	Force  bool
	DryRun bool
	// Jails returns the jails that follow the server's port, each with
	// the file where its port is set; nil means the jail named after the
	// server in /etc/palisade/jail.local under the root.
	Jails func(server string) []ports.JailTarget
}

// Result says what Move did.
type Result struct {
	Server    string   `json:"server"`
	Config    string   `json:"config"`
	OldPort   int      `json:"old_port"`
	NewPort   int      `json:"new_port"`
	Diff      string   `json:"diff"`
	Validated bool     `json:"validated"`
	Restarted bool     `json:"restarted"`
	Opened    string   `json:"opened,omitempty"` // firewall used
	Warnings  []string `json:"warnings,omitempty"`
	DryRun    bool     `json:"dry_run"`
	NoChanges bool     `json:"no_changes"`
	StateID   string   `json:"state_id,omitempty"`
}

// RefusedError is a move refused before any file changed.
type RefusedError struct {
	Usage bool
	Err   error
}

func (e *RefusedError) Error() string { return e.Err.Error() }
func (e *RefusedError) Unwrap() error { return e.Err }

// Move moves the server to opts.Port. Refusals write nothing; a failure
// after writing restores the files.
func (m *Mover) Move(ctx context.Context, opts Options) (*Result, error) {
	if opts.Port < ports.MinPort || opts.Port > ports.MaxPort {
		return nil, &RefusedError{Usage: true, Err: fmt.Errorf("port %d is outside %d-%d", opts.Port, ports.MinPort, ports.MaxPort)}
	}
	if st, err := m.Store.Load(); err != nil {
		return nil, err
	} else if st != nil && st.Pending() {
		return nil, &RefusedError{Err: fmt.Errorf("an SSH change (%s) waits for confirmation: run palisade ssh confirm or palisade ssh rollback first", st.ID)}
	}
	s, err := Find(m.Root, opts.Kind)
	if err != nil {
		return nil, &RefusedError{Err: err}
	}
	res := &Result{Server: s.Kind, Config: s.Path, OldPort: s.Port, NewPort: opts.Port, DryRun: opts.DryRun}
	if s.Port == opts.Port {
		res.NoChanges = true
		return res, nil
	}
	ck := (&ports.Checker{Root: m.Root, Ignore: []int{s.Port}}).Check(opts.Port)
	if err := ck.Error(opts.Force); err != nil {
		return nil, &RefusedError{Err: err}
	}
	old, err := fsx.ReadFileIn(m.Root, s.Path)
	if err != nil {
		return nil, &RefusedError{Err: err}
	}
	updated := SetPort(s.Kind, old, opts.Port)
	targets := []ports.JailTarget{{Name: s.Jail, File: fsx.Path(m.Root, ports.JailLocal)}}
	if opts.Jails != nil {
		targets = opts.Jails(s.Kind)
	}
	jails, err := ports.PlanJailPorts(m.Root, targets, strconv.Itoa(opts.Port))
	if err != nil {
		return nil, &RefusedError{Err: err}
	}
	res.Diff = fsx.Diff(s.Path, old, updated)
	paths := []string{s.Path}
	for _, j := range jails {
		res.Diff += fsx.Diff(j.Path, j.Old, j.New)
		paths = append(paths, j.Path)
	}
	if opts.DryRun {
		return res, nil
	}
	unlock, err := m.Store.Lock(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	now := time.Now
	if m.Now != nil {
		now = m.Now
	}
	st, err := m.Store.Begin("ftp", m.Root, paths, 0, now())
	if err != nil {
		return nil, err
	}
	undo := func(cause error) (*Result, error) {
		if rerr := rollback.Restore(st); rerr != nil {
			cause = errors.Join(cause, rerr)
		}
		m.Store.Discard(st)
		return nil, cause
	}
	if err := fsx.Replace(m.Root, s.Path, updated, 0o644); err != nil {
		return undo(err)
	}
	if res.Validated, err = Validate(ctx, m.Runner, s, s.Path); err != nil {
		return undo(err)
	}
	fw := m.Firewall
	if fw == nil {
		fw = ports.None{}
	}
	if fw.Via() != ports.ViaNone {
		if open, _ := fw.IsOpen(ctx, opts.Port, "tcp"); !open {
			if err := fw.Open(ctx, opts.Port, "tcp"); err != nil {
				return undo(err)
			}
			st.Opened = append(st.Opened, rollback.PortOp{Port: opts.Port, Proto: "tcp", Via: fw.Via()})
		}
		res.Opened = fw.Via()
		res.Warnings = append(res.Warnings, fmt.Sprintf("the old port %d stays open in the firewall until you close it", s.Port))
	} else {
		res.Warnings = append(res.Warnings, fmt.Sprintf("no firewall to open: make sure port %d/tcp is reachable", opts.Port))
	}
	for _, j := range jails {
		if err := fsx.Replace(m.Root, j.Path, j.New, 0o644); err != nil {
			return undo(err)
		}
	}
	if res.Restarted, err = Restart(ctx, m.Runner, m.Root, s); err != nil {
		r, uerr := undo(err)
		_, _ = Restart(ctx, m.Runner, m.Root, s)
		return r, uerr
	}
	if !res.Restarted {
		res.Warnings = append(res.Warnings, s.Kind+" was not restarted (not running under systemd here): it uses the new port on its next start")
	}
	st.Confirmed = true
	if err := m.Store.Save(st); err != nil {
		return nil, err
	}
	res.StateID = st.ID
	return res, nil
}
