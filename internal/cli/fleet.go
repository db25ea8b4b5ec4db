package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/palisade-project/palisade/internal/config"
	"github.com/palisade-project/palisade/internal/control"
	"github.com/palisade-project/palisade/internal/daemon"
	"github.com/palisade-project/palisade/internal/fleet"
)

// newFleetCmd builds "palisade fleet keygen|status|trust|init".
func newFleetCmd(app *App) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "fleet",
		Short: "Share bans between servers over NATS JetStream",
		Long: "Fleet-wide bans: every server publishes the bans of its shared jails, signed with its\n" +
			"own key, to a NATS JetStream stream, and applies the bans of the servers in its trust\n" +
			"file within its caps. Configure [fleet] in palisade.local (see docs/fleet.md).",
	}
	var configDir string
	cmd.PersistentFlags().StringVar(&configDir, "config-dir", "", "configuration directory (default /etc/palisade)")
	cmd.AddCommand(newFleetKeygenCmd(app, &configDir), newFleetStatusCmd(app), newFleetTrustCmd(app, &configDir),
		newFleetInitCmd(app, &configDir))
	return cmd
}

// fleetSettings loads the [fleet] section (configuration errors exit 2).
func (app *App) fleetSettings(configDir string) (config.FleetSettings, error) {
	cfg, err := daemon.LoadConfig(app.daemonOptions(configDir))
	if err != nil {
		return config.FleetSettings{}, &ExitError{Code: ExitUsage, Err: err}
	}
	return cfg.Daemon.Fleet, nil
}

func (app *App) rooted(p string) string {
	if app.Root == "" || p == "" {
		return p
	}
	return filepath.Join(app.Root, p)
}

func originOf(f config.FleetSettings) string { return daemon.FleetName(f) }

func newFleetKeygenCmd(app *App, configDir *string) *cobra.Command {
	var key string
	var force, asJSON bool
	cmd := &cobra.Command{
		Use:   "keygen [--key PATH] [--force] [--json]",
		Short: "Create this server's signing key and print the line for the others' trust files",
		Long: "Create this server's ed25519 signing key ([fleet] key, default /etc/palisade/fleet.key,\n" +
			"mode 0600) and print its trust line, NAME ed25519:KEY, to add on every other server\n" +
			"with palisade fleet trust add. An existing key is kept unless --force.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f, err := app.fleetSettings(*configDir)
			if err != nil {
				return err
			}
			path := f.Key
			if key != "" {
				path = key
			}
			path = app.rooted(path)
			pub, err := fleet.GenerateKey(path, force)
			if err != nil {
				return failErr(err)
			}
			name := originOf(f)
			if asJSON {
				return writeJSON(app.Stdout, map[string]string{"name": name, "key": path, "public_key": fleet.FormatPublicKey(pub)})
			}
			fmt.Fprintf(app.Stdout, "%s %s\n", name, fleet.FormatPublicKey(pub))
			fmt.Fprintf(app.Stderr, "key written to %s; on every other server run:\n  palisade fleet trust add %s %s\n", path, name, fleet.FormatPublicKey(pub))
			return nil
		},
	}
	cmd.Flags().StringVar(&key, "key", "", "key file (default: [fleet] key)")
	cmd.Flags().BoolVar(&force, "force", false, "replace an existing key (the others' trust files must then be updated)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func newFleetStatusCmd(app *App) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status [--json]",
		Short: "Show the connection, the stream, the peers and the outgoing queue",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var st fleet.Status
			if err := app.client().Fleet(cmd.Context(), &st); err != nil {
				return callErr(err)
			}
			if asJSON {
				return writeJSON(app.Stdout, st)
			}
			writeFleetStatus(app.Stdout, st, time.Now())
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func ago(t *time.Time, now time.Time) string {
	if t == nil {
		return "never"
	}
	return now.Sub(*t).Round(time.Second).String() + " ago"
}

func writeFleetStatus(w io.Writer, st fleet.Status, now time.Time) {
	if st.Error != "" {
		fmt.Fprintf(w, "Fleet:      NOT RUNNING: %s\n", st.Error)
		return
	}
	conn := "disconnected (bans are queued; the stream is replayed on reconnect)"
	if st.Connected {
		conn = "connected to " + st.Server
		if st.Since != nil {
			conn += " since " + st.Since.Local().Format(time.RFC3339)
		}
	}
	fmt.Fprintf(w, "Fleet:      %s, %s\n", st.Name, conn)
	if st.LastError != "" {
		fmt.Fprintf(w, "Last error: %s (%s)\n", st.LastError, ago(st.LastErrorAt, now))
	}
	s := st.Stream
	switch {
	case s.Error != "":
		fmt.Fprintf(w, "Stream:     %s: %s\n", s.Name, s.Error)
	default:
		fmt.Fprintf(w, "Stream:     %s, %d record(s), %d replica(s)", s.Name, s.Messages, s.Replicas)
		if st.CaughtUp {
			fmt.Fprintf(w, ", replayed (%d time(s), last took %s)\n", st.Replays, st.ReplayTook)
		} else {
			fmt.Fprintln(w, ", replay in progress")
		}
		if s.Problem != "" {
			fmt.Fprintf(w, "WARNING:    %s\n", s.Problem)
		}
	}
	fmt.Fprintf(w, "Remote:     %d ban(s) in force in jail %s; quorum %d; caps %d/min, %d active, ttl %s, /%d, /%d\n",
		st.RemoteBans, st.Jail, st.Quorum, st.Caps.Rate, st.Caps.Active, st.Caps.TTL, st.Caps.Prefix4, st.Caps.Prefix6)
	fmt.Fprintf(w, "Queue:      %d of %d queued, %d published, %d dropped\n", st.Queue.Depth, st.Queue.Max, st.Queue.Published, st.Queue.Dropped)
	if len(st.Refused) > 0 {
		fmt.Fprintf(w, "Refused:    %s\n", refusedText(st.Refused))
	}
	if st.Trusted == 0 {
		fmt.Fprintln(w, "WARNING:    the trust file lists no origin: nothing is applied (palisade fleet trust add)")
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PEER\tTRUSTED\tLAST SEEN\tRECEIVED\tAPPLIED\tACTIVE\tREFUSED")
	for _, p := range st.Peers {
		fmt.Fprintf(tw, "%s\t%v\t%s\t%d\t%d\t%d\t%s\n", p.Origin, p.Trusted, ago(p.LastSeen, now), p.Received, p.Applied, p.Active, refusedText(p.Refused))
	}
	tw.Flush()
}

func refusedText(m map[string]uint64) string {
	if len(m) == 0 {
		return "-"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %d", k, m[k])
	}
	return strings.Join(parts, ", ")
}

func newFleetTrustCmd(app *App, configDir *string) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "trust add NAME KEY | remove NAME | list",
		Short: "Edit the trust file: the servers whose bans this server applies",
		Long: "Edit the trust file ([fleet] trust, default /etc/palisade/fleet.trust). A running daemon\n" +
			"is reloaded: an added origin's bans are applied from the stream, a removed origin's\n" +
			"bans are lifted.",
	}
	var replace, asJSON bool
	add := &cobra.Command{
		Use:   "add NAME KEY [--replace]",
		Short: "Trust an origin (KEY as printed by its palisade fleet keygen)",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !fleet.ValidName(args[0]) {
				return usageErr("invalid origin name %q (letters, digits, - and _, at most 64)", args[0])
			}
			key, err := fleet.ParsePublicKey(args[1])
			if err != nil {
				return usageErr("%v", err)
			}
			f, err := app.fleetSettings(*configDir)
			if err != nil {
				return err
			}
			if err := fleet.TrustAdd(app.rooted(f.Trust), args[0], key, replace); err != nil {
				return failErr(err)
			}
			fmt.Fprintf(app.Stdout, "trusted %s\n", args[0])
			app.reloadForTrust(cmd.Context())
			return nil
		},
	}
	add.Flags().BoolVar(&replace, "replace", false, "replace the key of an origin already trusted")
	remove := &cobra.Command{
		Use:   "remove NAME",
		Short: "Stop trusting an origin (its bans are lifted here)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := app.fleetSettings(*configDir)
			if err != nil {
				return err
			}
			ok, err := fleet.TrustRemove(app.rooted(f.Trust), args[0])
			if err != nil {
				return failErr(err)
			}
			if !ok {
				return failErr(fmt.Errorf("%s is not in %s", args[0], app.rooted(f.Trust)))
			}
			fmt.Fprintf(app.Stdout, "removed %s\n", args[0])
			app.reloadForTrust(cmd.Context())
			return nil
		},
	}
	list := &cobra.Command{
		Use:   "list [--json]",
		Short: "List the trusted origins",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f, err := app.fleetSettings(*configDir)
			if err != nil {
				return err
			}
			tr, err := fleet.ReadTrust(app.rooted(f.Trust))
			if err != nil {
				return failErr(err)
			}
			type item struct {
				Name string `json:"name"`
				Key  string `json:"key"`
			}
			out := []item{}
			for _, n := range tr.Names() {
				k, _ := tr.Key(n)
				out = append(out, item{n, fleet.FormatPublicKey(k)})
			}
			if asJSON {
				return writeJSON(app.Stdout, map[string]any{"file": app.rooted(f.Trust), "origins": out})
			}
			if len(out) == 0 {
				fmt.Fprintf(app.Stdout, "no trusted origin in %s\n", app.rooted(f.Trust))
				return nil
			}
			for _, i := range out {
				fmt.Fprintf(app.Stdout, "%s %s\n", i.Name, i.Key)
			}
			return nil
		},
	}
	list.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.AddCommand(add, remove, list)
	return cmd
}

// reloadForTrust asks a running daemon to apply the edited trust file.
func (app *App) reloadForTrust(ctx context.Context) {
	_, err := app.client().Reload(ctx)
	switch {
	case err == nil:
		fmt.Fprintln(app.Stdout, "the daemon reloaded the trust file")
	case errors.Is(err, control.ErrNotRunning):
		fmt.Fprintln(app.Stdout, "no daemon is running: the trust file applies when it starts")
	default:
		fmt.Fprintf(app.Stderr, "palisade: the daemon did not reload: %v\n", err)
	}
}

func newFleetInitCmd(app *App, configDir *string) *cobra.Command {
	var replicas int
	var printOnly, asJSON bool
	var user, password, creds string
	cmd := &cobra.Command{
		Use:   "init [--replicas N] [--user U --password P | --creds FILE] [--print-only] [--json]",
		Short: "Create the stream with the right settings and print the NATS permissions of each server",
		Long: "Create (or correct) the JetStream stream ([fleet] stream, default palisade-bans): one\n" +
			"message per subject, per-message TTLs (nats-server 2.11 or later), file storage. It needs\n" +
			"an account allowed to manage streams: pass it with --user/--password or --creds (the\n" +
			"members' own accounts cannot). Then print, for this server and every trusted origin,\n" +
			"the permissions it needs: publish only under its own subjects, consume the stream,\n" +
			"nothing else.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if replicas < 1 || replicas > 5 {
				return usageErr("--replicas must be 1 to 5")
			}
			if creds != "" && user != "" {
				return usageErr("use --creds or --user, not both")
			}
			f, err := app.fleetSettings(*configDir)
			if err != nil {
				return err
			}
			names := []string{originOf(f)}
			if tr, err := fleet.ReadTrust(app.rooted(f.Trust)); err == nil {
				for _, n := range tr.Names() {
					if !slices.Contains(names, n) {
						names = append(names, n)
					}
				}
			}
			res := map[string]any{"stream": f.Stream}
			if !printOnly {
				c := fleet.Conn{Servers: f.Servers, Creds: app.rooted(f.Creds), NKey: app.rooted(f.NKey), User: f.User, Password: f.Password,
					CA: app.rooted(f.TLSCA), Cert: app.rooted(f.TLSCert), Key: app.rooted(f.TLSKey)}
				if creds != "" || user != "" {
					c.Creds, c.NKey, c.User, c.Password = creds, "", user, password
				}
				ctx, cancel := context.WithTimeout(cmd.Context(), 30*time.Second)
				defer cancel()
				si, created, err := fleet.InitStream(ctx, c, originOf(f), f.Stream, replicas)
				if err != nil {
					return failErr(err)
				}
				res["created"], res["info"] = created, si
				if !asJSON {
					verb := "updated"
					if created {
						verb = "created"
					}
					fmt.Fprintf(app.Stdout, "stream %s %s: %d record(s), %d replica(s), one message per subject, per-message TTLs\n\n", f.Stream, verb, si.Messages, si.Replicas)
				}
			}
			perms := map[string]fleet.Perms{}
			for _, n := range names {
				perms[n] = fleet.Permissions(n, f.Stream)
			}
			res["permissions"] = perms
			if asJSON {
				return writeJSON(app.Stdout, res)
			}
			writePermissions(app.Stdout, names, perms)
			return nil
		},
	}
	cmd.Flags().IntVar(&replicas, "replicas", 1, "stream replicas (3 on a 3-node cluster)")
	cmd.Flags().BoolVar(&printOnly, "print-only", false, "only print the permissions; do not connect")
	cmd.Flags().StringVar(&user, "user", "", "NATS user allowed to manage streams")
	cmd.Flags().StringVar(&password, "password", "", "its password")
	cmd.Flags().StringVar(&creds, "creds", "", "NATS credentials file allowed to manage streams")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// writePermissions prints a nats-server authorization block.
func writePermissions(w io.Writer, names []string, perms map[string]fleet.Perms) {
	fmt.Fprintln(w, "# nats-server.conf: one user per server (set each password, or use nkeys/JWTs),")
	fmt.Fprintln(w, "# and an admin user (full rights) for palisade fleet init only.")
	fmt.Fprintln(w, "authorization {")
	fmt.Fprintln(w, "  users = [")
	quote := func(l []string) string {
		q := make([]string, len(l))
		for i, s := range l {
			q[i] = fmt.Sprintf("%q", s)
		}
		return strings.Join(q, ", ")
	}
	for _, n := range names {
		p := perms[n]
		fmt.Fprintf(w, "    { user: %q, password: \"CHANGE-ME\", permissions: {\n", n)
		fmt.Fprintf(w, "        publish:   { allow: [%s] }\n", quote(p.Publish))
		fmt.Fprintf(w, "        subscribe: { allow: [%s] }\n", quote(p.Subscribe))
		fmt.Fprintln(w, "    } }")
	}
	fmt.Fprintln(w, "  ]")
	fmt.Fprintln(w, "}")
}

// originsText is the fleet origins of a ban in banned ("" for a local
// ban).
func originsText(l []control.FleetOrigin) string {
	if len(l) == 0 {
		return ""
	}
	parts := make([]string, len(l))
	for i, o := range l {
		parts[i] = o.Origin + "/" + o.Jail
	}
	return "  (fleet: " + strings.Join(parts, ", ") + ")"
}

// writeFleetExplain prints the fleet's records of an address in explain.
func writeFleetExplain(w io.Writer, l []control.FleetOrigin) {
	for _, o := range l {
		until := "permanently"
		if o.Expires != nil {
			until = "until " + o.Expires.Local().Format(time.RFC3339)
		}
		fmt.Fprintf(w, "  fleet: %s banned %s in its jail %s at %s %s (seq %d, received %s): %s",
			o.Origin, o.Prefix, o.Jail, o.Issued.Local().Format(time.RFC3339), until, o.Seq, o.Received.Local().Format(time.RFC3339), o.State)
		if o.Refused != "" {
			fmt.Fprintf(w, " (%s", o.Refused)
			if o.Detail != "" {
				fmt.Fprintf(w, ": %s", o.Detail)
			}
			fmt.Fprint(w, ")")
		}
		if o.Reason != "" {
			fmt.Fprintf(w, "; reason: %s", o.Reason)
		}
		fmt.Fprintln(w)
	}
}

// writeFleetSummary is the fleet's line in status.
func writeFleetSummary(w io.Writer, f *control.FleetSummary) {
	if f == nil {
		return
	}
	state := "disconnected"
	switch {
	case f.Connected && f.CaughtUp:
		state = "connected to " + f.Server
	case f.Connected:
		state = "connected to " + f.Server + ", replaying"
	}
	fmt.Fprintf(w, "Fleet:   %s, %s; %d remote ban(s) in jail %s from %d peer(s); %d queued\n", f.Name, state, f.RemoteBans, f.Jail, f.Peers, f.Queue)
	if f.Error != "" {
		fmt.Fprintf(w, "Fleet error: %s\n", f.Error)
	}
}
