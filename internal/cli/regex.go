package cli

import "github.com/spf13/cobra"

// newRegexCmd builds `palisade regex` (owned by the filter work).
func newRegexCmd(app *App) *cobra.Command {
	return &cobra.Command{Use: "regex [--json] LOG FILTER", Short: "Test a filter against a log (like fail2ban-regex)", Args: cobra.ExactArgs(2),
		RunE: func(*cobra.Command, []string) error { return failErr(errNotYet) }}
}
