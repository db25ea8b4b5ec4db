package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/palisade-project/palisade/internal/control"
	"github.com/palisade-project/palisade/internal/daemon"
	"github.com/palisade-project/palisade/internal/notify"
	"github.com/spf13/cobra"
)

// notifyTestReport is the --json output of `palisade notify test`.
type notifyTestReport struct {
	OK      bool                `json:"ok"`
	Results []notify.TestResult `json:"results"`
}

func newNotifyCmd(app *App) *cobra.Command {
	cmd := &cobra.Command{Use: "notify", Short: "Notification commands"}
	var configDir string
	var asJSON bool
	var timeout time.Duration
	test := &cobra.Command{
		Use:   "test [ROUTE] [--config-dir DIR] [--json]",
		Short: "Send a test message through every notification route (or one)",
		Long: "Send a test message through each [notify:NAME] route of the configuration (and the\n" +
			"routes palisade made from fail2ban mail actions), directly from this command: the\n" +
			"daemon need not run. Reports each sink's result; exits 1 when any failed.",
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := daemon.LoadConfig(app.daemonOptions(configDir))
			if err != nil {
				return &ExitError{Code: ExitUsage, Err: err}
			}
			routes := cfg.Observe.Notify
			if len(routes) == 0 {
				return usageErr("no notification routes in %s (add a [notify:NAME] section to palisade.local)", cfg.Dir)
			}
			n, err := notify.New(routes, notify.Deps{})
			if err != nil {
				return usageErr("%v", err)
			}
			defer n.Close(context.Background())
			name := ""
			if len(args) == 1 {
				name = args[0]
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			res, err := n.Test(ctx, name)
			if errors.Is(err, notify.ErrNoRoute) {
				return usageErr("%v", err)
			}
			rep := notifyTestReport{OK: true, Results: res}
			for _, r := range res {
				rep.OK = rep.OK && r.OK
			}
			if asJSON {
				if err := writeJSON(app.Stdout, rep); err != nil {
					return failErr(err)
				}
			} else {
				for _, r := range res {
					state := "ok"
					if !r.OK {
						state = "FAILED: " + r.Error
					}
					fmt.Fprintf(app.Stdout, "%-20s %-8s %s: %s (%s)\n", r.Route, r.Type, r.Target, state, r.Took.Round(time.Millisecond))
				}
			}
			if !rep.OK {
				return &ExitError{Code: ExitFailure, Err: errors.New("some notification routes failed")}
			}
			return nil
		},
	}
	test.Flags().StringVar(&configDir, "config-dir", "", "configuration directory (default /etc/palisade)")
	test.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	durationVar(test.Flags(), &timeout, "timeout", time.Minute, "give up on the routes after this long")
	cmd.AddCommand(test)
	return cmd
}

// writeHealth prints the daemon's health line of `palisade status`.
func writeHealth(w io.Writer, st control.StatusReply) {
	if st.Healthy {
		fmt.Fprintln(w, "Health:  ok")
		return
	}
	fmt.Fprintln(w, "Health:  UNHEALTHY")
	for _, j := range st.Jails {
		for _, p := range j.Health.Problems {
			fmt.Fprintf(w, "  %s: %s\n", j.Name, p)
		}
	}
}

// writeJailHealth prints a jail's health line of `palisade status JAIL`.
func writeJailHealth(w io.Writer, j control.JailStatus) {
	if j.Health.Healthy || len(j.Health.Problems) == 0 {
		fmt.Fprintln(w, "|- Health: ok")
		return
	}
	fmt.Fprintf(w, "|- Health: UNHEALTHY: %s\n", strings.Join(j.Health.Problems, "; "))
}
