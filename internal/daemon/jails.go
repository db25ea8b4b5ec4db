package daemon

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/palisade-project/palisade/internal/firewall"
	"github.com/palisade-project/palisade/internal/pipeline"
	"github.com/palisade-project/palisade/internal/source"
	"github.com/palisade-project/palisade/internal/source/filetail"
	"github.com/palisade-project/palisade/internal/source/journal"
	"github.com/palisade-project/palisade/internal/sysexec"
)

// sources adapts the daemon's shared readers to pipeline.Sources.
type sources struct {
	t *filetail.Tailer
	j *journal.Reader
}

func (s sources) Files(patterns []string, head bool, c source.Consumer) (func(), error) {
	return s.t.Subscribe(patterns, filetail.Options{Head: head}, c)
}

func (s sources) Journal(spec journal.Spec, c source.Consumer) (func(), error) {
	return s.j.Subscribe(spec, c)
}

func (d *Daemon) sources() pipeline.Sources { return sources{d.tailer, d.journal} }

// newJail makes the running jail of a plan (not yet reading).
func (d *Daemon) newJail(p *pipeline.Plan) (*pipeline.Jail, error) {
	deps := pipeline.Deps{
		Bans: d.bans, History: d.bans, Active: d.bans, Runner: sysexec.NewExec(pipeline.DefaultCommandTimeout),
		Resolver: d.opts.Resolver, Now: d.now, Logger: d.log, OnBan: d.opts.OnBan, Implicit: d.cloudflareIgnore,
	}
	if d.fj != nil {
		deps.Journal = d.fj
	}
	r, err := pipeline.New(p, deps)
	if err != nil {
		return nil, fmt.Errorf("jail %s: %w", p.Name(), err)
	}
	return r, nil
}

// startJail subscribes a jail to its source. A source that cannot be
// subscribed (a journal match journalctl refuses) is the jail's problem,
// shown by status; the other jails keep working.
func (d *Daemon) startJail(r *pipeline.Jail) {
	p := r.Plan()
	if err := r.Start(d.sources()); err != nil {
		r.SetProblem("source", err.Error())
		d.log.Error("jail source", "jail", p.Name(), "err", err)
		return
	}
	d.log.Info("jail started", "jail", p.Name(), "filter", p.Jail.Filter.Raw, "watching", fmt.Sprint(p.Source.Watch()), "why", p.Source.Why)
}

// waitJailsReady waits (bounded) for every jail's first lookup of its
// ignoreip host names, so that an admin's host name exempts it from the
// first line on.
func (d *Daemon) waitJailsReady(max time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), max)
	defer cancel()
	var wg sync.WaitGroup
	slow := make(chan string, len(d.jails))
	for name, r := range d.jails {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if !r.WaitReady(ctx) {
				slow <- name
			}
		}()
	}
	wg.Wait()
	close(slow)
	var names []string
	for n := range slow {
		names = append(names, n)
	}
	if len(names) > 0 {
		sort.Strings(names)
		d.log.Warn("ignoreip host names not resolved within the start-up wait; they exempt once resolved", "jails", fmt.Sprint(names), "wait", max.String())
	}
}

// specs are the plans' firewall scopes.
func specs(plans []*pipeline.Plan) []firewall.JailSpec {
	out := make([]firewall.JailSpec, len(plans))
	for i, p := range plans {
		out[i] = p.Spec
	}
	return out
}

// runningPlans returns the plans of the running jails.
func (d *Daemon) runningPlans() []*pipeline.Plan {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]*pipeline.Plan, 0, len(d.jails))
	for _, r := range d.jails {
		out = append(out, r.Plan())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name() < out[j].Name() })
	return out
}

// retrySetup sets up again the firewall of jails whose backend refused
// it (ufw enabled later, a module loaded): their status clears when it
// works.
func (d *Daemon) retrySetup(ctx context.Context) {
	d.mu.Lock()
	failing := len(d.fwErr) > 0
	d.mu.Unlock()
	if failing {
		d.setupFirewall(ctx, d.runningPlans())
	}
}

// setupFirewall sets up every backend for the plans' jails, records each
// jail's refusal and shows it on the running jails.
func (d *Daemon) setupFirewall(ctx context.Context, plans []*pipeline.Plan) {
	all := append(specs(plans), fleetSpecs(d.config())...) // the jails' and the fleet jail's (fleet.go)
	errs := d.fw.SetupEach(ctx, all)
	d.mu.Lock()
	d.fwErr = map[string]string{}
	for _, s := range all {
		if e := errs[s.Name]; e != nil {
			d.fwErr[s.Name] = "firewall: " + e.Error()
		}
	}
	d.mu.Unlock()
	d.showFirewallErrors()
}

// showFirewallErrors puts the recorded set-up refusals on the running
// jails (and clears the resolved ones), logging each change.
func (d *Daemon) showFirewallErrors() {
	d.mu.Lock()
	defer d.mu.Unlock()
	for name, r := range d.jails {
		msg := d.fwErr[name]
		if !r.SetProblem("firewall", msg) {
			continue
		}
		if msg != "" {
			d.log.Error("jail's firewall backend refused its set-up; bans are recorded and retried", "jail", name, "err", msg)
		} else {
			d.log.Info("jail's firewall is set up", "jail", name)
		}
	}
}
