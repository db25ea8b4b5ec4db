package cli

import (
	"fmt"
	"os"

	defaults "github.com/palisade-project/palisade/config"
	"github.com/palisade-project/palisade/internal/config"
	"github.com/spf13/cobra"
)

// resolveSocket sets app.Socket, for a command that did not get --socket,
// to the socket the configuration names: the command's --config-dir (or
// /etc/palisade), its palisade.conf/palisade.local, and fail2ban.conf's
// socket when the directory is a fail2ban tree; the daemon listens where
// the same files say. Under --root only an explicit --socket reaches a
// daemon, so nothing is looked up there.
func (app *App) resolveSocket(cmd *cobra.Command) error {
	if f := cmd.Flag("socket"); f != nil && f.Changed {
		return nil
	}
	if app.Root != "" {
		return nil
	}
	dir, explicit := "/etc/palisade", false
	if f := cmd.Flags().Lookup("config-dir"); f != nil && f.Value.String() != "" {
		dir, explicit = f.Value.String(), true
	}
	if explicit {
		fi, err := os.Stat(dir)
		if err != nil {
			return usageErr("--config-dir: %v", err)
		}
		if !fi.IsDir() {
			return usageErr("--config-dir %s: not a directory", dir)
		}
	}
	d, err := config.LoadDaemon(dir, defaults.FS())
	if err != nil {
		if explicit {
			return usageErr("configuration in %s: %v", dir, err)
		}
		// A broken default configuration: the daemon cannot have started
		// from it, so keep the default socket.
		fmt.Fprintf(app.Stderr, "warning: %v (using %s)\n", err, app.Socket)
		return nil
	}
	app.Socket = d.Socket
	return nil
}

// socketFromConfig is the annotation of commands whose socket, without
// --socket, is the one their configuration names.
const socketFromConfig = "palisade/socket-from-config"

// clientCmd marks cmd as a client of the daemon that finds the socket in
// the configuration, and gives it --config-dir when it has none.
func clientCmd(cmd *cobra.Command) *cobra.Command {
	if cmd.Flags().Lookup("config-dir") == nil {
		cmd.Flags().String("config-dir", "", "configuration naming the daemon's socket (default /etc/palisade; may be /etc/fail2ban)")
	}
	if cmd.Annotations == nil {
		cmd.Annotations = map[string]string{}
	}
	cmd.Annotations[socketFromConfig] = "yes"
	return cmd
}

// preRun resolves the socket of client commands (see clientCmd).
func (app *App) preRun(cmd *cobra.Command, _ []string) error {
	if cmd.Annotations[socketFromConfig] == "" {
		return nil
	}
	return app.resolveSocket(cmd)
}
