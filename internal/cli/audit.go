package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/palisade-project/palisade/internal/audit"
)

// newAuditCmd builds "palisade audit".
func newAuditCmd(app *App) *cobra.Command {
	var asJSON bool
	var minScore int
	var configDir string
	cmd := &cobra.Command{
		Use:   "audit [--json] [--min-score N] [--config-dir DIR]",
		Short: "Check the whole server against the hardening guide, with the command that fixes each finding",
		Long: "Reads the real state of the server (sshd -T, listening sockets, the kernel's ruleset, the\n" +
			"daemon, palisade's and ufw's policy, apt) and scores it against the hardening guide:\n" +
			"SSH, ports, firewall, jails, Cloudflare, notifications, updates and the daemon. It changes\n" +
			"nothing. As a normal user some checks are skipped (the report says which).\n" +
			"Exit 0 when no critical or high check fails (and the score reaches --min-score), 1 otherwise.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if minScore < 0 || minScore > 100 {
				return usageErr("--min-score %d: a number 0-100", minScore)
			}
			// A missing /etc/palisade is a fresh server (the built-in
			// defaults); a --root or --config-dir that is not there is a typo.
			if app.Root != "" {
				if fi, err := os.Stat(app.Root); err != nil || !fi.IsDir() {
					return usageErr("--root %s: not a directory", app.Root)
				}
			}
			if configDir != "" {
				if fi, err := os.Stat(configDir); err != nil || !fi.IsDir() {
					return usageErr("--config-dir %s: not a directory", configDir)
				}
			}
			opts := audit.Options{Root: app.Root, ConfigDir: configDir, Runner: app.runner(), Getenv: os.Getenv, Privileged: os.Geteuid() == 0}
			if cmd.Flags().Changed("socket") || app.Socket != DefaultSocket {
				// Otherwise the configuration's socket, under --root.
				opts.Socket = app.Socket
			}
			st := audit.NewState(audit.HostSources(cmd.Context(), opts))
			rep := (&audit.Auditor{Checkers: audit.Checkers()}).Run(cmd.Context(), st)
			if asJSON {
				if err := writeJSON(app.Stdout, rep); err != nil {
					return err
				}
			} else {
				writeAuditReport(app.Stdout, rep)
			}
			return auditVerdict(rep, minScore)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "JSON output (stable schema, docs/audit.md)")
	cmd.Flags().IntVar(&minScore, "min-score", 0, "exit 1 when the score is below N (0-100)")
	cmd.Flags().StringVar(&configDir, "config-dir", "", "palisade configuration directory (default /etc/palisade under --root)")
	return cmd
}

// auditVerdict is the exit status: 1 when a critical or high check fails
// or the score is below minScore.
func auditVerdict(rep *audit.Report, minScore int) error {
	var high []string
	for _, c := range rep.Failed() {
		if c.Severity == audit.Critical || c.Severity == audit.High {
			high = append(high, c.ID)
		}
	}
	var msgs []string
	if len(high) > 0 {
		msgs = append(msgs, fmt.Sprintf("%d critical/high check(s) fail: %s", len(high), strings.Join(high, ", ")))
	}
	if rep.Score < minScore {
		msgs = append(msgs, fmt.Sprintf("score %d is below --min-score %d", rep.Score, minScore))
	}
	if len(msgs) == 0 {
		return nil
	}
	return failErr(errors.New("audit: " + strings.Join(msgs, "; ")))
}

func areaTitle(a string) string {
	switch a {
	case audit.AreaSSH:
		return "SSH"
	case audit.AreaPorts:
		return "Ports"
	case audit.AreaFirewall:
		return "Firewall"
	case audit.AreaJails:
		return "Jails"
	case audit.AreaCloudflare:
		return "Cloudflare"
	case audit.AreaNotify:
		return "Notifications"
	case audit.AreaUpdates:
		return "Updates"
	case audit.AreaDaemon:
		return "Daemon"
	}
	return a
}

func statusMark(s audit.Status) string {
	switch s {
	case audit.Pass:
		return "[ ok ]"
	case audit.Fail:
		return "[FAIL]"
	case audit.Warn:
		return "[warn]"
	case audit.Info:
		return "[info]"
	}
	return "[skip]"
}

// writeAuditReport prints the grouped checklist, the fixes and the score.
func writeAuditReport(w io.Writer, rep *audit.Report) {
	verdict := "passed"
	if !rep.Passed {
		verdict = "FAILED (a critical or high check fails)"
	}
	fmt.Fprintf(w, "palisade audit: score %d/100, %s\n", rep.Score, verdict)
	if rep.Root != "" {
		fmt.Fprintf(w, "root: %s\n", rep.Root)
	}
	fmt.Fprintf(w, "%d passed, %d failed, %d warnings, %d informational, %d skipped\n",
		rep.Counts[audit.Pass], rep.Counts[audit.Fail], rep.Counts[audit.Warn], rep.Counts[audit.Info], rep.Counts[audit.Skip])
	width := 0
	for _, c := range rep.Checks {
		width = max(width, len(c.ID))
	}
	area := ""
	for _, c := range rep.Checks {
		if c.Area != area {
			area = c.Area
			fmt.Fprintf(w, "\n%s\n", areaTitle(area))
		}
		fmt.Fprintf(w, "  %s %-8s %-*s  %s\n", statusMark(c.Status), c.Severity, width, c.ID, c.Title)
		if c.Status == audit.Pass {
			continue
		}
		if c.Message != "" {
			fmt.Fprintf(w, "         %s\n", c.Message)
		}
		if c.Status != audit.Skip {
			for _, e := range c.Evidence {
				fmt.Fprintf(w, "           - %s\n", e)
			}
		}
		if c.Fix != "" {
			fmt.Fprintf(w, "         fix: %s\n", c.Fix)
		}
	}
	if len(rep.Limits) > 0 {
		fmt.Fprintln(w, "\nNot looked at (run as root for these):")
		for _, l := range rep.Limits {
			fmt.Fprintf(w, "  - %s\n", l)
		}
	}
	fixes := auditFixes(rep)
	if len(fixes) > 0 {
		fmt.Fprintln(w, "\nTo fix, most important first:")
		for _, f := range fixes {
			fmt.Fprintf(w, "  %s\n", f)
		}
	}
	fmt.Fprintf(w, "\nscore %d/100\n", rep.Score)
}

// auditFixes lists the distinct fixes of failing and warning checks,
// worst severity first.
func auditFixes(rep *audit.Report) []string {
	rank := func(s audit.Severity) int {
		return slices.Index([]audit.Severity{audit.Critical, audit.High, audit.Medium, audit.Low, audit.Advice}, s)
	}
	var cs []audit.Check
	for _, c := range rep.Checks {
		if c.Fix != "" && (c.Status == audit.Fail || c.Status == audit.Warn) {
			cs = append(cs, c)
		}
	}
	slices.SortStableFunc(cs, func(a, b audit.Check) int { return rank(a.Severity) - rank(b.Severity) })
	var out []string
	for _, c := range cs {
		line := fmt.Sprintf("%-34s %s", c.ID, c.Fix)
		if !slices.ContainsFunc(out, func(o string) bool { return strings.HasSuffix(o, " "+c.Fix) }) {
			out = append(out, line)
		}
	}
	return out
}
