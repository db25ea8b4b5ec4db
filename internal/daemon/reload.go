package daemon

import (
	"context"
	"fmt"
	"sort"
	"time"

	sdd "github.com/coreos/go-systemd/v22/daemon"

	"github.com/palisade-project/palisade/internal/control"
	"github.com/palisade-project/palisade/internal/firewall"
	"github.com/palisade-project/palisade/internal/pipeline"
)

// Reload re-reads the configuration and builds every jail first; only
// when everything built does it swap, and only what changed:
//
//   - an unchanged jail keeps running untouched;
//   - a jail whose filter, source or stage (ignorecommand, usedns,
//     ignoreip host names) changed keeps its failure table and counters
//     and swaps the changed part;
//   - a jail whose counting changed (maxretry, findtime, bantime,
//     ignoreip, ...) starts a new failure table; its status totals carry
//     over;
//   - a changed firewall route or scope is set up, the jail's bans moved
//     to the new backend;
//   - a removed jail stops and its bans are lifted, as fail2ban does when
//     a jail stops.
//
// A configuration that does not load or build is refused whole: the
// running one is kept, the error (file:line) is returned, logged and shown
// by status.
func (d *Daemon) Reload() (control.ReloadReply, error) {
	d.reloadMu.Lock()
	defer d.reloadMu.Unlock()
	d.opts.Notify(sdd.SdNotifyReloading)
	defer d.opts.Notify(sdd.SdNotifyReady)
	ctx := context.Background()
	cfg, plans, err := Build(d.opts)
	if err != nil {
		d.mu.Lock()
		d.reloadErr = err.Error()
		d.mu.Unlock()
		d.log.Error("reload refused; the running configuration is kept", "err", err)
		return control.ReloadReply{}, err
	}
	for _, w := range cfg.Warnings {
		d.log.Warn("configuration: " + w)
	}

	var rep control.ReloadReply
	d.mu.Lock()
	old := d.jails
	oldCfg := d.cfg
	d.mu.Unlock()
	next := map[string]*pipeline.Jail{}
	var started, stopped []*pipeline.Jail
	carry := map[*pipeline.Jail]*pipeline.Jail{} // replacement → replaced
	rerouted := false
	for _, p := range plans {
		for _, n := range p.Notes {
			d.log.Info("configuration: " + n)
		}
		for _, w := range p.Warnings {
			d.log.Warn("configuration: " + w)
		}
		name := p.Name()
		r, had := old[name]
		if !had {
			nr, err := d.newJail(p)
			if err != nil { // cannot happen for a built plan; keep going
				d.log.Error("jail not started", "jail", name, "err", err)
				continue
			}
			d.routeJail(ctx, p)
			rerouted = true
			next[name] = nr
			started = append(started, nr)
			rep.Added = append(rep.Added, name)
			continue
		}
		op, np := r.Plan().Parts(), p.Parts()
		if op.Enforce != np.Enforce {
			d.reroute(ctx, r.Plan(), p)
			rerouted = true
		}
		switch {
		case op == np:
			next[name] = r // unchanged: its running state stays
			continue
		case op.Logic == np.Logic:
			if err := r.Update(p, d.sources()); err != nil {
				r.SetProblem("source", err.Error())
				d.log.Error("jail source", "jail", name, "err", err)
			}
			next[name] = r
			d.log.Info("jail updated; its counters stay", "jail", name, "changed", changedParts(op, np))
		default:
			nr, err := d.newJail(p)
			if err != nil {
				d.log.Error("jail not restarted", "jail", name, "err", err)
				next[name] = r
				continue
			}
			carry[nr] = r
			next[name] = nr
			started = append(started, nr)
			stopped = append(stopped, r)
			d.log.Info("jail restarted with a new failure table", "jail", name, "changed", changedParts(op, np))
		}
		rep.Changed = append(rep.Changed, name)
	}
	var removed []string
	for name, r := range old {
		if _, ok := next[name]; !ok {
			stopped = append(stopped, r)
			removed = append(removed, name)
		}
	}
	sort.Strings(removed)
	rep.Removed = removed

	// Swap: the new jails read before the old ones stop (a shared reader
	// keeps its position), then the firewall follows the new set.
	d.mu.Lock()
	d.jails = next
	d.cfg = cfg
	d.reloadErr = ""
	d.mu.Unlock()
	if err := d.bans.SetJailConfig(banJails(plans, fleetJails(cfg))); err != nil {
		d.log.Error("ban limits after reload", "err", err)
	}
	for _, r := range started {
		d.startJail(r)
	}
	for _, r := range stopped {
		r.Stop()
	}
	for nr, r := range carry {
		nr.Carry(r) // after Stop: the old jail's last counts are included
	}
	if rerouted || len(removed) > 0 {
		d.setupFirewall(ctx, plans)
	} else {
		d.showFirewallErrors()
	}
	for _, name := range removed {
		n, err := d.bans.UnbanAll(ctx, name)
		if n > 0 {
			if rep.Lifted == nil {
				rep.Lifted = map[string]int{}
			}
			rep.Lifted[name] = n
		}
		if err != nil {
			d.log.Error("jail removed; lifting its bans failed (they stay listed and are retried by name)", "jail", name, "lifted", n, "err", err)
			continue
		}
		d.log.Log(ctx, LevelNotice, "jail removed: its bans are lifted", "jail", name, "lifted", n)
	}

	for name := range next {
		rep.Jails = append(rep.Jails, name)
	}
	sort.Strings(rep.Jails)
	d.level.Set(cfg.Daemon.LogLevel)
	if oldCfg.Daemon.Socket != cfg.Daemon.Socket || oldCfg.Daemon.DBFile != cfg.Daemon.DBFile ||
		oldCfg.Daemon.LogTarget != cfg.Daemon.LogTarget || oldCfg.Daemon.Firewall != cfg.Daemon.Firewall {
		d.log.Warn("socket, dbfile, logtarget and [firewall] changes take effect at the next restart")
	}
	for _, s := range d.subs {
		if rl, ok := s.(Reloader); ok {
			if err := rl.Reload(ctx, d); err != nil {
				d.log.Error("reload: "+s.Name(), "err", err)
			}
		}
	}
	d.log.Info("configuration reloaded", "jails", len(rep.Jails), "added", fmt.Sprint(rep.Added),
		"removed", fmt.Sprint(rep.Removed), "changed", fmt.Sprint(rep.Changed))
	return rep, nil
}

func changedParts(a, b pipeline.Parts) string {
	var out []string
	for _, c := range []struct {
		name string
		x, y string
	}{{"filter", a.Filter, b.Filter}, {"source", a.Source, b.Source}, {"counting", a.Logic, b.Logic},
		{"stage", a.Stage, b.Stage}, {"firewall", a.Enforce, b.Enforce}, {"bans", a.Bans, b.Bans}} {
		if c.x != c.y {
			out = append(out, c.name)
		}
	}
	return fmt.Sprint(out)
}

// reroute moves a jail to the backend its new plan names: its bans are
// lifted from the old backend and enforced by the new one (after set-up).
// A scope change on the same backend is a set-up only (setupFirewall).
func (d *Daemon) reroute(ctx context.Context, old, p *pipeline.Plan) {
	before := d.fw.backendOf(p.Name())
	d.routeJail(ctx, p)
	after := d.fw.backendOf(p.Name())
	if before == after {
		return
	}
	var bans []firewall.Ban
	for _, e := range d.bans.List(p.Name()) {
		bans = append(bans, firewall.Ban{Jail: e.Jail, Prefix: e.Prefix, Expires: e.Expires})
	}
	if len(bans) == 0 {
		return
	}
	if err := d.fw.applyTo(ctx, before, bans, false); err != nil {
		d.log.Warn("moving a jail's bans: the old backend refused to lift them", "jail", p.Name(), "backend", before.Name(), "err", err)
	}
	if err := after.Setup(ctx, []firewall.JailSpec{p.Spec}); err != nil {
		d.log.Error("moving a jail's bans: the new backend refused the jail (retried)", "jail", p.Name(), "backend", after.Name(), "err", err)
		return
	}
	now := time.Now()
	live := bans[:0]
	for _, b := range bans {
		if b.Expires.IsZero() || b.Expires.After(now) {
			live = append(live, b)
		}
	}
	if err := d.fw.Add(ctx, live); err != nil {
		d.log.Error("moving a jail's bans: the new backend refused them (retried by reconcile)", "jail", p.Name(), "backend", after.Name(), "err", err)
	}
	d.log.Info("jail's firewall route changed; its bans moved", "jail", p.Name(), "from", before.Name(), "to", after.Name(), "bans", len(live), "was", old.Route.String(), "now", p.Route.String())
}
