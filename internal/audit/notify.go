package audit

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/palisade-project/palisade/internal/config"
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

// NotifyFromConfig reads the routes from the [notify] and [notify:NAME]
// sections of palisade.conf/.local (docs/notify.md) and the fail2ban mail
// actions of enabled jails, which palisade turns into mail routes for bans.
type NotifyFromConfig struct{}

// defaultEvents are the events a route sends unless it says otherwise.
func defaultEvents() []string { return []string{"ban", "health"} }

// Routes implements NotifyReader.
func (NotifyFromConfig) Routes(cfg *config.Config) ([]NotifyRoute, error) {
	var out []NotifyRoute
	c, err := cfg.Loader().Read("palisade")
	if err == nil {
		get := func(section, key string) (string, string, bool) {
			if v, ok := c.Raw(section, key); ok && c.HasOption(section, key, false) {
				return strings.TrimSpace(v.Text), v.Where(), true
			}
			if v, ok := c.Raw("notify", key); ok && c.HasOption("notify", key, false) {
				return strings.TrimSpace(v.Text), v.Where(), true
			}
			return "", "", false
		}
		for _, sec := range c.Sections() {
			name, ok := strings.CutPrefix(sec, "notify:")
			if !ok || name == "" {
				continue
			}
			r := NotifyRoute{Name: name, Enabled: true, Events: defaultEvents(), Type: "smtp"}
			if v, where, ok := get(sec, "enabled"); ok {
				r.Enabled = !slices.Contains([]string{"no", "false", "0", "off"}, strings.ToLower(v))
				r.Where = where
			}
			if v, where, ok := get(sec, "events"); ok {
				r.Events = parseEvents(v)
				r.Where = where
			}
			if v, _, ok := get(sec, "jails"); ok {
				r.Jails = strings.FieldsFunc(v, func(c rune) bool { return c == ',' || c == ' ' || c == '\t' })
			}
			if v, _, ok := get(sec, "type"); ok {
				r.Type = v
			} else if _, _, ok := get(sec, "url"); ok {
				r.Type = "webhook"
			} else if _, _, ok := get(sec, "url_file"); ok {
				r.Type = "webhook"
			}
			if r.Where == "" {
				if v, ok := c.Raw(sec, "type"); ok {
					r.Where = v.Where()
				} else {
					r.Where = sectionWhere(c.Files(), sec)
				}
			}
			out = append(out, r)
		}
	}
	// fail2ban's mail actions become mail routes for bans.
	var mailJails []string
	where := ""
	for _, j := range cfg.Enabled() {
		for _, a := range j.Actions {
			name, _, _ := strings.Cut(strings.TrimSpace(a.Raw), "[")
			if isMailAction(name) {
				mailJails = append(mailJails, j.Name)
				if where == "" {
					where = j.Where
				}
				break
			}
		}
	}
	if len(mailJails) > 0 {
		out = append(out, NotifyRoute{Name: "fail2ban-mail", Type: "smtp", Enabled: true, Events: []string{"ban"}, Jails: mailJails, Where: where})
	}
	return out, nil
}

func sectionWhere(files []string, sec string) string {
	if len(files) == 0 {
		return ""
	}
	return fmt.Sprintf("[%s] in %s", sec, strings.Join(files, ", "))
}

// isMailAction reports whether a fail2ban action name sends mail.
func isMailAction(name string) bool {
	switch {
	case name == "mail", name == "sendmail", strings.HasPrefix(name, "mail-"), strings.HasPrefix(name, "sendmail-"):
		return true
	}
	return false
}

func parseEvents(v string) []string {
	var out []string
	for _, e := range strings.FieldsFunc(strings.ToLower(v), func(c rune) bool { return c == ',' || c == ' ' || c == '\t' }) {
		switch e {
		case "all":
			return []string{"ban", "unban", "escalation", "health", "lifecycle"}
		case "none":
			return nil
		}
		out = append(out, e)
	}
	return out
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
