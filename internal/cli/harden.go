package cli

import "github.com/spf13/cobra"

// newHardenCmds builds the hardening commands (ssh, port, ftp).
func newHardenCmds(app *App) []*cobra.Command { return nil }
