package audit

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/palisade-project/palisade/internal/config"
	"github.com/palisade-project/palisade/internal/notify"
)

// NotifyRoute is a notification route as the audit needs it.
type NotifyRoute struct {
	Name    string
	Type    string
	Enabled bool
	// Events are the event kinds sent: ban, unban, escalation, health,
	// lifecycle.
	Events []string
	// Jails restricts the route (empty: every jail).
	Jails []string
	Where string
}

// Sends reports whether the route sends events of kind.
func (r NotifyRoute) Sends(kind string) bool { return r.Enabled && slices.Contains(r.Events, kind) }

// NotifyReader lists the configured notification routes.
type NotifyReader interface {
	Routes(cfg *config.Config) ([]NotifyRoute, error)
}

// NotifyFromConfig lists the routes the configuration loader built
// (config.Observe.Notify: the enabled [notify:NAME] sections, with
// [notify]'s defaults, and the mail routes palisade makes of fail2ban's
// mail actions; docs/notify.md).
type NotifyFromConfig struct{}

// Routes implements NotifyReader.
func (NotifyFromConfig) Routes(cfg *config.Config) ([]NotifyRoute, error) {
	var out []NotifyRoute
	pc, _ := cfg.Loader().Read("palisade")
	for _, rc := range cfg.Observe.Notify {
		r := NotifyRoute{Name: rc.Name, Type: rc.Type, Enabled: true, Jails: rc.Jails, Where: rc.Where}
		if r.Where == "" && pc != nil {
			// The section's first option locates it.
			if opts, err := pc.Options("notify:"+rc.Name, false); err == nil && len(opts) > 0 {
				if v, ok := pc.Raw("notify:"+rc.Name, opts[0]); ok {
					r.Where = v.Where()
				}
			}
		}
		for _, e := range []struct {
			name string
			set  notify.EventSet
		}{{"ban", notify.EventBan}, {"unban", notify.EventUnban}, {"escalation", notify.EventEscalation}, {"health", notify.EventHealth}, {"lifecycle", notify.EventLifecycle}} {
			if rc.Events&e.set != 0 {
				r.Events = append(r.Events, e.name)
			}
		}
		out = append(out, r)
	}
	return out, nil
}

// notifyChecker checks that bans and health problems reach somebody.
type notifyChecker struct{}

func (notifyChecker) Area() string { return AreaNotify }

func (notifyChecker) Check(_ context.Context, st *State) []Check {
	bans := Check{ID: "notify.bans", Severity: Medium, Title: "bans are notified (mail or webhook)"}
	health := Check{ID: "notify.health", Severity: Medium, Title: "protection problems are notified (health)"}
	cfg, err := st.Config()
	if err != nil {
		for _, c := range []*Check{&bans, &health} {
			c.Status, c.Message = Skip, "the palisade configuration does not load (see jails.config)"
		}
		return []Check{bans, health}
	}
	reader := st.src.Notify
	if reader == nil {
		reader = NotifyFromConfig{}
	}
	routes, err := reader.Routes(cfg)
	if err != nil {
		for _, c := range []*Check{&bans, &health} {
			c.Status, c.Message, c.Evidence = Fail, "the notification routes cannot be read", []string{err.Error()}
		}
		return []Check{bans, health}
	}
	judge := func(c *Check, kind, what string) {
		for _, r := range routes {
			line := fmt.Sprintf("route %s (%s): events %s", r.Name, r.Type, strings.Join(r.Events, ","))
			if !r.Enabled {
				line += ", disabled"
			}
			if len(r.Jails) > 0 {
				line += ", jails " + strings.Join(r.Jails, ",")
			}
			if r.Where != "" {
				line += " (" + r.Where + ")"
			}
			c.Evidence = append(c.Evidence, line)
		}
		var names []string
		for _, r := range routes {
			if r.Sends(kind) {
				names = append(names, r.Name)
			}
		}
		if len(names) > 0 {
			c.Status, c.Message = Pass, what+" go to route "+strings.Join(names, ", ")
			return
		}
		c.Status = Fail
		c.Message = "no enabled route sends " + kind + " events: " + what + " reach nobody"
		if len(routes) == 0 {
			c.Message = "no notification route is configured: " + what + " reach nobody"
		}
		c.Fix = "add a route to " + st.src.ConfigDir + "/palisade.local, e.g. [notify:admin] type = smtp, server = HOST:587, from = palisade@HOST, to = YOU, events = ban, health (docs/notify.md); then palisade reload and palisade notify test admin"
	}
	judge(&bans, "ban", "bans")
	judge(&health, "health", "health problems (a log no longer read, a failed firewall write)")
	return []Check{bans, health}
}
