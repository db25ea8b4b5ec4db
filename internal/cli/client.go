package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/palisade-project/palisade/internal/control"
	"github.com/palisade-project/palisade/internal/duration"
	"github.com/spf13/cobra"
)

// client returns a control client for app's socket.
func (app *App) client() *control.Client { return control.NewClient(app.Socket) }

// callErr maps a control error to the exit-code contract: a request the
// daemon rejected as bad input is a usage error, everything else a failure.
func callErr(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, control.ErrBadRequest) {
		return &ExitError{Code: ExitUsage, Err: err}
	}
	var re *control.RemoteError
	if errors.As(err, &re) && strings.HasPrefix(re.Msg, control.ErrBadRequest.Error()) {
		return &ExitError{Code: ExitUsage, Err: err}
	}
	return failErr(err)
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// parseIPArg validates an address argument before anything is sent.
func parseIPArg(s string) (string, error) {
	a, err := control.ParseIP(s)
	if err != nil {
		return "", usageErr("%v", err)
	}
	return a.String(), nil
}

// parseUnbanArg validates unban's address or network argument.
func parseUnbanArg(s string) (string, error) {
	if !strings.Contains(s, "/") {
		return parseIPArg(s)
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return "", usageErr("invalid address %q: want an address or a network ADDRESS/BITS", s)
	}
	return p.Masked().String(), nil
}

func parseJailArg(s string) error {
	if !control.ValidJailName(s) {
		return usageErr("invalid jail name %q", s)
	}
	return nil
}

// optionalJail returns the optional JAIL argument ("" when absent), validated.
func optionalJail(args []string) (string, error) {
	if len(args) == 0 {
		return "", nil
	}
	return args[0], parseJailArg(args[0])
}

func newStatusCmd(app *App) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status [JAIL]",
		Short: "Show jails, their counters and banned addresses",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			jail, err := optionalJail(args)
			if err != nil {
				return err
			}
			st, err := app.client().Status(cmd.Context(), jail)
			if err != nil {
				return callErr(err)
			}
			if asJSON {
				return writeJSON(app.Stdout, st)
			}
			if jail != "" && len(st.Jails) == 1 {
				writeJailStatus(app.Stdout, st.Jails[0])
				return nil
			}
			writeStatus(app.Stdout, st)
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func writeStatus(w io.Writer, st control.StatusReply) {
	fmt.Fprintf(w, "Backend: %s\nConfig:  %s\n", st.Backend, st.ConfigDir)
	if !st.Started.IsZero() {
		fmt.Fprintf(w, "Since:   %s\n", st.Started.Format(time.RFC3339))
	}
	if st.ReloadError != "" {
		fmt.Fprintf(w, "Last reload FAILED (old configuration kept): %s\n", st.ReloadError)
	}
	writeHealth(w, st)
	writeFleetSummary(w, st.Fleet)
	if db := st.Database; !db.OK && db.Error != "" {
		fmt.Fprintf(w, "Database NOT WRITABLE: %s; banning goes on from memory (%d unsaved, %d deletions pending), retried\n",
			db.Error, db.Unsaved, db.PendingDeletes)
	}
	names := make([]string, len(st.Jails))
	for i, j := range st.Jails {
		names[i] = j.Name
	}
	// "Jail list:" as fail2ban-client status prints it, for the scripts
	// that read it (grep 'Jail list' | sed 's/.*:\s*//').
	fmt.Fprintf(w, "Jails:   %d\nJail list:\t%s\n\n", len(st.Jails), strings.Join(names, ", "))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "JAIL\tFAILED\tTOTAL FAILED\tBANNED\tTOTAL BANNED\tWATCHING\tERROR")
	for _, j := range st.Jails {
		e := j.Error
		if e == "" {
			e = "-"
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%s\t%s\n", j.Name, j.CurrentlyFailed, j.TotalFailed,
			j.CurrentlyBanned, j.TotalBanned, strings.Join(watching(j), ","), e)
	}
	tw.Flush()
	for _, j := range st.Jails {
		for _, x := range j.Warnings {
			fmt.Fprintf(w, "warning: %s\n", x)
		}
		if j.StockReplaced != "" {
			fmt.Fprintf(w, "note: jail %s: fail2ban's stock %s replaced by palisade's built-in filter\n", j.Name, j.StockReplaced)
		}
		if j.Evicted > 0 {
			fmt.Fprintf(w, "warning: jail %s: failure table full, %d addresses evicted (raise failtable.size)\n", j.Name, j.Evicted)
		}
	}
}

// watching is what a jail reads (its sources for an older daemon).
func watching(j control.JailStatus) []string {
	if len(j.Watching) > 0 {
		return j.Watching
	}
	return j.Sources
}

// writeJailStatus prints one jail the way fail2ban-client does, so
// existing habits and scripts keep working.
func writeJailStatus(w io.Writer, j control.JailStatus) {
	fmt.Fprintf(w, "Status for the jail: %s\n", j.Name)
	if j.Error != "" {
		fmt.Fprintf(w, "|- Error: %s\n", j.Error)
	}
	writeJailHealth(w, j)
	for _, x := range j.Warnings {
		fmt.Fprintf(w, "|- Warning: %s\n", x)
	}
	if j.StockReplaced != "" {
		fmt.Fprintf(w, "|- Note: fail2ban's stock %s replaced by palisade's built-in filter\n", j.StockReplaced)
	}
	fmt.Fprintf(w, "|- Filter\n")
	fmt.Fprintf(w, "|  |- Currently failed:\t%d\n", j.CurrentlyFailed)
	fmt.Fprintf(w, "|  |- Total failed:\t%d\n", j.TotalFailed)
	if j.Evicted > 0 {
		fmt.Fprintf(w, "|  |- Evicted (failure table full):\t%d\n", j.Evicted)
	}
	if ws := watching(j); len(ws) == 1 && strings.HasPrefix(ws[0], "journal") {
		fmt.Fprintf(w, "|  `- Journal matches:\t%s\n", strings.TrimPrefix(strings.TrimPrefix(ws[0], "journal"), ": "))
	} else {
		fmt.Fprintf(w, "|  `- File list:\t%s\n", strings.Join(ws, " "))
	}
	fmt.Fprintf(w, "`- Actions\n")
	fmt.Fprintf(w, "   |- Currently banned:\t%d\n", j.CurrentlyBanned)
	fmt.Fprintf(w, "   |- Total banned:\t%d\n", j.TotalBanned)
	fmt.Fprintf(w, "   `- Banned IP list:\t%s\n", strings.Join(j.Banned, " "))
}

func newBanCmd(app *App) *cobra.Command {
	var dur string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "ban JAIL IP|CIDR",
		Short: "Ban an address or a network in a jail now",
		Long: "Ban an address (by the jail's ipv4prefix/ipv6prefix network when it aggregates) or a\n" +
			"network given as ADDRESS/BITS. Addresses that can never be an attacker's (unspecified,\n" +
			"loopback, multicast, link-local, broadcast) and addresses the jail ignores are refused.",
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := parseJailArg(args[0]); err != nil {
				return err
			}
			p, err := control.ParseTarget(args[1])
			if err != nil {
				return usageErr("%v", err)
			}
			ip := p.String()
			if p.IsSingleIP() {
				ip = p.Addr().String()
			}
			if dur != "" {
				if err := checkDuration(dur); err != nil {
					return err
				}
			}
			r, err := app.client().Ban(cmd.Context(), args[0], ip, dur)
			if err != nil {
				return callErr(err)
			}
			if asJSON {
				return writeJSON(app.Stdout, r)
			}
			fmt.Fprintf(app.Stdout, "banned %s in %s %s\n", r.Ban.IP, r.Ban.Jail, untilText(r.Ban))
			return nil
		},
	}
	cmd.Flags().StringVar(&dur, "for", "", "ban duration (fail2ban syntax: 1h, 2d, 3600, -1 = permanent); default the jail's bantime")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func untilText(b control.BanEntry) string {
	if b.Permanent || b.Expires == nil {
		return "permanently"
	}
	return "until " + b.Expires.Local().Format(time.RFC3339)
}

func newUnbanCmd(app *App) *cobra.Command {
	var all, asJSON bool
	cmd := &cobra.Command{
		Use:   "unban [JAIL] IP|CIDR | unban --all [JAIL]",
		Short: "Lift a ban (or every ban)",
		Args:  cobra.RangeArgs(0, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			var r control.UnbanReply
			var err error
			if all {
				if len(args) > 1 {
					return usageErr("unban --all takes at most a jail")
				}
				jail := ""
				if len(args) == 1 {
					jail = args[0]
					if err := parseJailArg(jail); err != nil {
						return err
					}
				}
				r, err = app.client().UnbanAll(cmd.Context(), jail)
			} else {
				if len(args) == 0 {
					return usageErr("usage: palisade unban [JAIL] IP|CIDR | palisade unban --all [JAIL]")
				}
				jail, target := "", args[len(args)-1]
				if len(args) == 2 {
					jail = args[0]
					if err := parseJailArg(jail); err != nil {
						return err
					}
				}
				ip, perr := parseUnbanArg(target)
				if perr != nil {
					return perr
				}
				r, err = app.client().Unban(cmd.Context(), jail, ip)
			}
			if err != nil {
				return callErr(err)
			}
			if asJSON {
				return writeJSON(app.Stdout, r)
			}
			fmt.Fprintf(app.Stdout, "%d ban(s) lifted\n", r.Removed)
			return nil
		},
	}
	cmd.Flags().BoolVar(&all, "all", false, "lift every ban (of JAIL when given)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func newBannedCmd(app *App) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "banned [JAIL]",
		Short: "List every active ban with its expiry",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			jail, err := optionalJail(args)
			if err != nil {
				return err
			}
			r, err := app.client().Banned(cmd.Context(), jail)
			if err != nil {
				return callErr(err)
			}
			if asJSON {
				return writeJSON(app.Stdout, r)
			}
			writeBanned(app.Stdout, r.Bans, time.Now())
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func writeBanned(w io.Writer, bans []control.BanEntry, now time.Time) {
	if len(bans) == 0 {
		fmt.Fprintln(w, "no active bans")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "JAIL\tIP\tSINCE\tEXPIRES\tLEFT\tOFFENCES")
	for _, b := range bans {
		exp, left := "never", "permanent"
		if b.Expires != nil && !b.Permanent {
			exp = b.Expires.Local().Format(time.RFC3339)
			left = b.Expires.Sub(now).Round(time.Second).String()
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d%s\n", b.Jail, b.IP, b.Since.Local().Format(time.RFC3339), exp, left, b.Offences, originsText(b.Origins))
	}
	tw.Flush()
}

func newExplainCmd(app *App) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "explain IP",
		Short: "Explain why an address is banned, ignored or counted",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ip, err := parseIPArg(args[0])
			if err != nil {
				return err
			}
			r, err := app.client().Explain(cmd.Context(), ip)
			if err != nil {
				return callErr(err)
			}
			if asJSON {
				return writeJSON(app.Stdout, r)
			}
			writeExplain(app.Stdout, r)
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func writeExplain(w io.Writer, r control.ExplainReply) {
	fmt.Fprintf(w, "%s\n", r.IP)
	if len(r.Banned) == 0 {
		fmt.Fprintln(w, "  not banned")
	}
	for _, b := range r.Banned {
		fmt.Fprintf(w, "  BANNED in %s since %s %s (offence %d)\n", b.Jail, b.Since.Local().Format(time.RFC3339), untilText(b), b.Offences)
	}
	writeFleetExplain(w, r.Fleet)
	for _, j := range r.Jails {
		fmt.Fprintf(w, "  jail %s:\n", j.Jail)
		if j.Ignored {
			fmt.Fprintf(w, "    ignored: %s (never banned by this jail)\n", j.IgnoreRule)
		}
		fmt.Fprintf(w, "    failures: %d of maxretry %d within findtime %s\n", j.Failures, j.MaxRetry, j.FindTime)
		for _, l := range j.Lines {
			rule := ""
			if l.Rule != "" {
				rule = " [" + l.Rule + "]"
			}
			fmt.Fprintf(w, "      %s %s%s\n", l.Time.Local().Format(time.RFC3339), l.Line, rule)
		}
		fmt.Fprintf(w, "    previous bans: %d; next ban would last %s\n", j.Offences, j.NextBanTime)
	}
}

func newReloadCmd(app *App) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "reload",
		Short: "Re-read the configuration (a broken one is refused, the running one kept)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			r, err := app.client().Reload(cmd.Context())
			if err != nil {
				return callErr(err)
			}
			if asJSON {
				return writeJSON(app.Stdout, r)
			}
			fmt.Fprintf(app.Stdout, "reloaded: %d jail(s)", len(r.Jails))
			for _, part := range []struct {
				name string
				list []string
			}{{"added", r.Added}, {"removed", r.Removed}, {"changed", r.Changed}} {
				if len(part.list) > 0 {
					fmt.Fprintf(app.Stdout, "; %s %s", part.name, strings.Join(part.list, ","))
				}
			}
			fmt.Fprintln(app.Stdout)
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// newSetCmd is fail2ban-client's `set JAIL banip|unbanip IP...`.
func newSetCmd(app *App) *cobra.Command {
	return &cobra.Command{
		Use:   "set JAIL banip|unbanip IP...",
		Short: "fail2ban-client compatible: ban or unban addresses in a jail",
		Args:  cobra.MinimumNArgs(3),
		RunE: func(cmd *cobra.Command, args []string) error {
			jail, action, ips := args[0], args[1], args[2:]
			if err := parseJailArg(jail); err != nil {
				return err
			}
			if action != "banip" && action != "unbanip" {
				return usageErr("set %s: unsupported action %q (palisade supports banip and unbanip)", jail, action)
			}
			clean := make([]string, len(ips))
			for i, s := range ips {
				ip, err := parseIPArg(s)
				if err != nil {
					return err
				}
				clean[i] = ip
			}
			n := 0
			for _, ip := range clean {
				var err error
				if action == "banip" {
					_, err = app.client().Ban(cmd.Context(), jail, ip, "")
					n++
				} else {
					var r control.UnbanReply
					r, err = app.client().Unban(cmd.Context(), jail, ip)
					n += r.Removed
				}
				if err != nil {
					return callErr(err)
				}
			}
			// fail2ban-client prints the number of addresses affected.
			fmt.Fprintln(app.Stdout, n)
			return nil
		},
	}
}

// newGetCmd is fail2ban-client's `get JAIL banned`.
func newGetCmd(app *App) *cobra.Command {
	return &cobra.Command{
		Use:   "get JAIL banned|bantime|findtime|maxretry|ignoreip|ignoreself|logpath",
		Short: "fail2ban-client compatible: a jail's banned addresses or one of its settings",
		Long: "Print what fail2ban-client get prints: the jail's banned addresses, its bantime and\n" +
			"findtime in seconds (-1: permanent), maxretry, the ignored addresses, whether the\n" +
			"host's own addresses are ignored, or what it reads, as the running daemon has them.",
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := parseJailArg(args[0]); err != nil {
				return err
			}
			if args[1] == "banned" {
				r, err := app.client().Banned(cmd.Context(), args[0])
				if err != nil {
					return callErr(err)
				}
				ips := make([]string, 0, len(r.Bans))
				for _, b := range r.Bans {
					ips = append(ips, "'"+b.IP+"'")
				}
				fmt.Fprintf(app.Stdout, "[%s]\n", strings.Join(ips, ", "))
				return nil
			}
			settings := []string{"bantime", "findtime", "maxretry", "ignoreip", "ignoreself", "logpath"} // writeJailSetting's
			if !slices.Contains(settings, args[1]) {
				return usageErr("get %s: unsupported property %q (palisade supports banned, %s)", args[0], args[1], strings.Join(settings, ", "))
			}
			st, err := app.client().Status(cmd.Context(), args[0])
			if err != nil {
				return callErr(err)
			}
			if len(st.Jails) != 1 {
				return failErr(fmt.Errorf("status of %s: %d jails in the reply", args[0], len(st.Jails)))
			}
			writeJailSetting(app.Stdout, st.Jails[0], args[1])
			return nil
		},
	}
}

// writeJailSetting prints one setting as fail2ban-client get does.
func writeJailSetting(w io.Writer, j control.JailStatus, name string) {
	s := j.Settings
	list := func(title, none string, items []string) {
		if len(items) == 0 {
			fmt.Fprintln(w, none)
			return
		}
		fmt.Fprintln(w, title)
		for i, it := range items {
			mark := "|-"
			if i == len(items)-1 {
				mark = "`-"
			}
			fmt.Fprintf(w, "%s %s\n", mark, it)
		}
	}
	switch name {
	case "bantime":
		fmt.Fprintln(w, s.BanTime)
	case "findtime":
		fmt.Fprintln(w, s.FindTime)
	case "maxretry":
		fmt.Fprintln(w, s.MaxRetry)
	case "ignoreself":
		if s.IgnoreSelf {
			fmt.Fprintln(w, "True")
		} else {
			fmt.Fprintln(w, "False")
		}
	case "ignoreip":
		list("These IP addresses/networks are ignored:", "No IP address/network is ignored", s.IgnoreIP)
	case "logpath":
		list("Current monitored log file(s):", "No file is currently monitored", j.Watching)
	}
}

// checkDuration validates a --for value (fail2ban time syntax).
func checkDuration(s string) error {
	d, err := duration.Parse(s)
	if err != nil {
		return usageErr("--for: %v", err)
	}
	if d == 0 {
		return usageErr("--for: a ban must last longer than 0 (-1 = permanent)")
	}
	return nil
}
