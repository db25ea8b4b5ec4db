package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/palisade-project/palisade/internal/cloudflare"
	"github.com/palisade-project/palisade/internal/control"
	"github.com/palisade-project/palisade/internal/daemon"
	"github.com/palisade-project/palisade/internal/firewall"
)

// newCloudflareCmd builds "palisade cloudflare sync|status|off|real-ip".
func newCloudflareCmd(app *App) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cloudflare",
		Short: "Lock the web ports to Cloudflare, keep the lock in sync, print the real-IP setup",
		Long: "Lock the web ports (80 and 443 unless [cloudflare] ports says otherwise) so that only\n" +
			"Cloudflare's published ranges can reach them. With a running daemon the commands go\n" +
			"through it; without one they change the kernel and the database themselves.",
	}
	var configDir string
	cmd.PersistentFlags().StringVar(&configDir, "config-dir", "", "configuration directory (default /etc/palisade)")
	cmd.AddCommand(newCloudflareSyncCmd(app, &configDir), newCloudflareStatusCmd(app, &configDir),
		newCloudflareOffCmd(app, &configDir), newCloudflareRealIPCmd(app, &configDir))
	return cmd
}

// cloudflareCall runs op through the daemon, or directly when none runs
// (under --root only an explicitly given --socket is used). It reports
// whether a daemon answered.
func (app *App) cloudflareCall(ctx context.Context, configDir string, args control.CloudflareArgs, out any) error {
	if app.Root == "" || app.Socket != DefaultSocket {
		err := app.client().Cloudflare(ctx, args, out)
		if !errors.Is(err, control.ErrNotRunning) {
			return callErr(err)
		}
	}
	res, err := daemon.CloudflareCommand(ctx, app.daemonOptions(configDir), args)
	if err != nil {
		switch {
		case errors.Is(err, daemon.ErrConfig), errors.Is(err, control.ErrBadRequest):
			return &ExitError{Code: ExitUsage, Err: err}
		}
		return failErr(err)
	}
	return remarshal(res, out)
}

// remarshal copies a reply into out through its JSON form, as the control
// socket would.
func remarshal(in, out any) error {
	b, err := json.Marshal(in)
	if err != nil {
		return failErr(err)
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return failErr(err)
	}
	return nil
}

func newCloudflareSyncCmd(app *App, configDir *string) *cobra.Command {
	var source, ports string
	var dryRun, force, asJSON bool
	cmd := &cobra.Command{
		Use:   "sync [--source URL|FILE] [--ports LIST] [--dry-run] [--force] [--json]",
		Short: "Fetch Cloudflare's ranges, validate them and apply them as one atomic update",
		Long: "Fetch Cloudflare's ranges (the JSON API, or --source: another URL, or a file with one\n" +
			"CIDR per line), validate them strictly and apply them in one transaction: new ranges\n" +
			"are added before stale ones are removed. Anything wrong (an HTML page, success:false,\n" +
			"a glued or unmasked entry, an empty family, a list dropping more than half of the\n" +
			"ranges without --force) is refused and the lock in force stays. Turns the lock on.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			args := control.CloudflareArgs{Op: control.CloudflareSync, Ports: ports, DryRun: dryRun, Force: force}
			if source != "" {
				src := source
				if !cloudflare.IsURL(src) && !strings.Contains(src, "://") {
					abs, err := filepath.Abs(src)
					if err != nil {
						return usageErr("--source: %v", err)
					}
					src = abs
				}
				if _, err := cloudflare.CheckSource(src); err != nil {
					return usageErr("--source: %v", err)
				}
				if !cloudflare.IsURL(src) {
					if _, err := os.Stat(src); err != nil {
						return usageErr("--source: %v", err)
					}
				}
				args.Source = src
			}
			var lockPorts []firewall.PortRange
			if ports != "" {
				p, err := cloudflare.ParsePorts(ports)
				if err != nil {
					return usageErr("--ports: %v", err)
				}
				lockPorts = p
			}
			if !force && !dryRun {
				if cfg, err := daemon.LoadConfig(app.daemonOptions(*configDir)); err == nil {
					cf := cfg.Daemon.Cloudflare
					if lockPorts == nil {
						lockPorts = cf.Ports
					}
					if err := cloudflare.CheckSession(os.Getenv("SSH_CONNECTION"), lockPorts, cf.Allow, nil); err != nil {
						return failErr(err)
					}
				}
			}
			var res cloudflare.SyncResult
			if err := app.cloudflareCall(cmd.Context(), *configDir, args, &res); err != nil {
				return err
			}
			if asJSON {
				return writeJSON(app.Stdout, res)
			}
			writeSyncResult(app.Stdout, app.Stderr, res)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&source, "source", "", "URL (https; http warns) or file to read the list from (default: [cloudflare] url)")
	f.StringVar(&ports, "ports", "", "TCP ports to lock, such as 80,443 or 8000-8100 (default: [cloudflare] ports)")
	f.BoolVar(&dryRun, "dry-run", false, "fetch, validate and show the change; change nothing")
	f.BoolVar(&force, "force", false, "apply a list that drops more than half of the ranges in force, or that locks the port of this SSH session")
	f.BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func writeSyncResult(w, ew io.Writer, r cloudflare.SyncResult) {
	for _, s := range r.Warnings {
		fmt.Fprintf(ew, "warning: %s\n", s)
	}
	verb := "applied"
	if r.DryRun {
		verb = "dry run, nothing changed: would apply"
	}
	etag := ""
	if r.ETag != "" {
		etag = " (etag " + r.ETag + ")"
	}
	fmt.Fprintf(w, "%s %d IPv4 + %d IPv6 ranges from %s%s on TCP ports %s: %d added, %d removed, %d unchanged\n",
		verb, r.IPv4, r.IPv6, r.Source, etag, r.Ports, len(r.Diff.Added), len(r.Diff.Removed), r.Diff.Kept)
	for _, p := range r.Diff.Added {
		fmt.Fprintf(w, "  + %s\n", p)
	}
	for _, p := range r.Diff.Removed {
		fmt.Fprintf(w, "  - %s\n", p)
	}
}

func newCloudflareStatusCmd(app *App, configDir *string) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status [--json]",
		Short: "Show the lock, the list in force, the last sync, the kernel state and edge bans",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var st cloudflare.Status
			if err := app.cloudflareCall(cmd.Context(), *configDir, control.CloudflareArgs{Op: control.CloudflareStatus}, &st); err != nil {
				return err
			}
			if asJSON {
				return writeJSON(app.Stdout, st)
			}
			writeCloudflareStatus(app.Stdout, st)
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func when(t *time.Time) string {
	if t == nil {
		return "never"
	}
	return t.Format(time.RFC3339)
}

func writeCloudflareStatus(w io.Writer, s cloudflare.Status) {
	state := s.State
	switch s.State {
	case cloudflare.StateOn:
		by := "palisade cloudflare sync"
		if s.Origin == cloudflare.OriginConfig {
			by = "the configuration"
		}
		state = fmt.Sprintf("on since %s (turned on by %s)", when(s.Since), by)
	case cloudflare.StateOff:
		state = fmt.Sprintf("off since %s (palisade cloudflare off)", when(s.Since))
	case cloudflare.StateNever:
		state = "off (never turned on)"
	}
	keeper := "no daemon running"
	if s.Daemon {
		keeper = "kept in sync by the daemon"
		if !s.Enabled {
			keeper = "daemon running, [cloudflare] enabled = false"
		}
	}
	fmt.Fprintf(w, "Cloudflare lock: %s; %s\n", state, keeper)
	fmt.Fprintf(w, "Ports:     TCP %s, other sources get %s\n", s.Ports, s.BlockType)
	if s.Source != "" {
		etag := ""
		if s.ETag != "" {
			etag = ", etag " + s.ETag
		}
		fmt.Fprintf(w, "List:      %d IPv4 + %d IPv6 ranges from %s (fetched %s%s)\n", len(s.IPv4), len(s.IPv6), s.Source, when(s.Fetched), etag)
	} else {
		fmt.Fprintln(w, "List:      none fetched yet")
	}
	if len(s.Allow) > 0 {
		fmt.Fprintf(w, "Allowed:   %s\n", strings.Join(s.Allow, ", "))
	}
	last := "no sync yet"
	switch {
	case s.LastError != "":
		last = fmt.Sprintf("last attempt %s FAILED (%d in a row): %s", when(s.LastAttempt), s.Failures, s.LastError)
	case s.LastSuccess != nil:
		last = "last success " + when(s.LastSuccess)
	}
	fmt.Fprintf(w, "Syncs:     every %s from %s; %s\n", s.Interval, s.URL, last)
	if s.NextSync != nil {
		fmt.Fprintf(w, "Next sync: %s\n", when(s.NextSync))
	}
	k := "not installed"
	if s.Kernel.Installed {
		k = "installed"
		switch {
		case s.State == cloudflare.StateOn && s.Kernel.InSync:
			k += ", in sync"
		case s.State == cloudflare.StateOn:
			k += ", NOT in sync"
		}
		k += fmt.Sprintf(", %d packets refused", s.Kernel.Refused)
	}
	if s.Kernel.Repairs > 0 {
		k += fmt.Sprintf(", re-installed %d time(s)", s.Kernel.Repairs)
	}
	fmt.Fprintf(w, "Kernel:    %s\n", k)
	snap := fmt.Sprintf("%s (%d days old)", s.Snapshot.Date, s.Snapshot.AgeDays)
	if s.Snapshot.InUse {
		snap += ", IN USE"
	}
	fmt.Fprintf(w, "Snapshot:  %s\n", snap)
	if e := s.Edge; e != nil {
		line := fmt.Sprintf("zone %s, %d rule(s), %d pending, %d failing; %d created, %d deleted, %d failed call(s)",
			e.Zone, e.Rules, e.Pending, e.Failing, e.Created, e.Deleted, e.Errors)
		if e.Error != "" {
			line = fmt.Sprintf("zone %s, NOT RUNNING: %s (%d rule(s) stored)", e.Zone, e.Error, e.Rules)
		}
		fmt.Fprintf(w, "Edge bans: %s\n", line)
		for _, f := range e.Failures {
			fmt.Fprintf(w, "  failing: %s %s in %s, %d attempt(s), next %s: %s\n", f.Op, f.IP, f.Jail, f.Attempts, f.NextTry.Format(time.RFC3339), f.Error)
		}
	}
	for _, warn := range s.Warnings {
		fmt.Fprintf(w, "warning: %s\n", warn)
	}
	if s.State == cloudflare.StateNever && !s.Enabled {
		fmt.Fprintln(w, "Turn it on with palisade cloudflare sync, or enabled = true in [cloudflare] (palisade.local) for the daemon to keep it.")
	}
}

func newCloudflareOffCmd(app *App, configDir *string) *cobra.Command {
	return &cobra.Command{
		Use:   "off",
		Short: "Remove the lock (and nothing else) until the next palisade cloudflare sync",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var r control.CloudflareOffReply
			if err := app.cloudflareCall(cmd.Context(), *configDir, control.CloudflareArgs{Op: control.CloudflareOff}, &r); err != nil {
				return err
			}
			fmt.Fprintln(app.Stdout, "Cloudflare lock removed; the web ports are open to every source the rest of the firewall allows (palisade cloudflare sync turns it on again)")
			return nil
		},
	}
}

func newCloudflareRealIPCmd(app *App, configDir *string) *cobra.Command {
	return &cobra.Command{
		Use:       "real-ip nginx|apache",
		Short:     "Print the web server configuration that logs the visitor's address behind Cloudflare",
		Args:      cobra.ExactArgs(1),
		ValidArgs: []string{cloudflare.ServerNginx, cloudflare.ServerApache},
		RunE: func(cmd *cobra.Command, args []string) error {
			server := args[0]
			if server != cloudflare.ServerNginx && server != cloudflare.ServerApache {
				return usageErr("unknown web server %q (nginx or apache)", server)
			}
			var st cloudflare.Status
			if err := app.cloudflareCall(cmd.Context(), *configDir, control.CloudflareArgs{Op: control.CloudflareStatus}, &st); err != nil {
				return err
			}
			l, err := statusList(st)
			if err != nil {
				return failErr(err)
			}
			if l.Source == cloudflare.SnapshotSource && st.Source == "" {
				fmt.Fprintf(app.Stderr, "note: no list fetched yet; using the embedded snapshot of %s (run palisade cloudflare sync)\n", st.Snapshot.Date)
			}
			out, err := cloudflare.RealIP(server, l)
			if err != nil {
				return usageErr("%v", err)
			}
			_, err = io.WriteString(app.Stdout, out)
			return err
		},
	}
}

// statusList is the list a status reports, or the embedded snapshot when
// none was fetched.
func statusList(st cloudflare.Status) (cloudflare.List, error) {
	if len(st.IPv4)+len(st.IPv6) == 0 {
		return cloudflare.Snapshot()
	}
	l := cloudflare.List{Source: st.Source, ETag: st.ETag}
	if st.Fetched != nil {
		l.Fetched = *st.Fetched
	}
	for _, s := range append(append([]string(nil), st.IPv4...), st.IPv6...) {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return cloudflare.List{}, fmt.Errorf("status lists %q: %w", s, err)
		}
		if p.Addr().Is4() {
			l.IPv4 = append(l.IPv4, p)
		} else {
			l.IPv6 = append(l.IPv6, p)
		}
	}
	return cloudflare.Validate(l)
}
