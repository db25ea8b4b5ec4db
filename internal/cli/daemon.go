package cli

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	defaults "github.com/palisade-project/palisade/config"
	"github.com/palisade-project/palisade/filters"
	"github.com/palisade-project/palisade/internal/daemon"
	"github.com/spf13/cobra"
)

// newDaemonCmds builds the daemon and its client commands (daemon, status,
// ban, unban, banned, explain, reload, set, get, config).
func newDaemonCmds(app *App) []*cobra.Command {
	return []*cobra.Command{
		newDaemonCmd(app),
		clientCmd(newStatusCmd(app)),
		clientCmd(newBanCmd(app)),
		clientCmd(newUnbanCmd(app)),
		clientCmd(newBannedCmd(app)),
		clientCmd(newExplainCmd(app)),
		clientCmd(newReloadCmd(app)),
		clientCmd(newSetCmd(app)),
		clientCmd(newGetCmd(app)),
		newConfigCmd(app),
	}
}

// configDir returns --config-dir, or /etc/palisade under --root.
func (app *App) configDir(flag string) string {
	if flag != "" {
		return flag
	}
	return filepath.Join(app.Root, "/etc/palisade")
}

// daemonOptions are the options shared by `daemon` and `config check`. A
// --config-dir that was given must exist; the default may be missing (the
// built-in configuration then protects sshd).
func (app *App) daemonOptions(configDir string) daemon.Options {
	return daemon.Options{
		ConfigDir:        app.configDir(configDir),
		RequireConfigDir: configDir != "",
		Root:             app.Root,
		Builtin:          defaults.FS(),
		Filters:          filters.FS(),
		Stderr:           app.Stderr,
	}
}

func newDaemonCmd(app *App) *cobra.Command {
	var configDir, db string
	cmd := &cobra.Command{
		Use:   "daemon [--config-dir DIR] [--socket PATH] [--db PATH]",
		Short: "Run the protector in the foreground",
		Long: "Run the protector in the foreground: watch the logs of the enabled jails, ban\n" +
			"offenders in the firewall and answer the control socket. SIGHUP reloads the\n" +
			"configuration; SIGTERM/SIGINT stop (bans stay in force unless remove-on-stop).",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts := app.daemonOptions(configDir)
			opts.DB = db
			if f := cmd.Flag("socket"); f != nil && f.Changed {
				opts.Socket = app.Socket
			}
			err := daemon.Run(cmd.Context(), opts)
			if errors.Is(err, daemon.ErrConfig) {
				return &ExitError{Code: ExitUsage, Err: err}
			}
			if err != nil {
				return failErr(err)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&configDir, "config-dir", "", "configuration directory (default /etc/palisade; may be /etc/fail2ban)")
	cmd.Flags().StringVar(&db, "db", "", "database path (default: dbfile from palisade.conf, /var/lib/palisade/palisade.db)")
	return cmd
}

func newConfigCmd(app *App) *cobra.Command {
	cmd := &cobra.Command{Use: "config", Short: "Configuration commands"}
	var configDir string
	var asJSON bool
	check := &cobra.Command{
		Use:   "check [--config-dir DIR] [--json]",
		Short: "Validate the configuration and every enabled jail's filter",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			rep := daemon.Check(app.daemonOptions(configDir))
			if asJSON {
				if err := writeJSON(app.Stdout, rep); err != nil {
					return failErr(err)
				}
			} else {
				writeCheck(app, rep)
			}
			if !rep.OK {
				return &ExitError{Code: ExitUsage, Err: fmt.Errorf("configuration in %s has %d error(s)", rep.ConfigDir, len(rep.Errors))}
			}
			return nil
		},
	}
	check.Flags().StringVar(&configDir, "config-dir", "", "configuration directory (default /etc/palisade)")
	check.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.AddCommand(check)
	return cmd
}

func writeCheck(app *App, rep daemon.CheckReport) {
	for _, w := range rep.Warnings {
		fmt.Fprintf(app.Stdout, "warning: %s\n", w)
	}
	for _, e := range rep.Errors {
		fmt.Fprintf(app.Stdout, "error: %s\n", e.Error())
	}
	for _, j := range rep.Jails {
		state := "ok"
		if j.Error != "" {
			state = "ERROR: " + j.Error
		}
		fmt.Fprintf(app.Stdout, "jail %-20s filter %-24s %s\n", j.Name, j.Filter, state)
		if len(j.Watching) > 0 {
			fmt.Fprintf(app.Stdout, "     %-20s watching %s (%s); firewall %s\n", "", strings.Join(j.Watching, ", "), j.Source, j.Firewall)
		}
		for _, n := range j.Notes {
			fmt.Fprintf(app.Stdout, "     %-20s note: %s\n", "", n)
		}
	}
	if rep.OK {
		fmt.Fprintf(app.Stdout, "configuration OK: %d enabled jail(s) in %s\n", len(rep.Jails), rep.ConfigDir)
	}
}
