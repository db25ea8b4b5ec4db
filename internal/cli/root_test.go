package cli

import (
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// TestUnknownSubcommandFails: every command that only groups others
// refuses an unknown subcommand with exit 2 (cobra alone shows the help
// and exits 0), suggests a near name, and shows its help when given none.
func TestUnknownSubcommandFails(t *testing.T) {
	var groups []*cobra.Command
	var walk func(*cobra.Command)
	walk = func(c *cobra.Command) {
		for _, s := range c.Commands() {
			if s.HasSubCommands() {
				groups = append(groups, s)
			}
			walk(s)
		}
	}
	walk(NewRoot(&App{}))
	if len(groups) < 5 {
		t.Fatalf("only %d command groups found", len(groups))
	}
	for _, g := range groups {
		path := strings.Fields(g.CommandPath())[1:]
		t.Run(strings.Join(path, " "), func(t *testing.T) {
			code, _, errs := runCLI(t, append(path, "nosuchverb")...)
			if code != ExitUsage || !strings.Contains(errs, `unknown command "nosuchverb" for "`+g.CommandPath()+`"`) {
				t.Errorf("exit %d, stderr %q", code, errs)
			}
			code, out, errs := runCLI(t, path...)
			if code != ExitOK || !strings.Contains(out, "Available Commands:") {
				t.Errorf("alone: exit %d, stdout %q, stderr %q", code, out, errs)
			}
		})
	}
	code, _, errs := runCLI(t, "firewall", "stauts")
	if code != ExitUsage || !strings.Contains(errs, "did you mean status?") {
		t.Errorf("a near name: exit %d, %q", code, errs)
	}
}
