package daemon

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/palisade-project/palisade/internal/firewall/nft"
	"github.com/palisade-project/palisade/internal/firewall/policy"
	"github.com/palisade-project/palisade/internal/firewall/policyctl"
	"github.com/palisade-project/palisade/internal/firewall/policynft"
)

// The firewall guard: the daemon installs the firewall policy
// (CONFIG-DIR/firewall.rules) when it starts, and keeps palisade's nftables
// table whole when something removes parts of it behind its back (Debian's
// nftables.service runs "flush ruleset"; an admin runs "nft flush table inet
// palisade"): on a deletion event from the kernel (netlink), and at least
// every guardInterval, it checks the nft backend's jail chains and sets and
// the policy's chains; on loss it re-runs the backend's Setup, re-installs
// the policy last installed and re-adds the bans when their sets were lost
// (every
// element: the ban manager's Reenforce, one bulk add from memory; when
// only rules were flushed, the elements are still there). The command line
// edits and applies the policy itself, under the
// policy lock; the guard takes the same lock, so the two never interleave.

// guardInterval is the periodic check, the safety net behind the events.
const guardInterval = 2 * time.Second

// intactChecker is a firewall backend that can tell whether its kernel
// objects are all still there (the nftables backend).
type intactChecker interface {
	Intact(ctx context.Context) error
}

func (d *Daemon) policyController() *policyctl.Controller {
	return &policyctl.Controller{
		Path:   filepath.Join(d.opts.ConfigDir, policy.FileName),
		Names:  policyctl.LoadNames(d.opts.Root),
		Kernel: policynft.New(policynft.Options{}),
		Store:  policyctl.NewStore(d.opts.Root),
	}
}

// startFirewall applies the policy file, if there is one, and starts the
// guard; its goroutines end with ctx and are counted in wg.
func (d *Daemon) startFirewall(ctx context.Context, wg *sync.WaitGroup) {
	ctl := d.policyController()
	if _, err := os.Stat(ctl.Path); err == nil {
		res, err := ctl.ApplyFile(ctx, false)
		switch {
		case err != nil:
			d.log.Error("firewall policy not installed", "file", ctl.Path, "err", err)
		case res.Policy.Enabled:
			d.log.Info("firewall policy installed", "file", ctl.Path, "default", string(res.Policy.Default), "rules", len(res.Policy.Rules))
		default:
			d.log.Info("firewall policy is disabled", "file", ctl.Path)
		}
	}
	// The backends are taken now (a backend kind
	// first used by a jail added on reload is guarded from the next start).
	g := &guard{d: d, ctl: ctl, kick: make(chan struct{}, 1), backends: d.intactBackends()}
	wg.Add(2)
	go func() {
		defer wg.Done()
		if err := policynft.Watch(ctx, 0, g.poke); err != nil {
			d.log.Warn("no nftables event monitor: the firewall is checked every "+guardInterval.String()+" only", "err", err)
		}
	}()
	go func() { defer wg.Done(); g.run(ctx) }()
}

type guard struct {
	d        *Daemon
	ctl      *policyctl.Controller
	kick     chan struct{}
	backends []intactChecker
}

func (g *guard) poke() {
	select {
	case g.kick <- struct{}{}:
	default:
	}
}

func (g *guard) run(ctx context.Context) {
	t := time.NewTicker(guardInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-g.kick:
			// One "flush ruleset" is many events: let them pass.
			select {
			case <-ctx.Done():
				return
			case <-time.After(50 * time.Millisecond):
			}
			select {
			case <-g.kick:
			default:
			}
		}
		g.check(ctx)
	}
}

// check finds and repairs what is missing.
func (g *guard) check(ctx context.Context) {
	d := g.d
	t0 := time.Now()
	var damage []string
	setsLost := false
	for _, b := range g.backends {
		if err := b.Intact(ctx); err != nil {
			damage = append(damage, err.Error())
			setsLost = setsLost || errors.Is(err, nft.ErrSetsLost)
		}
	}
	if len(damage) > 0 {
		d.setupFirewall(ctx, d.runningPlans())
	}
	if _, err := os.Stat(g.ctl.Path); err == nil {
		what, busy, err := g.ctl.Repair(ctx, time.Second)
		switch {
		case busy:
			time.AfterFunc(500*time.Millisecond, g.poke) // a command holds the lock: look again soon
		case err != nil && !errors.Is(err, context.Canceled):
			d.log.Error("firewall: re-installing the policy", "err", err)
		case what != "":
			damage = append(damage, "policy: "+what)
		}
	}
	if len(damage) == 0 {
		return
	}
	readded := 0
	if setsLost {
		// The sets came back empty: every active ban the manager holds
		// again, in one bulk add (no store read, no dump of what is not
		// there).
		n, err := d.bans.Reenforce(ctx)
		if err != nil {
			d.log.Error("firewall: re-adding the bans", "err", err)
		}
		readded = n
	}
	d.log.Warn("palisade's nftables table was changed behind its back: restored",
		"missing", strings.Join(damage, "; "), "bans_readded", readded, "took", time.Since(t0).Round(time.Millisecond).String())
}

// intactBackends are the firewall backends in use that can check
// themselves.
func (d *Daemon) intactBackends() []intactChecker {
	var out []intactChecker
	if b, ok := d.opts.Backend.(intactChecker); ok {
		out = append(out, b)
	}
	d.nativeMu.Lock()
	defer d.nativeMu.Unlock()
	for _, b := range d.native {
		if c, ok := b.(intactChecker); ok {
			out = append(out, c)
		}
	}
	return out
}
