package daemon

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/palisade-project/palisade/internal/config"
	"github.com/palisade-project/palisade/internal/firewall/detect"
	"github.com/palisade-project/palisade/internal/pipeline"
	"github.com/palisade-project/palisade/internal/sysexec"
)

// CheckReport is the result of `palisade config check` (its --json form).
type CheckReport struct {
	OK        bool             `json:"ok"`
	ConfigDir string           `json:"config_dir"`
	Errors    config.ErrorList `json:"errors"`
	Warnings  []string         `json:"warnings"`
	Jails     []CheckedJail    `json:"jails"`
	Files     []string         `json:"files"`
}

// CheckedJail is one enabled jail in a CheckReport.
type CheckedJail struct {
	Name     string   `json:"name"`
	Filter   string   `json:"filter"`
	LogPaths []string `json:"logpath"`
	Backend  string   `json:"backend"`
	// Watching is exactly what the daemon would read now: file paths and
	// globs, or "journal: MATCH"; Source says why.
	Watching []string `json:"watching"`
	Source   string   `json:"source,omitempty"`
	MaxRetry int      `json:"maxretry"`
	FindTime string   `json:"findtime"`
	BanTime  string   `json:"bantime"`
	// Firewall is how the jail's bans are enforced: a native backend kind
	// its banaction maps to, "exec:ACTION" for an action.d file, or
	// "default" (the [firewall] backend or auto detection).
	Firewall string `json:"firewall"`
	// Warnings are the jail's problems that do not stop it (nothing to
	// read yet, a firewall backend that is not active, failregexes that
	// may take a forged address, forgeable journal matches).
	Warnings []string `json:"warnings"`
	// StockReplaced is the fail2ban stock filter file palisade's built-in
	// filter of the same name replaces (absent: the filter is used as
	// read); Notes say so in words.
	StockReplaced string   `json:"stock_replaced,omitempty"`
	Notes         []string `json:"notes,omitempty"`
	// Error is set when the jail cannot be built (its filter or action).
	Error string `json:"error,omitempty"`
}

// Check loads the configuration and builds every enabled jail exactly as
// the daemon does at start-up and reload (pipeline.Build), and probes the
// firewall backends the jails would use. Nothing is started. OK means the
// daemon starts with this configuration.
func Check(opts Options) CheckReport {
	rep := CheckReport{ConfigDir: opts.ConfigDir, Errors: config.ErrorList{}, Warnings: []string{}, Jails: []CheckedJail{}}
	cfg, err := LoadConfig(opts)
	if err != nil {
		rep.Errors = config.AsErrorList(err)
		return rep
	}
	rep.Files = cfg.Files
	env := opts.buildEnv(cfg)
	rep.Warnings = append(rep.Warnings, cfg.Warnings...)
	probe := opts.Probe
	if probe == nil {
		probe = probeBackend
	}
	probes := map[string]error{}
	probed := func(kind string) error {
		if e, ok := probes[kind]; ok {
			return e
		}
		probes[kind] = probe(kind)
		return probes[kind]
	}
	// The default backend. Without a usable one the daemon cannot start
	// (exit status 1): an environment problem, so a warning here.
	defKind := strings.ToLower(cfg.Daemon.Firewall.Backend)
	if opts.Backend == nil && defKind != "log" {
		if err := probed(defKind); err != nil && !errors.Is(err, errNotActive) {
			rep.Warnings = append(rep.Warnings, "firewall: "+err.Error()+": the daemon cannot start here")
		}
	}
	for _, j := range cfg.Enabled() {
		cj := CheckedJail{Name: j.Name, Filter: j.Filter.Raw, LogPaths: j.Source.Patterns(), Backend: j.Source.Backend,
			MaxRetry: j.MaxRetry, FindTime: j.FindTime.String(), BanTime: pipeline.DurationText(j.BanTime),
			Watching: []string{}, Warnings: []string{}}
		p, err := pipeline.Build(cfg, j, env)
		if err != nil {
			list := config.AsErrorList(err)
			msgs := make([]string, len(list))
			for i, e := range list {
				msgs[i] = e.Error()
			}
			cj.Error = strings.Join(msgs, "; ")
			rep.Errors = append(rep.Errors, list...)
			rep.Jails = append(rep.Jails, cj)
			continue
		}
		cj.Watching, cj.Source, cj.Firewall = p.Source.Watch(), p.Source.Why, p.Route.String()
		cj.Warnings = append(cj.Warnings, p.Warnings...)
		cj.Notes = p.Notes
		if u := p.Filter.Stock; u != nil && u.Replaced {
			cj.StockReplaced = u.File
		}
		// The backend the daemon would use for the jail (the given one in
		// tests, unless native backends are given too).
		kind := p.Route.Kind
		if kind == "" || p.Route.Action != nil || defKind != "auto" {
			kind = defKind
		}
		usesGiven := opts.Backend != nil && (kind == defKind || opts.NewBackend == nil)
		if !usesGiven && kind != "log" && p.Route.Action == nil {
			if err := probed(kind); err != nil && (kind != defKind || errors.Is(err, errNotActive)) {
				cj.Warnings = append(cj.Warnings, fmt.Sprintf("jail %s: firewall %s: %v", j.Name, kind, err))
			}
		}
		rep.Warnings = append(rep.Warnings, cj.Warnings...)
		rep.Jails = append(rep.Jails, cj)
	}
	sort.SliceStable(rep.Jails, func(a, b int) bool { return rep.Jails[a].Name < rep.Jails[b].Name })
	rep.OK = len(rep.Errors) == 0
	return rep
}

// errNotActive marks a backend that is installed but not enforcing (an
// inactive ufw): its jails are not protected until it is enabled.
var errNotActive = errors.New("not active")

// probeBackend checks that a backend kind can be used here: the kernel or
// its programs (detection), and for ufw that it is active.
func probeBackend(kind string) error {
	run := sysexec.NewExec(10 * time.Second)
	k, _, err := detect.Choose(kind, detect.Deps{Runner: run})
	if err != nil {
		return err
	}
	if k != detect.UFW {
		return nil
	}
	res, err := run.Run(context.Background(), sysexec.Cmd{Name: "ufw", Args: []string{"status"}})
	if err != nil {
		return fmt.Errorf("ufw status: %w", err)
	}
	if !strings.Contains(string(res.Stdout), "Status: active") {
		return fmt.Errorf("ufw is %w: bans are recorded but not enforced until \"ufw enable\"", errNotActive)
	}
	return nil
}
