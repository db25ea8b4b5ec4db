package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	defaults "github.com/palisade-project/palisade/config"
	"github.com/palisade-project/palisade/internal/config"
	"github.com/palisade-project/palisade/internal/firewall/policy"
	"github.com/palisade-project/palisade/internal/firewall/policyctl"
	"github.com/palisade-project/palisade/internal/firewall/policynft"
	"github.com/palisade-project/palisade/internal/harden/ports"
	"github.com/palisade-project/palisade/internal/harden/rollback"
	"github.com/palisade-project/palisade/internal/sysexec"
)

// fwFlags are the flags every firewall command takes.
type fwFlags struct {
	configDir string
	force     bool
	dryRun    bool
	within    time.Duration
	asJSON    bool
}

// newFirewallCmd builds `palisade firewall ...`.
func newFirewallCmd(app *App) *cobra.Command {
	ff := &fwFlags{}
	cmd := &cobra.Command{
		Use:   "firewall",
		Short: "Firewall policy with connection limits (ufw's commands, on nftables, with automatic rollback)",
		Long: "Manage palisade's firewall policy: ufw's verbs and grammar, connection limits\n" +
			"(--conn, --rate), kept in CONFIG-DIR/firewall.rules and installed in palisade's\n" +
			"nftables table in one transaction. Changes that could cut access are rolled back\n" +
			"unless confirmed (palisade firewall confirm); SSH stays reachable unless --force.",
	}
	pf := cmd.PersistentFlags()
	pf.StringVar(&ff.configDir, "config-dir", "", "configuration directory holding firewall.rules (default /etc/palisade)")
	pf.BoolVar(&ff.force, "force", false, "skip the SSH lockout protection and the ufw/firewalld check")
	pf.BoolVar(&ff.dryRun, "dry-run", false, "show the change to firewall.rules and write nothing")
	durationVar(pf, &ff.within, "confirm-within", policyctl.DefaultConfirmWithin, "roll a risky change back unless confirmed within this time")
	pf.BoolVar(&ff.asJSON, "json", false, "JSON output")
	cmd.AddCommand(
		fwStatusCmd(app, ff), fwEnableCmd(app, ff), fwDisableCmd(app, ff), fwConfirmCmd(app, ff),
		fwRollbackCmd(app, ff), fwResetCmd(app, ff), fwDefaultCmd(app, ff),
		fwRuleCmd(app, ff, policy.Allow), fwRuleCmd(app, ff, policy.Deny), fwRuleCmd(app, ff, policy.Reject), fwRuleCmd(app, ff, policy.Limit),
		fwDeleteCmd(app, ff), fwImportCmd(app, ff), fwApplyCmd(app, ff),
	)
	return cmd
}

// controller wires a policyctl.Controller for the host (or --root).
func (app *App) controller(ff *fwFlags) *policyctl.Controller {
	dir := app.configDir(ff.configDir)
	r := app.runner()
	store := policyctl.NewStore(app.Root)
	prot := &policyctl.Protector{Root: app.Root, Runner: r, Getenv: os.Getenv, IgnoreIP: func() ([]netip.Prefix, error) { return app.ignoreIP(dir) }}
	if app.Root == "" {
		prot.Proc = "/proc"
	}
	return &policyctl.Controller{
		Path:    filepath.Join(dir, policy.FileName),
		Names:   policyctl.LoadNames(app.Root),
		Kernel:  policynft.New(policynft.Options{}),
		Store:   store,
		Root:    app.Root,
		Protect: prot.Endpoints,
		Open: func(port uint16) bool {
			ok, _ := (&ports.NFT{}).IsOpen(context.Background(), int(port), "tcp")
			return ok
		},
		Conflict: func(ctx context.Context) error { return policyctl.Conflict(ctx, r, app.Root) },
		StartWatcher: func(st *rollback.State) (int, error) {
			exe, err := os.Executable()
			if err != nil {
				return 0, err
			}
			if strings.HasSuffix(filepath.Base(exe), ".test") {
				return 0, errors.New("cannot start the rollback watcher from a Go test binary")
			}
			args := []string{"firewall", "rollback", "--if-unconfirmed", "--id", st.ID, "--state", store.StatePath(), "--config-dir", dir}
			if app.Root != "" {
				args = append([]string{"--root", app.Root}, args...)
			}
			return sysexec.StartDetached(sysexec.Cmd{Name: exe, Args: args}, store.LogPath())
		},
	}
}

// ignoreIP collects the ignoreip networks of every jail.
func (app *App) ignoreIP(dir string) ([]netip.Prefix, error) {
	cfg, err := config.Load(dir, config.LoadOptions{Builtin: defaults.FS(), Services: policyctl.LoadNames(app.Root).Services})
	if err != nil {
		return nil, err
	}
	var out []netip.Prefix
	for _, j := range cfg.Jails {
		for _, e := range j.IgnoreIP {
			if e.Prefix.IsValid() && !slices.Contains(out, e.Prefix) {
				out = append(out, e.Prefix)
			}
		}
	}
	return out, nil
}

func (ff *fwFlags) options() policyctl.Options {
	return policyctl.Options{Force: ff.force, DryRun: ff.dryRun, ConfirmWithin: ff.within}
}

// fwErr maps the controller's errors to exit codes.
func fwErr(err error) error {
	var ue *policyctl.UsageError
	var se *policy.SyntaxError
	var le *policy.LineError
	if errors.As(err, &ue) || errors.As(err, &se) || errors.As(err, &le) {
		return &ExitError{Code: ExitUsage, Err: err}
	}
	return failErr(err)
}

// report prints a change's result.
func (app *App) report(ff *fwFlags, res *policyctl.Result, err error) error {
	if err != nil {
		return fwErr(err)
	}
	if ff.asJSON {
		return writeJSON(app.Stdout, res)
	}
	for _, w := range res.Warnings {
		fmt.Fprintf(app.Stderr, "warning: %s\n", w)
	}
	if res.DryRun {
		if res.Changed {
			fmt.Fprint(app.Stdout, res.Diff)
		}
		fmt.Fprintln(app.Stdout, res.Message)
		fmt.Fprintln(app.Stdout, "dry run: nothing written")
		return nil
	}
	fmt.Fprintln(app.Stdout, res.Message)
	for _, k := range res.Kept {
		fmt.Fprintf(app.Stdout, "Added to keep SSH reachable: %s\n", k)
	}
	if res.Backup != "" {
		fmt.Fprintf(app.Stdout, "Previous rules saved in %s\n", res.Backup)
	}
	if res.Pending != nil {
		fmt.Fprintf(app.Stdout, "Test it from a NEW connection, then run: palisade firewall confirm\n")
		fmt.Fprintf(app.Stdout, "Without confirmation the previous policy comes back at %s.\n", res.Pending.Deadline.UTC().Format(time.RFC3339))
	}
	return nil
}

// fwSimpleCmd is a firewall command without arguments that changes the
// policy through one controller method.
func fwSimpleCmd(app *App, ff *fwFlags, use, short string, run func(*policyctl.Controller, context.Context, policyctl.Options) (*policyctl.Result, error)) *cobra.Command {
	return &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			res, err := run(app.controller(ff), cmd.Context(), ff.options())
			return app.report(ff, res, err)
		},
	}
}

func fwEnableCmd(app *App, ff *fwFlags) *cobra.Command {
	return fwSimpleCmd(app, ff, "enable [--confirm-within DUR] [--force]",
		"Put the policy in force now and at boot (SSH stays reachable; rolled back unless confirmed)", (*policyctl.Controller).Enable)
}

func fwDisableCmd(app *App, ff *fwFlags) *cobra.Command {
	return fwSimpleCmd(app, ff, "disable", "Take the policy out of the kernel (bans keep working)", (*policyctl.Controller).Disable)
}

func fwResetCmd(app *App, ff *fwFlags) *cobra.Command {
	return fwSimpleCmd(app, ff, "reset", "Disable the policy and delete every rule (the old file is kept beside it)", (*policyctl.Controller).Reset)
}

func fwDefaultCmd(app *App, ff *fwFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "default deny|reject|allow [incoming]",
		Short: "Set the verdict for incoming connections no rule matches",
		Args:  cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			d, outgoing, err := policy.ParseDefaultArgs(args)
			if err != nil {
				return usageErr("%v", err)
			}
			if outgoing {
				fmt.Fprintln(app.Stdout, "Default outgoing policy is 'allow' (palisade filters incoming traffic only)")
				return nil
			}
			res, err := app.controller(ff).SetDefault(cmd.Context(), d, ff.options())
			return app.report(ff, res, err)
		},
	}
}

// addLimitFlags defines the limit options; they are handed to the rule
// parser as words, so the command line and firewall.rules share one grammar.
func addLimitFlags(cmd *cobra.Command) map[string]*string {
	m := map[string]*string{}
	for _, f := range []struct{ name, help string }{
		{"conn", "at most N concurrent connections per source network"},
		{"mask", "group IPv4 sources into networks of this prefix length (default 32)"},
		{"mask6", "group IPv6 sources into networks of this prefix length (default 128)"},
		{"rate", "at most N new connections per source network within DUR (N/DUR, e.g. 1/1s, 5/30s)"},
		{"mode", "over the rate: penalty (attempts keep it refused; default) or bucket (refills at N per DUR)"},
		{"size", "entries per kernel set (default 65536)"},
		{"backstop", "shared rate for sources a full set cannot track (N/DUR; default 16 times the limit)"},
	} {
		m[f.name] = cmd.Flags().String(f.name, "", f.help)
	}
	return m
}

// ruleWords returns the RULE words plus the limit options given.
func ruleWords(cmd *cobra.Command, limit map[string]*string, args []string) []string {
	words := slices.Clone(args)
	for _, name := range []string{"conn", "mask", "mask6", "rate", "mode", "size", "backstop"} {
		if f := cmd.Flags().Lookup(name); f != nil && f.Changed {
			words = append(words, "--"+name, *limit[name])
		}
	}
	return words
}

func parseRuleArgs(app *App, cmd *cobra.Command, limit map[string]*string, a policy.Action, args []string) (policy.Rule, []string, error) {
	r, given, err := policy.ParseRule(a, ruleWords(cmd, limit, args), policyctl.LoadNames(app.Root))
	if err != nil {
		return policy.Rule{}, nil, &ExitError{Code: ExitUsage, Err: fmt.Errorf("%s: %w", a, err)}
	}
	return r, given, nil
}

func fwRuleCmd(app *App, ff *fwFlags, a policy.Action) *cobra.Command {
	use := string(a) + " RULE"
	short := map[policy.Action]string{
		policy.Allow:  "Accept new connections matching RULE",
		policy.Deny:   "Drop new connections matching RULE",
		policy.Reject: "Refuse new connections matching RULE (TCP reset, ICMP port unreachable)",
		policy.Limit:  "Accept RULE's connections within limits (plain: ufw's 6 in 30 s refused)",
	}[a]
	var limit map[string]*string
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Long: short + "\n\nRULE: PORT[/PROTO] | PORT,PORT/PROTO | PORT:PORT/PROTO | SERVICE\n" +
			"    | [in on IFACE] from ADDR|CIDR|any [port PORT] [to ADDR|any [port PORT]] [proto tcp|udp]\n" +
			"    [comment TEXT]. The first rule that matches a new connection decides;\n" +
			"a rule for the same traffic as an existing one updates it (as ufw does).",
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			r, given, err := parseRuleArgs(app, cmd, limit, a, args)
			if err != nil {
				return err
			}
			res, err := app.controller(ff).Add(cmd.Context(), r, given, ff.options())
			return app.report(ff, res, err)
		},
	}
	if a == policy.Limit {
		cmd.Use = "limit RULE [--conn N [--mask BITS] [--mask6 BITS]] [--rate N/DUR] [--mode penalty|bucket]"
		limit = addLimitFlags(cmd)
	}
	return cmd
}

func fwDeleteCmd(app *App, ff *fwFlags) *cobra.Command {
	var limit map[string]*string
	cmd := &cobra.Command{
		Use:   "delete NUMBER | delete allow|deny|reject|limit RULE",
		Short: "Delete a rule by its number (status numbered) or by its text",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c := app.controller(ff)
			if n, err := strconv.Atoi(args[0]); err == nil {
				if len(args) > 1 {
					return usageErr("delete NUMBER takes no more words (%q)", args[1])
				}
				res, err := c.DeleteNumber(cmd.Context(), n, ff.options())
				return app.report(ff, res, err)
			}
			a, ok := policy.ParseAction(args[0])
			if !ok {
				return usageErr("delete %q: give a rule number or allow|deny|reject|limit RULE", args[0])
			}
			if len(args) < 2 {
				return usageErr("delete %s: missing RULE", a)
			}
			r, given, err := parseRuleArgs(app, cmd, limit, a, args[1:])
			if err != nil {
				return err
			}
			res, err := c.Delete(cmd.Context(), r, given, ff.options())
			return app.report(ff, res, err)
		},
	}
	limit = addLimitFlags(cmd)
	return cmd
}

func fwImportCmd(app *App, ff *fwFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "import ufw [--dry-run]",
		Short: "Translate ufw's rules, limits and default policy into firewall.rules and show the result",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if args[0] != "ufw" {
				return usageErr("import %q: only ufw can be imported", args[0])
			}
			imp, err := policy.ImportUFW(app.Root)
			if err != nil {
				return failErr(err)
			}
			c := app.controller(ff)
			res, err := c.Import(cmd.Context(), imp, ff.options())
			if err != nil {
				return fwErr(err)
			}
			if ff.asJSON {
				return writeJSON(app.Stdout, res)
			}
			for _, w := range res.Warnings {
				fmt.Fprintf(app.Stderr, "warning: %s\n", w)
			}
			fmt.Fprint(app.Stdout, res.Diff)
			fmt.Fprintln(app.Stdout, res.Message)
			if res.DryRun {
				fmt.Fprintln(app.Stdout, "dry run: nothing written")
				return nil
			}
			if res.Backup != "" {
				fmt.Fprintf(app.Stdout, "Previous rules saved in %s\n", res.Backup)
			}
			if res.Pending != nil {
				fmt.Fprintf(app.Stdout, "Test it from a NEW connection, then run: palisade firewall confirm\n")
				fmt.Fprintf(app.Stdout, "Without confirmation the previous policy comes back at %s.\n", res.Pending.Deadline.UTC().Format(time.RFC3339))
			} else if imp.Enabled {
				fmt.Fprintln(app.Stdout, "Next: ufw disable, then palisade firewall enable")
			}
			return nil
		},
	}
}

func fwApplyCmd(app *App, ff *fwFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "apply",
		Short: "Install firewall.rules as it is and exit (at boot; after editing the file by hand)",
		Long: "Install firewall.rules in the kernel in one transaction. An unconfirmed change whose\n" +
			"rollback watcher is gone (the host restarted inside its confirmation window) is\n" +
			"rolled back first. Run at boot by dist/palisade-firewall.service.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c := app.controller(ff)
			res, err := c.ApplyFile(cmd.Context(), true)
			if res != nil && res.RolledBack != "" {
				fmt.Fprintf(app.Stdout, "Rolled back unconfirmed change %s (its confirmation window did not survive the restart)\n", res.RolledBack)
			}
			if err != nil {
				return fwErr(err)
			}
			switch {
			case !res.Exists:
				fmt.Fprintf(app.Stdout, "No %s: no policy to install\n", c.Path)
			case res.Policy.Enabled:
				fmt.Fprintf(app.Stdout, "Firewall policy installed: default %s incoming, %d rules\n", res.Policy.Default, len(res.Policy.Rules))
			default:
				fmt.Fprintln(app.Stdout, "Firewall policy is disabled: nothing installed")
			}
			if res.Policy.Enabled {
				if err := policyctl.Conflict(cmd.Context(), app.runner(), app.Root); err != nil {
					fmt.Fprintf(app.Stderr, "warning: %v\n", err)
				}
			}
			return nil
		},
	}
}

func fwConfirmCmd(app *App, ff *fwFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "confirm",
		Short: "Keep the pending firewall change (stops the automatic rollback)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := app.controller(ff).Confirm(cmd.Context())
			if err != nil {
				return failErr(err)
			}
			fmt.Fprintf(app.Stdout, "Confirmed firewall change %s\n", st.ID)
			return nil
		},
	}
}

func fwRollbackCmd(app *App, ff *fwFlags) *cobra.Command {
	var ifUnconfirmed bool
	var id, state string
	cmd := &cobra.Command{
		Use:   "rollback",
		Short: "Restore the policy as it was before the last change and apply it",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c := app.controller(ff)
			if state != "" {
				c.Store = &rollback.Store{Dir: filepath.Dir(state)}
			}
			if ifUnconfirmed && id == "" {
				return usageErr("--if-unconfirmed needs --id")
			}
			ctx := cmd.Context()
			if ifUnconfirmed {
				// The watcher outlives the terminal; bound it anyway.
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(context.Background(), 24*time.Hour)
				defer cancel()
			}
			st, done, err := c.Rollback(ctx, ifUnconfirmed, id)
			if err != nil {
				return failErr(err)
			}
			if done {
				fmt.Fprintf(app.Stdout, "%s rolled back firewall change %s: %s restored and applied\n", time.Now().UTC().Format(time.RFC3339), st.ID, c.Path)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&ifUnconfirmed, "if-unconfirmed", false, "wait for the change's deadline and roll back only if it was not confirmed (the watcher)")
	cmd.Flags().StringVar(&id, "id", "", "change id (with --if-unconfirmed)")
	cmd.Flags().StringVar(&state, "state", "", "state file (default /var/lib/palisade/firewall/state.json)")
	_ = cmd.Flags().MarkHidden("if-unconfirmed")
	_ = cmd.Flags().MarkHidden("id")
	_ = cmd.Flags().MarkHidden("state")
	return cmd
}

func fwStatusCmd(app *App, ff *fwFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "status [verbose|numbered] [--json]",
		Short: "Show the policy (ufw status layout) and its state in the kernel",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			mode := ""
			if len(args) == 1 {
				mode = args[0]
				if mode != "verbose" && mode != "numbered" {
					return usageErr("status %q: verbose or numbered", mode)
				}
			}
			st, err := app.controller(ff).Status(cmd.Context(), mode == "verbose" || ff.asJSON)
			if err != nil {
				return fwErr(err)
			}
			if ff.asJSON {
				return writeJSON(app.Stdout, st)
			}
			daemon := ""
			if mode == "verbose" {
				ctx, cancel := context.WithTimeout(cmd.Context(), 2*time.Second)
				defer cancel()
				if p, err := app.client().Ping(ctx); err == nil {
					daemon = fmt.Sprintf("running (pid %d): re-installs the policy if the table is flushed", p.PID)
				} else {
					daemon = "not running (nothing re-installs the policy after nft flush ruleset)"
				}
			}
			writeFirewallStatus(app.Stdout, st, mode, daemon)
			return nil
		},
	}
}

func writeFirewallStatus(w io.Writer, st *policyctl.Status, mode, daemon string) {
	if st.Enabled {
		fmt.Fprintln(w, "Status: active")
	} else {
		fmt.Fprintln(w, "Status: inactive")
	}
	if mode == "verbose" {
		fmt.Fprintf(w, "Default: %s (incoming), allow (outgoing)\n", st.Default)
		fmt.Fprintf(w, "Policy file: %s\n", st.File)
		if daemon != "" {
			fmt.Fprintf(w, "Daemon: %s\n", daemon)
		}
	}
	if st.Enabled && !st.Installed {
		fmt.Fprintf(w, "Warning: the kernel does not hold this policy (%s): run palisade firewall apply\n", st.InstallError)
	}
	if !st.Enabled && !st.Installed && st.InstallError != "" {
		fmt.Fprintf(w, "Warning: %s: run palisade firewall apply\n", st.InstallError)
	}
	if st.Pending != nil {
		fmt.Fprintf(w, "Change %s waits for confirmation until %s: palisade firewall confirm (or rollback)\n", st.Pending.ID, st.Pending.Deadline.UTC().Format(time.RFC3339))
	}
	if st.Conflict != "" {
		fmt.Fprintf(w, "Warning: %s\n", st.Conflict)
	}
	if !st.Enabled && mode == "" {
		if len(st.Rules) > 0 {
			fmt.Fprintf(w, "(%d rules in %s; palisade firewall enable puts them in force)\n", len(st.Rules), st.File)
		}
		return
	}
	if len(st.Rules) == 0 {
		return
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	prefix := ""
	if mode == "numbered" {
		prefix = "     "
	}
	fmt.Fprintf(tw, "%sTo\tAction\tFrom\n", prefix)
	fmt.Fprintf(tw, "%s--\t------\t----\n", prefix)
	limits := map[int]policynft.LimitStats{}
	for _, l := range st.Limits {
		limits[l.Rule] = l
	}
	for _, r := range st.Rules {
		action := strings.ToUpper(r.Action)
		if mode != "" {
			action += " IN"
		}
		p := ""
		if mode == "numbered" {
			p = fmt.Sprintf("[%2d] ", r.Number)
		}
		comment := ""
		if r.Comment != "" {
			comment = "  # " + r.Comment
		}
		fmt.Fprintf(tw, "%s%s\t%s\t%s%s\n", p, r.To, action, r.From, comment)
		if mode == "verbose" && r.Limit != nil {
			fmt.Fprintf(tw, "%s\t\t%s\n", "", limitText(r.Limit, limits[r.Number]))
		}
	}
	tw.Flush()
}

func limitText(l *policyctl.LimitJSON, ks policynft.LimitStats) string {
	var parts []string
	if l.Conn > 0 {
		parts = append(parts, fmt.Sprintf("conn %d per /%d (/%d)", l.Conn, l.Mask, l.Mask6))
	}
	if l.Rate != "" {
		parts = append(parts, fmt.Sprintf("rate %s %s per /%d (/%d)", l.Rate, l.Mode, l.Mask, l.Mask6))
	}
	parts = append(parts, "over: "+l.Block)
	s := "  limit: " + strings.Join(parts, ", ")
	if len(ks.Sets) > 0 {
		var sets []string
		for _, set := range ks.Sets {
			sets = append(sets, fmt.Sprintf("%s %d/%d", set.Name, set.Elements, set.Size))
		}
		s += "; sets " + strings.Join(sets, " ")
		s += fmt.Sprintf("; untracked (sets full, backstop %s): %d", l.Backstop, ks.Untracked)
		if len(ks.Full) > 0 {
			s += " FULL: " + strings.Join(ks.Full, " ")
		}
	}
	return s
}
