package daemon

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"time"

	"github.com/palisade-project/palisade/internal/config"
	"github.com/palisade-project/palisade/internal/config/ini"
	"github.com/palisade-project/palisade/internal/firewall"
	"github.com/palisade-project/palisade/internal/firewall/actionexec"
	"github.com/palisade-project/palisade/internal/firewall/detect"
	"github.com/palisade-project/palisade/internal/sysexec"
)

// Route says how one jail's bans are enforced.
type Route struct {
	// Kind is the native backend kind the jail's banaction maps to
	// (nftables, ipset, ufw); "" means the default backend (the
	// [firewall] backend, or auto detection).
	Kind string
	// AllPorts says the jail's banaction blocks every port.
	AllPorts bool
	// Action is the compiled action.d file of a jail whose action has no
	// native equivalent (Kind is then "").
	Action *actionexec.Action
	// Why explains the choice.
	Why string
	// Ignored are the jail's further actions, which palisade does not run.
	Ignored []string
}

// String names the route for status and config check.
func (r Route) String() string {
	switch {
	case r.Action != nil:
		return "exec:" + r.Action.Name
	case r.Kind != "":
		return r.Kind
	}
	return "default"
}

// forcedBackend returns the [firewall] backend when it is set to a
// non-auto value: it then enforces every jail.
func forcedBackend(cfg *config.Config) string {
	b := strings.ToLower(strings.TrimSpace(cfg.Daemon.Firewall.Backend))
	if b == "" || b == "auto" {
		return ""
	}
	return b
}

// ChooseRoute decides how j's bans are enforced. An explicit [firewall]
// backend (not auto) enforces every jail; otherwise the first of the jail's
// actions (or its banaction) that names a fail2ban ban action with a native
// equivalent picks that backend kind; otherwise the first action names an
// action.d file of the configuration directory, compiled for
// internal/firewall/actionexec; a jail with neither uses the default
// backend. Errors are configuration errors with file and line.
func ChooseRoute(cfg *config.Config, j config.Jail) (Route, error) {
	entries := j.Actions
	if len(entries) == 0 && strings.TrimSpace(j.BanAction) != "" {
		entries = []string{j.BanAction}
	}
	jailErr := func(format string, args ...any) error {
		return &config.Error{File: j.File, Line: j.Line, Section: j.Name, Key: "action", Msg: fmt.Sprintf(format, args...)}
	}
	type parsed struct {
		name string
		args map[string]string
	}
	var native *Route
	var others []parsed
	for _, e := range entries {
		name, opts, err := ini.ExtractOptions(strings.TrimSpace(e))
		if err != nil {
			return Route{}, jailErr("%v", err)
		}
		name = strings.TrimSpace(name)
		if config.IsMailAction(name) {
			continue // sent by the built-in mailer (internal/config observe.go), never run
		}
		args := make(map[string]string, len(opts))
		for _, o := range opts {
			args[strings.ToLower(o.Name)] = o.Value
		}
		kind, all, ok := actionexec.MapBanAction(name, args)
		switch {
		case ok && native == nil:
			native = &Route{Kind: kind, AllPorts: all, Why: "banaction " + name}
		case ok:
			others = append(others, parsed{name: name})
		default:
			others = append(others, parsed{name: name, args: args})
		}
	}
	if f := forcedBackend(cfg); f != "" {
		rt := Route{Why: "[firewall] backend = " + f}
		if native != nil {
			rt.AllPorts = native.AllPorts
		}
		return rt, nil
	}
	if native != nil {
		for _, o := range others {
			native.Ignored = append(native.Ignored, o.name)
		}
		return *native, nil
	}
	if len(others) == 0 {
		return Route{Why: "no banaction: default backend"}, nil
	}
	a, err := loadAction(cfg.Dir, others[0].name, others[0].args, j)
	if err != nil {
		return Route{}, err
	}
	rt := Route{Action: a, Why: "action.d/" + others[0].name + " (no native equivalent)"}
	for _, o := range others[1:] {
		rt.Ignored = append(rt.Ignored, o.name)
	}
	return rt, nil
}

// loadAction reads action.d/NAME from the configuration directory (actions
// are not built in) and compiles it with its [Definition] and [Init]
// options, the jail's name, port and protocol and the action's name
// (actname), and the action's arguments (which win).
func loadAction(dir, name string, args map[string]string, j config.Jail) (*actionexec.Action, error) {
	jailErr := func(format string, a ...any) error {
		return &config.Error{File: j.File, Line: j.Line, Section: j.Name, Key: "action", Msg: fmt.Sprintf(format, a...)}
	}
	base := strings.TrimSuffix(strings.TrimSuffix(name, ".conf"), ".local")
	if base == "" || strings.ContainsAny(base, `/\`) || !fs.ValidPath("action.d/"+base) {
		return nil, jailErr("invalid action name %q", name)
	}
	l := &ini.Loader{Layers: []ini.Layer{ini.DirLayer(dir)}}
	c, err := l.Read("action.d/" + base)
	if err != nil {
		return nil, jailErr("action %q has no native backend and %v", base, err)
	}
	opts := map[string]string{}
	for _, sec := range c.Sections() {
		suffix := ""
		switch {
		case sec == "Definition":
		case sec == "Init":
		case strings.HasPrefix(sec, "Init?"):
			suffix = sec[len("Init"):]
		default:
			continue
		}
		keys, err := c.Options(sec, sec == "Definition")
		if err != nil {
			continue
		}
		for _, k := range keys {
			v, err := c.GetEx(sec, k, nil)
			if err != nil {
				raw, _ := c.Raw(sec, k)
				return nil, &config.Error{File: raw.File, Line: raw.Line, Section: sec, Key: k, Msg: err.Error()}
			}
			opts[k+suffix] = v
		}
	}
	if _, ok := args["name"]; !ok {
		opts["name"] = j.Name
	}
	for k, v := range map[string]string{"actname": base, "port": j.PortSpec, "protocol": j.Protocol} {
		if _, ok := opts[k]; !ok && v != "" {
			opts[k] = v
		}
	}
	for k, v := range args {
		opts[k] = v
	}
	a, err := actionexec.Compile(base, opts)
	if err != nil {
		var ae *actionexec.Error
		if errors.As(err, &ae) {
			if raw, ok := c.Raw("Definition", ae.Option); ok && raw.File != "" {
				return nil, &config.Error{File: raw.File, Line: raw.Line, Section: "Definition", Key: ae.Option,
					Msg: fmt.Sprintf("jail %s: %v", j.Name, err)}
			}
		}
		return nil, jailErr("%v", err)
	}
	return a, nil
}

func (d *Daemon) detectDeps() detect.Deps {
	return detect.Deps{Runner: sysexec.NewExec(30 * time.Second), Logger: d.log}
}

// routeFailed reports whether the jail's action could not be set up.
func (d *Daemon) routeFailed(jail string) bool {
	d.rmu.Lock()
	defer d.rmu.Unlock()
	return d.routeErr[jail] != ""
}

// routeJails chooses each enabled jail's backend and tells the router. A
// jail keeps the backend it started with: a changed route is reported and
// takes effect at the next restart (its bans live in the old backend).
func (d *Daemon) routeJails(ctx context.Context, cfg *config.Config) {
	for _, j := range cfg.Enabled() {
		rt, err := ChooseRoute(cfg, j)
		d.rmu.Lock()
		old, had := d.routes[j.Name]
		if err != nil {
			if !had {
				d.routeErr[j.Name] = "action: " + err.Error()
			}
			d.rmu.Unlock()
			d.log.Error("jail action unusable", "jail", j.Name, "err", err)
			continue
		}
		delete(d.routeErr, j.Name)
		if had {
			d.rmu.Unlock()
			if old.String() != rt.String() || old.AllPorts != rt.AllPorts {
				d.log.Warn("jail firewall route changed; takes effect at the next restart", "jail", j.Name, "was", old.String(), "now", rt.String())
			}
			continue
		}
		d.routes[j.Name] = rt
		d.rmu.Unlock()
		for _, ig := range rt.Ignored {
			d.log.Warn("jail action not run: palisade runs one ban action per jail", "jail", j.Name, "action", ig)
		}
		if b := d.backendFor(j.Name, rt); b != nil {
			d.router.route(ctx, j.Name, d.meter(b))
		}
		d.log.Info("jail firewall route", "jail", j.Name, "route", rt.String(), "why", rt.Why)
	}
}

// backendFor returns the backend enforcing a route (nil: the default).
// Native backends are built once per kind, on first use; a kind that is
// unusable here falls back to the default backend.
func (d *Daemon) backendFor(jail string, rt Route) firewall.Backend {
	switch {
	case rt.Action != nil:
		return actionexec.NewBackend(rt.Action, sysexec.NewExec(30*time.Second), d.log.With("jail", jail))
	case rt.Kind == "" || d.opts.Backend != nil || rt.Kind == d.defKind:
		return nil
	}
	if b, ok := d.native[rt.Kind]; ok {
		return b
	}
	kind, _, err := detect.Choose(rt.Kind, d.detectDeps())
	var b firewall.Backend
	if err == nil {
		b, err = detect.New(kind, d.detectDeps())
	}
	if err != nil {
		d.log.Warn("jail banaction backend unusable; the default backend enforces the jail", "jail", jail, "backend", rt.Kind, "err", err)
		return nil
	}
	d.native[rt.Kind] = b
	return b
}
