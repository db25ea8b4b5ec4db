package cli

import (
	"fmt"
	"io"
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// TestCommandDocs compares the command tree with docs/cli.md's command
// table, both ways and flag by flag, so `--help`, the generated man pages
// and the docs cannot drift apart. Each message says which side lacks what.
func TestCommandDocs(t *testing.T) {
	const file = "docs/cli.md"
	md, err := os.ReadFile("../../" + file)
	if err != nil {
		t.Fatal(err)
	}
	root := NewRoot(&App{Stdin: strings.NewReader(""), Stdout: io.Discard, Stderr: io.Discard})
	root.InitDefaultCompletionCmd() // cobra adds it at Execute: the binary has it
	for _, p := range checkCommandDocs(root, string(md), file) {
		t.Error(p)
	}
}

// TestCheckCommandDocs shows that the checker reports each kind of drift.
func TestCheckCommandDocs(t *testing.T) {
	tree := func() *cobra.Command {
		run := func(*cobra.Command, []string) error { return nil }
		root := &cobra.Command{Use: "palisade"}
		root.PersistentFlags().String("socket", "", "")
		ban := &cobra.Command{Use: "ban JAIL IP", RunE: run}
		ban.Flags().String("for", "", "")
		ban.Flags().Bool("json", false, "")
		ssh := &cobra.Command{Use: "ssh"}
		audit := &cobra.Command{Use: "audit", RunE: run}
		confirm := &cobra.Command{Use: "confirm", RunE: run}
		hidden := &cobra.Command{Use: "secret", RunE: run, Hidden: true}
		ssh.AddCommand(audit, confirm)
		root.AddCommand(ban, ssh, hidden)
		return root
	}
	const header = "| command | what |\n|---|---|\n"
	tests := []struct {
		name string
		md   string
		want []string
	}{
		{
			name: "complete",
			md: header + "| `palisade ban JAIL IP [--for D] [--json] [--socket P]` | ban |\n" +
				"| `palisade ssh audit\\|confirm` | audit or confirm |\n",
		},
		{
			name: "undocumented command and flag",
			md:   header + "| `palisade ban JAIL IP [--for D]` | ban |\n| `palisade ssh audit` | audit |\n",
			want: []string{
				"`palisade ban` takes --json, which cli.md does not document for it",
				"cli.md has no row for `palisade ssh confirm` (a command in the binary): add one to the command table",
			},
		},
		{
			name: "documented but missing",
			md: header + "| `palisade ban JAIL IP [--for D] [--json] [--forever]` | ban |\n" +
				"| `palisade ssh audit\\|confirm\\|harden` | x |\n| `palisade unban IP` | x |\n| `palisade ssh` | x |\n",
			want: []string{
				"cli.md has no row for `palisade ssh audit` (a command in the binary): add one to the command table",
				"cli.md has no row for `palisade ssh confirm` (a command in the binary): add one to the command table",
				"cli.md:3: `palisade ban` documents --forever, which the command does not take",
				"cli.md:4 lists `palisade ssh harden`, which the binary does not have (`palisade ssh` has no subcommand \"harden\")",
				"cli.md:5 lists `palisade unban`, which the binary does not have (`palisade` has no subcommand \"unban\")",
				"cli.md:6 lists `palisade ssh`, which only groups subcommands: list them instead",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := checkCommandDocs(tree(), tt.md, "cli.md")
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

var (
	docRow  = regexp.MustCompile("^\\|\\s*`(palisade(?: [^`]*)?)`")
	docFlag = regexp.MustCompile(`--[a-z][a-z0-9-]*`)
	docWord = regexp.MustCompile(`^[a-z][a-z0-9-]*(\|[a-z][a-z0-9-]*)*$`)
)

// checkCommandDocs returns every disagreement between the command tree
// under root and the command table in md (rows whose first cell is a code
// span starting with "palisade"), named by file for the messages.
//
// A row's command path is read as cobra resolves it: words after
// "palisade" name subcommands while the current command has one of that
// name ("a|b" lists alternatives, each its own path); the first other word
// is an argument. Every --flag in the span must be a flag of that command
// (its own or inherited), every visible flag of a command must appear in one
// of its rows, and every runnable visible command needs a row.
func checkCommandDocs(root *cobra.Command, md, file string) []string {
	var problems []string
	documented := map[*cobra.Command]map[string]bool{} // command → flags named in its rows
	for i, line := range strings.Split(md, "\n") {
		m := docRow.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		span := strings.ReplaceAll(m[1], `\|`, "|")
		cmds, err := resolveDocPath(root, strings.Fields(span)[1:])
		if err != "" {
			problems = append(problems, fmt.Sprintf("%s:%d lists %s", file, i+1, err))
			continue
		}
		flags := docFlag.FindAllString(span, -1)
		for _, c := range cmds {
			if documented[c] == nil {
				documented[c] = map[string]bool{}
			}
			for _, f := range flags {
				name := strings.TrimPrefix(f, "--")
				documented[c][name] = true
				if c.Flag(name) == nil {
					problems = append(problems, fmt.Sprintf("%s:%d: `%s` documents %s, which the command does not take", file, i+1, c.CommandPath(), f))
				}
			}
		}
	}
	walkCommands(root, func(c *cobra.Command) {
		if !c.Runnable() || IsGroup(c) {
			return
		}
		flags, ok := documented[c]
		if !ok {
			problems = append(problems, fmt.Sprintf("%s has no row for `%s` (a command in the binary): add one to the command table", file, c.CommandPath()))
			return
		}
		var missing []string
		c.LocalFlags().VisitAll(func(f *pflag.Flag) {
			if !f.Hidden && f.Name != "help" && f.Name != "version" && !flags[f.Name] {
				missing = append(missing, "--"+f.Name)
			}
		})
		sort.Strings(missing)
		for _, f := range missing {
			problems = append(problems, fmt.Sprintf("`%s` takes %s, which %s does not document for it", c.CommandPath(), f, file))
		}
	})
	sort.SliceStable(problems, func(i, j int) bool { return problems[i] < problems[j] })
	return problems
}

// resolveDocPath resolves the words after "palisade" to the commands they
// name, or says why they name none.
func resolveDocPath(root *cobra.Command, words []string) ([]*cobra.Command, string) {
	cur := []*cobra.Command{root}
	for _, w := range words {
		if len(cur) > 1 || !docWord.MatchString(w) || !cur[0].HasSubCommands() {
			break // alternatives end the path; other words are arguments
		}
		c, alts := cur[0], strings.Split(w, "|")
		if c.Runnable() && !IsGroup(c) && findSub(c, alts[0]) == nil {
			break // a runnable command takes an unknown word as an argument
		}
		cur = nil
		for _, alt := range alts {
			sub := findSub(c, alt)
			if sub == nil {
				return nil, fmt.Sprintf("`%s %s`, which the binary does not have (`%s` has no subcommand %q)",
					c.CommandPath(), alt, c.CommandPath(), alt)
			}
			cur = append(cur, sub)
		}
	}
	for _, c := range cur {
		if !c.Runnable() || IsGroup(c) {
			return nil, fmt.Sprintf("`%s`, which only groups subcommands: list them instead", c.CommandPath())
		}
	}
	return cur, ""
}

func findSub(c *cobra.Command, name string) *cobra.Command {
	for _, s := range c.Commands() {
		if s.Name() == name || s.HasAlias(name) {
			return s
		}
	}
	return nil
}

// walkCommands calls fn for every visible command under root (root
// included), skipping help and hidden or deprecated commands.
func walkCommands(root *cobra.Command, fn func(*cobra.Command)) {
	if root.HasParent() && !root.IsAvailableCommand() {
		return
	}
	fn(root)
	for _, c := range root.Commands() {
		walkCommands(c, fn)
	}
}
