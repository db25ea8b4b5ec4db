package audit

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// daemonChecker checks that the palisade daemon runs, is healthy and
// enforces through a backend the kernel really holds.
type daemonChecker struct{}

func (daemonChecker) Area() string { return AreaDaemon }

func (daemonChecker) Check(ctx context.Context, st *State) []Check {
	run := Check{ID: "daemon.running", Severity: High, Title: "the palisade daemon is running"}
	health := Check{ID: "daemon.healthy", Severity: Medium, Title: "the daemon is healthy (jails working, last reload applied)"}
	backend := Check{ID: "daemon.backend", Severity: Medium, Title: "the daemon's firewall backend is what the kernel holds"}
	boot := Check{ID: "daemon.boot", Severity: Low, Title: "the daemon starts at boot (palisade.service enabled)"}
	if l, ok := unitEnabled(st, "palisade.service"); ok {
		boot.Status, boot.Message, boot.Evidence = Pass, "palisade.service is enabled", []string{l}
	} else {
		boot.Status, boot.Message, boot.Fix = Fail, "palisade.service is not enabled: after a reboot nothing bans", "systemctl enable palisade"
	}
	d, err := st.Daemon(ctx)
	if err != nil {
		if errors.Is(err, ErrNotReadable) {
			run.Status, run.Message = Skip, "the control socket is root-only: run the audit as root"
		} else {
			run.Status, run.Message, run.Fix = Fail, "no daemon answers: logs are not watched and nobody is banned", "systemctl enable --now palisade"
		}
		run.Evidence = []string{err.Error()}
		for _, c := range []*Check{&health, &backend} {
			c.Status, c.Message = Skip, "the daemon is not running"
		}
		return []Check{run, health, backend, boot}
	}
	run.Status = Pass
	run.Message = fmt.Sprintf("running (pid %d, %s) since %s with %d jail(s)", d.PID, cmpOr(d.Version, "version unknown"), d.Started.UTC().Format(time.RFC3339), len(d.Jails))
	run.Evidence = []string{"control socket " + d.Socket, "configuration " + d.ConfigDir}

	var problems []string
	if d.ReloadError != "" {
		problems = append(problems, "the last reload failed (the running configuration is older than the files): "+d.ReloadError)
	}
	for _, j := range d.Jails {
		switch {
		case j.Error != "":
			problems = append(problems, "jail "+j.Name+": "+j.Error)
		case !j.Health.Healthy:
			problems = append(problems, "jail "+j.Name+" unhealthy: "+strings.Join(j.Health.Problems, "; "))
		}
	}
	if !d.Healthy && len(problems) == 0 {
		problems = append(problems, "the health watchdog reports a problem")
	}
	if len(problems) == 0 {
		health.Status, health.Message = Pass, "healthy; no jail reports an error"
	} else {
		health.Status, health.Message, health.Evidence = Fail, problems[0], problems
		health.Fix = "palisade status (each jail's error), palisade config check; then palisade reload"
	}
	daemonBackend(ctx, st, d, &backend)
	return []Check{run, health, backend, boot}
}

func daemonBackend(ctx context.Context, st *State, d *DaemonStatus, c *Check) {
	c.Evidence = []string{"daemon backend: " + d.Backend}
	rs, err := st.Ruleset(ctx)
	if err != nil {
		c.Status, c.Message = Skip, "the kernel's ruleset cannot be read"
		c.Evidence = append(c.Evidence, err.Error())
		return
	}
	var problems []string
	parts := strings.Split(d.Backend, "+")
	for _, b := range parts {
		switch {
		case b == "nftables":
			if !rs.HasTable(palFamily, palTable) {
				problems = append(problems, "the daemon bans through nftables but the kernel has no table inet palisade")
				continue
			}
			chains := rs.JailChains()
			c.Evidence = append(c.Evidence, "table inet palisade jail chains: "+strings.Join(prefixAll("j_", chains), ", "))
			if len(parts) == 1 {
				for _, j := range d.Jails {
					if j.Error == "" && !slices.Contains(chains, j.Name) {
						problems = append(problems, "jail "+j.Name+" has no chain j_"+j.Name+" in table inet palisade: its bans do not reach the kernel")
					}
				}
			}
		case b == "ufw":
			if !rs.UFWLoaded() {
				problems = append(problems, "the daemon bans through ufw but ufw's chains are not in the kernel (ufw disabled?)")
			}
		case b == "iptables":
			if _, ok := rs.Chain("ip", "filter", "palisade"); ok {
				c.Evidence = append(c.Evidence, "iptables chain palisade (table ip filter)")
			} else {
				c.Evidence = append(c.Evidence, "iptables chain palisade not visible to nft (legacy iptables?)")
			}
		case b == "log":
			problems = append(problems, "backend log: bans are recorded and logged, nothing reaches the kernel")
		case strings.HasPrefix(b, "exec:"):
			c.Evidence = append(c.Evidence, b+": action.d commands (not visible in the ruleset)")
		default:
			problems = append(problems, "unknown backend "+b)
		}
	}
	if len(problems) == 0 {
		c.Status, c.Message = Pass, "the kernel holds what the daemon's backend "+d.Backend+" needs"
		return
	}
	c.Status, c.Message = Fail, problems[0]
	c.Evidence = append(c.Evidence, problems...)
	c.Fix = "systemctl restart palisade (start-up re-creates the table and re-installs every ban); palisade status"
}

func prefixAll(p string, in []string) []string {
	out := make([]string, len(in))
	for i, s := range in {
		out[i] = p + s
	}
	return out
}
