// Package cli holds palisade's cobra commands. Commands parse flags, call
// the package that does the work and render its result (text or --json);
// they hold no logic of their own.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
)

// Exit codes (the command-line contract).
const (
	ExitOK      = 0 // success
	ExitFailure = 1 // the operation failed
	ExitUsage   = 2 // bad usage or bad input
)

// ExitError carries an exit code up to Main.
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string { return e.Err.Error() }
func (e *ExitError) Unwrap() error { return e.Err }

// usageErr marks err as bad usage or bad input (exit 2).
func usageErr(format string, args ...any) error {
	return &ExitError{Code: ExitUsage, Err: fmt.Errorf(format, args...)}
}

// failErr marks err as a failed operation (exit 1).
func failErr(err error) error {
	return &ExitError{Code: ExitFailure, Err: err}
}

// App is the state shared by every command: the output streams and the
// global flags.
type App struct {
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer

	// Root prefixes every system path (--root).
	Root string
	// Socket is the control socket path (--socket).
	Socket string
}

// DefaultSocket is where the daemon listens unless told otherwise.
const DefaultSocket = "/run/palisade/palisade.sock"

// NewRoot builds the command tree for app.
func NewRoot(app *App) *cobra.Command {
	root := &cobra.Command{
		Use:           "palisade",
		Short:         "Keep attackers out of a Linux server",
		Long:          "palisade watches logs and bans brute-forcers in the kernel firewall (fail2ban-compatible),\nhardens SSH and service ports, rate-limits connections and locks web ports to Cloudflare.",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetIn(app.Stdin)
	root.SetOut(app.Stdout)
	root.SetErr(app.Stderr)
	root.PersistentFlags().StringVar(&app.Root, "root", "", "prefix for every system path (tests, dry runs)")
	root.PersistentFlags().StringVar(&app.Socket, "socket", DefaultSocket, "control socket of the daemon")
	root.PersistentPreRunE = app.preRun
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error {
		return &ExitError{Code: ExitUsage, Err: err}
	})
	addVersionFlag(root)
	root.AddCommand(newVersionCmd(app))
	root.AddCommand(newRegexCmd(app))
	root.AddCommand(newDaemonCmds(app)...)
	root.AddCommand(newHardenCmds(app)...)
	root.AddCommand(newCloudflareCmd(app))
	root.AddCommand(newNotifyCmd(app))
	root.AddCommand(newFirewallCmd(app))
	root.AddCommand(newAuditCmd(app))
	root.AddCommand(newFleetCmd(app))
	requireSubcommands(root)
	return root
}

// groupOnly marks a command that only groups others (IsGroup).
const groupOnly = "palisade/group-only"

// IsGroup reports whether c only groups subcommands: it runs nothing of
// its own (requireSubcommands gave it the RunE that refuses unknown ones).
func IsGroup(c *cobra.Command) bool { return c.Annotations[groupOnly] != "" }

// requireSubcommands makes every command below root that only groups
// others refuse an unknown subcommand: cobra shows such a command's help
// and exits 0 for "palisade firewall shwo", which a script would take for
// success. Alone ("palisade firewall") it still shows its help.
func requireSubcommands(root *cobra.Command) {
	for _, c := range root.Commands() {
		requireSubcommands(c)
		if !c.HasSubCommands() || c.Runnable() {
			continue
		}
		if c.Annotations == nil {
			c.Annotations = map[string]string{}
		}
		c.Annotations[groupOnly] = "yes"
		c.RunE = func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return cmd.Help()
			}
			msg := fmt.Sprintf("unknown command %q for %q", args[0], cmd.CommandPath())
			if cmd.SuggestionsMinimumDistance <= 0 {
				cmd.SuggestionsMinimumDistance = 2 // cobra's default for the root
			}
			if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
				msg += " (did you mean " + strings.Join(s, " or ") + "?)"
			}
			return usageErr("%s", msg)
		}
	}
}

// Main runs the command line args and returns the process exit code.
func Main(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	app := &App{Stdin: stdin, Stdout: stdout, Stderr: stderr}
	root := NewRoot(app)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return ExitOK
	}
	fmt.Fprintf(stderr, "palisade: %v\n", err)
	var ee *ExitError
	if errors.As(err, &ee) {
		return ee.Code
	}
	// cobra's own errors (unknown command, wrong arg count) are usage errors.
	return ExitUsage
}
