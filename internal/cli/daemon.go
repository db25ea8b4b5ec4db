package cli

import (
	"errors"

	"github.com/spf13/cobra"
)

var errNotYet = errors.New("not implemented yet")

// newDaemonCmds builds the daemon and its client commands (daemon, status,
// ban, unban, banned, explain, reload, set, get, config).
func newDaemonCmds(app *App) []*cobra.Command { return nil }
