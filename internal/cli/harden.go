package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/palisade-project/palisade/internal/harden/ftp"
	"github.com/palisade-project/palisade/internal/harden/ports"
	"github.com/palisade-project/palisade/internal/harden/rollback"
	"github.com/palisade-project/palisade/internal/harden/sshd"
	"github.com/palisade-project/palisade/internal/sysexec"
)

// newHardenCmds builds the hardening commands (ssh, port, ftp).
func newHardenCmds(app *App) []*cobra.Command {
	sshCmd := &cobra.Command{Use: "ssh", Short: "Audit and harden the SSH server without locking yourself out"}
	sshCmd.AddCommand(newSSHAuditCmd(app), newSSHHardenCmd(app), newSSHConfirmCmd(app), newSSHRollbackCmd(app))
	portCmd := &cobra.Command{Use: "port", Short: "Check ports for services"}
	portCmd.AddCommand(newPortCheckCmd(app))
	ftpCmd := &cobra.Command{Use: "ftp", Short: "Move an FTP server (proftpd, vsftpd) to another port"}
	ftpCmd.AddCommand(newFTPPortCmd(app))
	return []*cobra.Command{sshCmd, portCmd, ftpCmd}
}

func (app *App) runner() sysexec.Runner { return sysexec.NewExec(30 * time.Second) }

func (app *App) hardener(r sysexec.Runner, fw ports.Opener) *sshd.Hardener {
	store := rollback.New(app.Root)
	return &sshd.Hardener{
		Daemon:   sshd.NewDaemon(r, app.Root),
		Runner:   r,
		Reloader: &sshd.Reloader{Runner: r, Root: app.Root},
		Store:    store,
		Root:     app.Root,
		Firewall: fw,
		Getenv:   os.Getenv,
		Log:      slog.New(slog.NewTextHandler(app.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
		StartWatcher: func(st *rollback.State) (int, error) {
			exe, err := os.Executable()
			if err != nil {
				return 0, err
			}
			if strings.HasSuffix(filepath.Base(exe), ".test") {
				return 0, errors.New("cannot start the rollback watcher from a Go test binary")
			}
			args := []string{"ssh", "rollback", "--if-unconfirmed", "--id", st.ID, "--state", store.StatePath()}
			if app.Root != "" {
				args = append([]string{"--root", app.Root}, args...)
			}
			return sysexec.StartDetached(sysexec.Cmd{Name: exe, Args: args}, store.LogPath())
		},
	}
}

// reloadDaemon asks a running palisade daemon to re-read its jails after a
// jail's port moved. It is best effort: without a daemon there is nothing
// to do. Under --root only an explicitly given --socket is used.
func (app *App) reloadDaemon(ctx context.Context) {
	if app.Root != "" && app.Socket == DefaultSocket {
		return
	}
	if _, err := os.Stat(app.Socket); err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := app.client().Reload(ctx); err != nil {
		fmt.Fprintf(app.Stderr, "warning: the jail's port changed but the daemon did not reload: %v (run palisade reload)\n", err)
		return
	}
	fmt.Fprintln(app.Stderr, "palisade daemon reloaded (jail port)")
}

// opener resolves --firewall.
func (app *App) opener(ctx context.Context, r sysexec.Runner, via string) (ports.Opener, error) {
	if via == "auto" || via == "" {
		via = ports.Detect(ctx, r)
	}
	o, err := ports.NewOpener(via, r)
	if err != nil {
		return nil, usageErr("--firewall: %v", err)
	}
	return o, nil
}

// configDirFlag adds --config-dir to a hardening command: the palisade
// configuration it follows when no daemon answers on the socket.
func configDirFlag(cmd *cobra.Command, dir *string) {
	cmd.Flags().StringVar(dir, "config-dir", "", "palisade configuration to follow when no daemon runs (default /etc/palisade; a running daemon's own wins)")
	clientCmd(cmd)
}

func newSSHAuditCmd(app *App) *cobra.Command {
	var asJSON bool
	var configDir string
	cmd := &cobra.Command{
		Use:   "audit [--json] [--config-dir DIR]",
		Short: "Report on the effective sshd configuration (sshd -T), naming the file:line of each value",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			r := app.runner()
			jail := app.follow(cmd.Context(), configDir).jailInfo()
			a := &sshd.Auditor{Daemon: sshd.NewDaemon(r, app.Root), Root: app.Root, Jail: jail}
			rep, err := a.Audit(cmd.Context())
			if err != nil {
				return failErr(err)
			}
			if asJSON {
				return writeJSON(app.Stdout, rep)
			}
			writeAudit(app.Stdout, rep)
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "JSON output")
	configDirFlag(cmd, &configDir)
	return cmd
}

func writeAudit(w io.Writer, rep *sshd.Report) {
	fmt.Fprintf(w, "sshd configuration %s, listening on ports %v\n\n", rep.Config, rep.Ports)
	for _, f := range rep.Findings {
		setting := strings.TrimSpace(f.Setting + " " + f.Value)
		fmt.Fprintf(w, "[%s] %s", f.Severity, f.ID)
		if setting != "" {
			fmt.Fprintf(w, ": %s", setting)
		}
		if f.Where != "" {
			fmt.Fprintf(w, " (%s)", f.Where)
		} else if f.Setting != "" {
			fmt.Fprint(w, " (default)")
		}
		fmt.Fprintf(w, "\n    %s\n", f.Explanation)
		if f.Fix != "" && f.Severity != sshd.OK {
			fmt.Fprintf(w, "    fix: %s\n", f.Fix)
		}
	}
	if len(rep.Users) > 0 {
		fmt.Fprintln(w, "\nlogin users and their authorized keys:")
		for _, u := range rep.Users {
			fmt.Fprintf(w, "  %-16s %d key(s)\n", u.User, u.Keys)
		}
	}
}

// hardenErr maps refusals to exit 2 (bad input) or 1.
func hardenErr(err error) error {
	var re *sshd.RefusedError
	if errors.As(err, &re) && re.Usage {
		return &ExitError{Code: ExitUsage, Err: err}
	}
	var fe *ftp.RefusedError
	if errors.As(err, &fe) && fe.Usage {
		return &ExitError{Code: ExitUsage, Err: err}
	}
	return failErr(err)
}

func newSSHHardenCmd(app *App) *cobra.Command {
	var opts sshd.Options
	var fwFlag, configDir string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "harden [--keys-only] [--no-root-password] [--port N] [--confirm-within DUR] [--dry-run] [--force]",
		Short: "Harden sshd with validation, verification and an automatic rollback",
		Long: "Writes the settings where sshd honours them (first value wins), shows the diff\n" +
			"(--dry-run stops there), validates with sshd -t, verifies with sshd -T, opens a new\n" +
			"port in the firewall and moves the sshd jail, then reloads sshd. Unless\n" +
			"'palisade ssh confirm' runs within --confirm-within, everything is restored.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			r := app.runner()
			var fw ports.Opener = ports.None{}
			if opts.Port != 0 && !opts.DryRun {
				var err error
				if fw, err = app.opener(ctx, r, fwFlag); err != nil {
					return err
				}
			}
			h := app.hardener(r, fw)
			if opts.Port != 0 {
				opts.Jails = app.follow(ctx, configDir).targets("sshd")
			}
			res, err := h.Harden(ctx, opts)
			if res != nil && !asJSON {
				fmt.Fprint(app.Stdout, res.Diff)
			}
			if err != nil {
				return hardenErr(err)
			}
			applied := !res.NoChanges && !res.DryRun
			if applied && !slices.Equal(res.OldPorts, res.NewPorts) {
				// The jails moved in the files: the daemon runs them once
				// it reloaded; say so if it still does not cover the port.
				app.reloadDaemon(ctx)
				res.Warnings = append(res.Warnings, app.checkFollowed(ctx, configDir, "sshd", opts.Port)...)
			}
			if asJSON {
				return writeJSON(app.Stdout, res)
			}
			for _, w := range res.Warnings {
				fmt.Fprintf(app.Stderr, "warning: %s\n", w)
			}
			switch {
			case res.NoChanges:
				fmt.Fprintln(app.Stdout, "nothing to change: sshd already has these settings")
			case res.DryRun:
				fmt.Fprintln(app.Stdout, "dry run: nothing written")
			default:
				fmt.Fprintf(app.Stdout, "sshd reloaded (ports %v -> %v).\n", res.OldPorts, res.NewPorts)
				fmt.Fprintf(app.Stdout, "Open a NEW session now and log in. If it works, run: palisade ssh confirm\n")
				fmt.Fprintf(app.Stdout, "Without confirmation everything is rolled back at %s.\n", res.Deadline)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.BoolVar(&opts.KeysOnly, "keys-only", false, "key logins only: PasswordAuthentication and KbdInteractiveAuthentication no")
	f.BoolVar(&opts.NoRootPassword, "no-root-password", false, "PermitRootLogin prohibit-password")
	f.IntVar(&opts.Port, "port", 0, "move sshd to port N (1024-65535)")
	durationVar(f, &opts.ConfirmWithin, "confirm-within", sshd.DefaultConfirmWithin, "roll back unless confirmed within this time")
	f.BoolVar(&opts.DryRun, "dry-run", false, "show the diff and stop")
	f.BoolVar(&opts.Force, "force", false, "override the missing-key and /etc/services checks")
	f.StringVar(&fwFlag, "firewall", "auto", "firewall to open the new port in: auto, nftables, ufw or none")
	f.BoolVar(&asJSON, "json", false, "JSON output")
	configDirFlag(cmd, &configDir)
	return cmd
}

func newSSHConfirmCmd(app *App) *cobra.Command {
	return &cobra.Command{
		Use:   "confirm",
		Short: "Keep the last ssh harden change (stops the automatic rollback, closes the old port)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			r := app.runner()
			st, err := app.hardener(r, nil).Confirm(cmd.Context())
			if st == nil && err != nil {
				return failErr(err)
			}
			fmt.Fprintf(app.Stdout, "confirmed change %s\n", st.ID)
			if err != nil {
				return failErr(err)
			}
			return nil
		},
	}
}

func newSSHRollbackCmd(app *App) *cobra.Command {
	var ifUnconfirmed, pending bool
	var id, state string
	cmd := &cobra.Command{
		Use:   "rollback",
		Short: "Restore the files of the last change and reload sshd",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			r := app.runner()
			h := app.hardener(r, nil)
			if state != "" {
				h.Store = &rollback.Store{Dir: filepath.Dir(state)}
			}
			if ifUnconfirmed && id == "" {
				return usageErr("--if-unconfirmed needs --id")
			}
			ctx := cmd.Context()
			if ifUnconfirmed || pending {
				// The watcher outlives the terminal; bound it by the deadline.
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(context.Background(), 24*time.Hour)
				defer cancel()
			}
			var st *rollback.State
			var done bool
			var err error
			if pending {
				st, done, err = h.RecoverPending(ctx)
				if err == nil && !done {
					fmt.Fprintln(app.Stdout, "no unconfirmed change pending")
				}
			} else {
				st, done, err = h.Rollback(ctx, ifUnconfirmed, id)
			}
			if err != nil {
				return failErr(err)
			}
			if done {
				app.reloadDaemon(ctx)
				fmt.Fprintf(app.Stdout, "%s rolled back change %s: files restored, sshd reloaded\n", time.Now().UTC().Format(time.RFC3339), st.ID)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&ifUnconfirmed, "if-unconfirmed", false, "wait for the change's deadline and roll back only if it was not confirmed (the watcher)")
	cmd.Flags().BoolVar(&pending, "pending", false, "roll back an unconfirmed change at its deadline, if one is pending (run at boot by dist/palisade-ssh-recover.service)")
	cmd.Flags().StringVar(&id, "id", "", "change id (with --if-unconfirmed)")
	cmd.Flags().StringVar(&state, "state", "", "state file (default /var/lib/palisade/harden/state.json)")
	_ = cmd.Flags().MarkHidden("id")
	_ = cmd.Flags().MarkHidden("state")
	return cmd
}

func parsePortArg(s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > 65535 {
		return 0, usageErr("bad port %q: a number 1-65535", s)
	}
	return n, nil
}

// portCheck is `port check`'s JSON: the check, and the jails of the
// followed configuration that ban on the port.
type portCheck struct {
	*ports.Check
	Jails []string `json:"jails"`
}

func newPortCheckCmd(app *App) *cobra.Command {
	var asJSON bool
	var configDir string
	cmd := &cobra.Command{
		Use:   "check N [--json] [--config-dir DIR]",
		Short: "Explain whether port N is usable for a service",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			n, err := parsePortArg(args[0])
			if err != nil {
				return err
			}
			c := (&ports.Checker{Root: app.Root}).Check(n)
			fl := app.follow(cmd.Context(), configDir)
			pc := portCheck{Check: c, Jails: fl.covering(n)}
			if pc.Jails == nil {
				pc.Jails = []string{}
			}
			if asJSON {
				if err := writeJSON(app.Stdout, pc); err != nil {
					return err
				}
			} else {
				if c.Usable {
					fmt.Fprintf(app.Stdout, "port %d is usable: in %d-%d, nothing listens on it, not a well-known service\n", n, ports.MinPort, ports.MaxPort)
				} else {
					fmt.Fprintf(app.Stdout, "port %d is not usable:\n", n)
					for _, p := range c.Problems {
						fmt.Fprintf(app.Stdout, "  - %s: %s\n", p.Code, p.Message)
					}
				}
				switch {
				case fl.LoadErr != nil:
					fmt.Fprintf(app.Stdout, "jails: unknown (the configuration in %s does not load)\n", fl.Dir)
				case len(pc.Jails) == 0:
					fmt.Fprintf(app.Stdout, "no jail of %s bans on port %d\n", fl.source(), n)
				default:
					fmt.Fprintf(app.Stdout, "jails of %s that ban on port %d: %s\n", fl.source(), n, strings.Join(pc.Jails, ", "))
				}
			}
			if !c.Usable {
				return &ExitError{Code: ExitFailure, Err: fmt.Errorf("port %d is not usable", n)}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "JSON output")
	configDirFlag(cmd, &configDir)
	return cmd
}

func newFTPPortCmd(app *App) *cobra.Command {
	var opts ftp.Options
	var fwFlag, configDir string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "port N [--server proftpd|vsftpd] [--dry-run] [--force]",
		Short: "Move the FTP server to port N (config, validation, restart, firewall, jail)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			n, err := parsePortArg(args[0])
			if err != nil {
				return err
			}
			opts.Port = n
			ctx := cmd.Context()
			r := app.runner()
			var fw ports.Opener = ports.None{}
			if !opts.DryRun {
				if fw, err = app.opener(ctx, r, fwFlag); err != nil {
					return err
				}
			}
			m := &ftp.Mover{Runner: r, Root: app.Root, Store: rollback.New(app.Root), Firewall: fw}
			fl := app.follow(ctx, configDir)
			opts.Jails = fl.targets
			res, err := m.Move(ctx, opts)
			if err != nil {
				return hardenErr(err)
			}
			if !res.NoChanges && !res.DryRun {
				app.reloadDaemon(ctx)
				res.Warnings = append(res.Warnings, app.checkFollowed(ctx, configDir, res.Server, n)...)
			}
			if asJSON {
				return writeJSON(app.Stdout, res)
			}
			fmt.Fprint(app.Stdout, res.Diff)
			for _, w := range res.Warnings {
				fmt.Fprintf(app.Stderr, "warning: %s\n", w)
			}
			switch {
			case res.NoChanges:
				fmt.Fprintf(app.Stdout, "%s already uses port %d\n", res.Server, n)
			case res.DryRun:
				fmt.Fprintln(app.Stdout, "dry run: nothing written")
			default:
				fmt.Fprintf(app.Stdout, "%s moved from port %d to %d (validated: %v, restarted: %v)\n", res.Server, res.OldPort, res.NewPort, res.Validated, res.Restarted)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.Kind, "server", "", "proftpd or vsftpd (default: whichever is configured)")
	f.BoolVar(&opts.DryRun, "dry-run", false, "show the diff and stop")
	f.BoolVar(&opts.Force, "force", false, "use a port listed in /etc/services")
	f.StringVar(&fwFlag, "firewall", "auto", "firewall to open the port in: auto, nftables, ufw or none")
	f.BoolVar(&asJSON, "json", false, "JSON output")
	configDirFlag(cmd, &configDir)
	return cmd
}
