package pipeline

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"

	"github.com/palisade-project/palisade/internal/config"
	"github.com/palisade-project/palisade/internal/config/ini"
	"github.com/palisade-project/palisade/internal/firewall/actionexec"
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

// chooseRoute decides how j's bans are enforced. An explicit [firewall]
// backend (not auto) enforces every jail; otherwise the first of the jail's
// actions (or its banaction) that names a fail2ban ban action with a native
// equivalent picks that backend kind; otherwise the first action names an
// action.d file of the configuration directory, compiled for
// internal/firewall/actionexec; a jail with neither uses the default
// backend. Errors are configuration errors with file and line.
func chooseRoute(cfg *config.Config, j config.Jail) (Route, error) {
	entries := j.Actions
	if len(entries) == 0 && j.BanAction != nil {
		entries = []config.ActionRef{*j.BanAction}
	}
	var native *Route
	var others []config.ActionRef
	for _, e := range entries {
		if config.IsMailAction(e.Name) {
			continue // sent by the built-in mailer (internal/config observe.go), never run
		}
		kind, all, ok := actionexec.MapBanAction(e.Name, argMap(e))
		switch {
		case ok && native == nil:
			native = &Route{Kind: kind, AllPorts: all, Why: "banaction " + e.Name}
		default:
			others = append(others, e)
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
			native.Ignored = append(native.Ignored, o.Name)
		}
		return *native, nil
	}
	if len(others) == 0 {
		return Route{Why: "no banaction: default backend"}, nil
	}
	a, err := loadAction(cfg.Dir, others[0], j)
	if err != nil {
		return Route{}, err
	}
	rt := Route{Action: a, Why: "action.d/" + others[0].Name + " (no native equivalent)"}
	for _, o := range others[1:] {
		rt.Ignored = append(rt.Ignored, o.Name)
	}
	return rt, nil
}

func argMap(a config.ActionRef) map[string]string {
	m := make(map[string]string, len(a.Args))
	for _, o := range a.Args {
		m[o.Name] = o.Value
	}
	return m
}

// loadAction reads action.d/NAME from the configuration directory (actions
// are not built in) and compiles it with its [Definition] and [Init]
// options, the jail's name, port and protocol and the action's name
// (actname), and the action's arguments (which win).
func loadAction(dir string, ref config.ActionRef, j config.Jail) (*actionexec.Action, error) {
	base := strings.TrimSuffix(strings.TrimSuffix(ref.Name, ".conf"), ".local")
	if base == "" || strings.ContainsAny(base, `/\`) || !fs.ValidPath("action.d/"+base) {
		return nil, j.Errorf("action", "invalid action name %q", ref.Name)
	}
	l := &ini.Loader{Layers: []ini.Layer{ini.DirLayer(dir)}}
	c, err := l.Read("action.d/" + base)
	if err != nil {
		return nil, j.Errorf("action", "action %q has no native backend and %v", base, err)
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
	args := argMap(ref)
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
		return nil, j.Errorf("action", "%v", err)
	}
	return a, nil
}
