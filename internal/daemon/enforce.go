package daemon

import (
	"context"
	"time"

	"github.com/palisade-project/palisade/internal/firewall"
	"github.com/palisade-project/palisade/internal/firewall/actionexec"
	"github.com/palisade-project/palisade/internal/firewall/detect"
	"github.com/palisade-project/palisade/internal/pipeline"
	"github.com/palisade-project/palisade/internal/sysexec"
)

func (d *Daemon) detectDeps() detect.Deps {
	return detect.Deps{Runner: sysexec.NewExec(30 * time.Second), Logger: d.log}
}

// routeJail sends the jail's specs and bans to the backend its plan's
// route names.
func (d *Daemon) routeJail(ctx context.Context, p *pipeline.Plan) {
	rt := p.Route
	for _, ig := range rt.Ignored {
		d.log.Warn("jail action not run: palisade runs one ban action per jail", "jail", p.Name(), "action", ig)
	}
	b := d.fw.def
	if nb := d.backendFor(p.Name(), rt); nb != nil {
		b = d.meter(nb) // one wrapper per backend: the router sees one backend
	}
	d.fw.route(ctx, p.Name(), b)
	d.log.Info("jail firewall route", "jail", p.Name(), "route", rt.String(), "why", rt.Why)
}

// backendFor returns the backend enforcing a route (nil: the default).
// Native backends are built once per kind, on first use; a kind that is
// unusable here falls back to the default backend.
func (d *Daemon) backendFor(jail string, rt pipeline.Route) firewall.Backend {
	switch {
	case rt.Action != nil:
		return actionexec.NewBackend(rt.Action, sysexec.NewExec(30*time.Second), d.log.With("jail", jail))
	case rt.Kind == "" || (d.opts.Backend != nil && d.opts.NewBackend == nil) || rt.Kind == d.defKind:
		return nil
	}
	d.nativeMu.Lock()
	defer d.nativeMu.Unlock()
	if b, ok := d.native[rt.Kind]; ok {
		return b
	}
	var b firewall.Backend
	var err error
	if d.opts.NewBackend != nil {
		b, err = d.opts.NewBackend(rt.Kind)
	} else {
		var kind string
		kind, _, err = detect.Choose(rt.Kind, d.detectDeps())
		if err == nil {
			b, err = detect.New(kind, d.detectDeps())
		}
	}
	if err != nil {
		d.log.Warn("jail banaction backend unusable; the default backend enforces the jail", "jail", jail, "backend", rt.Kind, "err", err)
		return nil
	}
	d.native[rt.Kind] = b
	return b
}
