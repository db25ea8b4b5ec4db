package cli

import (
	"fmt"

	"github.com/palisade-project/palisade/internal/version"
	"github.com/spf13/cobra"
)

// newVersionCmd builds `palisade version`; addVersionFlag gives the root
// command the same answer as `--version`.
func newVersionCmd(app *App) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "version [--json]",
		Short: "Print the version, the commit and the Go version of this binary",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			info := version.Get()
			if asJSON {
				return writeJSON(app.Stdout, info)
			}
			_, err := fmt.Fprintln(app.Stdout, info.String())
			return err
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// addVersionFlag makes `palisade --version` print what `palisade version`
// prints.
func addVersionFlag(root *cobra.Command) {
	info := version.Get()
	root.Version = info.Version
	root.SetVersionTemplate(info.String() + "\n")
}
